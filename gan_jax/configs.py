"""The config schema: every key a run reads, its default, and its validation.

Experiment files (`experiments/*.py`) start from `default_config()` and change
what their experiment needs, so every run has the same keys and any key can be
overridden on the command line (`--config.train.num_steps=100`).


A leaf module: it imports no component module at import time. The keys of
components (a model's width, a penalty's weight) and the valid names come
from their registries (`gan_jax.registry`), read when a config is built or
validated.
"""

import importlib.machinery
import importlib.util

import ml_collections

from gan_jax import registry
from gan_jax.errors import UserError
from gan_jax.registry import FRACTION
from gan_jax.registry import NON_NEGATIVE
from gan_jax.registry import POSITIVE

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
  c.data.name = 'mnist'  # one of data.DATASETS
  c.data.source = 'tfds'  # 'tfds', 'idx' (MNIST-format files) or 'toy'
  c.data.path = ''  # directory of *-images-idx3-ubyte[.gz] files, for source=idx
  c.data.tfds_data_dir = ''  # TFDS data_dir ('' = TFDS's default ~/tensorflow_datasets)

  c.model = ml_collections.ConfigDict()
  c.model.name = 'dcgan'  # one of models.MODELS: 'dcgan' (images), 'mlp' (2-D toys)
  c.model.latent_dim = 100  # size of z ~ N(0, I)
  # Every weight of the discriminator divided by its largest singular value
  # (Miyato et al. 2018; models.SpectrallyNormalised), for every model.
  c.model.spectral_norm = False
  # PacGAN (Lin et al. 2018): D judges packs of this many examples of one
  # kind, joined on the last axis (models.pack); 1 = one example, no packing.
  c.model.pack = 1
  # Every model's own keys (models.MODELS[name].fields), e.g. the mlp's width
  # and depth, the dcgan's dropout and transposed_conv.
  for key, field in model_fields().items():
    c.model[key] = field.default

  c.loss = ml_collections.ConfigDict()
  c.loss.name = 'non_saturating'  # one of losses.LOSSES
  # Every penalty's weight (losses.PENALTIES), e.g. gp_weight: WGAN-GP's lambda.
  for key, field in penalty_fields().items():
    c.loss[key] = field.default
  # Lazy regularisation: the optional penalties (r1, r2) only on the first D
  # update of every reg_every-th step, weighted reg_every x d_steps (Karras et
  # al. 2020; 16 there).
  c.loss.reg_every = 1

  c.optim = ml_collections.ConfigDict()
  c.optim.g_lr = 2e-4  # generator Adam learning rate (Radford et al. 2016)
  c.optim.d_lr = 2e-4  # discriminator Adam learning rate
  c.optim.b1 = 0.5  # Adam beta1, both players (Radford et al. 2016)
  c.optim.b2 = 0.999  # Adam beta2, both players
  # Learning rates over the run: 'constant', or decayed to 0 by the last step
  # ('linear', 'cosine'; schedules.SCHEDULES).
  c.optim.schedule = 'constant'
  # An exponential moving average of G's variables, which pictures, samples
  # and evaluations then use (0 = none, e.g. 0.999; Karras et al. 2018,
  # Yazıcı et al. 2019); it copies G for the first g_ema_start updates.
  c.optim.g_ema_decay = 0.0
  c.optim.g_ema_start = 0

  c.train = ml_collections.ConfigDict()
  c.train.batch_size = 64  # global batch, split evenly across all devices
  c.train.num_steps = 10_000  # generator updates
  c.train.d_steps = 0  # D updates per G update; 0 = the loss's d_steps (wgan_gp 5, else 1)
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
  # grouped convolutions), 'loop' (the members one after another, unrolled,
  # each at its own batch), or 'auto' (train.seed_batching: 'loop' for
  # convolutional models on the CPU, where XLA runs grouped convolutions
  # slowly, else 'vmap'). The same numbers up to float round-off.
  c.train.seed_batching = 'auto'

  c.eval = ml_collections.ConfigDict()
  c.eval.evaluators = ''  # comma-separated names of evaluators.EVALUATORS ('' = none)
  c.eval.num_samples = 2500  # generated samples per evaluation (PacGAN: 2,500)
  # The LeNet of the classifier/stacked_mnist evaluators ('' = classifiers/
  # <data.name>, classifiers/mnist for stacked_mnist; see gan_jax.classifier).
  c.eval.classifier_dir = ''
  # The inception evaluator: converted weights ('' = $GAN_JAX_INCEPTION, else
  # ~/.cache/gan_jax/inception-2015-12-05.npz; see gan_jax.inception) and
  # where the real statistics are cached ('' = ~/.cache/gan_jax/reference).
  c.eval.inception = ''
  c.eval.inception_cache = ''
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
  c.data.name = dataset  # a toy of data.DATASETS: ring8, grid25, swissroll
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
  from gan_jax import evaluators  # noqa: PLC0415 (configs is a leaf module)
  if dataset in evaluators.EVALUATORS['modes'].datasets:  # mixtures of modes
    c.eval.evaluators = 'modes'  # PacGAN's modes / high-quality / reverse KL
    c.train.eval_every = 1000
  return c


