"""The CIFAR-10 ResNets of Gulrajani et al. 2017 ("Improved Training of
Wasserstein GANs", appendix F) as Miyato et al. 2018 give them (Table 4), the
architecture of SNGAN's best CIFAR-10 figures and of mimicry's SNGAN.

G: z -> dense M x M x g_channels -> three residual blocks up-sampling 2x
(BN, ReLU, nearest 2x, 3x3 conv, BN, ReLU, 3x3 conv; shortcut: 1x1 conv and
2x) -> BN, ReLU, 3x3 conv to the image's channels, tanh.
D: an "optimized" first block (3x3 conv, ReLU, 3x3 conv, 2x2 average pool;
shortcut: pool, 1x1 conv), a down-sampling block, two blocks that keep the
size (ReLU, 3x3 conv, ReLU, 3x3 conv; identity shortcut), all d_channels
wide -> ReLU, global sum pooling, dense -> 1.

As the reference code (pfnet-research/sngan_projection, mimicry): biases
everywhere, Glorot-uniform weights with gain sqrt(2) in the residual paths
and 1 elsewhere. Up-sampling is nearest-neighbour as in the papers' code
(mimicry uses bilinear). A 1x1 convolution commutes with nearest up-sampling
and with average pooling, so the shortcuts apply it at the lower resolution.

On 32x32 images G starts from 4x4 (M = 4); on 28x28 MNIST from 7x7, and its
third block keeps the size (so, by the reference's rule that a block learns
its shortcut only when it resamples or changes width, with an identity
shortcut). D takes 28 to 14 and 7, 32 to 16 and 8: its parameters depend
only on the image's channels.
"""

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from gan_jax.models import layers

RESIDUAL_INIT = nn.initializers.variance_scaling(2.0, 'fan_avg', 'uniform')
PLAIN_INIT = nn.initializers.xavier_uniform()


def _upsample(x_BHWC: jax.Array) -> jax.Array:
  """Nearest-neighbour 2x."""
  return jnp.repeat(jnp.repeat(x_BHWC, 2, axis=1), 2, axis=2)


def _pool(x_BHWC: jax.Array) -> jax.Array:
  return nn.avg_pool(x_BHWC, (2, 2), (2, 2))


class GeneratorBlock(nn.Module):
  channels: int
  upsample: bool
  train: bool
  bn_axis_name: str | None
  dtype: Any

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    batch_norm = lambda: layers.batch_norm(  # noqa: E731
        self.train, self.bn_axis_name, self.dtype)
    conv = lambda: layers.Conv(  # noqa: E731
        self.channels, (3, 3), kernel_init=RESIDUAL_INIT, dtype=self.dtype)
    h = nn.relu(batch_norm()(x))
    h = conv()(_upsample(h) if self.upsample else h)
    h = conv()(nn.relu(batch_norm()(h)))
    shortcut = x
    if self.upsample or x.shape[-1] != self.channels:
      shortcut = layers.Conv(self.channels, (1, 1), kernel_init=PLAIN_INIT,
                             dtype=self.dtype, name='shortcut')(x)
    return h + (_upsample(shortcut) if self.upsample else shortcut)


class DiscriminatorBlock(nn.Module):
  channels: int
  downsample: bool
  first: bool  # the "optimized" block on the image: no ReLU before its convs
  dtype: Any

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    conv = lambda: layers.Conv(  # noqa: E731
        self.channels, (3, 3), kernel_init=RESIDUAL_INIT, dtype=self.dtype)
    h = conv()(x if self.first else nn.relu(x))
    h = conv()(nn.relu(h))
    shortcut = _pool(x) if self.downsample else x
    if self.downsample or x.shape[-1] != self.channels:
      shortcut = layers.Conv(self.channels, (1, 1), kernel_init=PLAIN_INIT,
                             dtype=self.dtype, name='shortcut')(shortcut)
    return (_pool(h) if self.downsample else h) + shortcut

G_CHANNELS = 256  # the paper's widths (model.g_channels=0)
D_CHANNELS = 128


class Generator(nn.Module):
  """z [B, latent] -> images [B, H, W, C] in [-1, 1] (tanh)."""

  image_shape: Sequence[int]  # (H, W, C); H and W divisible by 4
  channels: int = G_CHANNELS
  bn_axis_name: str | None = 'data'  # BatchNorm statistics over this axis
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, z_BL: jax.Array, train: bool) -> jax.Array:
    height, width, image_channels = self.image_shape
    (h, w), factors = layers.upsampling_plan(height, width, stages=3)
    x = nn.Dense(h * w * self.channels, kernel_init=PLAIN_INIT,
                 dtype=self.dtype)(z_BL).reshape((-1, h, w, self.channels))
    for factor in factors:
      x = GeneratorBlock(self.channels, factor == 2, train, self.bn_axis_name,
                         self.dtype)(x)
    x = nn.relu(layers.batch_norm(train, self.bn_axis_name, self.dtype)(x))
    x = layers.Conv(image_channels, (3, 3), kernel_init=PLAIN_INIT,
                    dtype=self.dtype)(x)
    return jnp.tanh(x.astype(jnp.float32))


class Discriminator(nn.Module):
  """images [B, H, W, C] -> logits [B]; each example on its own."""

  channels: int = D_CHANNELS
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x_BHWC: jax.Array, train: bool,
               example_keys_B: jax.Array | None = None) -> jax.Array:
    del train, example_keys_B  # deterministic
    x = x_BHWC
    for index, downsample in enumerate((True, True, False, False)):
      x = DiscriminatorBlock(self.channels, downsample, index == 0, self.dtype)(x)
    x = jnp.sum(nn.relu(x), axis=(1, 2))
    return nn.Dense(1, kernel_init=PLAIN_INIT, dtype=self.dtype)(x)[:, 0].astype(jnp.float32)
