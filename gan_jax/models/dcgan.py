"""DCGAN generators and discriminators: the TensorFlow DCGAN tutorial's, and
Radford et al.'s own at 64x64.

`Generator` and `Discriminator`: the architecture of
https://www.tensorflow.org/tutorials/generative/dcgan (Radford et al. 2016,
"Unsupervised Representation Learning with Deep Convolutional GANs", scaled
down), with Keras' defaults kept where they matter: LeakyReLU slope 0.3,
BatchNorm momentum 0.99 and epsilon 1e-3. Image size and channels follow the
data (the tutorial's text outputs 3 channels for MNIST by mistake): 28x28x1
for MNIST, 32x32x3 for CIFAR-10.

`Generator64` and `Discriminator64`: the paper's networks for 64x64 images
(its Figure 1; Newmu/dcgan_code, faces/train_uncond_dcgan.py), which
`model.name=dcgan` builds for 64x64 data.
"""

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from gan_jax.models import layers

LEAKY_SLOPE = 0.3  # tf.keras.layers.LeakyReLU's default
# model.weight_init: how the layers' weights start ('flax', 'dcgan' or 'torch';
# `initializers` says what each is).
WEIGHT_INITS = ('flax', 'dcgan', 'torch')
# The widest layers' channels (model.g_channels and d_channels = 0): the
# tutorial's G (256, 128, 64) and D (64, 128) have as many channels at each
# resolution, and Radford et al.'s 64x64 networks 1024 at 4x4 each.
TUTORIAL_G_CHANNELS, TUTORIAL_D_CHANNELS = 256, 128
RADFORD_CHANNELS = 1024


def initializers(init: str, transposed: bool = False,
                 bias_fan_in: int | None = None) -> dict:
  """A layer's `kernel_init` (and `bias_init`) under `init`.

  'flax': Flax's defaults, LeCun-normal kernels (variance 1/fan_in) and zero
  biases. 'dcgan': kernels from N(0, 0.02²), zero biases (Radford et al.
  2016, section 4). 'torch': PyTorch's layer defaults, as the peer
  (benchmarks/torch_peer.py) starts: kernels and biases from U(±1/√fan_in),
  where a transposed convolution's fan_in counts its output channels
  (torch.nn.init._calculate_fan_in_and_fan_out). `bias_fan_in`: the fan_in
  of a layer with biases, for 'torch'.
  """
  if init == 'flax':
    return {}
  if init == 'dcgan':
    return {'kernel_init': nn.initializers.normal(0.02)}
  if init != 'torch':
    raise ValueError(f'unknown init {init!r}; valid: {WEIGHT_INITS}')
  # variance 1/(3 fan): kaiming_uniform_ with a = √5, PyTorch's default.
  kernels = {'kernel_init': nn.initializers.variance_scaling(
      1 / 3, 'fan_out' if transposed else 'fan_in', 'uniform')}
  if bias_fan_in is None:
    return kernels
  bound = bias_fan_in ** -0.5

  def bias_init(key, shape, dtype=jnp.float32):
    return jax.random.uniform(key, shape, dtype, -bound, bound)
  return {**kernels, 'bias_init': bias_init}


