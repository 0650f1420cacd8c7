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
sub-workdir. Points run one after another; a finished point (results.json:
status finished at train.num_steps) or a diverged one is skipped when the
sweep runs again, an interrupted one resumes from its checkpoint. A diverged point does not stop the sweep; a
user mistake does, with a one-line error, and so does SIGTERM or SIGINT
(after the running point saves its checkpoint). summary.csv and summary.md
(one row per point: its values, status, final metrics with their spread over
seeds, steps/s, wall time) are rewritten after every point.

--print_commands prints, instead of running, the `python -m gan_jax.main`
command of each point (for many hosts, e.g. a TPU pod: every host runs each
command); --summarize_only then writes the summary from the sub-workdirs.
"""

from collections.abc import Callable, Mapping, Sequence
import copy
import csv
import dataclasses
import hashlib
import importlib.machinery
import importlib.util
import io
import itertools
import math
import os
import re
import shlex
from typing import Any

from absl import app
from absl import flags
from absl import logging
import ml_collections

from gan_jax import configs
from gan_jax import files
from gan_jax import preemption
from gan_jax import train
from gan_jax import workdir as workdir_lib
from gan_jax.errors import UserError

Point = dict[str, Any]  # config key (dotted) -> value, in sweep order

_SAFE = re.compile(r'[A-Za-z0-9._+-]')
MAX_NAME = 200  # characters of a sub-workdir name (file systems allow 255 bytes)
_PARSERS = {bool: flags.BooleanParser(), int: flags.IntegerParser(),
            float: flags.FloatParser()}


@dataclasses.dataclass(frozen=True)
class SweepPoint:
  values: Point  # the swept keys and their values
  name: str  # the sub-workdir's name, point_name(values)
  config: ml_collections.ConfigDict  # the full config of this run
  workdir: str


# ------------------------------------------------------------ parse, expand

def default_workdir(config_arg: str) -> str:
  path = config_arg.split(':', 1)[0]
  return os.path.join('runs', 'sweep_' + os.path.splitext(os.path.basename(path))[0])


def current_value(config: ml_collections.ConfigDict, key: str, origin: str):
  """The config's value at dotted `key`; UserError naming the valid keys."""
  node = configs.find(config, key, origin)
  if isinstance(node, ml_collections.ConfigDict):
    raise UserError(f'{key!r} (from {origin}) is a section, not a value; its'
                    f' keys: {", ".join(sorted(node.keys()))}')
  return node


def _kind(key: str, current, origin: str) -> type:
  kind = type(current)
  if kind not in (bool, int, float, str):
    raise UserError(f'{key} (from {origin}) holds a {kind.__name__}; only str,'
                    ' int, float and bool keys can be swept')
  return kind


def parse_value(key: str, text: str, current, origin: str):
  """`text` as the type of the config's `current` value (str, int, float, bool)."""
  kind = _kind(key, current, origin)
  if kind is str:
    return text
  try:
    return _PARSERS[kind].parse(text)
  except (TypeError, ValueError):
    raise UserError(f'{key}={text!r} (from {origin}) is not a valid {kind.__name__}'
                    f' ({key} is {current!r} in the config)') from None


def coerce_value(key: str, value, current, origin: str):
  """A Python value for `key` from a config's get_sweep(), checked against the
  key's type (strings are parsed as on the command line)."""
  kind = _kind(key, current, origin)
  if isinstance(value, str) and kind is not str:
    return parse_value(key, value, current, origin)
  number = isinstance(value, (int, float)) and not isinstance(value, bool)
  ok = {bool: isinstance(value, bool),
        int: number and isinstance(value, int),
        float: number,
        str: isinstance(value, str)}[kind]
  if not ok:
    raise UserError(f'{key}={value!r} (from {origin}) is not a valid {kind.__name__}'
                    f' ({key} is {current!r} in the config)')
  return float(value) if kind is float else value


def format_value(value) -> str:
  """The text of a value in names, commands and the summary: what
  --config.KEY=<text> parses back to the same value."""
  if isinstance(value, float):
    return repr(value)  # shortest round trip: 0.001, 1e-05
  return str(value)


