"""Reading finished runs back for comparison: results, curves, samples, tables.

What `notebooks/compare_losses.ipynb` needs beyond plotting, kept here so the
notebook holds no library logic and so it is tested:

  repo_root          the checkout, for paths relative to it wherever the notebook runs
  experiment_config  an `experiments/*.py` config with {dotted key: value} overrides
  load_results       a run's results.json; `find_runs`: the runs matching a glob
  latest_picture     a run's last sample picture (samples/step_<N>[_seed<i>].png);
                     `load_picture` reads one, local or in a bucket
  read_scalars       a run's TensorBoard scalars; `curve`: one tag's mean and members
  member_samples     each member's samples from the latest checkpoint
  read_sweep         the points of a `gan_jax.sweep` directory, grouped by `group_runs`
  comparison_rows    per group of runs: every seed's figures pooled, mean ± std
  markdown_table     those rows as a markdown table (`Column`: which figures, how)
  metrics_table      the final figures of single runs (e.g. MNIST) side by side
  fid_results        a run's results with `python -m gan_jax.fid`'s figures per member
  eval_history       a run's evaluations over training; `evals_table` shows them

Groups of runs are `{label tuple: [results.json dicts]}`, so runs of several
seeds (`config.num_seeds`) and sweeps of one seed per point compare alike.
"""

from collections.abc import Iterable, Mapping, Sequence
import csv
import dataclasses
import io
import math
import os
import re

import ml_collections
import numpy as np
from PIL import Image

from gan_jax import aggregate
from gan_jax import configs
from gan_jax import files
from gan_jax import gan as gan_lib
from gan_jax import runs
from gan_jax import summary_writer
from gan_jax import workdir as workdir_lib
from gan_jax.sweep import points as sweep_points

Results = dict  # the content of a run's results.json


@dataclasses.dataclass(frozen=True)
class Column:
  """A figure in a table: results.json's `key`, shown as `title`, its values
  times `scale` formatted with `spec` (e.g. high_quality as 'HQ %', 100, '.1f'),
  a single seed's with `seed_spec` (default `spec`); `bounds` is the range
  the figure can take, to which an interval of its mean is clipped."""

  key: str
  title: str
  scale: float = 1.0
  spec: str = '.2f'
  seed_spec: str | None = None
  bounds: tuple[float, float] = (-math.inf, math.inf)


# PacGAN's figures of the `modes` evaluator, as docs/results/toy_losses.md
# shows them.
TOY_COLUMNS = (Column('modes', 'modes', 1.0, '.1f', '.0f'),
               Column('high_quality', 'HQ %', 100.0, '.1f'),
               Column('reverse_kl', 'reverse KL', 1.0, '.2f'))

# The figures `python -m gan_jax.fid` prints, as
# docs/results/inception_fid.md shows them.
INCEPTION_COLUMNS = (Column('fid', 'FID', 1.0, '.1f'),
                     Column('kid', 'KID x 1000', 1e3, '.1f'),
                     Column('precision', 'precision', 1.0, '.2f'),
                     Column('recall', 'recall', 1.0, '.2f'),
                     Column('density', 'density', 1.0, '.2f'),
                     Column('coverage', 'coverage', 1.0, '.2f'))

# Stacked MNIST's figures (Lin et al. 2018, Table 2), as
# docs/results/stacked_mnist.md shows them.
STACKED_COLUMNS = (Column('modes', 'modes', 1.0, '.1f', '.0f', (0.0, 1000.0)),
                   Column('reverse_kl', 'KL', 1.0, '.3f', bounds=(0.0, math.inf)))


FID_FILE = 'fid_member{member}.json'  # `python -m gan_jax.fid ... --member=i >` this
EVALS_FILE = 'evals.json'  # `eval_history` in a run's record (gan_jax.report)


@dataclasses.dataclass(frozen=True)
class Curve:
  """One scalar over training: the logged mean over members and, for a run of
  several seeds, each member's values (`per_seed[i]`, at the same steps)."""

  steps: np.ndarray  # int [T]
  mean: np.ndarray  # float [T]
  per_seed: list[np.ndarray]  # K arrays [T]; empty for a one-seed run


