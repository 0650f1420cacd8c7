"""Runs one ordinary training run per point of a grid of config values (gan_jax/sweep/)."""

from absl import app
from absl import flags
from ml_collections import config_flags

from gan_jax import cli
from gan_jax import registry
from gan_jax import sweep as sweep_lib
from gan_jax.errors import UserError
from gan_jax.sweep import ray_engine

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
_ENGINE = flags.DEFINE_string(
    'engine', 'local', 'How the points run: ' + '; '.join(
        f'{name} ({what})' for name, what in sweep_lib.ENGINES.items()) + '.')
_RAY_ADDRESS = flags.DEFINE_string(
    'ray_address', None, '--engine=ray: the Ray cluster\'s address (default'
    ' RAY_ADDRESS; with neither, a local Ray instance on this machine).')
_POINT_RESOURCES = flags.DEFINE_string(
    'point_resources', None, '--engine=ray: what each point holds, as JSON,'
    ' e.g. \'{"CPU": 1}\', \'{"GPU": 1}\', \'{"TPU": 4}\' (default: a GPU'
    ' each if the cluster has GPUs, else 4 TPU chips if it has TPUs, else one'
    ' CPU).')
_POINT_RETRIES = flags.DEFINE_integer(
    'point_retries', 3, '--engine=ray: how many times a point whose worker'
    ' died (a lost node) runs again, resuming from its checkpoint.')
_HOSTS_PER_POINT = flags.DEFINE_integer(
    'hosts_per_point', 1, '--engine=ray: the hosts of each point (a multi-host'
    ' TPU slice, several GPU machines): as many tasks, each holding'
    ' --point_resources, gang-scheduled, forming one JAX run.')
_PIN_CORES = flags.DEFINE_bool(
    'pin_cores', False, '--engine=ray: run each point holding N CPUs (and'
    ' nothing else) on N cores no other point of its machine holds: faster on'
    ' a CPU machine, but its numbers are then those of a run on N cores, not'
    ' of --engine=local on all of them.')
_MULTI_HOST = cli.define_multi_host_flags()
flags.adopt_module_key_flags(cli)  # --help lists them as this command's
flags.mark_flags_as_required(['config'])


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {" ".join(argv[1:])}')
  distributed = _MULTI_HOST()
  registry.lookup(sweep_lib.ENGINES, '--engine', _ENGINE.value)
  registry.check_value('--point_retries', _POINT_RETRIES.value,
                       registry.NON_NEGATIVE)
  registry.check_value('--hosts_per_point', _HOSTS_PER_POINT.value,
                       registry.POSITIVE)
  kwargs = {}
  if _HOSTS_PER_POINT.value > 1 and _ENGINE.value != 'ray':
    raise UserError('--hosts_per_point is for --engine=ray; with'
                    ' --engine=local, run the command on every host with the'
                    ' multi-host flags (--coordinator_address, --num_processes,'
                    ' --process_id)')
  if _ENGINE.value == 'ray':
    if any(v is not None for v in distributed.values()):
      raise UserError('--engine=ray runs every point in Ray workers; the'
                      ' multi-host flags (--coordinator_address, --num_processes,'
                      ' --process_id) are for --engine=local')
    # The driver only checks points (reading checkpoints through Orbax starts
    # a JAX backend): on the CPU, leaving accelerators to the points.
    import jax  # noqa: PLC0415
    jax.config.update('jax_platforms', 'cpu')
    kwargs = {'engine': 'ray', 'ray_options': {
        'address': _RAY_ADDRESS.value,
        'resources': ray_engine.parse_resources(_POINT_RESOURCES.value),
        'retries': _POINT_RETRIES.value, 'pin_cores': _PIN_CORES.value,
        'hosts': _HOSTS_PER_POINT.value}}
  elif not (_PRINT_COMMANDS.value or _SUMMARIZE_ONLY.value):
    from gan_jax import parallel  # noqa: PLC0415 (only running starts JAX)
    parallel.initialize_distributed(**distributed)
    import jax  # noqa: PLC0415
    kwargs = {'num_devices': jax.device_count(),
              'is_main': jax.process_index() == 0}
  sweep_lib.sweep(
      config_flags.get_config_filename(flags.FLAGS['config']), _CONFIG.value,
      config_flags.get_override_values(flags.FLAGS['config']), _SWEEP.value,
      _WORKDIR.value, print_commands=_PRINT_COMMANDS.value,
      summarize_only=_SUMMARIZE_ONLY.value,
      extra_flags=[f'--{k}={v}' for k, v in distributed.items() if v is not None],
      **kwargs)


if __name__ == '__main__':
  cli.run(main)
