"""The sample pictures of a run: each member's generator on a fixed z.

An 8x8 grid for images, a scatter plot over the data for 2-D toys (drawn by
gan_jax.visualize), from the averaged generator when the run keeps one. The
training loop saves them as samples/step_<N>[_seed<i>].png and in TensorBoard.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from gan_jax import data
from gan_jax import parallel
from gan_jax import visualize
from gan_jax.gan import GAN
from gan_jax.gan import GANState
from gan_jax.gan import generate
from gan_jax.gan import generator_variables

NUM_GRID_SAMPLES = 64  # 8x8 image grid
NUM_SCATTER_SAMPLES = 1000  # points in a 2-D toy's scatter plot


class SamplePictures:
  """Pictures of each member's G (its average when the run keeps one) on a
  fixed z (drawn with the member's seed): an 8x8 grid for images, a scatter
  plot for toys."""

  def __init__(self, gan: GAN, source: data.DataSource, seeds: list[int], mesh):
    self._gan = gan
    self._source = source
    count = NUM_GRID_SAMPLES if source.kind == 'images' else NUM_SCATTER_SAMPLES
    keys = [jax.random.split(jax.random.fold_in(jax.random.key(seed), 1))
            for seed in seeds]
    z = np.stack([np.asarray(jax.random.normal(z_key, (count, gan.latent_dim)))
                  for z_key, _ in keys])
    self._z = parallel.replicate(z, mesh)
    self._generate = jax.jit(jax.vmap(functools.partial(generate, gan)),
                             out_shardings=parallel.replicated(mesh))
    if source.kind == 'points':
      arrays = jax.tree.map(jnp.asarray, source.arrays)
      sample = jax.jit(jax.vmap(functools.partial(source.sample_one, arrays)))
      self._real = [np.asarray(sample(jax.random.split(real_key, count)))
                    for _, real_key in keys]

  def __call__(self, state: GANState) -> list[np.ndarray]:
    """uint8 [H, W, C] per member. Every process must call it (it runs on all
    devices)."""
    fake = parallel.fetch(self._generate(generator_variables(self._gan, state),
                                         self._z))
    if self._source.kind == 'images':
      return [visualize.image_grid(f) for f in fake]
    return [visualize.scatter_plot(real, f, modes_K2=self._source.modes)
            for real, f in zip(self._real, fake, strict=True)]