def load_config_module(path: str):
  """The config file as a module, loaded as ml_collections' config_flags does."""
  loader = importlib.machinery.SourceFileLoader('gan_jax_experiment_config', path)
  spec = importlib.util.spec_from_loader(loader.name, loader)
  module = importlib.util.module_from_spec(spec)
  loader.exec_module(module)
  return module


def call_config_file(config_arg: str, function: str = 'get_config'):
  """`function` of the config file of --config=`file.py` or `file.py:arg`,
  called as config_flags calls get_config (with arg when there is one);
  None if the file does not define it."""
  path, _, arg = config_arg.partition(':')
  defined = getattr(load_config_module(path), function, None)
  return None if defined is None else defined(*([arg] if arg else []))


def check_variant(experiment: str, variant: str, variants: tuple[str, ...]) -> None:
  """Raises a one-line UserError unless `variant` (the `:arg` of
  `--config=experiments/FILE.py:arg`) is one of the experiment file's
  `variants`."""
  if variant not in variants:
    raise UserError(f'{experiment}:{variant} is not a variant;'
                    f' valid: {", ".join(variants)}')


def model_fields() -> dict[str, registry.Field]:
  """The keys every model declares under `model.` (models.MODELS)."""
  from gan_jax import models  # noqa: PLC0415 (configs is a leaf module)
  return registry.merged_fields('model', models.MODELS)


def penalty_fields() -> dict[str, registry.Field]:
  """Each penalty's weight key under `loss.` (losses.PENALTIES)."""
  from gan_jax import losses  # noqa: PLC0415 (configs is a leaf module)
  return {p.weight_key: registry.Field(p.default_weight, NON_NEGATIVE)
          for p in losses.PENALTIES.values()}


def checks() -> dict[str, str | tuple[str, ...]]:
  """Every validated key's constraint (registry.Field.check); the keys left
  out (seed, paths, eval.evaluators, the names) are checked otherwise."""
  from gan_jax import data  # noqa: PLC0415 (configs is a leaf module)
  from gan_jax import models  # noqa: PLC0415
  from gan_jax import schedules  # noqa: PLC0415
  return {
      'num_seeds': POSITIVE,
      'data.source': data.SOURCES,
      'model.latent_dim': POSITIVE, 'model.spectral_norm': (False, True),
      'model.pack': POSITIVE,
      **{f'model.{k}': f.check for k, f in model_fields().items()},
      **{f'loss.{k}': f.check for k, f in penalty_fields().items()},
      'loss.reg_every': POSITIVE,
      'optim.g_lr': POSITIVE, 'optim.d_lr': POSITIVE,
      'optim.b1': FRACTION, 'optim.b2': FRACTION,
      'optim.g_ema_decay': FRACTION, 'optim.g_ema_start': NON_NEGATIVE,
      'optim.schedule': tuple(schedules.SCHEDULES),
      'train.batch_size': POSITIVE, 'train.num_steps': POSITIVE,
      'train.d_steps': NON_NEGATIVE, 'train.log_every': POSITIVE,
      'train.sample_every': POSITIVE, 'train.checkpoint_every': POSITIVE,
      'train.eval_every': NON_NEGATIVE, 'train.max_checkpoints': POSITIVE,
      'train.dtype': models.DTYPES, 'train.seed_batching': SEED_BATCHING,
      'eval.num_samples': POSITIVE,
  }


def validate(config: ml_collections.ConfigDict, num_devices: int) -> None:
  """Raises UserError (one line: the bad value and what is valid) on a bad config."""
  from gan_jax import data  # noqa: PLC0415 (configs is a leaf module)
  from gan_jax import evaluators  # noqa: PLC0415
  from gan_jax import losses  # noqa: PLC0415
  from gan_jax import models  # noqa: PLC0415
  registry.lookup(data.DATASETS, 'data.name', config.data.name)
  registry.lookup(models.MODELS, 'model.name', config.model.name)
  registry.lookup(losses.LOSSES, 'loss.name', config.loss.name)
  for key, check in checks().items():
    registry.check_value(key, _get(config, key), check)
  data.check_source(config.data.name, config.data.source)
  for name in evaluators.parse(config.eval.evaluators):
    registry.lookup(evaluators.EVALUATORS, 'eval.evaluators', name)
  batch = config.train.batch_size
  if batch % num_devices:
    raise UserError(
        f'train.batch_size={batch} does not divide across {num_devices} devices;'
        f' use a multiple of {num_devices}')
  pack_size = config.model.get('pack', 1)
  if (batch // num_devices) % pack_size:
    raise UserError(
        f'model.pack={pack_size} does not divide the batch per device'
        f' ({batch // num_devices} = train.batch_size {batch} / {num_devices}'
        f' devices); use a train.batch_size that is a multiple of'
        f' {pack_size * num_devices}')


def resolve(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """A copy with the automatic values filled in (what config.json records)."""
  from gan_jax import losses  # noqa: PLC0415 (configs is a leaf module)
  config = ml_collections.ConfigDict(config.to_dict())
  if config.train.d_steps == 0:
    config.train.d_steps = losses.LOSSES[config.loss.name].d_steps
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