def parse_sweep(text: str, config: ml_collections.ConfigDict) -> tuple[str, list]:
  """`KEY=v1,v2,...` (a comma inside a value is written `\\,`) -> (KEY, values
  parsed to the key's type)."""
  origin = f'--sweep={text}'
  key, sep, values_text = text.partition('=')
  if not sep or not key:
    raise UserError(f'malformed {origin}; expected --sweep=KEY=v1,v2,...'
                    ' (e.g. --sweep=loss.name=vanilla,wgan_gp)')
  current = current_value(config, key, origin)
  if not values_text:
    raise UserError(f'{origin} lists no values; expected --sweep={key}=v1,v2,...')
  texts = [t.replace('\\,', ',') for t in re.split(r'(?<!\\),', values_text)]
  values = [parse_value(key, t, current, origin) for t in texts]
  _check_no_repeats(values, origin)
  return key, values


def _check_no_repeats(values: Sequence, origin: str) -> None:
  seen = set()
  for value in values:
    if format_value(value) in seen:
      raise UserError(f'{origin} lists {format_value(value)!r} twice')
    seen.add(format_value(value))


def load_config_module(path: str):
  """The config file as a module, loaded as ml_collections' config_flags does."""
  loader = importlib.machinery.SourceFileLoader('gan_jax_sweep_config', path)
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


def config_sweep(config_arg: str, config: ml_collections.ConfigDict
                 ) -> list[Point] | None:
  """The points of the config file's `get_sweep()` (None if it has none).

  `get_sweep()` returns a non-empty list of dicts {dotted config key: value},
  one per point; it is called like get_config (with the `arg` of
  --config=file.py:arg when there is one).
  """
  points = call_config_file(config_arg, 'get_sweep')
  if points is None:
    return None
  origin = f'get_sweep() of {config_arg.partition(":")[0]}'
  if (not isinstance(points, (list, tuple)) or not points
      or not all(isinstance(p, Mapping) and all(isinstance(k, str) for k in p)
                 for p in points)):
    raise UserError(f'{origin} must return a non-empty list of dicts'
                    f' {{config key: value}}, one per point; got {points!r}')
  checked = []
  for point in points:
    checked.append({
        key: coerce_value(key, value, current_value(config, key, origin), origin)
        for key, value in point.items()})
  return checked


def _overlaps(a: str, b: str) -> bool:
  """Whether setting key `a` and key `b` touch the same value (or section)."""
  return a == b or a.startswith(b + '.') or b.startswith(a + '.')


def expand(base: Sequence[Point], sweeps: Sequence[tuple[str, Sequence]]
           ) -> list[Point]:
  """The product: each base point (outermost) times the sweeps' values, the
  last sweep varying fastest."""
  keys = [key for key, _ in sweeps]
  return [{**point, **dict(zip(keys, combo, strict=True))}
          for point in base
          for combo in itertools.product(*(values for _, values in sweeps))]


def sweep_points(config_arg: str, config: ml_collections.ConfigDict,
                 overrides: Mapping[str, Any], sweep_flags: Sequence[str]
                 ) -> list[Point]:
  """The points of a sweep: get_sweep() of the config file times the --sweep flags.

  The command line wins over the config file: when a --sweep flag or a
  --config override sets a key that get_sweep() sweeps, get_sweep() is not used.
  """
  sweeps = [parse_sweep(text, config) for text in sweep_flags]
  keys = [key for key, _ in sweeps]
  for i, key in enumerate(keys):
    for other in keys[i + 1:]:
      if _overlaps(key, other):
        raise UserError(f'--sweep={key}=... and --sweep={other}=... sweep the'
                        ' same key; give each key once')
    for override in overrides:
      if _overlaps(key, override):
        raise UserError(f'--sweep={key}=... and --config.{override}=... both set'
                        f' {key}; keep one of them')
  base = config_sweep(config_arg, config)
  if base is not None:
    pinned = sorted({k for point in base for k in point
                     for fixed in [*keys, *overrides] if _overlaps(k, fixed)})
    if pinned:
      logging.info('not using get_sweep() of %s: the command line sets %s',
                   config_arg, ', '.join(pinned))
      base = None
  if base is None and not sweeps:
    raise UserError(f'nothing to sweep: pass --sweep=KEY=v1,v2,... (or define'
                    f' get_sweep() in {config_arg.split(":", 1)[0]} and do not'
                    ' set its keys on the command line)')
  return expand(base or [{}], sweeps)


