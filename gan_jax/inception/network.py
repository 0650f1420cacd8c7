"""The FID Inception-v3 network in Flax: the TensorFlow graph of 2015-12-05.

Ported from NVIDIA's TorchScript copy (StyleGAN2-ADA's metrics, also used by
clean-fid); tests/test_inception.py checks the port against it. Its input is
[N, 299, 299, 3] float32 in [0, 255] (gan_jax.inception.protocol makes it);
its outputs are the 2048-d pool3 features and, when the weights have them,
the 1008-way logits.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

SIZE = 299  # the network's input height and width
FEATURES = 2048  # pool3
LOGITS = 1008  # the 2015-12-05 graph's classes (1000 ImageNet ones + 8 unused)
BN_EPSILON = 1e-3
HIGHEST = jax.lax.Precision.HIGHEST


class ConvBN(nn.Module):
  """Convolution without bias, frozen batch norm (eps 1e-3), ReLU: every
  convolution of the graph. NHWC; `padding` is ((top, bottom), (left, right))."""
  features: int
  kernel: tuple[int, int]
  strides: int = 1
  padding: tuple[tuple[int, int], tuple[int, int]] = ((0, 0), (0, 0))

  @nn.compact
  def __call__(self, x):
    w = self.param('kernel', nn.initializers.lecun_normal(),
                   (*self.kernel, x.shape[-1], self.features))
    scale = self.param('scale', nn.initializers.ones, (self.features,))
    beta = self.param('beta', nn.initializers.zeros, (self.features,))
    mean = self.param('mean', nn.initializers.zeros, (self.features,))
    var = self.param('var', nn.initializers.ones, (self.features,))
    y = jax.lax.conv_general_dilated(
        x, w, (self.strides, self.strides), self.padding,
        dimension_numbers=('NHWC', 'HWIO', 'NHWC'), precision=HIGHEST)
    y = (y - mean) * (scale * jax.lax.rsqrt(var + BN_EPSILON)) + beta
    return nn.relu(y)


def _conv(name: str, features: int, kh: int, kw: int | None = None,
          strides: int = 1, same: bool = False) -> ConvBN:
  """A ConvBN named as in NVIDIA's network, its path's dots made underscores
  within a block ('tower.conv_1' -> 'tower_conv_1'). `same`: zero padding
  that keeps the size (stride 1); else none (valid)."""
  kw = kh if kw is None else kw
  padding = ((kh // 2, kh // 2), (kw // 2, kw // 2)) if same else ((0, 0), (0, 0))
  return ConvBN(features, (kh, kw), strides, padding, name=name)


def _avg_pool_same(x):
  """3x3 stride-1 average over the window's pixels inside the image: the
  graph's SAME average pooling, which does not count the padding."""
  return nn.avg_pool(x, (3, 3), (1, 1), ((1, 1), (1, 1)), count_include_pad=False)


def _max_pool_valid(x):
  return nn.max_pool(x, (3, 3), (2, 2), 'VALID')


class InceptionA(nn.Module):
  """mixed, mixed_1, mixed_2 (35x35): 1x1 | 1x1, 5x5 | 1x1, 3x3, 3x3 |
  avg pool, 1x1."""
  pool_features: int

  @nn.compact
  def __call__(self, x):
    a = _conv('conv', 64, 1)(x)
    b = _conv('tower_conv_1', 64, 5, same=True)(_conv('tower_conv', 48, 1)(x))
    c = _conv('tower_1_conv', 64, 1)(x)
    c = _conv('tower_1_conv_1', 96, 3, same=True)(c)
    c = _conv('tower_1_conv_2', 96, 3, same=True)(c)
    d = _conv('tower_2_conv', self.pool_features, 1)(_avg_pool_same(x))
    return jnp.concatenate([a, b, c, d], -1)


class InceptionB(nn.Module):
  """mixed_3 (35x35 -> 17x17): 3x3/2 | 1x1, 3x3, 3x3/2 | max pool/2."""

  @nn.compact
  def __call__(self, x):
    a = _conv('conv', 384, 3, strides=2)(x)
    b = _conv('tower_conv', 64, 1)(x)
    b = _conv('tower_conv_1', 96, 3, same=True)(b)
    b = _conv('tower_conv_2', 96, 3, strides=2)(b)
    return jnp.concatenate([a, b, _max_pool_valid(x)], -1)


class InceptionC(nn.Module):
  """mixed_4 to mixed_7 (17x17): 1x1 | 1x1, 1x7, 7x1 | 1x1, 7x1, 1x7, 7x1,
  1x7 | avg pool, 1x1."""
  channels_7x7: int

  @nn.compact
  def __call__(self, x):
    n = self.channels_7x7
    a = _conv('conv', 192, 1)(x)
    b = _conv('tower_conv', n, 1)(x)
    b = _conv('tower_conv_1', n, 1, 7, same=True)(b)
    b = _conv('tower_conv_2', 192, 7, 1, same=True)(b)
    c = _conv('tower_1_conv', n, 1)(x)
    c = _conv('tower_1_conv_1', n, 7, 1, same=True)(c)
    c = _conv('tower_1_conv_2', n, 1, 7, same=True)(c)
    c = _conv('tower_1_conv_3', n, 7, 1, same=True)(c)
    c = _conv('tower_1_conv_4', 192, 1, 7, same=True)(c)
    d = _conv('tower_2_conv', 192, 1)(_avg_pool_same(x))
    return jnp.concatenate([a, b, c, d], -1)


