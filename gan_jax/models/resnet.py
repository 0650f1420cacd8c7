"""The SNGAN ResNets, after Gulrajani et al. 2017 (appendix F), at the image
sizes of their experiments: CIFAR-10's of Miyato et al. 2018 ("Spectral
Normalization for GANs", Table 4), its STL-10 one at 48x48, and the 64x64 and
128x128 ImageNet ones of the authors' code (pfnet-research/sngan_projection,
Miyato & Koyama 2018), as mimicry's SNGAN (sngan_32, _48, _64, _128) builds
them:

| image | G: from, widths of its up-sampling blocks | D: widths of its blocks (v: down-samples) |
| --- | --- | --- |
| 32x32 (CIFAR-10), and any other size | 4x4, 256 256 256 | 128v 128v 128 128 |
| 48x48 (STL-10) | 6x6, 256 128 64 (from 512) | 64v 128v 256v 512v 1024 |
| 64x64 | 4x4, 512 256 128 64 (from 1024) | 64v 128v 256v 512v 1024v |
| 128x128 (ImageNet) | 4x4, 1024 512 256 128 64 (from 1024) | 64v 128v 256v 512v 1024v 1024 |

`model.g_channels` and `model.d_channels` scale a column: the widest layer's
channels (the dense layer's output in G, the last block in D), the others
keeping their ratio to it.

G: z -> dense to the first map -> residual blocks up-sampling 2x (BN, ReLU,
nearest 2x, 3x3 conv, BN, ReLU, 3x3 conv; shortcut: 1x1 conv and 2x) -> BN,
ReLU, 3x3 conv to the image's channels, tanh. D: an "optimized" first block
(3x3 conv, ReLU, 3x3 conv, 2x2 average pool; shortcut: pool, 1x1 conv), then
blocks (ReLU, 3x3 conv to the input's width, ReLU, 3x3 conv, average pool
where it down-samples; shortcut: 1x1 conv where the block resamples or
changes width) -> ReLU, global sum pooling, dense -> 1.

As the reference code: biases everywhere, Glorot-uniform weights with gain
sqrt(2) in the residual paths and 1 elsewhere. Up-sampling is nearest-neighbour
as in the papers' code (mimicry uses bilinear). A 1x1 convolution commutes
with nearest up-sampling and with average pooling, so the shortcuts apply it
at the lower resolution.

Other sizes take the 32x32 networks: on 28x28 MNIST G starts from 7x7, and
its third block keeps the size (so, by the reference's rule that a block
learns its shortcut only when it resamples or changes width, with an
identity shortcut); D takes 28 to 14 and 7.
"""

from collections.abc import Sequence
import dataclasses
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
    conv = lambda channels: layers.Conv(  # noqa: E731
        channels, (3, 3), kernel_init=RESIDUAL_INIT, dtype=self.dtype)
    # The first convolution keeps the input's width (the reference's hidden
    # channels), except on the image.
    hidden = self.channels if self.first else x.shape[-1]
    h = conv(hidden)(x if self.first else nn.relu(x))
    h = conv(self.channels)(nn.relu(h))
    shortcut = _pool(x) if self.downsample else x
    if self.downsample or x.shape[-1] != self.channels:
      shortcut = layers.Conv(self.channels, (1, 1), kernel_init=PLAIN_INIT,
                             dtype=self.dtype, name='shortcut')(shortcut)
    return (_pool(h) if self.downsample else h) + shortcut

@dataclasses.dataclass(frozen=True)
class Architecture:
  """The networks for one image size (the table above). Widths are the
  widest layer's channels shifted right: `channels >> shift`."""

  start: int  # G's first map's side (0: from the image's sides, 3 blocks)
  g_channels: int
  g_shifts: tuple[int, ...]  # of each up-sampling block's output
  d_channels: int
  d_shifts: tuple[int, ...]  # of each block's output; the first is "optimized"
  d_downsample: tuple[bool, ...]


ARCHITECTURES = {
    32: Architecture(0, 256, (0, 0, 0), 128, (0, 0, 0, 0),
                     (True, True, False, False)),
    48: Architecture(6, 512, (1, 2, 3), 1024, (4, 3, 2, 1, 0),
                     (True, True, True, True, False)),
    64: Architecture(4, 1024, (1, 2, 3, 4), 1024, (4, 3, 2, 1, 0),
                     (True,) * 5),
    128: Architecture(4, 1024, (0, 1, 2, 3, 4), 1024, (4, 3, 2, 1, 0, 0),
                      (True,) * 5 + (False,)),
}
G_CHANNELS = ARCHITECTURES[32].g_channels  # of the 32x32 networks
D_CHANNELS = ARCHITECTURES[32].d_channels


def architecture(height: int, width: int) -> Architecture:
  """The networks of square images of a size in ARCHITECTURES, else the
  32x32 ones."""
  return ARCHITECTURES.get(height if height == width else 0, ARCHITECTURES[32])


class Generator(nn.Module):
  """z [B, latent] -> images [B, H, W, C] in [-1, 1] (tanh)."""

  image_shape: Sequence[int]  # (H, W, C); H and W divisible by 4
  channels: int = 0  # the dense layer's output channels (0: the table's)
  bn_axis_name: str | None = 'data'  # BatchNorm statistics over this axis
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, z_BL: jax.Array, train: bool) -> jax.Array:
    height, width, image_channels = self.image_shape
    arch = architecture(height, width)
    channels = self.channels or arch.g_channels
    if arch.start:
      (h, w), factors = (arch.start,) * 2, (2,) * len(arch.g_shifts)
    else:
      (h, w), factors = layers.upsampling_plan(height, width, stages=3)
    x = nn.Dense(h * w * channels, kernel_init=PLAIN_INIT,
                 dtype=self.dtype)(z_BL).reshape((-1, h, w, channels))
    for shift, factor in zip(arch.g_shifts, factors, strict=True):
      x = GeneratorBlock(channels >> shift, factor == 2, train,
                         self.bn_axis_name, self.dtype)(x)
    x = nn.relu(layers.batch_norm(train, self.bn_axis_name, self.dtype)(x))
    x = layers.Conv(image_channels, (3, 3), kernel_init=PLAIN_INIT,
                    dtype=self.dtype)(x)
    return jnp.tanh(x.astype(jnp.float32))


class Discriminator(nn.Module):
  """images [B, H, W, C] -> logits [B]; each example on its own."""

  channels: int = 0  # the last block's channels (0: the table's)
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x_BHWC: jax.Array, train: bool,
               example_keys_B: jax.Array | None = None) -> jax.Array:
    del train, example_keys_B  # deterministic
    x = x_BHWC
    arch = architecture(*x.shape[1:3])
    channels = self.channels or arch.d_channels
    for index, (shift, downsample) in enumerate(
        zip(arch.d_shifts, arch.d_downsample, strict=True)):
      x = DiscriminatorBlock(channels >> shift, downsample, index == 0,
                             self.dtype)(x)
    x = jnp.sum(nn.relu(x), axis=(1, 2))
    return nn.Dense(1, kernel_init=PLAIN_INIT, dtype=self.dtype)(x)[:, 0].astype(jnp.float32)
