"""Generator/discriminator pairs, picked by `config.model.name`."""

from collections.abc import Sequence

import flax.linen as nn
import ml_collections

from gan_jax.errors import UserError
from gan_jax.models import dcgan
from gan_jax.models import mlp

MODEL_NAMES = ('dcgan', 'mlp')


def build(model_config: ml_collections.ConfigDict,
          example_shape: Sequence[int]) -> tuple[nn.Module, nn.Module]:
  """Returns (generator, discriminator) for examples of `example_shape`."""
  name = model_config.name
  if name == 'dcgan':
    if len(example_shape) != 3 or example_shape[0] % 4 or example_shape[1] % 4:
      raise UserError(
          f'model.name=dcgan needs images with height and width divisible by 4,'
          f' got examples of shape {tuple(example_shape)}; use model.name=mlp'
          ' for 2-D points')
    return (dcgan.Generator(tuple(example_shape)),
            dcgan.Discriminator(model_config.get('dropout', 0.3)))
  if name == 'mlp':
    if len(example_shape) != 1:
      raise UserError(
          f'model.name=mlp needs flat examples (2-D points), got shape'
          f' {tuple(example_shape)}; use model.name=dcgan for images')
    return (mlp.Generator(model_config.width, model_config.depth,
                          example_shape[0]),
            mlp.Discriminator(model_config.width, model_config.depth))
  raise UserError(
      f'unknown model.name={name!r}; valid: {", ".join(MODEL_NAMES)}')
