"""gan_jax: GANs in JAX/Flax with pure, compiled, data-parallel training steps.

Importing gan_jax or any of its modules has no global side effects; the
process-wide settings (XLA flags, the fast CPU Threefry lowering) are applied
by `gan_jax.runtime.setup()`, which every command calls first.
"""

__version__ = "0.1.0"