def point_name(point: Point) -> str:
  """The sub-workdir of a point: `KEY-VALUE` per swept key, joined by `_`.

  Values are written as `format_value` does (so 1e-3 and 0.001 name the same
  point); characters other than letters, digits and `._+-` become `%XX`
  (UTF-8 bytes, as in URLs), so names are safe on every file system and
  differ when values differ. A name longer than MAX_NAME keeps its first
  characters and ends in `~` and 12 hex digits of its SHA-256. The point
  with no keys is `base`.
  """
  if not point:
    return 'base'
  parts = []
  for key, value in point.items():
    text = ''.join(c if _SAFE.fullmatch(c) else
                   ''.join(f'%{byte:02X}' for byte in c.encode())
                   for c in format_value(value))
    parts.append(f'{key}-{text}')
  name = '_'.join(parts)
  if len(name) > MAX_NAME:
    digest = hashlib.sha256(name.encode()).hexdigest()[:12]
    name = f'{name[:MAX_NAME - 13]}~{digest}'
  return name


def point_config(config: ml_collections.ConfigDict, point: Point
                 ) -> ml_collections.ConfigDict:
  """A fresh copy of `config` with the point's values."""
  config = copy.deepcopy(config)
  for key, value in point.items():
    *parents, last = key.split('.')
    node = config
    for part in parents:
      node = node[part]
    node[last] = value
  return config


def plan(config: ml_collections.ConfigDict, points: Sequence[Point],
         workdir: str, num_devices: int) -> list[SweepPoint]:
  """Every point's config and sub-workdir, all checked before any runs."""
  planned, names = [], {}
  for values in points:
    name = point_name(values)
    if name in names:
      raise UserError(f'points {names[name]!r} and {values!r} both get the'
                      f' sub-workdir name {name!r}; change one of them')
    names[name] = values
    point = SweepPoint(values=values, name=name,
                       config=point_config(config, values),
                       workdir=os.path.join(workdir, name))
    try:
      configs.validate(point.config, num_devices)
    except UserError as e:
      raise UserError(f'sweep point {name}: {e}') from None
    try:
      workdir_lib.check_resume(point.config, point.workdir)
    except UserError as e:
      raise UserError(f'sweep point {name}: {e}') from None
    planned.append(point)
  return planned


# ------------------------------------------------------------------ results

def read_results(workdir: str) -> dict | None:
  return files.read_json(os.path.join(workdir, 'results.json'))


def is_finished(results: Mapping | None, num_steps: int) -> bool:
  """Whether a run's results.json says it finished all of `num_steps`."""
  return (results is not None and results.get('status') == 'finished'
          and results.get('final_step') == num_steps)


def status(point: SweepPoint, results: Mapping | None) -> str:
  """finished, diverged, incomplete (started, or finished short of
  train.num_steps) or pending (not started)."""
  if is_finished(results, point.config.train.num_steps):
    return 'finished'
  if results is not None and results.get('status') == 'diverged':
    return 'diverged'
  started = results is not None or os.path.exists(
      os.path.join(point.workdir, 'config.json'))
  return 'incomplete' if started else 'pending'


def _number(value) -> float | None:
  """A float, or None for a missing (or non-numeric) value."""
  try:
    return float(value)
  except (TypeError, ValueError):
    return None


def metric_spread(results: Mapping | None) -> dict[str, dict]:
  """{metric: {'mean', 'std', 'ci95_lo', 'ci95_hi'}} from results.json:
  `metrics_summary` where it summarises two seeds or more, else the single
  value of `metrics` (std and CI None: one seed has no spread)."""
  if not results:
    return {}
  spread = {}
  for name, value in (results.get('metrics') or {}).items():
    spread[name] = {'mean': _number(value), 'std': None, 'ci95_lo': None,
                    'ci95_hi': None}
  for name, summary in (results.get('metrics_summary') or {}).items():
    if summary.get('n', 2) < 2:
      continue
    lo, hi = [*(summary.get('ci95') or ()), None, None][:2]
    spread[name] = {'mean': _number(summary.get('mean')),
                    'std': _number(summary.get('std')),
                    'ci95_lo': _number(lo), 'ci95_hi': _number(hi)}
  return spread


def summary_rows(points: Sequence[SweepPoint]) -> list[dict]:
  """One row per point, in sweep order: its values, status and results."""
  rows = []
  for point in points:
    results = read_results(point.workdir)
    results_or_empty = results or {}
    metrics = metric_spread(results)
    rows.append({
        'point': point.name,
        'values': point.values,
        'config': point.config,
        'status': status(point, results),
        'final_step': results_or_empty.get('final_step'),
        'num_seeds': results_or_empty.get('num_seeds') or (
            len(results_or_empty.get('metrics_per_seed') or ()) or
            (1 if metrics else None)),
        'metrics': metrics,
        'steps_per_s': _number(results_or_empty.get('steps_per_s')),
        'wall_time_s': _number(results_or_empty.get('wall_time_s')),
    })
  return rows


