"""Generator/discriminator pairs, picked by `config.model.name`."""

from collections.abc import Sequence

import flax.linen as nn
import jax.numpy as jnp
import ml_collections

from gan_jax.errors import UserError
from gan_jax.models import dcgan
from gan_jax.models import mlp

MODEL_NAMES = ('dcgan', 'mlp')
# model.transposed_conv: how the DCGAN computes its transposed convolutions,
# the generator's layers and the input gradients of the discriminator's
# strided convolutions: sub-pixel (layers.SubPixelConvTranspose and
# layers.SubPixelGradConv), or Flax's nn.ConvTranspose and nn.Conv.
TRANSPOSED_CONVS = ('subpixel', 'flax')
# train.dtype: the layers' compute dtype. Parameters, optimizer states and
# BatchNorm statistics stay float32, and both models' outputs (images or
# points, logits) are float32, so the losses are computed in float32.
DTYPES = ('float32', 'bfloat16')


def build(model_config: ml_collections.ConfigDict,
          example_shape: Sequence[int],
          dtype: str = 'float32') -> tuple[nn.Module, nn.Module]:
  """Returns (generator, discriminator) for examples of `example_shape`, whose
  layers compute in `dtype` (one of DTYPES)."""
  if dtype not in DTYPES:
    raise UserError(f'unknown train.dtype={dtype!r}; valid: {", ".join(DTYPES)}')
  compute_dtype = jnp.dtype(dtype)
  name = model_config.name
  if name == 'dcgan':
    if len(example_shape) != 3 or example_shape[0] % 4 or example_shape[1] % 4:
      raise UserError(
          f'model.name=dcgan needs images with height and width divisible by 4,'
          f' got examples of shape {tuple(example_shape)}; use model.name=mlp'
          ' for 2-D points')
    transposed_conv = model_config.get('transposed_conv', 'subpixel')
    if transposed_conv not in TRANSPOSED_CONVS:
      raise UserError(f'unknown model.transposed_conv={transposed_conv!r};'
                      f' valid: {", ".join(TRANSPOSED_CONVS)}')
    return (dcgan.Generator(tuple(example_shape),
                            transposed_conv=transposed_conv,
                            dtype=compute_dtype),
            dcgan.Discriminator(model_config.get('dropout', 0.3),
                                dtype=compute_dtype,
                                transposed_conv=transposed_conv))
  if name == 'mlp':
    if len(example_shape) != 1:
      raise UserError(
          f'model.name=mlp needs flat examples (2-D points), got shape'
          f' {tuple(example_shape)}; use model.name=dcgan for images')
    return (mlp.Generator(model_config.width, model_config.depth,
                          example_shape[0], dtype=compute_dtype),
            mlp.Discriminator(model_config.width, model_config.depth,
                              dtype=compute_dtype))
  raise UserError(
      f'unknown model.name={name!r}; valid: {", ".join(MODEL_NAMES)}')
