"""Generator/discriminator pairs: the registry `MODELS`, picked by `config.model.name`.

The contract every model keeps (tests/test_contracts.py checks it for every
entry of MODELS):

* Generator: `G(z_BL, train) -> x` of the data's example shape, float32
  whatever the compute dtype (the losses are computed in float32).
* Discriminator: `D(x, train, example_keys_B=None) -> logits_B`, float32.
  Any randomness (dropout) in example b comes from `example_keys_B[b]` alone,
  and D treats every example on its own (no batch statistics in training), so
  one pass over real and fake examples together equals two passes, and the
  run is the same on one device or many.
* BatchNorm (in G) averages its batch statistics over the `data` axis
  (`parallel.DATA_AXIS`) in training, so they are the global batch's.
* Variables: `params`, plus any mutable collections (`batch_stats`, ...);
  the training state keeps every collection a model creates (gan.Player).

`model.spectral_norm=True` wraps any model's discriminator in
`SpectrallyNormalised`, and `model.pack=m` gives it packs of m examples
(`pack`, PacGAN), so every model has both without code of its own.

A model's config keys under `model.` (besides `name` and `latent_dim`) come
from its spec's `fields`; adding a model is one entry here plus its module.
"""

from collections.abc import Callable, Sequence
import dataclasses

import flax.linen as nn
import jax.numpy as jnp
import ml_collections

from gan_jax import registry
from gan_jax.errors import UserError
from gan_jax.models import dcgan
from gan_jax.models import mlp
from gan_jax.models import resnet
from gan_jax.models import sngan
from gan_jax.registry import Field

# model.transposed_conv: how dcgan and sngan compute their transposed convolutions,
# the generator's layers and the input gradients of the discriminator's
# strided convolutions: sub-pixel (layers.SubPixelConvTranspose and
# layers.SubPixelGradConv), or Flax's nn.ConvTranspose and nn.Conv.
TRANSPOSED_CONVS = ('subpixel', 'flax')
# train.dtype: the layers' compute dtype. Parameters, optimizer states and
# BatchNorm statistics stay float32, and both models' outputs (images or
# points, logits) are float32, so the losses are computed in float32.
DTYPES = ('float32', 'bfloat16')

Builder = Callable[[ml_collections.ConfigDict, tuple[int, ...], jnp.dtype],
                   tuple[nn.Module, nn.Module]]


@dataclasses.dataclass(frozen=True)
class Model:
  """A generator/discriminator pair.

  Attributes:
    build: (model config with every field set, example shape, compute
      dtype) -> (generator, discriminator); a UserError for data it does not
      fit.
    fields: its config keys under `model.`.
    summary: one line for docs/reference.md: what it is, after which paper.
    convolutional: whether it convolves; then several seeds run one after
      another on the CPU (train.seed_batching), where vmapped per-seed
      kernels would make slow grouped convolutions.
  """

  build: Builder
  fields: dict[str, Field]
  summary: str
  convolutional: bool


SPECTRAL_NORM_COLLECTION = 'spectral_norm'  # D's u and sigma (SpectrallyNormalised)


class SpectrallyNormalised(nn.Module):
  """`discriminator` with every weight (each parameter of 2 or more
  dimensions; a convolution kernel as a [kh·kw·in, out] matrix) divided by
  its largest singular value (Miyato et al. 2018, "Spectral Normalization
  for Generative Adversarial Networks", eq. 8 and Algorithm 1).

  Flax's nn.SpectralNorm: one power-iteration step per pass from the stored
  u, kept (with sigma) in the `spectral_norm` collection only in training
  mode (the step keeps it from D's own update, so once per D update). It
  reads the weights alone, so every device computes the same u. Parameters
  live under `discriminator/`; their count is unchanged.
  """

  discriminator: nn.Module

  @nn.compact
  def __call__(self, x: jnp.ndarray, train: bool,
               example_keys_B: jnp.ndarray | None = None) -> jnp.ndarray:
    normalised = nn.SpectralNorm(self.discriminator,
                                 collection_name=SPECTRAL_NORM_COLLECTION)
    return normalised(x, train=train, example_keys_B=example_keys_B,
                      update_stats=train)


