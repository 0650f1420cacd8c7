"""DCGAN generator and discriminator of the TensorFlow DCGAN tutorial.

The architecture of https://www.tensorflow.org/tutorials/generative/dcgan
(Radford et al. 2016, "Unsupervised Representation Learning with Deep
Convolutional GANs", scaled down), with Keras' defaults kept where they
matter: LeakyReLU slope 0.3, BatchNorm momentum 0.99 and epsilon 1e-3.
Image size and channels follow the data (the tutorial's text outputs 3
channels for MNIST by mistake): 28x28x1 for MNIST, 32x32x3 for CIFAR-10.
"""

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

LEAKY_SLOPE = 0.3  # tf.keras.layers.LeakyReLU's default


class Generator(nn.Module):
  """z [B, latent] -> images [B, H, W, C] in [-1, 1] (tanh).

  Dense 7*7*256 (no bias), BN, LReLU, ConvT 128 5x5 s1, BN, LReLU,
  ConvT 64 5x5 s2, BN, LReLU, ConvT C 5x5 s2, tanh; no biases after the input.
  """

  image_shape: Sequence[int]  # (H, W, C); H and W divisible by 4
  bn_axis_name: str | None = 'data'  # BatchNorm statistics averaged over this axis

  @nn.compact
  def __call__(self, z_BL: jax.Array, train: bool) -> jax.Array:
    height, width, channels = self.image_shape
    batch_norm = lambda: nn.BatchNorm(  # noqa: E731
        use_running_average=not train, momentum=0.99, epsilon=1e-3,
        axis_name=self.bn_axis_name if train else None)
    h, w = height // 4, width // 4
    x = nn.Dense(h * w * 256, use_bias=False)(z_BL)
    x = nn.leaky_relu(batch_norm()(x), LEAKY_SLOPE)
    x = x.reshape((x.shape[0], h, w, 256))
    x = nn.ConvTranspose(128, (5, 5), (1, 1), padding='SAME', use_bias=False)(x)
    x = nn.leaky_relu(batch_norm()(x), LEAKY_SLOPE)
    x = nn.ConvTranspose(64, (5, 5), (2, 2), padding='SAME', use_bias=False)(x)
    x = nn.leaky_relu(batch_norm()(x), LEAKY_SLOPE)
    x = nn.ConvTranspose(channels, (5, 5), (2, 2), padding='SAME', use_bias=False)(x)
    return jnp.tanh(x)


class Discriminator(nn.Module):
  """images [B, H, W, C] -> logits [B].

  Conv 64 5x5 s2, LReLU, Dropout 0.3, Conv 128 5x5 s2, LReLU, Dropout 0.3,
  Dense 1. No batch norm, so it also serves as the WGAN-GP critic.
  """

  dropout_rate: float = 0.3

  @nn.compact
  def __call__(self, x_BHWC: jax.Array, train: bool) -> jax.Array:
    x = nn.Conv(64, (5, 5), (2, 2), padding='SAME')(x_BHWC)
    x = nn.Dropout(self.dropout_rate, deterministic=not train)(
        nn.leaky_relu(x, LEAKY_SLOPE))
    x = nn.Conv(128, (5, 5), (2, 2), padding='SAME')(x)
    x = nn.Dropout(self.dropout_rate, deterministic=not train)(
        nn.leaky_relu(x, LEAKY_SLOPE))
    x = x.reshape((x.shape[0], -1))
    return nn.Dense(1)(x)[:, 0]