# ------------------------------------------------------------------ runs

def repo_root(start: str = '.') -> str:
  """The gan_jax checkout holding `start` (the first ancestor with
  pyproject.toml and experiments/), else the one this module is in."""
  path = os.path.abspath(start)
  while True:
    if (os.path.exists(os.path.join(path, 'pyproject.toml'))
        and os.path.isdir(os.path.join(path, 'experiments'))):
      return path
    parent = os.path.dirname(path)
    if parent == path:
      return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    path = parent


def experiment_config(path: str, overrides: Mapping[str, object] = ()
                      ) -> ml_collections.ConfigDict:
  """`get_config()` of an experiment file (`file.py` or `file.py:arg`) with
  {dotted key: value} overrides, as `--config=path --config.KEY=value` gives it."""
  config = configs.call_config_file(path)
  return sweep_points.point_config(config, dict(overrides))


def load_results(workdir: str) -> Results | None:
  """results.json of the run in `workdir`, None if it has none (yet)."""
  return workdir_lib.read_results(workdir)


def fid_results(workdir: str) -> Results | None:
  """The run's results.json with `metrics_per_seed` replaced by the figures
  of `python -m gan_jax.fid REFERENCE WORKDIR --member=i` saved in the workdir
  as fid_member<i>.json, for the members that have one, 'weights_hash' the
  set of Inception weights they were scored with, and 'samples_from' the
  generator they sampled when the lines agree on it (None when the run has
  no results or no such file)."""
  results = load_results(workdir)
  if results is None:
    return None
  scored, hashes, generators = [], set(), set()
  for member, seed in enumerate(results.get('seeds') or [None]):
    path = os.path.join(workdir, FID_FILE.format(member=member))
    text = files.read_bytes(path).decode().strip() if files.exists(path) else ''
    # Empty: the redirect of a command that failed or still runs.
    line = text and files.read_json(path, instead=f'member {member} is left out')
    if line:
      if line.get('weights_hash'):
        hashes.add(line['weights_hash'])
      generators.update((line.get('samples_from') or {}).values())
      scored.append({'seed': seed, **{
          k: v for k, v in line.items()
          if isinstance(v, (int, float)) and not isinstance(v, bool)}})
  if not scored:
    return None
  scoring = {'samples_from': generators.pop()} if len(generators) == 1 else {}
  return {**results, 'metrics_per_seed': scored, 'weights_hash': sorted(hashes),
          **scoring}


def find_runs(pattern: str) -> list[str]:
  """The run directories (holding results.json) that match a glob, sorted."""
  return [d for d in files.glob(pattern)
          if files.exists(os.path.join(d, 'results.json'))]


def latest_picture(workdir: str, member: int = 0) -> str | None:
  """The path of the run's last sample picture (`samples/step_<N>.png`, or
  member i's `step_<N>_seed<i>.png`), None if it has none."""
  pattern = re.compile(rf'step_(\d+)(_seed{member})?\.png$')
  found = []
  for path in files.glob(os.path.join(workdir, 'samples', 'step_*.png')):
    match = pattern.search(os.path.basename(path))
    if match and (match.group(2) or member == 0):
      found.append((int(match.group(1)), path))
  return max(found)[1] if found else None


def load_picture(path: str) -> np.ndarray:
  """A sample picture as an array (H, W[, C]) for imshow, local or in a
  bucket (plt.imread reads local files only)."""
  with Image.open(io.BytesIO(files.read_bytes(path))) as picture:
    return np.asarray(picture)


# ---------------------------------------------------------------- curves

