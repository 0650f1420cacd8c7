"""Trains the LeNet feature network and saves it (see `gan_jax.classifier`).

  python -m gan_jax.classifier --config=experiments/mnist.py
  # offline, from local MNIST-format files (here: only the 10k test split):
  python -m gan_jax.classifier --config=experiments/mnist.py \
      --config.data.source=idx --config.data.path=../shared/data/mnist

The config's data section picks the dataset; the classifier goes to --out
(default: classifiers/<config.data.name>).
"""

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from gan_jax import classifier
from gan_jax import cli
from gan_jax import data

_CONFIG = config_flags.DEFINE_config_file(
    'config', None, 'Experiment config file, e.g. experiments/mnist.py; its'
    ' data section picks the dataset.', lock_config=True)
_OUT = flags.DEFINE_string(
    'out', None, 'Output directory (default: classifiers/<config.data.name>).')
_STEPS = flags.DEFINE_integer('steps', classifier.DEFAULT_STEPS, 'Adam updates.')
_BATCH_SIZE = flags.DEFINE_integer(
    'batch_size', classifier.DEFAULT_BATCH_SIZE, 'Images per update.')
_SEED = flags.DEFINE_integer('seed', classifier.DEFAULT_SEED,
                             'Seed of everything random.')
_LR = flags.DEFINE_float('lr', classifier.DEFAULT_LR,
                         'Peak Adam learning rate (cosine decay).')
flags.mark_flags_as_required(['config'])


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {" ".join(argv[1:])}')
  config = _CONFIG.value
  out = _OUT.value or classifier.default_directory(config.data.name)
  labeled = data.load_labeled(config.data)
  logging.info('data: %s', labeled.description)
  params, metrics = classifier.train_classifier(
      labeled, _STEPS.value, _BATCH_SIZE.value, _SEED.value, _LR.value)
  classifier.save(out, params, {
      'dataset': config.data.name, 'description': labeled.description,
      'steps': _STEPS.value, 'batch_size': _BATCH_SIZE.value, 'lr': _LR.value,
      'seed': _SEED.value, **metrics})
  print(f'test accuracy {metrics["test_accuracy"]:.4f} on {metrics["test_size"]}'
        f' images (trained on {metrics["train_size"]} in'
        f' {metrics["train_seconds"]:.0f}s); saved to {out}')


if __name__ == '__main__':
  cli.run(main)
