"""gan_jax: GANs in JAX/Flax with pure, compiled, data-parallel training steps."""

__version__ = "0.1.0"
