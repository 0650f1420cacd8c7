"""gan_jax: GANs in JAX/Flax with pure, compiled, data-parallel training steps."""

from gan_jax import xla_flags as _xla_flags

_xla_flags.set_cpu_flags()  # before JAX starts: see gan_jax/xla_flags.py

__version__ = "0.1.0"
