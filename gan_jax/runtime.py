"""The process-wide JAX settings gan_jax runs with, applied by `setup()` only.

Importing gan_jax (or any of its modules) changes nothing global. `setup()`
applies, once per process:

- the XLA:CPU flags of `gan_jax/xla_flags.py` (convolutions off YNNPACK), into
  XLA_FLAGS, which JAX reads when its backends start;
- the unrolled CPU lowering of Threefry-2x32 of `gan_jax/threefry.py` (the
  same random bits, faster), for every program traced afterwards.

Every command (`python -m gan_jax.main`, `.sweep`, `.bench`, `.evaluate`,
`.sample`, `.classifier`) gets it from `cli.run`, before flags are parsed and
before anything touches JAX. Notebooks and library users call it first thing:

  from gan_jax import runtime
  runtime.setup()
"""

from absl import logging
from jax._src import xla_bridge

from gan_jax import threefry
from gan_jax import xla_flags

_done = False


def setup() -> None:
  """Applies gan_jax's XLA flags and Threefry lowering; idempotent.

  Call it before anything starts JAX's backends (creates an array, lists
  devices, compiles): the XLA flags take effect only then. Called later, it
  logs one warning if it had flags to add, and still applies the lowering.
  """
  global _done
  if _done:
    return
  started = xla_bridge.backends_are_initialized()
  added = xla_flags.set_cpu_flags()
  if started and added:
    logging.warning(
        'gan_jax.runtime.setup() ran after JAX started its backends, so'
        ' XLA_FLAGS %s takes no effect in this process; call it before'
        ' anything uses JAX.', ' '.join(added))
  threefry.use_unrolled_lowering()
  _done = True