class Generator(nn.Module):
  """z [B, latent] -> images [B, H, W, C] in [-1, 1] (tanh).

  Dense 7*7*256 (no bias), BN, LReLU, ConvT 128 5x5 s1, BN, LReLU,
  ConvT 64 5x5 s2, BN, LReLU, ConvT C 5x5 s2, tanh; no biases after the input.
  `channels` scales the 256, 128, 64 (a multiple of 4).
  """

  image_shape: Sequence[int]  # (H, W, C); H and W divisible by 4
  channels: int = TUTORIAL_G_CHANNELS  # the widest layer's (the dense one's)
  bn_axis_name: str | None = 'data'  # BatchNorm statistics averaged over this axis
  # 'subpixel': layers.SubPixelConvTranspose (fast on CPU); 'flax':
  # nn.ConvTranspose, the reference. The same parameters and function.
  transposed_conv: str = 'subpixel'
  # The layers' compute dtype (bfloat16: mixed precision); parameters and
  # BatchNorm statistics stay float32, and the images come out float32.
  dtype: Any = jnp.float32
  weight_init: str = 'flax'  # the layers' initialisers (`initializers`)

  @nn.compact
  def __call__(self, z_BL: jax.Array, train: bool) -> jax.Array:
    height, width, channels = self.image_shape
    batch_norm = lambda: layers.batch_norm(  # noqa: E731 (Keras' momentum and epsilon)
        train, self.bn_axis_name, self.dtype, momentum=0.99, epsilon=1e-3)
    h, w = height // 4, width // 4

    def deconv(index, features, stride):
      # Named as Flax names nn.ConvTranspose: both kinds share checkpoints.
      return layers.transposed_conv(
          self.transposed_conv, features, (5, 5), stride, use_bias=False,
          dtype=self.dtype, name=f'ConvTranspose_{index}',
          **initializers(self.weight_init, transposed=True))

    x = nn.Dense(h * w * self.channels, use_bias=False, dtype=self.dtype,
                 **initializers(self.weight_init))(z_BL)
    x = nn.leaky_relu(batch_norm()(x), LEAKY_SLOPE)
    x = x.reshape((x.shape[0], h, w, self.channels))
    x = deconv(0, self.channels // 2, 1)(x)
    x = nn.leaky_relu(batch_norm()(x), LEAKY_SLOPE)
    x = deconv(1, self.channels // 4, 2)(x)
    x = nn.leaky_relu(batch_norm()(x), LEAKY_SLOPE)
    x = deconv(2, channels, 2)(x)
    return jnp.tanh(x.astype(jnp.float32))


def _dropout(x: jax.Array, layer: int, train: bool, rate: float,
             example_keys_B: jax.Array | None) -> jax.Array:
  """A discriminator's dropout after `layer`: in training at `rate` > 0, each
  example's masks from its own key (`layers.example_dropout`)."""
  if not train or rate <= 0:
    return x
  if example_keys_B is None:
    raise ValueError('the DCGAN discriminator needs example_keys_B (one PRNG'
                     ' key per example) for dropout in training')
  return layers.example_dropout(x, example_keys_B, rate, layer)


class Discriminator(nn.Module):
  """images [B, H, W, C] -> logits [B].

  Conv 64 5x5 s2, LReLU, Dropout 0.3, Conv 128 5x5 s2, LReLU, Dropout 0.3,
  Dense 1; `channels` scales the 64, 128 (a multiple of 2). No batch norm,
  so it also serves as the WGAN-GP critic. Dropout
  draws example b's masks from `example_keys_B[b]` alone
  (`layers.example_dropout`), so a batch gives every example the masks it
  would get on its own.
  """

  dropout_rate: float = 0.3
  channels: int = TUTORIAL_D_CHANNELS  # the widest layer's (the last convolution's)
  # The layers' compute dtype; parameters stay float32, logits come out float32.
  dtype: Any = jnp.float32
  # 'subpixel': layers.SubPixelGradConv, whose input gradient (a strided
  # transposed convolution) is computed sub-pixel; 'flax': nn.Conv, the
  # reference. The same parameters, outputs and gradients.
  transposed_conv: str = 'subpixel'
  weight_init: str = 'flax'  # the layers' initialisers (`initializers`)

  @nn.compact
  def __call__(self, x_BHWC: jax.Array, train: bool,
               example_keys_B: jax.Array | None = None) -> jax.Array:
    """`example_keys_B`: one PRNG key per example, needed in training when
    dropout_rate > 0."""
    def dropout(x, layer):
      return _dropout(x, layer, train, self.dropout_rate, example_keys_B)

    def conv(index, features, x):
      # Named as Flax names nn.Conv: both kinds share checkpoints.
      return layers.strided_conv(
          self.transposed_conv, features, (5, 5), 2, dtype=self.dtype,
          name=f'Conv_{index}',
          **initializers(self.weight_init, bias_fan_in=25 * x.shape[-1]))(x)

    x = conv(0, self.channels // 2, x_BHWC)
    x = dropout(nn.leaky_relu(x, LEAKY_SLOPE), 0)
    x = conv(1, self.channels, x)
    x = dropout(nn.leaky_relu(x, LEAKY_SLOPE), 1)
    x = x.reshape((x.shape[0], -1))
    dense = nn.Dense(1, dtype=self.dtype,
                     **initializers(self.weight_init, bias_fan_in=x.shape[-1]))
    return dense(x)[:, 0].astype(jnp.float32)


RADFORD_WIDTH = RADFORD_CHANNELS // 8  # ngf = ndf in the paper's code for 64x64 faces
RADFORD_SLOPE = 0.2  # the discriminator's LeakyReLU


class Generator64(nn.Module):
  """z [B, latent] -> images [B, 64, 64, C] in [-1, 1]: Radford et al. 2016.

  Dense to 4x4x1024 (BN over its 16,384 outputs, ReLU), transposed 5x5
  stride-2 convolutions to 512, 256, 128 (each BN, ReLU) and C (tanh); no
  biases. 18,885,760 parameters from z of 100 and C = 3, as the paper's code.
  """

  channels: int  # the image's
  width: int = RADFORD_WIDTH  # the last hidden layer's channels (ngf)
  bn_axis_name: str | None = 'data'
  transposed_conv: str = 'subpixel'
  dtype: Any = jnp.float32
  weight_init: str = 'flax'

  @nn.compact
  def __call__(self, z_BL: jax.Array, train: bool) -> jax.Array:
    batch_norm = lambda: layers.batch_norm(  # noqa: E731
        train, self.bn_axis_name, self.dtype)
    x = nn.Dense(4 * 4 * 8 * self.width, use_bias=False, dtype=self.dtype,
                 **initializers(self.weight_init))(z_BL)
    x = nn.relu(batch_norm()(x)).reshape((-1, 4, 4, 8 * self.width))
    for index, features in enumerate((4 * self.width, 2 * self.width,
                                      self.width, self.channels)):
      x = layers.transposed_conv(
          self.transposed_conv, features, (5, 5), 2, use_bias=False,
          dtype=self.dtype, name=f'ConvTranspose_{index}',
          **initializers(self.weight_init, transposed=True))(x)
      if index < 3:
        x = nn.relu(batch_norm()(x))
    return jnp.tanh(x.astype(jnp.float32))


class Discriminator64(nn.Module):
  """images [B, 64, 64, C] -> logits [B]: Radford et al. 2016.

  5x5 stride-2 convolutions to 128, 256, 512, 1024 (LeakyReLU 0.2), dense
  from the 4x4x1024 features to 1; no biases. The paper's batch norm after
  the second to fourth convolutions is left out: a discriminator here judges
  each example on its own (models/__init__.py), and batch statistics would
  couple them. Dropout (`dropout_rate`, after each LeakyReLU) as
  `Discriminator`'s; the paper has none (`model.dropout=0`).
  """

  width: int = RADFORD_WIDTH  # the first layer's channels (ndf)
  dropout_rate: float = 0.0
  dtype: Any = jnp.float32
  transposed_conv: str = 'subpixel'
  weight_init: str = 'flax'

  @nn.compact
  def __call__(self, x_BHWC: jax.Array, train: bool,
               example_keys_B: jax.Array | None = None) -> jax.Array:
    x = x_BHWC
    for index, features in enumerate((self.width, 2 * self.width,
                                      4 * self.width, 8 * self.width)):
      x = layers.strided_conv(
          self.transposed_conv, features, (5, 5), 2, use_bias=False,
          dtype=self.dtype, name=f'Conv_{index}',
          **initializers(self.weight_init))(x)
      x = _dropout(nn.leaky_relu(x, RADFORD_SLOPE), index, train,
                   self.dropout_rate, example_keys_B)
    x = x.reshape((x.shape[0], -1))
    dense = nn.Dense(1, use_bias=False, dtype=self.dtype,
                     **initializers(self.weight_init))
    return dense(x)[:, 0].astype(jnp.float32)
