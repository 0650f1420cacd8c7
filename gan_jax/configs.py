"""The config schema: every key a run reads, its default, and its validation.

Experiment files (`experiments/*.py`) start from `default_config()` and change
what their experiment needs, so every run has the same keys and any key can be
overridden on the command line (`--config.train.num_steps=100`).
"""

import ml_collections

from gan_jax import data
from gan_jax import evaluators
from gan_jax import losses
from gan_jax import models
from gan_jax.errors import UserError

# Discriminator updates per generator update when train.d_steps = 0:
# Gulrajani et al. 2017 (Algorithm 1) use n_critic = 5.
DEFAULT_D_STEPS = {'wgan_gp': 5}


SCHEDULES = ('constant', 'linear', 'cosine')  # optim.schedule
SEED_BATCHING = ('auto', 'vmap', 'loop')  # train.seed_batching


def default_config() -> ml_collections.ConfigDict:
  """The full set of keys with defaults: the tutorial DCGAN on MNIST, trained
  with Radford et al. 2016's Adam settings and batch 64."""
  c = ml_collections.ConfigDict()
  c.seed = 0  # base seed: parameters, noise, batches and dropout derive from it
  # Independent GANs trained together in one compiled program: member i is the
  # run with seed `seed + i` (results.json: mean, per seed, 95% interval).
  c.num_seeds = 1

  c.data = ml_collections.ConfigDict()
  c.data.name = 'mnist'  # one of data.DATASET_NAMES
  c.data.source = 'tfds'  # 'tfds', 'idx' (MNIST-format files) or 'toy'
  c.data.path = ''  # directory of *-images-idx3-ubyte[.gz] files, for source=idx
  c.data.tfds_data_dir = ''  # TFDS data_dir ('' = TFDS's default ~/tensorflow_datasets)

  c.model = ml_collections.ConfigDict()
  c.model.name = 'dcgan'  # 'dcgan' (images) or 'mlp' (2-D toys)
  c.model.latent_dim = 100  # size of z ~ N(0, I)
  c.model.width = 512  # mlp: units per hidden layer
  c.model.depth = 3  # mlp: hidden layers in each player
  c.model.dropout = 0.3  # dcgan: dropout rate in the discriminator
  # dcgan: transposed convolutions (the generator's layers, and the input
  # gradients of the discriminator's strided convolutions) as one stride-1
  # convolution and a depth-to-space shuffle ('subpixel', several times faster
  # on CPU), or through Flax's nn.ConvTranspose and nn.Conv ('flax', the
  # reference); the same function and parameters (models.TRANSPOSED_CONVS).
  c.model.transposed_conv = 'subpixel'

  c.loss = ml_collections.ConfigDict()
  c.loss.name = 'non_saturating'  # 'vanilla', 'non_saturating' or 'wgan_gp'
  c.loss.gp_weight = 10.0  # wgan_gp: lambda of the gradient penalty

  c.optim = ml_collections.ConfigDict()
  c.optim.g_lr = 2e-4  # generator Adam learning rate (Radford et al. 2016)
  c.optim.d_lr = 2e-4  # discriminator Adam learning rate
  c.optim.b1 = 0.5  # Adam beta1, both players (Radford et al. 2016)
  c.optim.b2 = 0.999  # Adam beta2, both players
  # Learning rates over the run: 'constant', or decayed to 0 by the last step
  # ('linear', 'cosine'; SCHEDULES).
  c.optim.schedule = 'constant'

  c.train = ml_collections.ConfigDict()
  c.train.batch_size = 64  # global batch, split evenly across all devices
  c.train.num_steps = 10_000  # generator updates
  c.train.d_steps = 0  # D updates per G update; 0 = the loss's default (wgan_gp 5, else 1)
  c.train.log_every = 100  # progress line and TensorBoard scalars, in steps
  c.train.sample_every = 1000  # samples/step_<N>.png from a fixed z, in steps
  c.train.checkpoint_every = 1000  # Orbax checkpoint, in steps (and at the end)
  c.train.eval_every = 0  # quality metrics, in steps (0 = only at the end)
  c.train.max_checkpoints = 3  # checkpoints kept; older ones are deleted
  # The models' compute dtype, 'float32' or 'bfloat16' (models.DTYPES): mixed
  # precision for GPU/TPU users, with parameters, optimizer states and losses
  # kept in float32 (benchmarks/README.md: 1.38x on one H100 for the DCGAN).
  c.train.dtype = 'float32'
  # How the members of a run of several seeds share one program: 'vmap' (one
  # batched program; per-member weights make batched matrix products and
  # grouped convolutions), 'loop' (lax.map: the members one after another,
  # each at its own batch), or 'auto' (train.SEED_BATCHING: 'loop' for
  # convolutional models on the CPU, where XLA runs grouped convolutions
  # slowly, else 'vmap'). The same numbers up to float round-off.
  c.train.seed_batching = 'auto'

  c.eval = ml_collections.ConfigDict()
  c.eval.evaluators = ''  # comma-separated evaluators.EVALUATORS ('' = none)
  c.eval.num_samples = 2500  # generated samples per evaluation (PacGAN: 2,500)
  # The LeNet of the classifier/stacked_mnist evaluators ('' = classifiers/
  # <data.name>, classifiers/mnist for stacked_mnist; see gan_jax.classifier).
  c.eval.classifier_dir = ''
  return c


