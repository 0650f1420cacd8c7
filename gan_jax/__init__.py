"""gan_jax: GANs in JAX/Flax with pure, compiled, data-parallel training steps."""

from gan_jax import xla_flags as _xla_flags

_xla_flags.set_cpu_flags()  # before JAX starts: see gan_jax/xla_flags.py

from gan_jax import threefry as _threefry  # noqa: E402  (imports JAX)

_threefry.use_unrolled_lowering()  # the same random bits, faster on the CPU

__version__ = "0.1.0"
