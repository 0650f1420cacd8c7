"""The 2-D toy mixtures, sampled exactly inside the step: no files.

PacGAN's ring of 8 and grid of 25 Gaussians (Lin et al. 2018) and the
WGAN-GP toy code's swiss roll (Gulrajani et al. 2017).
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from gan_jax.data.source import DataSource

# Toy mixtures. PacGAN (Lin et al. 2018): 8 Gaussians on the unit circle with
# std 0.01, and 25 Gaussians on {-4,-2,0,2,4}^2 with std 0.05.
RING8_STD = 0.01
GRID25_STD = 0.05
# WGAN-GP toy code (Gulrajani et al. 2017, gan_toy.py): sklearn's
# make_swiss_roll(noise=0.25), coordinates (x, z), divided by 7.5.
SWISSROLL_NOISE = 0.25
SWISSROLL_SCALE = 7.5


def ring8_centres() -> np.ndarray:
  angles = 2 * np.pi * np.arange(8) / 8
  return np.stack([np.cos(angles), np.sin(angles)], axis=1).astype(np.float32)


def grid25_centres() -> np.ndarray:
  values = np.array([-4.0, -2.0, 0.0, 2.0, 4.0])
  x, y = np.meshgrid(values, values, indexing='ij')
  return np.stack([x.ravel(), y.ravel()], axis=1).astype(np.float32)


def _mixture_sampler(std: float) -> Callable[[dict, jax.Array], jax.Array]:
  """Uniform mixture of isotropic Gaussians at arrays['centers']."""

  def sample_one(arrays: dict, key: jax.Array) -> jax.Array:
    centers = arrays['centers']
    mode_key, noise_key = jax.random.split(key)
    index = jax.random.randint(mode_key, (), 0, centers.shape[0])
    noise = std * jax.random.normal(noise_key, (2,), jnp.float32)
    return centers[index] + noise

  return sample_one


def mixture(centres: Callable[[], np.ndarray], std: float, layout: str,
             name: str) -> DataSource:
  """A uniform mixture of Gaussians of std `std` at `centres()` (its modes)."""
  points = centres()
  return DataSource(
      name=name, kind='points', example_shape=(2,), arrays={'centers': points},
      sample_one=_mixture_sampler(std),
      description=(f'{name}: {len(points)} Gaussians {layout}, std {std},'
                   ' uniform weights, sampled in the step'),
      modes=points, mode_std=std)


def _sample_swissroll(arrays: dict, key: jax.Array) -> jax.Array:
  """One point of make_swiss_roll(noise=0.25)[:, [0, 2]] / 7.5 (gan_toy.py)."""
  del arrays  # Unused.
  t_key, noise_key = jax.random.split(key)
  t = 1.5 * jnp.pi * (1 + 2 * jax.random.uniform(t_key, (), jnp.float32))
  point = jnp.stack([t * jnp.cos(t), t * jnp.sin(t)])
  point = point + SWISSROLL_NOISE * jax.random.normal(noise_key, (2,), jnp.float32)
  return point / SWISSROLL_SCALE


def swissroll(name: str) -> DataSource:
  return DataSource(
      name=name, kind='points', example_shape=(2,), arrays={},
      sample_one=_sample_swissroll,
      description=(f'{name}: make_swiss_roll(noise={SWISSROLL_NOISE}) /'
                   f' {SWISSROLL_SCALE}, sampled in the step (WGAN-GP toy)'))