def _swept_keys(rows: Sequence[dict]) -> list[str]:
  return list(dict.fromkeys(key for row in rows for key in row['values']))


def _metric_names(rows: Sequence[dict]) -> list[str]:
  return sorted({name for row in rows for name in row['metrics']})


def _csv_cell(value) -> str:
  if value is None:
    return ''
  return format_value(value)


SPREAD = ('mean', 'std', 'ci95_lo', 'ci95_hi')


def _swept_values(row: dict, keys: Sequence[str]) -> list:
  """The point's value of every swept key (also of keys other points sweep)."""
  return [current_value(row['config'], key, 'the summary') for key in keys]


def csv_text(rows: Sequence[dict]) -> str:
  """summary.csv: the swept keys (each point's value of every swept key),
  status, final_step, num_seeds, `<metric>_mean/_std/_ci95_lo/_ci95_hi`,
  steps_per_s, wall_time_s, point (the sub-workdir). Empty cells: unknown."""
  keys, names = _swept_keys(rows), _metric_names(rows)
  out = io.StringIO()
  writer = csv.writer(out, lineterminator='\n')
  writer.writerow([*keys, 'status', 'final_step', 'num_seeds',
                   *(f'{n}_{s}' for n in names for s in SPREAD),
                   'steps_per_s', 'wall_time_s', 'point'])
  for row in rows:
    spread = [row['metrics'].get(n, {}).get(s) for n in names for s in SPREAD]
    writer.writerow([_csv_cell(v) for v in [
        *_swept_values(row, keys), row['status'], row['final_step'],
        row['num_seeds'], *spread, row['steps_per_s'], row['wall_time_s'],
        row['point']]])
  return out.getvalue()


def _short(value: float | None, digits: int = 4) -> str:
  return '' if value is None else f'{value:.{digits}g}'


def markdown_cell(spread: Mapping | None) -> str:
  """`mean ± std` over seeds, or the value of a single seed."""
  if not spread or spread['mean'] is None:
    return ''
  if spread['std'] is None or math.isnan(spread['std']):
    return _short(spread['mean'])
  return f'{_short(spread["mean"])} ± {_short(spread["std"], 2)}'


def markdown_text(rows: Sequence[dict], title: str) -> str:
  """summary.md: a title and a table of the swept values, status, final_step,
  the metrics (`mean ± std` over seeds), steps_per_s and wall_time_s."""
  keys, names = _swept_keys(rows), _metric_names(rows)
  seeds = sorted({row['num_seeds'] for row in rows if row['num_seeds']})
  lines = [f'# {title}', '']
  if seeds and seeds != [1]:
    lines += [f'Metrics: mean ± std (ddof=1) over {"/".join(map(str, seeds))}'
              ' seeds; the 95% confidence intervals are in summary.csv.', '']
  header = [*keys, 'status', 'final_step', *names, 'steps_per_s', 'wall_time_s']
  lines.append('| ' + ' | '.join(header) + ' |')
  lines.append('|' + ' --- |' * len(header))
  for row in rows:
    cells = [format_value(value) for value in _swept_values(row, keys)]
    cells += [row['status'], _csv_cell(row['final_step'])]
    cells += [markdown_cell(row['metrics'].get(name)) for name in names]
    cells += [_short(row['steps_per_s'], 3), _short(row['wall_time_s'], 3)]
    lines.append('| ' + ' | '.join(c.replace('|', '\\|') for c in cells) + ' |')
  return '\n'.join(lines) + '\n'


def write_summary(points: Sequence[SweepPoint], workdir: str, title: str) -> str:
  """Writes workdir/summary.csv and workdir/summary.md; returns the markdown."""
  rows = summary_rows(points)
  os.makedirs(workdir, exist_ok=True)
  files.write_text(os.path.join(workdir, 'summary.csv'), csv_text(rows))
  markdown = markdown_text(rows, title)
  files.write_text(os.path.join(workdir, 'summary.md'), markdown)
  return markdown


# ------------------------------------------------------------ run or print

def command(config_arg: str, overrides: Mapping[str, Any], point: SweepPoint,
            extra_flags: Sequence[str] = ()) -> str:
  """The shell command of one point: gan_jax.main with every override."""
  args = ['python', '-m', 'gan_jax.main', f'--config={config_arg}',
          f'--workdir={point.workdir}']
  args += [f'--config.{k}={format_value(v)}' for k, v in overrides.items()]
  args += [f'--config.{k}={format_value(v)}' for k, v in point.values.items()]
  return shlex.join([*args, *extra_flags])


