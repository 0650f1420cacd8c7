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


def fields() -> dict[str, registry.Field]:
  """Every key a run reads, dotted, with its default, its check and what it
  is: the schema `default_config` builds and `validate` checks, and the
  config table of docs/reference.md. The defaults are the tutorial DCGAN on
  MNIST, trained with Radford et al. 2016's Adam settings and batch 64.

  A model's keys (`models.MODELS[name].fields`) and a penalty's weight
  (`losses.PENALTIES`) join from their registries. A check of None: the key
  is validated otherwise (eval.evaluators names by name) or not at all (the
  seed, paths).
  """
  # The registries, read when called (configs is a leaf module).
  from gan_jax import data  # noqa: PLC0415
  from gan_jax import losses  # noqa: PLC0415
  from gan_jax import models  # noqa: PLC0415
  from gan_jax import schedules  # noqa: PLC0415
  F = registry.Field
  return {
      'seed': F(0, None, 'base seed: parameters, noise, batches and dropout'
                ' derive from it'),
      'num_seeds': F(1, POSITIVE, 'independent GANs trained together in one'
                     ' compiled program: member i is the run of seed `seed + i`'
                     ' (results.json: mean, per seed, 95% interval)'),
      'data.name': F('mnist', tuple(data.DATASETS), 'the dataset'),
      'data.source': F('tfds', data.SOURCES, 'where its files come from: TFDS,'
                       ' MNIST-format idx files, or none (a toy); data.name='
                       'folder reads data.path whatever it says'),
      'data.path': F('', None, 'the directory of *-images-idx3-ubyte[.gz] files'
                     ' (data.source=idx), or of your images, or their'
                     ' python -m gan_jax.prepare output (data.name=folder)'),
      'data.resolution': F(0, NON_NEGATIVE, 'data.name=folder: the square side'
                           ' every image is centre-cropped and resized to'
                           ' (Lanczos); 0 = their own size, which all must share'),
      'data.channels': F(0, (0, 1, 3), 'data.name=folder: 1 (grey) or 3 (RGB);'
                         ' 0 = grey when every image is, else RGB'),
      'data.tfds_data_dir': F('', None, 'TFDS\'s data_dir (\'\' = TFDS\'s'
                              ' default, ~/tensorflow_datasets)'),
      'data.subset': F('', None, 'START:STOP: train on those images of the'
                       ' dataset only (e.g. 0:5000, the other test digits held'
                       ' out as eval.reference_subset); \'\' = all'),
      'data.pipeline': F('auto', data.stream.PIPELINES, 'device: the decoded'
                         ' images held on the devices, batches drawn inside'
                         ' the step; stream: read batch by batch with grain,'
                         ' shuffled per epoch (data/stream.py); auto: device'
                         ' up to 2 GiB decoded'),
      'data.workers': F(0, NON_NEGATIVE, 'data.pipeline=stream: processes that'
                        ' decode images (0 = threads of the training process)'),
      'model.name': F('dcgan', tuple(models.MODELS), 'the generator and'
                      ' discriminator'),
      'model.latent_dim': F(100, POSITIVE, 'the size of z ~ N(0, I)'),
      'model.spectral_norm': F(False, (False, True), 'every weight of the'
                               ' discriminator divided by its largest singular'
                               ' value (Miyato et al. 2018), for every model'),
      'model.pack': F(1, POSITIVE, 'PacGAN (Lin et al. 2018): D judges packs of'
                      ' this many examples of one kind, joined on the last'
                      ' axis; 1 = no packing'),
      **{f'model.{k}': f for k, f in model_fields().items()},
      'loss.name': F('non_saturating', tuple(losses.LOSSES), 'the loss'),
      **{f'loss.{k}': f for k, f in penalty_fields().items()},
      'loss.reg_every': F(1, POSITIVE, 'lazy regularisation (Karras et al.'
                          ' 2020): R1/R2 only on the first D update of every'
                          ' reg_every-th step, weighted reg_every x d_steps'),
      'optim.g_lr': F(2e-4, POSITIVE, 'G\'s Adam learning rate (Radford et al.'
                      ' 2016)'),
      'optim.d_lr': F(2e-4, POSITIVE, 'D\'s Adam learning rate'),
      'optim.b1': F(0.5, FRACTION, 'Adam β1, both players (Radford et al. 2016)'),
      'optim.b2': F(0.999, FRACTION, 'Adam β2, both players'),
      'optim.schedule': F('constant', tuple(schedules.SCHEDULES), 'the learning'
                          ' rates over the run: constant, or decayed to 0 by'
                          ' the last step'),
      'optim.g_ema_decay': F(0.0, FRACTION, 'an exponential moving average of'
                             ' G, which pictures, samples and evaluations then'
                             ' use (0 = none, e.g. 0.999; Karras et al. 2018,'
                             ' Yazıcı et al. 2019)'),
      'optim.g_ema_start': F(0, NON_NEGATIVE, 'the average copies G for its'
                             ' first updates'),
      'train.batch_size': F(64, POSITIVE, 'the global batch, split evenly'
                            ' across all devices'),
      'train.num_steps': F(10_000, POSITIVE, 'generator updates'),
      'train.d_steps': F(0, NON_NEGATIVE, 'D updates per G update; 0 = the'
                         ' loss\'s (wgan_gp 5, else 1)'),
      'train.log_every': F(100, POSITIVE, 'steps between progress lines and'
                           ' TensorBoard scalars'),
      'train.sample_every': F(1000, POSITIVE, 'steps between'
                              ' samples/step_<N>.png from a fixed z'),
      'train.checkpoint_every': F(1000, POSITIVE, 'steps between checkpoints'
                                  ' (and one at the end)'),
      'train.eval_every': F(0, NON_NEGATIVE, 'steps between evaluations (0 ='
                            ' only at the end)'),
      'train.max_checkpoints': F(3, POSITIVE, 'checkpoints kept; older ones are'
                                 ' deleted'),
      'train.dtype': F('float32', models.DTYPES, 'the models\' compute dtype;'
                       ' parameters, optimizer states and losses stay float32'
                       ' (bfloat16: mixed precision for GPUs and TPUs)'),
      'train.reuse_fake': F(False, (False, True), 'one forward of G a step:'
                            ' D is updated on G(z) and G by pulling its loss'
                            ' back through that same pass, as the PyTorch DCGAN'
                            ' tutorial steps (needs train.d_steps 1)'),
      'train.seed_batching': F('auto', SEED_BATCHING, 'how the members of a'
                               ' run of several seeds share one program: vmap,'
                               ' loop (one after another), or auto (loop for'
                               ' convolutional models on the CPU)'),
      'eval.evaluators': F('', None, 'comma-separated evaluators (\'\' ='
                           ' none)'),
      'eval.num_samples': F(2500, POSITIVE, 'generated samples per evaluation'
                            ' (PacGAN: 2,500)'),
      'eval.classifier_dir': F('', None, 'the LeNet of the classifier and'
                               ' stacked_mnist evaluators (\'\' ='
                               ' classifiers/<data.name>)'),
      'eval.inception': F('', None, 'converted Inception weights (\'\' ='
                          ' $GAN_JAX_INCEPTION, else'
                          ' ~/.cache/gan_jax/inception-2015-12-05.npz)'),
      'eval.reference_subset': F('', None, 'START:STOP: the inception'
                                 ' evaluator\'s reference is those images of'
                                 ' the training data (all of it, data.subset'
                                 ' aside), and its floor the training images'
                                 ' against them; \'\' = the train split'
                                 ' against the test split'),
      'eval.inception_cache': F('', None, 'where real Inception statistics are'
                                ' cached (\'\' = ~/.cache/gan_jax/reference)'),
  }


