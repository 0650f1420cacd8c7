"""A sweep's summary: each point's status and final figures, as CSV and markdown.

summary.csv and summary.md hold one row per point in the sweep's order: the
swept values, `status` (finished, diverged, incomplete, pending),
`final_step`, the final `metrics` of results.json with their spread over
seeds (`<metric>_mean/_std/_ci95_lo/_ci95_hi`), `steps_per_s` and
`wall_time_s`, and (CSV) the point's sub-workdir.
"""

from collections.abc import Mapping, Sequence
import csv
import io
import math
import os

from absl import logging

from gan_jax import files
from gan_jax import workdir as workdir_lib
from gan_jax.sweep.points import SweepPoint
from gan_jax.sweep.points import current_value
from gan_jax.sweep.points import format_value

# ------------------------------------------------------------------ results

DAMAGED = 'damaged results.json'  # a point's status when it cannot be read


def status(point: SweepPoint, results: Mapping | None) -> str:
  """finished, diverged, incomplete (started, or finished short of
  train.num_steps, or its results.json damaged: it runs again) or pending
  (not started)."""
  if workdir_lib.is_finished(results, point.config.train.num_steps):
    return 'finished'
  if results is not None and results.get('status') == 'diverged':
    return 'diverged'
  started = results is not None or files.exists(
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
    try:
      results = files.read_json(os.path.join(point.workdir,
                                             workdir_lib.RESULTS_FILE))
    except files.DamagedFile as e:
      logging.warning('%s; the summary marks sweep point %s %r (the sweep'
                      ' runs it again)', e, point.name, DAMAGED)
      results, damaged = None, True
    else:
      damaged = False
    results_or_empty = results or {}
    metrics = metric_spread(results)
    rows.append({
        'point': point.name,
        'values': point.values,
        'config': point.config,
        'status': DAMAGED if damaged else status(point, results),
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
  files.makedirs(workdir)
  files.write_text(os.path.join(workdir, 'summary.csv'), csv_text(rows))
  markdown = markdown_text(rows, title)
  files.write_text(os.path.join(workdir, 'summary.md'), markdown)
  return markdown