def _build_dcgan(config, example_shape, dtype):
  image_shape = _image_shape('dcgan', example_shape)
  options = {'transposed_conv': config.transposed_conv, 'dtype': dtype,
             'weight_init': config.weight_init}
  if image_shape[:2] == (64, 64):  # the paper's own networks
    g_channels = config.g_channels or dcgan.RADFORD_CHANNELS
    d_channels = config.d_channels or dcgan.RADFORD_CHANNELS
    _check_divisible({'g_channels': g_channels, 'd_channels': d_channels}, 8)
    return (dcgan.Generator64(image_shape[2], g_channels // 8, **options),
            dcgan.Discriminator64(d_channels // 8, config.dropout, **options))
  g_channels = config.g_channels or dcgan.TUTORIAL_G_CHANNELS
  d_channels = config.d_channels or dcgan.TUTORIAL_D_CHANNELS
  _check_divisible({'g_channels': g_channels}, 4)
  _check_divisible({'d_channels': d_channels}, 2)
  return (dcgan.Generator(image_shape, g_channels, **options),
          dcgan.Discriminator(config.dropout, d_channels, **options))


def _image_shape(name: str, example_shape) -> tuple[int, int, int]:
  """`example_shape` as (H, W, C) with sides divisible by 4; else a UserError
  naming model `name`."""
  if len(example_shape) != 3 or example_shape[0] % 4 or example_shape[1] % 4:
    raise UserError(
        f'model.name={name} needs images with height and width divisible by'
        f' 4, got examples of shape {tuple(example_shape)}; use'
        ' model.name=mlp for 2-D points')
  return tuple(example_shape)


def _check_divisible(values: dict[str, int], divisor: int) -> None:
  for key, value in values.items():
    if value % divisor:
      raise UserError(f'model.{key}={value} must be a multiple of {divisor}'
                      f' (the narrowest layer has 1/{divisor} of it)')


def _build_sngan(config, example_shape, dtype):
  image_shape = _image_shape('sngan', example_shape)
  g_channels = config.g_channels or sngan.G_CHANNELS
  d_channels = config.d_channels or sngan.D_CHANNELS
  _check_divisible({'g_channels': g_channels, 'd_channels': d_channels}, 8)
  return (sngan.Generator(image_shape, g_channels,
                          transposed_conv=config.transposed_conv, dtype=dtype),
          sngan.Discriminator(d_channels, transposed_conv=config.transposed_conv,
                              dtype=dtype))


def _build_resnet(config, example_shape, dtype):
  image_shape = _image_shape('resnet', example_shape)
  arch = resnet.architecture(*image_shape[:2])
  _check_divisible({'g_channels': config.g_channels,
                    'd_channels': config.d_channels},
                   2 ** max(*arch.g_shifts, *arch.d_shifts))
  return (resnet.Generator(image_shape, config.g_channels, dtype=dtype),
          resnet.Discriminator(config.d_channels, dtype=dtype))


def _build_mlp(config, example_shape, dtype):
  if len(example_shape) != 1:
    raise UserError(
        f'model.name=mlp needs flat examples (2-D points), got shape'
        f' {tuple(example_shape)}; use model.name=dcgan for images')
  return (mlp.Generator(config.width, config.depth, example_shape[0],
                        dtype=dtype),
          mlp.Discriminator(config.width, config.depth, dtype=dtype))


def _transposed_conv_field() -> Field:
  # Transposed convolutions (G's layers, and the input gradients of D's
  # strided convolutions) as one stride-1 convolution and a depth-to-space
  # shuffle ('subpixel', several times faster on CPU), or through
  # nn.ConvTranspose and nn.Conv ('flax', the reference): the same function
  # and parameters.
  return Field('subpixel', TRANSPOSED_CONVS,
               'transposed convolutions as a stride-1 convolution and a'
               ' depth-to-space shuffle (\'subpixel\'), or Flax\'s (\'flax\','
               ' the reference)')


def _channels_field(player: str, paper: int | str) -> Field:
  # Shared by models whose papers' widths differ, so 0 stands for each one's.
  return Field(0, registry.NON_NEGATIVE,
               f'{player}\'s widest layers\' channels (0 = {paper})')


MODELS: dict[str, Model] = {
    'dcgan': Model(
        _build_dcgan,
        fields={
            'dropout': Field(0.3, registry.FRACTION,
                             'the dropout rate in the discriminator'),
            'g_channels': _channels_field(
                'G', f'the tutorial\'s, {dcgan.TUTORIAL_G_CHANNELS}; the'
                f' paper\'s at 64x64, {dcgan.RADFORD_CHANNELS}'),
            'd_channels': _channels_field(
                'D', f'the tutorial\'s, {dcgan.TUTORIAL_D_CHANNELS} (as many as'
                f' G at each resolution); the paper\'s at 64x64,'
                f' {dcgan.RADFORD_CHANNELS}'),
            'transposed_conv': _transposed_conv_field(),
            'weight_init': Field('flax', dcgan.WEIGHT_INITS,
                          'the initial weights: Flax\'s defaults, N(0, 0.02²)'
                          ' (\'dcgan\', Radford et al. 2016) or PyTorch\'s'
                          ' defaults (\'torch\', the PyTorch peer\'s)'),
        },
        summary=('the TensorFlow DCGAN tutorial\'s convolutional pair'
                 ' (Radford et al. 2016), for images with sides divisible'
                 ' by 4; at 64x64, the paper\'s own'),
        convolutional=True),
    'mlp': Model(
        _build_mlp,
        fields={
            'width': Field(512, registry.POSITIVE, 'units per hidden layer'),
            'depth': Field(3, registry.POSITIVE, 'hidden layers in each player'),
        },
        summary=('ReLU MLPs of the WGAN-GP toy code (Gulrajani et al. 2017),'
                 ' for 2-D points'),
        convolutional=False),
    'sngan': Model(
        _build_sngan,
        fields={
            'g_channels': _channels_field('G', f'the paper\'s, {sngan.G_CHANNELS}'),
            'd_channels': _channels_field('D', f'the paper\'s, {sngan.D_CHANNELS}'),
            'transposed_conv': _transposed_conv_field(),
        },
        summary=('the "standard CNN" of Miyato et al. 2018 (Table 3), for'
                 ' images with sides divisible by 4'),
        convolutional=True),
    'resnet': Model(
        _build_resnet,
        fields={
            'g_channels': _channels_field(
                'G', 'the paper\'s, ' + ', '.join(f'{a.g_channels} at {side}x{side}'
                               for side, a in resnet.ARCHITECTURES.items())),
            'd_channels': _channels_field(
                'D', 'the paper\'s, ' + ', '.join(f'{a.d_channels} at {side}x{side}'
                               for side, a in resnet.ARCHITECTURES.items())),
        },
        summary=('the SNGAN ResNets (Miyato et al. 2018, Table 4, and the'
                 ' authors\' code) at 32x32, 48x48, 64x64 and 128x128 (the'
                 ' 32x32 ones for other sides divisible by 4)'),
        convolutional=True),
}


def packed_shape(example_shape: Sequence[int], pack_size: int) -> tuple[int, ...]:
  """The shape of one pack of `pack_size` examples: their last axes (an
  image's channels, a point's coordinates) side by side."""
  *rest, last = example_shape
  return (*rest, last * pack_size)


def pack(x_B: jnp.ndarray, pack_size: int) -> jnp.ndarray:
  """Examples [B, ..., C] as B / pack_size packs [B / pack_size, ..., pack_size·C]
  of consecutive examples, concatenated on the last axis: what PacGAN's
  discriminator judges (Lin et al. 2018, "PacGAN: The power of two samples in
  generative adversarial networks", §3: one label for m samples of one
  distribution, joined along the channels). pack_size 1 returns `x_B`."""
  if pack_size == 1:
    return x_B
  batch, *shape = x_B.shape
  x = x_B.reshape(batch // pack_size, pack_size, *shape)
  x = jnp.moveaxis(x, 1, -2)  # [P, ..., m, C]: each position's m examples
  return x.reshape(batch // pack_size, *packed_shape(shape, pack_size))


def build(model_config: ml_collections.ConfigDict,
          example_shape: Sequence[int],
          dtype: str = 'float32') -> tuple[nn.Module, nn.Module]:
  """Returns (generator, discriminator) for examples of `example_shape`, whose
  layers compute in `dtype` (one of DTYPES), the discriminator spectrally
  normalised when `model_config.spectral_norm`. Fields missing from
  `model_config` (a run recorded before they existed) take their defaults."""
  registry.check_value('train.dtype', dtype, DTYPES)
  spec = registry.lookup(MODELS, 'model.name', model_config.name)
  config = ml_collections.ConfigDict({
      key: model_config.get(key, field.default)
      for key, field in spec.fields.items()})
  for key, field in spec.fields.items():
    registry.check_value(f'model.{key}', config[key], field.check)
  spectral_norm = model_config.get('spectral_norm', False)
  registry.check_value('model.spectral_norm', spectral_norm, (False, True))
  generator, discriminator = spec.build(config, tuple(example_shape),
                                        jnp.dtype(dtype))
  if spectral_norm:
    discriminator = SpectrallyNormalised(discriminator)
  return generator, discriminator