def read_scalars(workdir: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
  """Every scalar tag of the run's event files -> (steps, values), by step.

  A resumed run has several event files and may log a step twice; the later
  file's value wins. (Read with `summary_writer.read_events`: TensorBoard's
  own loader would import TensorFlow.)
  """
  by_tag: dict[str, dict[int, float]] = {}
  for path in files.glob(os.path.join(workdir, 'events.out.tfevents.*')):
    for event in summary_writer.read_events(path):
      for value in event.summary.value:
        if value.HasField('simple_value'):
          by_tag.setdefault(value.tag, {})[event.step] = value.simple_value
  return {tag: (np.asarray(sorted(values), np.int64),
                np.asarray([values[s] for s in sorted(values)], np.float64))
          for tag, values in by_tag.items()}


def curve(scalars: Mapping[str, tuple[np.ndarray, np.ndarray]], tag: str) -> Curve:
  """`tag` of `read_scalars`: the mean over members and member i's
  `seed_<i>/<tag>` (none for a one-seed run). KeyError if it was not logged."""
  steps, mean = scalars[tag]
  per_seed, i = [], 0
  while f'seed_{i}/{tag}' in scalars:
    per_seed.append(scalars[f'seed_{i}/{tag}'][1])
    i += 1
  return Curve(steps=steps, mean=mean, per_seed=per_seed)


def eval_history(workdir: str) -> dict[str, list[list[float]]]:
  """The run's evaluations over training from its event files: every
  `eval/` tag (member i's as `seed_<i>/eval/...`) -> [[step, value], ...],
  a value that is not finite as None (as JSON keeps it)."""
  return {tag: [[int(step), float(value) if math.isfinite(value) else None]
                for step, value in zip(*series, strict=True)]
          for tag, series in read_scalars(workdir).items() if 'eval/' in tag}


def _figure(value: float | None) -> str:
  if value is None:
    return 'n/a'
  return f'{value:.0f}' if float(value).is_integer() else f'{value:.3f}'


def evals_table(pattern: str, names: Sequence[str]) -> str | None:
  """The evaluations over training of the runs matching `pattern` whose
  EVALS_FILE (`eval_history`) is there: a row per member ('seed'), a column
  per evaluated step, each cell its figures `names` (e.g. ('modes',
  'reverse_kl')) as 'a / b'; None if no run has one."""
  found = [(w, history) for w in find_runs(pattern)
           if (history := files.read_json(os.path.join(w, EVALS_FILE), instead='left out'))]
  if not found:
    return None
  steps = sorted({step for _, history in found for tag in history
                  for step, _ in history[tag]})
  lines = ['| seed | ' + ' | '.join(f'{step:,}' for step in steps) + ' |',
           '|' + ' --- |' * (len(steps) + 1)]
  for workdir, history in found:
    seeds = (load_results(workdir) or {}).get('seeds') or [None]
    for i, seed in enumerate(seeds):
      prefix = f'seed_{i}/' if len(seeds) > 1 else ''
      series = {name: dict(map(tuple, history.get(f'{prefix}eval/{name}', [])))
                for name in names}
      cells = [' / '.join(_figure(series[name][step]) for name in names)
               if all(step in series[name] for name in names) else ''
               for step in steps]
      lines.append(f'| {seed} | ' + ' | '.join(cells) + ' |')
  return '\n'.join(lines) + '\n'


# --------------------------------------------------------------- samples

def member_samples(workdir: str, num: int | None = None
                   ) -> list[tuple[int, np.ndarray]]:
  """(seed, float32 samples [num, ...]) of every member of the run's latest
  checkpoint. The noise is drawn with the member's seed, and `num` defaults to
  `eval.num_samples`: the very samples its final evaluation scored."""
  config, gan, state = runs.restore_run(workdir)
  num = num or config.eval.num_samples
  return [(seed, gan_lib.generate_samples(gan, gan_lib.member(state, i), num,
                                          seed))
          for i, seed in enumerate(configs.seeds(config))]


# ---------------------------------------------------------------- sweeps

def read_sweep(directory: str) -> list[dict]:
  """The points of a `gan_jax.sweep` directory, in the sweep's order:
  {'name', 'values' (swept key -> text), 'status' (finished, diverged,
  incomplete, pending), 'config' (config.json's dict, None before the point
  started), 'results' (None before it wrote results.json)}.

  The points and their statuses come from summary.csv; sub-workdirs it does
  not list (a sweep before its first summary, kept records) follow, by name
  (numbers by value: seed-2 before seed-10).
  """
  points = []
  summary = os.path.join(directory, 'summary.csv')
  if files.exists(summary):
    reader = csv.DictReader(io.StringIO(files.read_bytes(summary).decode()))
    keys = reader.fieldnames[:reader.fieldnames.index('status')]
    points = [{'name': row['point'], 'values': {k: row[k] for k in keys},
               'status': row['status']} for row in reader]
  listed = {point['name'] for point in points}
  unlisted = {os.path.basename(os.path.dirname(path))
              for path in files.glob(os.path.join(directory, '*', 'config.json'))}
  for name in sorted(unlisted - listed, key=_natural):  # seed-2 before seed-10
    points.append({'name': name, 'values': {}, 'status': None})
  for point in points:
    workdir = os.path.join(directory, point['name'])
    point['config'] = files.read_json(
        os.path.join(workdir, workdir_lib.CONFIG_FILE),
        instead=f'sweep point {point["name"]} is read without its config')
    point['results'] = load_results(workdir)
    if point['status'] is None:
      point['status'] = (point['results'] or {}).get('status', 'incomplete')
  return points


def _natural(name: str) -> list:
  """A sort key that orders the numbers in names by value."""
  return [(0, int(part), '') if part.isdigit() else (1, 0, part)
          for part in re.split(r'(\d+)', name)]


def _value(point: Mapping, key: str) -> str:
  """A point's value of a config key: from the sweep's values, else its config."""
  if key in point['values']:
    return point['values'][key]
  tree = point['config'] or {}
  for part in key.split('.'):
    tree = tree[part]
  return sweep_points.format_value(tree)


def _with_status(point: Mapping) -> Results:
  """A point's results.json with the sweep's status (a point that has none
  yet: {'status', 'num_seeds'}), so that tables count it."""
  num_seeds = (point['config'] or {}).get('num_seeds', 1)
  return {'num_seeds': num_seeds, **(point['results'] or {}),
          'status': point['status']}


def group_runs(points: Iterable[dict], keys: Sequence[str]
               ) -> dict[tuple[str, ...], list[Results]]:
  """`read_sweep`'s points grouped by their values of `keys` (e.g.
  ('loss.name',)), in order of appearance, each as `_with_status`."""
  groups: dict[tuple[str, ...], list[Results]] = {}
  for point in points:
    label = tuple(_value(point, key) for key in keys)
    groups.setdefault(label, []).append(_with_status(point))
  return groups


def variant_of(point: Mapping, variants: Mapping[str, Mapping[str, object]],
               other: str = 'none') -> str:
  """The name of the first of `variants` ({name: {config key: value}}) whose
  every value the point has, else `other` (e.g. which stabiliser a run of
  experiments/stabilisers.py turned on). A key the point's config lacks (a
  run recorded before the key existed) does not match."""
  for name, overrides in variants.items():
    try:
      if all(_value(point, key) == sweep_points.format_value(value)
             for key, value in overrides.items()):
        return name
    except KeyError:
      continue
  return other


def group_variants(points: Iterable[dict], key: str,
                   variants: Mapping[str, Mapping[str, object]]
                   ) -> dict[tuple[str, str], list[Results]]:
  """`read_sweep`'s points grouped by (their value of `key`, `variant_of`),
  each as `_with_status`: e.g. (loss, stabiliser) over two sweeps, one of the
  losses alone and one with each stabiliser."""
  groups: dict[tuple[str, str], list[Results]] = {}
  for point in points:
    label = (_value(point, key), variant_of(point, variants))
    groups.setdefault(label, []).append(_with_status(point))
  return groups


def group_rows(points: Iterable[dict], rows: Mapping[str, Mapping[str, object]],
               other: str) -> dict[tuple[str], list[Results]]:
  """`read_sweep`'s points grouped by `variant_of` alone (`other`: a point
  of no row), in the order of `rows` then `other`, each as `_with_status`:
  e.g. the rows of experiments/stacked_mnist.py's table (a row's runs: its
  seeds)."""
  groups = {(name,): [] for name in (*rows, other)}
  for point in points:
    groups[(variant_of(point, rows, other),)].append(_with_status(point))
  return {label: group for label, group in groups.items() if group}


# ---------------------------------------------------------------- tables

def per_seed_metrics(results: Results) -> list[dict]:
  """A finished run's final figures, one dict per member with its 'seed'."""
  if results.get('metrics_per_seed'):
    return list(results['metrics_per_seed'])
  seeds = results.get('seeds') or [None]
  return [{'seed': seeds[0], **(results.get('metrics') or {})}]


def comparison_rows(groups: Mapping[tuple, Sequence[Results]]) -> list[dict]:
  """One row per group of runs: the per-seed figures of its finished runs
  pooled ('per_seed'), their `aggregate.summarize` ('summary': mean, std,
  ci95, n), 'expected' seeds (finished or not) and the count of each other
  status ('other': e.g. {'pending': 3})."""
  rows = []
  for label, group in groups.items():
    pooled, expected, other = [], 0, {}
    for results in group:
      expected += results.get('num_seeds') or 1
      if results.get('status') == 'finished':
        pooled += per_seed_metrics(results)
      else:
        status = results.get('status', 'unknown')
        other[status] = other.get(status, 0) + 1
    rows.append({'label': tuple(label), 'per_seed': pooled,
                 'summary': aggregate.summarize(pooled), 'expected': expected,
                 'other': other})
  return rows


def _number(value: float, column: Column, spec: str | None = None) -> str:
  if value is None or math.isnan(value):
    return 'n/a'
  return f'{value * column.scale:{spec or column.spec}}'


def spread_cell(summary: Mapping | None, column: Column, seeds: int = 0,
                interval: bool = False) -> str:
  """'mean ± std' of one figure over seeds, or with `interval` 'mean [low,
  high]' (the Student-t 95% interval of the mean, clipped to the column's
  bounds: a KL's is never below 0); 'mean' for one value,
  'n/a' for none; with '(n of `seeds`)' when some seeds have no value (a NaN
  reverse KL: no high-quality sample)."""
  if not summary or not summary['n']:
    return 'n/a'
  text = _number(summary['mean'], column)
  if summary['n'] > 1 and interval:
    lowest, highest = column.bounds
    low, high = (_number(min(max(end, lowest), highest), column) for end in summary['ci95'])
    text += f' [{low}, {high}]'
  elif summary['n'] > 1:
    text += f' ± {_number(summary["std"], column)}'
  if summary['n'] < seeds:
    text += f' ({summary["n"]} of {seeds})'
  return text


def markdown_table(rows: Sequence[dict], label_titles: Sequence[str],
                   columns: Sequence[Column] = TOY_COLUMNS,
                   per_seed: Sequence[str] = ('modes', 'high_quality'),
                   interval: bool = False) -> str:
  """`comparison_rows` as markdown: the labels, 'seeds' ('n', or 'n of m'
  while some runs are not finished), each column's mean ± std over seeds
  (with `interval`: mean [95% interval]), then every seed's value of the
  `per_seed` keys."""
  listed = [c for key in per_seed for c in columns if c.key == key]
  header = [*label_titles, 'seeds', *(c.title for c in columns),
            *(f'{c.title} per seed' for c in listed)]
  lines = ['| ' + ' | '.join(header) + ' |', '|' + ' --- |' * len(header)]
  for row in rows:
    seeds = str(len(row['per_seed']))
    if len(row['per_seed']) < row['expected']:
      seeds += f' of {row["expected"]}'
      seeds += ''.join(f', {n} {status}' for status, n in sorted(row['other'].items()))
    cells = [*row['label'], seeds]
    cells += [spread_cell(row['summary'].get(c.key), c, len(row['per_seed']),
                          interval) for c in columns]
    cells += [', '.join(_number(figures.get(c.key, math.nan), c, c.seed_spec)
                        for figures in row['per_seed']) for c in listed]
    lines.append('| ' + ' | '.join(cells) + ' |')
  return '\n'.join(lines) + '\n'


def metrics_table(runs: Mapping[str, Results], spec: str = '.4g') -> str:
  """Single runs side by side (e.g. MNIST's), a column per run: its status,
  final step, then a row per final figure of `metrics` (the union over runs;
  empty where a run lacks it)."""
  names = sorted({name for r in runs.values() for name in (r.get('metrics') or {})})
  lines = ['| run | ' + ' | '.join(runs) + ' |', '|' + ' --- |' * (len(runs) + 1)]
  lines.append('| status | ' + ' | '.join(
      str(r.get('status', '')) for r in runs.values()) + ' |')
  lines.append('| final step | ' + ' | '.join(
      str(r.get('final_step', '')) for r in runs.values()) + ' |')
  for name in names:
    values = [(r.get('metrics') or {}).get(name) for r in runs.values()]
    lines.append(f'| {name} | ' + ' | '.join(
        f'{v:{spec}}' if isinstance(v, (int, float)) else '' for v in values) + ' |')
  return '\n'.join(lines) + '\n'


def sweep_table(directories: Sequence[str], columns: Sequence[Column] = TOY_COLUMNS
                ) -> str | None:
  """The points of `gan_jax.sweep` directories grouped by (data, loss), each
  group's seeds pooled: `markdown_table` with mean ± std over seeds and every
  seed's modes and HQ (docs/results/toy_losses.md). None if none of the
  directories is there."""
  groups = {}
  for directory in directories:
    points = read_sweep(directory) if files.isdir(directory) else []
    started = [p['config'] for p in points if p['config']]
    if not started:
      continue
    dataset = started[0]['data']['name']  # a sweep's points share their data
    for label, group in group_runs(points, ('loss.name',)).items():
      groups.setdefault((dataset, *label), []).extend(group)
  if not groups:
    return None
  return markdown_table(comparison_rows(groups), ('data', 'loss'), columns)


def fid_table(pattern: str) -> str | None:
  """The runs matching `pattern` that `python -m gan_jax.fid` scored
  (`fid_results`), one row per (loss, steps) in order of steps, pooling the
  members of every run of that pair (a run per seed, or one of several): Inception
  FID, KID, precision/recall, density/coverage, mean ± std over members, and
  each member's FID. None if no run matches."""
  scored = {w: results for w in find_runs(pattern) if (results := fid_results(w))}
  if not scored:
    return None
  labelled = sorted(
      (config['train.num_steps'], config['loss.name'], w) for w in scored
      for config in [workdir_lib.recorded_config(w)])
  groups = {}  # runs of one (loss, steps), e.g. one per seed, pool their seeds
  for steps, loss, w in labelled:
    groups.setdefault((loss, f'{steps:,}'), []).append(scored[w])
  rows = comparison_rows(groups)
  return markdown_table(rows, ('loss', 'steps'), INCEPTION_COLUMNS,
                        per_seed=('fid',))


def runs_metrics_table(pattern: str) -> str | None:
  """`metrics_table` of the runs matching `pattern`, named by their
  directories; None if none matches."""
  found = find_runs(pattern)
  if not found:
    return None
  return metrics_table({os.path.basename(w): load_results(w) for w in found})


def read_spectra(workdir: str, member: int = 0) -> dict[int, dict]:
  """{step: result} of the game-Jacobian spectra `python -m gan_jax.dynamics
  spectrum` saved in the run (dynamics/spectrum_step<N>_member<i>.json),
  by step."""
  pattern = re.compile(rf'spectrum_step(\d+)_member{member}\.json$')
  found = {}
  for path in files.glob(os.path.join(workdir, 'dynamics', 'spectrum_step*.json')):
    match = pattern.search(os.path.basename(path))
    result = match and files.read_json(path, instead='it is left out')
    if result:
      found[int(match.group(1))] = result
  return dict(sorted(found.items()))