def run_points(points: Sequence[SweepPoint],
               train_fn: Callable[[ml_collections.ConfigDict, str], Any],
               after_each: Callable[[], None] = lambda: None) -> None:
  """Trains the points that are neither finished nor diverged, in order.

  Which points run is decided before the first one starts, so that every
  process of a multi-host sweep runs the same ones.
  """
  todo = []
  for point in points:
    state = status(point, read_results(point.workdir))
    if state in ('finished', 'diverged'):
      logging.info('sweep point %s: %s earlier, skipped%s', point.name, state,
                   ' (delete its results.json to retry)' if state == 'diverged' else '')
    else:
      todo.append(point)
  for i, point in enumerate(todo, 1):
    logging.info('sweep point %d/%d: %s -> %s', i, len(todo), point.name,
                 point.workdir)
    try:
      train_fn(copy.deepcopy(point.config), point.workdir)
    except train.TrainingDiverged as e:
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
          is_main: bool = True) -> list[SweepPoint]:
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

  Returns:
    The points, in order.
  """
  if print_commands and summarize_only:
    raise UserError('--print_commands and --summarize_only exclude each other')
  workdir = workdir or default_workdir(config_arg)
  points = plan(config, sweep_points(config_arg, config, overrides, sweep_flags),
                workdir, num_devices)
  if print_commands:
    for point in points:
      print(command(config_arg, overrides, point, extra_flags))
    return points
  title = f'Sweep of {config_arg} in {workdir}'
  if overrides:
    title += ' with ' + ' '.join(
        f'--config.{k}={format_value(v)}' for k, v in overrides.items())

  def summarize() -> str:
    return write_summary(points, workdir, title) if is_main else ''

  if not summarize_only:
    logging.info('sweep of %d points in %s', len(points), workdir)
    workdir_lib.create(workdir)
    with workdir_lib.run_lock(workdir):  # one sweep at a time in a directory
      run_points(points, train_fn or train.train_and_evaluate, summarize)
  markdown = summarize()
  if is_main:
    logging.info('summary: %s, %s', os.path.join(workdir, 'summary.md'),
                 os.path.join(workdir, 'summary.csv'))
    print(markdown, end='')
  return points


def _define_flags() -> None:
  """The command's flags; only when run as a command, so that importing this
  module next to another command's --config defines nothing."""
  from ml_collections import config_flags  # noqa: PLC0415
  config_flags.DEFINE_config_file(
      'config', None, 'Experiment config file, e.g. experiments/ring8.py.',
      lock_config=True)
  flags.DEFINE_multi_string(
      'sweep', [], 'KEY=v1,v2,...: values of one config key (repeat the flag'
      ' for a product; `\\,` is a comma inside a value).')
  flags.DEFINE_string(
      'workdir', None, 'The sweep\'s directory: one sub-workdir per point, and'
      ' the summary (default: runs/sweep_<config file stem>).')
  flags.DEFINE_bool(
      'print_commands', False, 'Print each point\'s gan_jax.main command (to run'
      ' on every host of a pod) instead of running.')
  flags.DEFINE_bool(
      'summarize_only', False, 'Write summary.csv/md from the sub-workdirs;'
      ' run nothing.')
  flags.DEFINE_string(
      'coordinator_address', None,
      'Multi-host: host:port of process 0, the same on every process.')
  flags.DEFINE_integer('num_processes', None, 'Multi-host: number of processes.')
  flags.DEFINE_integer('process_id', None,
                       'Multi-host: this process, 0 .. num_processes-1.')
  flags.mark_flags_as_required(['config'])


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {" ".join(argv[1:])}')
  from ml_collections import config_flags  # noqa: PLC0415
  f = flags.FLAGS
  distributed = {'coordinator_address': f.coordinator_address,
                 'num_processes': f.num_processes, 'process_id': f.process_id}
  kwargs = {}
  if not (f.print_commands or f.summarize_only):
    from gan_jax import parallel  # noqa: PLC0415
    parallel.initialize_distributed(**distributed)
    import jax  # noqa: PLC0415
    kwargs = {'num_devices': jax.device_count(),
              'is_main': jax.process_index() == 0}
  sweep(config_flags.get_config_filename(f['config']), f.config,
        config_flags.get_override_values(f['config']), f.sweep, f.workdir,
        print_commands=f.print_commands, summarize_only=f.summarize_only,
        extra_flags=[f'--{k}={v}' for k, v in distributed.items() if v is not None],
        **kwargs)


if __name__ == '__main__':
  from gan_jax import cli  # noqa: PLC0415
  _define_flags()
  cli.run(main)
