"""Sweeps: one ordinary run per point of a grid of config values.

  python -m gan_jax.sweep --config=experiments/ring8.py \\
      --sweep=loss.name=vanilla,non_saturating,wgan_gp --sweep=optim.g_lr=1e-4,1e-3 \\
      [--workdir=runs/sweep_ring8] [--config.KEY=value ...]

The points are the cartesian product of the --sweep flags (the last flag
varies fastest), times the list that the config file's `get_sweep()` returns
when it defines one. Each point is `train.train_and_evaluate` of the config,
its --config overrides and the point's values, in its own sub-workdir of
--workdir (default runs/sweep_<config file stem>) named by `point_name`:
`loss.name=wgan_gp, optim.g_lr=0.001` -> `loss.name-wgan_gp_optim.g_lr-0.001`.

Every point's config is checked before anything runs, and so is every
sub-workdir that holds a run of another config (`workdir.check_resume`). The
sweep holds the lock of its directory, and each point that of its
sub-workdir. Points run one after another (--engine=local), or in parallel
as Ray tasks (--engine=ray: sweep/ray_engine.py, docs/cluster.md); a
finished point (results.json: status finished at train.num_steps) or a
diverged one is skipped when the sweep runs again, an interrupted one
resumes from its checkpoint. A diverged point does not stop the sweep; a
user mistake does, with a one-line error, and so does SIGTERM or SIGINT
(after the running points save their checkpoints). summary.csv and summary.md
(one row per point: its values, status, final metrics with their spread over
seeds, steps/s, wall time) are rewritten after every point.

--print_commands prints, instead of running, the `python -m gan_jax.main`
command of each point (for many hosts, e.g. a TPU pod: every host runs each
command); --summarize_only then writes the summary from the sub-workdirs.
"""

from collections.abc import Callable, Mapping, Sequence
import copy
import os
from typing import Any

from absl import logging
import ml_collections

from gan_jax import preemption
from gan_jax import registry
from gan_jax import workdir as workdir_lib
from gan_jax.errors import TrainingDiverged
from gan_jax.errors import UserError
from gan_jax.sweep import points as points_lib
from gan_jax.sweep import ray_engine
from gan_jax.sweep import summary as summary_lib
from gan_jax.sweep.points import SweepPoint

# --engine: how the points run.
ENGINES = {'local': 'one after another, in this process',
           'ray': 'in parallel, each a Ray task in a worker of its own'}


def points_to_run(points: Sequence[SweepPoint]) -> list[SweepPoint]:
  """The points that are neither finished nor diverged, in order; decided
  before the first one starts, so that every process of a multi-host sweep
  runs the same ones."""
  todo = []
  for point in points:
    state = summary_lib.status(point, workdir_lib.read_results(
        point.workdir, instead=f'sweep point {point.name} runs again (it'
        ' resumes from its checkpoint)'))
    if state in ('finished', 'diverged'):
      logging.info('sweep point %s: %s earlier, skipped%s', point.name, state,
                   ' (delete its results.json to retry)' if state == 'diverged' else '')
    else:
      todo.append(point)
  return todo


def run_points(points: Sequence[SweepPoint],
               train_fn: Callable[[ml_collections.ConfigDict, str], Any],
               after_each: Callable[[], None] = lambda: None) -> None:
  """Trains the points that are neither finished nor diverged, one after
  another (--engine=local)."""
  todo = points_to_run(points)
  for i, point in enumerate(todo, 1):
    logging.info('sweep point %d/%d: %s -> %s', i, len(todo), point.name,
                 point.workdir)
    try:
      train_fn(copy.deepcopy(point.config), point.workdir)
    except TrainingDiverged as e:
      logging.warning('sweep point %s diverged: %s; going on', point.name, e)
    except preemption.Interrupted:
      after_each()  # the summary shows the point as incomplete
      raise
    after_each()


def sweep(config_arg: str, config: ml_collections.ConfigDict,
          overrides: Mapping[str, Any], sweep_flags: Sequence[str],
          workdir: str | None = None, *, print_commands: bool = False,
          summarize_only: bool = False, extra_flags: Sequence[str] = (),
          train_fn: Callable | None = None, num_devices: int = 1,
          is_main: bool = True, engine: str = 'local',
          ray_options: Mapping[str, Any] | None = None) -> list[SweepPoint]:
  """The whole command: plan the points, then run them (or print or summarize).

  Args:
    config_arg: the --config argument (a file, maybe with `:arg`).
    config: the config file's config with the --config overrides applied.
    overrides: the --config overrides {dotted key: value}, for the commands.
    sweep_flags: the --sweep flags, `KEY=v1,v2,...`.
    workdir: the sweep's directory (default runs/sweep_<config file stem>).
    print_commands: print each point's gan_jax.main command, run nothing.
    summarize_only: write the summary of the sub-workdirs, run nothing.
    extra_flags: appended to printed commands (multi-host flags).
    train_fn: runs one point (default train.train_and_evaluate).
    num_devices: for validating train.batch_size.
    is_main: whether this process writes the summary.
    engine: 'local' (the points one after another, in this process) or
      'ray' (each a Ray task: sweep/ray_engine.py).
    ray_options: `ray_engine.run_points`' address, resources and retries.

  Returns:
    The points, in order.
  """
  if print_commands and summarize_only:
    raise UserError('--print_commands and --summarize_only exclude each other')
  registry.lookup(ENGINES, '--engine', engine)
  workdir = workdir or points_lib.default_workdir(config_arg)
  points = points_lib.plan(
      config, points_lib.sweep_points(config_arg, config, overrides, sweep_flags),
      workdir, num_devices)
  if print_commands:
    for point in points:
      print(points_lib.command(config_arg, overrides, point, extra_flags))
    return points
  title = f'Sweep of {config_arg} in {workdir}'
  if overrides:
    title += ' with ' + ' '.join(
        f'--config.{k}={points_lib.format_value(v)}' for k, v in overrides.items())

  def summarize() -> str:
    return summary_lib.write_summary(points, workdir, title) if is_main else ''

  if not summarize_only:
    logging.info('sweep of %d points in %s', len(points), workdir)
    workdir_lib.create(workdir)
    if engine == 'ray':  # the driver starts no JAX runtime: a plain lock
      with workdir_lib.lock(workdir):
        ray_engine.run_points(points_to_run(points), summarize,
                              **(ray_options or {}))
    else:
      with workdir_lib.run_lock(workdir):  # one sweep at a time in a directory
        if train_fn is None:
          from gan_jax import train  # noqa: PLC0415 (only running points trains)
          train_fn = train.train_and_evaluate
        run_points(points, train_fn, summarize)
  markdown = summarize()
  if is_main:
    logging.info('summary: %s, %s', os.path.join(workdir, 'summary.md'),
                 os.path.join(workdir, 'summary.csv'))
    print(markdown, end='')
  return points
