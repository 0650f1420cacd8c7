"""The process-wide JAX settings gan_jax runs with, applied by `setup()` only.

Importing gan_jax (or any of its modules) changes nothing global. `setup()`
applies, once per process:

- the XLA:CPU flags of `gan_jax/xla_flags.py` (convolutions off YNNPACK), into
  XLA_FLAGS, which JAX reads when its backends start;
- the unrolled CPU lowering of Threefry-2x32 of `gan_jax/threefry.py` (the
  same random bits, faster), for every program traced afterwards;
- one path layer for object storage (`gs://` workdirs): Orbax's paths
  (etils.epath) go through fsspec/gcsfs, as gan_jax's own files do, not
  through TensorFlow's file system (EPATH_USE_TF=false), and no gcsfs caches
  listings (other hosts write the same directories). With
  STORAGE_EMULATOR_HOST set (a local GCS emulator), TensorStore's GCS driver,
  which writes the checkpoints' arrays, is pointed at it too
  (TENSORSTORE_GCS_HTTP_URL), gcsfs's gRPC bucket probe, which no
  emulator answers, is off, and gcsfs asks for no credentials (without a
  network it would wait seconds for a metadata server). A value the user set
  is kept.

Every command (`python -m gan_jax.main`, `.sweep`, `.bench`, `.evaluate`,
`.sample`, `.classifier`) gets it from `cli.run`, before flags are parsed and
before anything touches JAX. Notebooks and library users call it first thing:

  from gan_jax import runtime
  runtime.setup()
"""

import os
import platform

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
  use_one_storage_layer()
  _done = True


def use_one_storage_layer() -> None:
  """The environment of object storage described in the module docstring."""
  import fsspec.config  # noqa: PLC0415
  os.environ.setdefault('EPATH_USE_TF', 'false')
  gs = fsspec.config.conf.setdefault('gs', {})
  gs.setdefault('use_listings_cache', False)  # other hosts write there too
  emulator = os.environ.get('STORAGE_EMULATOR_HOST')
  if emulator:
    os.environ.setdefault('TENSORSTORE_GCS_HTTP_URL', emulator)
    os.environ.setdefault('GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT', 'false')
    gs.setdefault('token', 'anon')


def machine() -> dict:
  """What a run's timings were measured on: the CPU's model name (Linux's
  /proc/cpuinfo, else `platform.processor()`), its cores, and the kind of
  JAX's first device (e.g. 'cpu', 'NVIDIA H100 80GB HBM3', 'TPU v4')."""
  import jax  # noqa: PLC0415
  cpu = platform.processor() or platform.machine()
  try:
    with open('/proc/cpuinfo') as f:
      names = [line.split(':', 1)[1].strip() for line in f
               if line.startswith('model name')]
    cpu = names[0] if names else cpu
  except OSError:
    pass
  return {'cpu': cpu, 'cpu_cores': os.cpu_count(),
          'device_kind': jax.devices()[0].device_kind}
