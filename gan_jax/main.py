"""Trains a GAN: `python -m gan_jax.main --config=experiments/mnist.py`.

Every config field can be overridden, e.g. `--config.loss.name=wgan_gp`.
The workdir defaults to runs/<config file stem>; a workdir that holds a
checkpoint is resumed (only with the config it was started with, up to
intervals and length; --allow_config_change names other keys that may
change). SIGTERM and SIGINT stop it with a checkpoint (exit 143 and 130).
Multi-host: pass --coordinator_address,
--num_processes and --process_id on every host, or nothing on a Cloud TPU pod
(jax.distributed detects it).
"""

import os

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from gan_jax import cli
from gan_jax import parallel

_CONFIG = config_flags.DEFINE_config_file(
    'config', None, 'Experiment config file, e.g. experiments/mnist.py.',
    lock_config=True)
_WORKDIR = flags.DEFINE_string(
    'workdir', None, 'Run directory (default: runs/<config file stem>).')
_MULTI_HOST = cli.define_multi_host_flags()
flags.adopt_module_key_flags(cli)  # --help lists them as this command's
_ALLOW_CONFIG_CHANGE = flags.DEFINE_list(
    'allow_config_change', [], 'Config keys a resumed run may change although'
    ' they change the math (e.g. optim.g_lr,optim.d_lr); the changes are'
    ' recorded in the workdir\'s config_history.json.')
flags.mark_flags_as_required(['config'])


def default_workdir(config_path: str) -> str:
  stem = os.path.splitext(os.path.basename(config_path))[0]
  return os.path.join('runs', stem)


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {" ".join(argv[1:])}')
  parallel.initialize_distributed(**_MULTI_HOST())
  from gan_jax import train  # noqa: PLC0415 (after distributed init)
  workdir = _WORKDIR.value or default_workdir(config_flags.get_config_filename(
      flags.FLAGS['config']))
  logging.info('workdir: %s', workdir)
  train.train_and_evaluate(_CONFIG.value, workdir,
                           allow_config_change=tuple(_ALLOW_CONFIG_CHANGE.value))


if __name__ == '__main__':
  cli.run(main)
