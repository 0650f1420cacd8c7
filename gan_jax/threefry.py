"""Threefry-2x32 on the CPU without loops: the same random bits, faster.

JAX draws every random number (latents, data batches, dropout masks) with
Threefry-2x32 (Salmon et al. 2011, "Parallel Random Numbers: As Easy as 1, 2,
3"): 20 rounds of add, rotate and xor on pairs of uint32. On the CPU only, JAX
lowers those rounds as a loop of 5 iterations (to keep compile times short),
and XLA runs every iteration as separate passes over memory. On other
platforms it lowers them unrolled, which XLA fuses into one elementwise
kernel. The DCGAN discriminator's dropout masks (about 14 million uniform
draws a step at batch 256) took about 4x longer with the loop.

`use_unrolled_lowering` registers the unrolled rounds as the CPU lowering of
JAX's Threefry primitive (`jax.extend.random.threefry2x32_p`), so every draw
in the process gives the same bits as before, through fewer, fused passes.
Importing this module changes nothing; `runtime.setup()` calls it.
"""

from jax.extend.random import threefry2x32_p
from jax.interpreters import mlir
import jax.numpy as jnp
import numpy as np

# Threefry-2x32's rotation constants, rounds 0-3 and 4-7 of every 8, and the
# key schedule's parity constant (Salmon et al. 2011, Table 4; Random123).
_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))
_PARITY = np.uint32(0x1BD11BDA)


def _rotate_left(x, bits: int):
  return (x << np.uint32(bits)) | (x >> np.uint32(32 - bits))


def threefry2x32_rounds(key1, key2, x1, x2):
  """Threefry-2x32 with 20 rounds of the uint32 counters (x1, x2) under the
  key (key1, key2), unrolled: the function of `jax.extend.random.threefry_2x32`."""
  key1, key2, x1, x2 = (jnp.asarray(a, jnp.uint32) for a in (key1, key2, x1, x2))
  schedule = (key1, key2, key1 ^ key2 ^ _PARITY)
  x1, x2 = x1 + schedule[0], x2 + schedule[1]
  for injection in range(1, 6):  # 5 x (4 rounds, then a key injection)
    for bits in _ROTATIONS[(injection - 1) % 2]:
      x1 = x1 + x2
      x2 = _rotate_left(x2, bits) ^ x1
    x1 = x1 + schedule[injection % 3]
    x2 = x2 + schedule[(injection + 1) % 3] + np.uint32(injection)
  return x1, x2


def _lowering(key1, key2, x1, x2):
  return list(threefry2x32_rounds(key1, key2, x1, x2))


def use_unrolled_lowering() -> None:
  """Lowers Threefry-2x32 unrolled on the CPU from now on (for programs
  traced after the call); other platforms are unchanged."""
  mlir.register_lowering(threefry2x32_p,
                         mlir.lower_fun(_lowering, multiple_results=True),
                         platform='cpu')
