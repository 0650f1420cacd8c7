"""Faster equivalents of Flax convolution layers: same parameters, same math.

XLA:CPU computes a strided transposed convolution as a convolution over the
input dilated with zeros (`lhs_dilation`), through a slow generic path: on a
2-core CPU the backward pass of the DCGAN generator's 5x5 stride-2 layer took
seconds where PyTorch takes a tenth of one. `SubPixelConvTranspose` computes
the same function as `nn.ConvTranspose(padding='SAME')` with one stride-1
convolution and a depth-to-space shuffle (the sub-pixel convolution of Shi et
al. 2016, "Real-Time Single Image and Video Super-Resolution Using an
Efficient Sub-Pixel Convolutional Neural Network"; the equivalence is their
section 2.2), so its forward and backward passes are all plain stride-1
convolutions. It holds the same `kernel` parameter as `nn.ConvTranspose`, so
a checkpoint of either loads into the other.

Their gradients, and those of `Conv` (`nn.Conv` at stride 1), are
convolutions in the standard layouts (NHWC, HWIO): XLA:CPU runs JAX's own
gradient rules, which swap dimensions through dimension numbers, on a slow
generic path inside a while loop, such as the loop over seeds
(train.seed_batching='loop').

`example_dropout` is dropout with one PRNG key per example, so that a model
applied to a whole batch draws each example's mask from that example's key
alone (the same numbers however the batch is split across devices).
"""

from collections.abc import Sequence
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np


