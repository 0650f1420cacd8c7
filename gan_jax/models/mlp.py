"""MLP generator and critic for the 2-D toy mixtures.

As in the toy code of Gulrajani et al. 2017 (gan_toy.py): `depth` hidden
ReLU layers of `width` units in both players (defaults 3 x 512), a linear
output, no normalisation. `dtype` is the layers' compute dtype (bfloat16:
mixed precision); parameters stay float32 and outputs come out float32.
"""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp


class Generator(nn.Module):
  """z [B, latent] -> points [B, out_dim] in data coordinates."""

  width: int = 512
  depth: int = 3
  out_dim: int = 2
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, z_BL: jax.Array, train: bool) -> jax.Array:
    del train  # no batch norm or dropout
    x = z_BL
    for _ in range(self.depth):
      x = nn.relu(nn.Dense(self.width, dtype=self.dtype)(x))
    return nn.Dense(self.out_dim, dtype=self.dtype)(x).astype(jnp.float32)


class Discriminator(nn.Module):
  """points [B, D] -> logits [B]."""

  width: int = 512
  depth: int = 3
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x_BD: jax.Array, train: bool,
               example_keys_B: jax.Array | None = None) -> jax.Array:
    del train, example_keys_B  # no dropout
    x = x_BD
    for _ in range(self.depth):
      x = nn.relu(nn.Dense(self.width, dtype=self.dtype)(x))
    return nn.Dense(1, dtype=self.dtype)(x)[:, 0].astype(jnp.float32)
