"""The unrolled CPU lowering of Threefry-2x32 gives JAX's bits, without loops."""

import os
import subprocess
import sys

import jax
from jax.extend.random import threefry_2x32
import numpy as np
import pytest

from gan_jax import runtime
from gan_jax import threefry

# Random123's known answers for threefry2x32_20: (key, counter, output).
KNOWN_ANSWERS = [
    ((0x00000000, 0x00000000), (0x00000000, 0x00000000), (0x6b200159, 0x99ba4efe)),
    ((0xffffffff, 0xffffffff), (0xffffffff, 0xffffffff), (0x1cb996fc, 0xbb002be7)),
    ((0x13198a2e, 0x03707344), (0x243f6a88, 0x85a308d3), (0xc4923a9c, 0x483df7a0)),
]


@pytest.mark.parametrize('key,counter,expected', KNOWN_ANSWERS)
def test_rounds_give_the_known_answers(key, counter, expected):
  key, counter = np.array(key, np.uint32), np.array(counter, np.uint32)
  out = threefry.threefry2x32_rounds(key[0], key[1], counter[0], counter[1])
  assert tuple(int(x) for x in out) == expected
  runtime.setup()  # the lowering (conftest has called it already: a no-op)
  # The primitive, compiled through the registered lowering.
  assert tuple(int(x) for x in jax.jit(threefry_2x32)(key, counter)) == expected


# Draws of every kind the training step makes, hashed.
DRAWS = '''
import hashlib, jax, numpy as np
def draws(key):
  keys = jax.random.split(key, 64)
  return (jax.random.normal(key, (1000,)),
          jax.random.bernoulli(jax.random.fold_in(key, 3), 0.7, (777,)),
          jax.random.randint(key, (50,), 0, 1000),
          jax.vmap(lambda k: jax.random.uniform(k, (3,)))(keys),
          jax.random.key_data(keys))
compiled = jax.jit(draws).lower(jax.random.key(42)).compile()
out = compiled(jax.random.key(42))
print(hashlib.sha1(b"".join(np.asarray(x).tobytes() for x in out)).hexdigest(),
      " while(" in compiled.as_text())
'''


def test_runtime_setup_keeps_every_bit_and_drops_the_loops():
  """Fresh processes: JAX's own CPU lowering (a loop) against gan_jax's."""
  env = {k: v for k, v in os.environ.items() if k != 'XLA_FLAGS'}

  def run(prelude: str) -> list[str]:
    return subprocess.run([sys.executable, '-c', prelude + DRAWS],
                          capture_output=True, text=True, env=env,
                          check=True).stdout.split()

  jax_digest, jax_loops = run('')
  gan_jax_digest, gan_jax_loops = run(
      'from gan_jax import runtime\nruntime.setup()\n')
  assert gan_jax_digest == jax_digest
  assert (jax_loops, gan_jax_loops) == ('True', 'False')