def toy_config(dataset: str) -> ml_collections.ConfigDict:
  """A 2-D mixture: small ReLU MLPs, z in R^2, Adam decayed linearly to 0.

  Starts from the WGAN-GP toy code (Gulrajani et al. 2017, gan_toy.py: ReLU
  MLPs of depth 3, z in R^2, Adam b1=0.5, b2=0.9) and was tuned on ring8 and
  grid25 (docs/loss_comparison.md): 128 units instead of 512 (4x cheaper, no
  worse), Adam 1e-3 instead of 1e-4 decayed linearly to 0 over 10,000 steps.
  The decay is what brings the high-quality fraction (samples within 3 std
  of a mode) from an oscillating ~0.6 to above 0.9.
  """
  c = default_config()
  c.data.name = dataset  # 'ring8', 'grid25' or 'swissroll'
  c.data.source = 'toy'  # sampled exactly from the mixture inside the step
  c.model.name = 'mlp'
  c.model.latent_dim = 2  # z in R^2, as in gan_toy.py and PacGAN
  c.model.width, c.model.depth = 128, 3
  c.optim.g_lr = c.optim.d_lr = 1e-3
  c.optim.b1, c.optim.b2 = 0.5, 0.9
  c.optim.schedule = 'linear'
  c.train.batch_size = 256
  c.train.num_steps = 10_000
  c.train.log_every = 500
  c.train.sample_every = 2000
  c.train.checkpoint_every = 2000
  if dataset in ('ring8', 'grid25'):
    c.eval.evaluators = 'modes'  # PacGAN's modes / high-quality / reverse KL
    c.train.eval_every = 1000
  return c


def _check_choice(key: str, value: str, valid: tuple[str, ...]) -> None:
  if value not in valid:
    raise UserError(f'unknown {key}={value!r}; valid: {", ".join(valid)}')


def _check_positive(key: str, value: float, allow_zero: bool = False) -> None:
  ok = value >= 0 if allow_zero else value > 0
  if not ok:
    bound = '>= 0' if allow_zero else '> 0'
    raise UserError(f'{key}={value!r} is invalid; it must be {bound}')


def validate(config: ml_collections.ConfigDict, num_devices: int) -> None:
  """Raises UserError (one line: the bad value and what is valid) on a bad config."""
  _check_choice('data.name', config.data.name, data.DATASET_NAMES)
  _check_choice('data.source', config.data.source, data.SOURCES)
  _check_choice('model.name', config.model.name, models.MODEL_NAMES)
  _check_choice('loss.name', config.loss.name, tuple(losses.LOSSES))
  _check_choice('optim.schedule', config.optim.schedule, SCHEDULES)
  _check_choice('model.transposed_conv', config.model.transposed_conv,
                models.TRANSPOSED_CONVS)
  _check_choice('train.dtype', config.train.dtype, models.DTYPES)
  _check_choice('train.seed_batching', config.train.seed_batching, SEED_BATCHING)
  for key in ('num_seeds', 'optim.g_lr', 'optim.d_lr', 'train.batch_size',
              'train.num_steps', 'model.latent_dim',
              'model.width', 'model.depth', 'train.log_every',
              'train.sample_every', 'train.checkpoint_every',
              'train.max_checkpoints', 'eval.num_samples'):
    _check_positive(key, _get(config, key))
  _check_positive('loss.gp_weight', config.loss.gp_weight, allow_zero=True)
  _check_positive('train.eval_every', config.train.eval_every, allow_zero=True)
  _check_positive('train.d_steps', config.train.d_steps, allow_zero=True)
  for key in ('optim.b1', 'optim.b2'):
    if not 0 <= _get(config, key) < 1:
      raise UserError(f'{key}={_get(config, key)!r} is invalid; it must be in [0, 1)')
  if not 0 <= config.model.dropout < 1:
    raise UserError(
        f'model.dropout={config.model.dropout!r} is invalid; it must be in [0, 1)')
  for name in evaluators.parse(config.eval.evaluators):
    _check_choice('eval.evaluators entry', name, evaluators.EVALUATORS)
  batch = config.train.batch_size
  if batch % num_devices:
    raise UserError(
        f'train.batch_size={batch} does not divide across {num_devices} devices;'
        f' use a multiple of {num_devices}')


def resolve(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """A copy with the automatic values filled in (what config.json records)."""
  config = ml_collections.ConfigDict(config.to_dict())
  if config.train.d_steps == 0:
    config.train.d_steps = DEFAULT_D_STEPS.get(config.loss.name, 1)
  return config


def seeds(config: ml_collections.ConfigDict) -> list[int]:
  """The seed of each member of the run: seed, seed + 1, ..., seed + num_seeds - 1."""
  return [config.seed + i for i in range(config.num_seeds)]


def find(config: ml_collections.ConfigDict, key: str, origin: str):
  """The value or section at dotted `key`; UserError naming the valid keys
  where the path leaves the config (`origin` says where `key` came from)."""
  node, seen = config, []
  for part in key.split('.'):
    if not isinstance(node, ml_collections.ConfigDict) or part not in node:
      where = '.'.join(seen) or 'the config'
      valid = (', '.join(sorted(node.keys()))
               if isinstance(node, ml_collections.ConfigDict) else 'none')
      raise UserError(f'unknown config key {key!r} (from {origin}); valid keys'
                      f' in {where}: {valid}')
    node = node[part]
    seen.append(part)
  return node


def _get(config: ml_collections.ConfigDict, dotted_key: str):
  value = config
  for part in dotted_key.split('.'):
    value = value[part]
  return value
