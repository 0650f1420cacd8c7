"""The "standard CNN" of Miyato et al. 2018 ("Spectral Normalization for
Generative Adversarial Networks", Table 3): the DCGAN-like pair of their
CIFAR-10 and STL-10 experiments.

G: z -> dense M x M x g_channels, BN, ReLU -> three 4x4 stride-2 transposed
convolutions halving the channels (BN, ReLU) -> 3x3 convolution to the
image's channels, tanh. D: 3x3 stride-1 and 4x4 stride-2 convolutions in
turn, d_channels/8, /8, /4, /4, /2, /2, /1 channels, LeakyReLU 0.1, then a
dense output. Biases everywhere and BatchNorm over the dense layer's
features, as in the authors' Chainer code (pfnet-research/chainer-gan-lib,
whose discriminator doubles the channels at each stride-2 layer where the
paper's table, followed here, keeps them); weights drawn from N(0, 0.02²)
(Radford et al. 2016). No spectral norm of its own: `model.spectral_norm`.

On 32x32 images G starts from 4x4 (M = 4, the paper's). On 28x28 MNIST it
starts from 7x7 and the last transposed convolution has stride 1 (two
up-sampling stages), and D's stride-2 layers ('SAME' padding) take 28 to 14,
7 and 4, so both ends have the same layers and D the same 4x4x512 features.
"""

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from gan_jax.models import layers

LEAKY_SLOPE = 0.1  # Miyato et al. 2018, Table 3
INIT = nn.initializers.normal(0.02)

G_CHANNELS = 512  # the paper's widths (model.g_channels=0)
D_CHANNELS = 512


class Generator(nn.Module):
  """z [B, latent] -> images [B, H, W, C] in [-1, 1] (tanh)."""

  image_shape: Sequence[int]  # (H, W, C); H and W divisible by 4
  channels: int = G_CHANNELS  # the dense layer's; then /2, /4, /8
  bn_axis_name: str | None = 'data'  # BatchNorm statistics over this axis
  transposed_conv: str = 'subpixel'  # or 'flax' (models.TRANSPOSED_CONVS)
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, z_BL: jax.Array, train: bool) -> jax.Array:
    height, width, image_channels = self.image_shape
    (h, w), strides = layers.upsampling_plan(height, width, stages=3)
    batch_norm = lambda: layers.batch_norm(train, self.bn_axis_name, self.dtype)  # noqa: E731
    x = nn.Dense(h * w * self.channels, kernel_init=INIT, dtype=self.dtype)(z_BL)
    x = nn.relu(batch_norm()(x)).reshape((-1, h, w, self.channels))
    for index, stride in enumerate(strides):
      x = layers.transposed_conv(
          self.transposed_conv, self.channels // 2 ** (index + 1), (4, 4),
          stride, kernel_init=INIT, dtype=self.dtype,
          name=f'ConvTranspose_{index}')(x)
      x = nn.relu(batch_norm()(x))
    x = layers.Conv(image_channels, (3, 3), kernel_init=INIT, dtype=self.dtype)(x)
    return jnp.tanh(x.astype(jnp.float32))


class Discriminator(nn.Module):
  """images [B, H, W, C] -> logits [B]; each example on its own (no
  normalisation, no dropout)."""

  channels: int = D_CHANNELS  # the last convolution's
  transposed_conv: str = 'subpixel'  # how stride-2 input gradients are computed
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x_BHWC: jax.Array, train: bool,
               example_keys_B: jax.Array | None = None) -> jax.Array:
    del train, example_keys_B  # deterministic
    x = x_BHWC
    for index, divisor in enumerate((8, 8, 4, 4, 2, 2, 1)):
      stride, kernel = (2, (4, 4)) if index % 2 else (1, (3, 3))
      x = layers.strided_conv(self.transposed_conv, self.channels // divisor,
                              kernel, stride, kernel_init=INIT,
                              dtype=self.dtype, name=f'Conv_{index}')(x)
      x = nn.leaky_relu(x, LEAKY_SLOPE)
    x = x.reshape((x.shape[0], -1))
    return nn.Dense(1, kernel_init=INIT, dtype=self.dtype)(x)[:, 0].astype(jnp.float32)
