"""Runs one ordinary training run per point of a grid of config values (gan_jax/sweep/)."""

from absl import app
from absl import flags
from ml_collections import config_flags

from gan_jax import cli
from gan_jax.sweep import sweep

_CONFIG = config_flags.DEFINE_config_file(
    'config', None, 'Experiment config file, e.g. experiments/ring8.py.',
    lock_config=True)
_SWEEP = flags.DEFINE_multi_string(
    'sweep', [], 'KEY=v1,v2,...: values of one config key (repeat the flag'
    ' for a product; `\\,` is a comma inside a value).')
_WORKDIR = flags.DEFINE_string(
    'workdir', None, 'The sweep\'s directory: one sub-workdir per point, and'
    ' the summary (default: runs/sweep_<config file stem>).')
_PRINT_COMMANDS = flags.DEFINE_bool(
    'print_commands', False, 'Print each point\'s gan_jax.main command (to run'
    ' on every host of a pod) instead of running.')
_SUMMARIZE_ONLY = flags.DEFINE_bool(
    'summarize_only', False, 'Write summary.csv/md from the sub-workdirs;'
    ' run nothing.')
_COORDINATOR = flags.DEFINE_string(
    'coordinator_address', None,
    'Multi-host: host:port of process 0, the same on every process.')
_NUM_PROCESSES = flags.DEFINE_integer(
    'num_processes', None, 'Multi-host: number of processes.')
_PROCESS_ID = flags.DEFINE_integer(
    'process_id', None, 'Multi-host: this process, 0 .. num_processes-1.')
flags.mark_flags_as_required(['config'])


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {" ".join(argv[1:])}')
  distributed = {'coordinator_address': _COORDINATOR.value,
                 'num_processes': _NUM_PROCESSES.value,
                 'process_id': _PROCESS_ID.value}
  kwargs = {}
  if not (_PRINT_COMMANDS.value or _SUMMARIZE_ONLY.value):
    from gan_jax import parallel  # noqa: PLC0415 (only running starts JAX)
    parallel.initialize_distributed(**distributed)
    import jax  # noqa: PLC0415
    kwargs = {'num_devices': jax.device_count(),
              'is_main': jax.process_index() == 0}
  sweep(config_flags.get_config_filename(flags.FLAGS['config']), _CONFIG.value,
        config_flags.get_override_values(flags.FLAGS['config']), _SWEEP.value,
        _WORKDIR.value, print_commands=_PRINT_COMMANDS.value,
        summarize_only=_SUMMARIZE_ONLY.value,
        extra_flags=[f'--{k}={v}' for k, v in distributed.items() if v is not None],
        **kwargs)


if __name__ == '__main__':
  cli.run(main)