class InceptionD(nn.Module):
  """mixed_8 (17x17 -> 8x8): 1x1, 3x3/2 | 1x1, 1x7, 7x1, 3x3/2 | max pool/2."""

  @nn.compact
  def __call__(self, x):
    a = _conv('tower_conv', 192, 1)(x)
    a = _conv('tower_conv_1', 320, 3, strides=2)(a)
    b = _conv('tower_1_conv', 192, 1)(x)
    b = _conv('tower_1_conv_1', 192, 1, 7, same=True)(b)
    b = _conv('tower_1_conv_2', 192, 7, 1, same=True)(b)
    b = _conv('tower_1_conv_3', 192, 3, strides=2)(b)
    return jnp.concatenate([a, b, _max_pool_valid(x)], -1)


class InceptionE(nn.Module):
  """mixed_9, mixed_10 (8x8): 1x1 | 1x1, (1x3 | 3x1) | 1x1, 3x3, (1x3 | 3x1)
  | pool, 1x1. The pool is average in mixed_9 and max in mixed_10: a quirk
  of the 2015-12-05 graph that FID keeps (pytorch-fid's FIDInceptionE_2)."""
  max_pool: bool

  @nn.compact
  def __call__(self, x):
    a = _conv('conv', 320, 1)(x)
    b = _conv('tower_conv', 384, 1)(x)
    b1 = _conv('tower_mixed_conv', 384, 1, 3, same=True)(b)
    b2 = _conv('tower_mixed_conv_1', 384, 3, 1, same=True)(b)
    c = _conv('tower_1_conv', 448, 1)(x)
    c = _conv('tower_1_conv_1', 384, 3, same=True)(c)
    c1 = _conv('tower_1_mixed_conv', 384, 1, 3, same=True)(c)
    c2 = _conv('tower_1_mixed_conv_1', 384, 3, 1, same=True)(c)
    if self.max_pool:
      pooled = nn.max_pool(x, (3, 3), (1, 1), ((1, 1), (1, 1)))
    else:
      pooled = _avg_pool_same(x)
    d = _conv('tower_2_conv', 192, 1)(pooled)
    return jnp.concatenate([a, b1, b2, c1, c2, d], -1)


class Logits(nn.Module):
  """pool3 [N, 2048] -> pool3 @ kernel [N, 1008]; the layer's bias is a
  param (the weight files have it) that the Inception Score does not use."""

  @nn.compact
  def __call__(self, pool3):
    kernel = self.param('kernel', nn.initializers.lecun_normal(), (FEATURES, LOGITS))
    self.param('bias', nn.initializers.zeros, (LOGITS,))
    return jnp.matmul(pool3, kernel, precision=HIGHEST)


class InceptionV3(nn.Module):
  """[N, 299, 299, 3] float32 in [0, 255] -> (pool3 [N, 2048], logits
  [N, 1008] or None without `with_logits`).

  The logits are pool3 times the output layer's kernel, without its bias:
  what the Inception Score was defined on (Salimans et al. 2016, whose code
  multiplies pool3 by the softmax layer's weights alone; StyleGAN2-ADA's
  `no_output_bias=True`). The bias is kept in the weights, unused.
  """
  with_logits: bool = False

  @nn.compact
  def __call__(self, x):
    x = (x - 128.0) / 128.0
    x = _conv('conv', 32, 3, strides=2)(x)  # 149x149
    x = _conv('conv_1', 32, 3)(x)  # 147x147
    x = _conv('conv_2', 64, 3, same=True)(x)
    x = _max_pool_valid(x)  # 73x73
    x = _conv('conv_3', 80, 1)(x)
    x = _conv('conv_4', 192, 3)(x)  # 71x71
    x = _max_pool_valid(x)  # 35x35
    x = InceptionA(32, name='mixed')(x)
    x = InceptionA(64, name='mixed_1')(x)
    x = InceptionA(64, name='mixed_2')(x)
    x = InceptionB(name='mixed_3')(x)  # 17x17
    for i, n in enumerate((128, 160, 160, 192)):
      x = InceptionC(n, name=f'mixed_{4 + i}')(x)
    x = InceptionD(name='mixed_8')(x)  # 8x8
    x = InceptionE(max_pool=False, name='mixed_9')(x)
    x = InceptionE(max_pool=True, name='mixed_10')(x)
    pool3 = jnp.mean(x, axis=(1, 2))
    if not self.with_logits:
      return pool3, None
    return pool3, Logits(name='logits')(pool3)