def default_config() -> ml_collections.ConfigDict:
  """Every key of `fields()` at its default, as a ConfigDict with a section
  per prefix (`config.train.num_steps`)."""
  config = ml_collections.ConfigDict()
  for key, field in fields().items():
    node = config
    *sections, name = key.split('.')
    for section in sections:
      if section not in node:
        node[section] = ml_collections.ConfigDict()
      node = node[section]
    node[name] = field.default
  return config


def toy_config(dataset: str) -> ml_collections.ConfigDict:
  """A 2-D mixture: small ReLU MLPs, z in R^2, Adam decayed linearly to 0.

  Starts from the WGAN-GP toy code (Gulrajani et al. 2017, gan_toy.py: ReLU
  MLPs of depth 3, z in R^2, Adam b1=0.5, b2=0.9) and was tuned on ring8 and
  grid25 (docs/results/toy_losses.md): 128 units instead of 512 (4x cheaper,
  no worse), Adam 1e-3 instead of 1e-4 decayed linearly to 0 over 10,000
  steps. The decay is what brings the high-quality fraction (samples within
  3 std of a mode) from an oscillating ~0.6 to above 0.9.
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
  return {p.weight_key: registry.Field(
      p.default_weight, NON_NEGATIVE,
      f'the weight of {name}: {p.summary}' + (
          ' (with the losses that list it)' if p.with_its_loss_only
          else ' (applied when > 0)'))
          for name, p in losses.PENALTIES.items()}


def checks() -> dict[str, str | tuple]:
  """Every validated key's constraint (`fields()`'s checks that are not None)."""
  return {key: field.check for key, field in fields().items()
          if field.check is not None}


def validate(config: ml_collections.ConfigDict, num_devices: int) -> None:
  """Raises UserError (one line: the bad value and what is valid) on a bad config."""
  from gan_jax import data  # noqa: PLC0415 (configs is a leaf module)
  from gan_jax import evaluators  # noqa: PLC0415
  for key, check in checks().items():
    registry.check_value(key, _get(config, key), check)
  data.check_source(config.data.name, config.data.source)
  data.parse_subset(config.data.get('subset', ''))
  data.parse_subset(config.eval.get('reference_subset', ''),
                    'eval.reference_subset')
  for name in evaluators.parse(config.eval.evaluators):
    registry.lookup(evaluators.EVALUATORS, 'eval.evaluators', name)
  d_steps = resolve(config).train.d_steps
  if config.train.get('reuse_fake', False) and d_steps != 1:
    raise UserError(
        f'train.reuse_fake=True needs one D update a step, but train.d_steps'
        f' is {d_steps} (loss.name={config.loss.name});'
        ' pass --config.train.d_steps=1, or train.reuse_fake=False')
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