def _same_transpose_padding(kernel: int, stride: int) -> int:
  """Low-side padding of `jax.lax.conv_transpose(padding='SAME')` (its
  `_conv_transpose_padding`)."""
  total = kernel + stride - 2
  return kernel - 1 if stride > kernel - 1 else -(-total // 2)


def phase_taps(kernel: int, stride: int, pad: int | None = None
               ) -> tuple[np.ndarray, int, int]:
  """Which kernel tap each output phase uses at each input offset, in 1-D.

  Output o = stride * i + a of a transposed convolution whose zero-dilated
  input is padded by `pad` on the low side (default: SAME's) is
  sum_t w[t] * x[i + d] over the taps t with (a + t - pad) = stride * d. For
  each phase a and offset d in [d_min, d_max], returns the tap t (or `kernel`,
  an index past the end that selects a zero) as int [stride, d_max - d_min + 1],
  and d_min, d_max.
  """
  if pad is None:
    pad = _same_transpose_padding(kernel, stride)
  offsets = {(a, t): (a + t - pad) // stride
             for a in range(stride) for t in range(kernel)
             if (a + t - pad) % stride == 0}
  d_min, d_max = min(offsets.values()), max(offsets.values())
  taps = np.full((stride, d_max - d_min + 1), kernel, np.int32)
  for (a, t), d in offsets.items():
    taps[a, d - d_min] = t
  return taps, d_min, d_max


def subpixel_kernel(kernel_HWIO: jax.Array, strides: Sequence[int],
                    pads: Sequence[int | None] = (None, None)
                    ) -> tuple[jax.Array, list[tuple[int, int]]]:
  """The stride-1 kernel [h', w', I, sh * sw * O] and the padding that compute
  all sh * sw output phases of a transposed convolution at once (low padding
  of the dilated input `pads`, default SAME's)."""
  out, (sh, sw) = kernel_HWIO.shape[3], strides
  taps_h, lo_h, hi_h = phase_taps(kernel_HWIO.shape[0], sh, pads[0])
  taps_w, lo_w, hi_w = phase_taps(kernel_HWIO.shape[1], sw, pads[1])
  padded = jnp.pad(kernel_HWIO, ((0, 1), (0, 1), (0, 0), (0, 0)))  # zero taps
  gathered = padded[taps_h[:, :, None, None], taps_w[None, None, :, :]]
  # [a_h, j_h, a_w, j_w, I, O] -> [j_h, j_w, I, a_h, a_w, O]
  gathered = jnp.transpose(gathered, (1, 3, 4, 0, 2, 5))
  jh, jw, cin = gathered.shape[:3]
  return (gathered.reshape(jh, jw, cin, sh * sw * out),
          [(-lo_h, hi_h), (-lo_w, hi_w)])


def depth_to_space(x_BHWC: jax.Array, strides: Sequence[int]) -> jax.Array:
  """[B, H, W, sh * sw * C] (phase-major channels) -> [B, H * sh, W * sw, C]."""
  batch, height, width, channels = x_BHWC.shape
  sh, sw = strides
  out = channels // (sh * sw)
  x = x_BHWC.reshape(batch, height, width, sh, sw, out)
  x = jnp.transpose(x, (0, 1, 3, 2, 4, 5))
  return x.reshape(batch, height * sh, width * sw, out)


def subpixel_conv_transpose(x_BHWC: jax.Array, kernel_HWIO: jax.Array,
                            strides: Sequence[int],
                            pads: Sequence[int | None] = (None, None)
                            ) -> jax.Array:
  """`jax.lax.conv_transpose(x, kernel, strides, 'SAME')` (no kernel flip, as
  `nn.ConvTranspose` computes it) as a stride-1 convolution and depth-to-space;
  `pads`: another low padding of the dilated input (`subpixel_kernel`)."""
  kernel, padding = subpixel_kernel(kernel_HWIO, strides, pads)
  phases = stride1_conv(x_BHWC, kernel.astype(x_BHWC.dtype),
                        tuple(map(tuple, padding)))
  return depth_to_space(phases, strides)


def _conv(x_BHWC: jax.Array, kernel_HWIO: jax.Array, strides: Sequence[int],
          padding: str | Sequence[tuple[int, int]] = 'SAME', **dilations
          ) -> jax.Array:
  return jax.lax.conv_general_dilated(
      x_BHWC, kernel_HWIO, strides, padding,
      dimension_numbers=('NHWC', 'HWIO', 'NHWC'), **dilations)


def conv_kernel_grad(x_BHWC: jax.Array, dy_BHWO: jax.Array,
                     kernel_hw: Sequence[int], strides: Sequence[int],
                     padding: str | Sequence[tuple[int, int]] = 'SAME'
                     ) -> jax.Array:
  """The gradient with respect to the kernel [h, w, I, O] of
  <dy, conv(x, kernel, strides, padding)>: the same sums JAX's own rule
  computes, written as a convolution in the standard layouts (the input's
  channels as its batch, the examples as its features, dy dilated by the
  stride as its kernel), so the same numbers.

  XLA:CPU runs JAX's own form (batch and feature dimensions swapped through
  dimension numbers) on a slow generic path inside a while loop: 60-100x
  slower in a `lax.scan` over seeds than unrolled, benchmarks/README.md.
  """
  if isinstance(padding, str):
    padding = jax.lax.padtype_to_pads(x_BHWC.shape[1:3], kernel_hw, strides,
                                      padding)
  grad_IhwO = _conv(jnp.transpose(x_BHWC, (3, 1, 2, 0)),  # [I, H, W, B]
                    jnp.transpose(dy_BHWO, (1, 2, 0, 3)),  # [h', w', B, O]
                    (1, 1), padding, rhs_dilation=strides)
  height, width = kernel_hw
  return jnp.transpose(grad_IhwO[:, :height, :width], (1, 2, 0, 3))


def _conv_layer(module: nn.Module, x_BHWC: jax.Array,
                kernel_size: Sequence[int], conv) -> jax.Array:
  """`conv(x, kernel)` plus bias, with `module`'s `kernel` (and `bias`)
  parameters created and cast to its compute dtype as Flax's convolution
  layers do; called from the module's compact `__call__`."""
  kernel = module.param('kernel', module.kernel_init,
                        (*kernel_size, x_BHWC.shape[-1], module.features),
                        module.param_dtype)
  dtype = module.dtype or jnp.result_type(x_BHWC, kernel)
  y = conv(x_BHWC.astype(dtype), kernel.astype(dtype))
  if module.use_bias:
    bias = module.param('bias', module.bias_init, (module.features,),
                        module.param_dtype)
    y = y + bias.astype(dtype)
  return y


class SubPixelConvTranspose(nn.Module):
  """`nn.ConvTranspose(features, kernel_size, strides, padding='SAME')`,
  computed by `subpixel_conv_transpose`: the same `kernel` (and `bias`)
  parameters with the same initialisers, the same outputs and gradients."""

  features: int
  kernel_size: int | Sequence[int]
  strides: int | Sequence[int] | None = (1, 1)
  use_bias: bool = True
  dtype: jnp.dtype | None = None
  param_dtype: jnp.dtype = jnp.float32
  kernel_init: nn.initializers.Initializer = nn.linear.default_kernel_init
  bias_init: nn.initializers.Initializer = nn.initializers.zeros_init()

  @nn.compact
  def __call__(self, x_BHWC: jax.Array) -> jax.Array:
    # As nn.ConvTranspose reads them: an int kernel_size is 1-D, an int (or
    # None) stride is broadcast over the kernel's dimensions.
    kernel_size = ((self.kernel_size,) if isinstance(self.kernel_size, int)
                   else tuple(self.kernel_size))
    strides = (self.strides if self.strides is not None else 1)
    strides = ((strides,) * len(kernel_size) if isinstance(strides, int)
               else tuple(strides))
    if x_BHWC.ndim != 4 or len(kernel_size) != 2 or len(strides) != 2:
      raise ValueError(
          f'SubPixelConvTranspose is 2-D only: it needs inputs [B, H, W, C] and'
          f' 2-D kernel_size and strides, got inputs of shape {x_BHWC.shape},'
          f' kernel_size={self.kernel_size}, strides={self.strides}; use'
          ' nn.ConvTranspose')
    return _conv_layer(
        self, x_BHWC, kernel_size,
        lambda x, kernel: subpixel_conv_transpose(x, kernel, strides))


def conv_input_grad(dy_BHWO: jax.Array, kernel_HWIO: jax.Array,
                    strides: Sequence[int], input_hw: Sequence[int]) -> jax.Array:
  """The gradient with respect to x of <dy, conv(x, kernel, strides, SAME)>,
  for x of spatial shape `input_hw`, computed sub-pixel.

  It is the transposed convolution of dy with the flipped, in/out-swapped
  kernel (what `jax.vjp` of the convolution computes, over a zero-dilated dy),
  done as one stride-1 convolution and depth-to-space, then cropped.
  """
  kernel_hw = kernel_HWIO.shape[:2]
  same_pads = jax.lax.padtype_to_pads(input_hw, kernel_hw, strides, 'SAME')
  pads = [k - 1 - low  # jax's vjp lhs padding
          for k, (low, _) in zip(kernel_hw, same_pads, strict=True)]
  flipped = jnp.transpose(kernel_HWIO[::-1, ::-1], (0, 1, 3, 2))
  height, width = input_hw
  return subpixel_conv_transpose(dy_BHWO, flipped, strides,
                                 pads)[:, :height, :width]


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def stride1_conv(x_BHWC: jax.Array, kernel_HWIO: jax.Array,
                 padding: tuple[tuple[int, int], tuple[int, int]]) -> jax.Array:
  """A stride-1 convolution (NHWC, HWIO) whose gradients are convolutions in
  the standard layouts: for the input, dy against the flipped kernel with
  its in and out swapped; for the kernel, `conv_kernel_grad`. The same sums
  as JAX's own rules, which XLA:CPU runs 2-4x slower inside a while loop."""
  return _conv(x_BHWC, kernel_HWIO, (1, 1), padding)


def _stride1_conv_fwd(x_BHWC, kernel_HWIO, padding):
  return _conv(x_BHWC, kernel_HWIO, (1, 1), padding), (x_BHWC, kernel_HWIO)


def _stride1_conv_bwd(padding, residuals, dy_BHWO):
  x_BHWC, kernel_HWIO = residuals
  kernel_hw = kernel_HWIO.shape[:2]
  flipped = jnp.transpose(kernel_HWIO[::-1, ::-1], (0, 1, 3, 2))
  input_padding = [(k - 1 - low, k - 1 - high)
                   for k, (low, high) in zip(kernel_hw, padding, strict=True)]
  dx = _conv(dy_BHWO, flipped, (1, 1), input_padding)
  return dx, conv_kernel_grad(x_BHWC, dy_BHWO, kernel_hw, (1, 1), padding)


stride1_conv.defvjp(_stride1_conv_fwd, _stride1_conv_bwd)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def subpixel_grad_conv(x_BHWC: jax.Array, kernel_HWIO: jax.Array,
                       strides: tuple[int, int]) -> jax.Array:
  """`conv(x, kernel, strides, SAME)` whose input gradient is computed by
  `conv_input_grad` (XLA:CPU's own runs a convolution over a zero-dilated dy,
  mostly multiplying zeros), its kernel gradient by `conv_kernel_grad`. The
  backward pass is plain JAX code, so it has gradients too (a gradient
  penalty's)."""
  return _conv(x_BHWC, kernel_HWIO, strides)


def _subpixel_grad_conv_fwd(x_BHWC, kernel_HWIO, strides):
  return _conv(x_BHWC, kernel_HWIO, strides), (x_BHWC, kernel_HWIO)


def _subpixel_grad_conv_bwd(strides, residuals, dy_BHWO):
  x_BHWC, kernel_HWIO = residuals
  dx = conv_input_grad(dy_BHWO, kernel_HWIO, strides, x_BHWC.shape[1:3])
  return dx.astype(x_BHWC.dtype), conv_kernel_grad(
      x_BHWC, dy_BHWO, kernel_HWIO.shape[:2], strides)


subpixel_grad_conv.defvjp(_subpixel_grad_conv_fwd, _subpixel_grad_conv_bwd)


class SubPixelGradConv(nn.Module):
  """`nn.Conv(features, kernel_size, strides, padding='SAME')` (2-D) whose
  input gradient is computed sub-pixel (`subpixel_grad_conv`): the same
  `kernel` and `bias` parameters with the same initialisers, the same outputs
  and gradients. The forward pass is the very convolution nn.Conv runs."""

  features: int
  kernel_size: Sequence[int]
  strides: int | Sequence[int] = 1
  use_bias: bool = True
  dtype: jnp.dtype | None = None
  param_dtype: jnp.dtype = jnp.float32
  kernel_init: nn.initializers.Initializer = nn.linear.default_kernel_init
  bias_init: nn.initializers.Initializer = nn.initializers.zeros_init()

  @nn.compact
  def __call__(self, x_BHWC: jax.Array) -> jax.Array:
    strides = ((self.strides,) * 2 if isinstance(self.strides, int)
               else tuple(self.strides))
    if x_BHWC.ndim != 4 or len(self.kernel_size) != 2 or len(strides) != 2:
      raise ValueError(
          f'SubPixelGradConv is 2-D only: it needs inputs [B, H, W, C] and 2-D'
          f' kernel_size and strides, got inputs of shape {x_BHWC.shape},'
          f' kernel_size={self.kernel_size}, strides={self.strides}; use nn.Conv')
    return _conv_layer(
        self, x_BHWC, self.kernel_size,
        lambda x, kernel: subpixel_grad_conv(x, kernel, strides))


class Conv(nn.Module):
  """`nn.Conv(features, kernel_size, padding='SAME')` at stride 1, computed by
  `stride1_conv`: the same `kernel` and `bias` parameters (and names, as
  Flax names modules by their class), initialisers, outputs and gradients,
  whose gradients XLA:CPU runs as fast in a loop over seeds as outside it."""

  features: int
  kernel_size: Sequence[int]
  use_bias: bool = True
  dtype: jnp.dtype | None = None
  param_dtype: jnp.dtype = jnp.float32
  kernel_init: nn.initializers.Initializer = nn.linear.default_kernel_init
  bias_init: nn.initializers.Initializer = nn.initializers.zeros_init()

  @nn.compact
  def __call__(self, x_BHWC: jax.Array) -> jax.Array:
    kernel_size = tuple(self.kernel_size)
    padding = tuple(map(tuple, jax.lax.padtype_to_pads(
        x_BHWC.shape[1:3], kernel_size, (1, 1), 'SAME')))
    return _conv_layer(self, x_BHWC, kernel_size,
                       lambda x, kernel: stride1_conv(x, kernel, padding))


def example_dropout(x_B: jax.Array, example_keys_B: jax.Array, rate: float,
                    layer: int) -> jax.Array:
  """Inverted dropout (Srivastava et al. 2014) of a batch [B, ...] whose
  example b keeps each unit with probability 1 - rate, drawn from
  fold_in(example_keys_B[b], layer) alone; `layer` tells a model's dropout
  layers apart. Kept units are scaled by 1 / (1 - rate), as nn.Dropout does."""
  keep = 1.0 - rate
  layer_keys = jax.vmap(jax.random.fold_in, in_axes=(0, None))(example_keys_B,
                                                               layer)
  mask = jax.vmap(lambda key: jax.random.bernoulli(key, keep, x_B.shape[1:]))(
      layer_keys)
  return jnp.where(mask, x_B / keep, jnp.zeros_like(x_B))


def transposed_conv(kind: str, features: int, kernel_size: Sequence[int],
                    stride: int, **kwargs) -> nn.Module:
  """A 2-D transposed convolution with 'SAME' padding (output = stride x
  input): `SubPixelConvTranspose` for kind 'subpixel', `nn.ConvTranspose`
  (the reference) for 'flax'; the same parameters and function. `kwargs` go
  to the layer (name, use_bias, kernel_init, dtype, ...)."""
  if kind == 'subpixel':
    return SubPixelConvTranspose(features, kernel_size, (stride, stride), **kwargs)
  return nn.ConvTranspose(features, kernel_size, (stride, stride),
                          padding='SAME', **kwargs)


def strided_conv(kind: str, features: int, kernel_size: Sequence[int],
                 stride: int, **kwargs) -> nn.Module:
  """A 2-D convolution with 'SAME' padding whose input gradient is computed
  sub-pixel when strided and kind is 'subpixel' (`SubPixelGradConv`), else
  `nn.Conv`; the same parameters and function."""
  if kind == 'subpixel' and stride > 1:
    return SubPixelGradConv(features, kernel_size, stride, **kwargs)
  return nn.Conv(features, kernel_size, (stride, stride), padding='SAME', **kwargs)


def upsampling_plan(height: int, width: int,
                    stages: int) -> tuple[tuple[int, int], tuple[int, ...]]:
  """Where a generator of `stages` up-sampling stages starts, and each stage's
  factor: every stage doubles (32x32 from 4x4 in 3 stages) when both sides
  divide by 2**stages; else, when they divide by 4, the first two double and
  the rest keep the size (28x28 from 7x7). ValueError otherwise."""
  for doubling in (stages, 2):
    if height % 2**doubling == 0 and width % 2**doubling == 0:
      factors = (2,) * doubling + (1,) * (stages - doubling)
      return (height // 2**doubling, width // 2**doubling), factors
  raise ValueError(f'images of {height}x{width} need sides divisible by 4')


def batch_norm(train: bool, axis_name: str | None, dtype, momentum: float = 0.9,
               epsilon: float = 1e-5) -> nn.BatchNorm:
  """BatchNorm with batch statistics averaged over `axis_name` (the global
  batch's, `parallel.DATA_AXIS`) in training and the running averages
  otherwise; momentum and epsilon default to PyTorch's (0.1 -> 0.9)."""
  return nn.BatchNorm(use_running_average=not train, momentum=momentum,
                      epsilon=epsilon, axis_name=axis_name if train else None,
                      dtype=dtype)

