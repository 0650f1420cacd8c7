"""Rewrites the tables of results files from the runs they were measured on.

  python -m gan_jax.report docs/results/toy_losses.md [...] [--runs=runs]

A results file marks every table it shows with the runs it comes from,

  <!-- table: sweeps compare_ring8 compare_grid25 -->
  | data | loss | seeds | ... |
  <!-- /table -->

and this command replaces what stands between the marks with the table
gan_jax.analysis computes from those runs (paths under --runs), so no figure
of a results file is typed by hand.

Runs are local and short-lived (a laptop's runs/, a preemptible machine),
while a table gathers seeds run at different times and places. So the command
first keeps the record of each run a table reads that has ended (finished or
diverged, not interrupted): its config.json, results.json, `python -m
gan_jax.fid` scores and evaluations over training (evals.json), a few KB,
and for MNIST runs whose first seed is 0 the last sample grid of it (about
50 KB, what the notebook shows), in a `runs/` directory beside the results
file (docs/results/runs/). It then
computes the table from those records. A record stays until a run of the
same path replaces it, so a table can be recomputed from the repository
alone. A row none of whose runs has a record (measured before records were
kept) is kept as it stands, as is a row whose records hold fewer seeds than
the file shows; a line names each.

The kinds of table:

  sweeps DIR...         `gan_jax.sweep` directories by (data, loss): PacGAN's
                        modes, high quality and reverse KL over seeds
  stabilisers DATASET   experiments/stabilisers.py's (loss, stabiliser) table
  stacked DIR           experiments/stacked_mnist.py's `:table` sweep by row:
                        modes and KL, mean [95% interval] and every seed's
  fid GLOB              MNIST runs that `python -m gan_jax.fid` scored, by
                        (loss, steps): Inception FID, KID, precision/recall...
  metrics GLOB          single runs' final figures side by side
  evals GLOB NAME...    the evaluations over training of the runs of GLOB, a
                        row per seed: NAME... at each step (e.g. modes reverse_kl)
  dirac LR              the Dirac-GAN of every loss x penalty x optimiser at
                        step size LR (gan_jax.dynamics; needs no runs)

A table with no records is kept as it stands, and a line says so.
"""

import argparse
from collections.abc import Iterator
import json
import os
import re
import sys

from gan_jax import analysis
from gan_jax import configs
from gan_jax import dynamics
from gan_jax import files
from gan_jax import workdir as workdir_lib
from gan_jax.errors import UserError

_MARKS = ('sweeps DIR..., stabilisers DATASET, stacked DIR, fid GLOB, metrics GLOB,'
          ' evals GLOB NAME..., dirac LR')
_BLOCK = re.compile(r'(<!-- table: ([^>]*?) -->\n)(.*?)(<!-- /table -->)', re.DOTALL)
_FID_FILES = analysis.FID_FILE.format(member='*')
# A run's record: what the tables read of it.
RECORD_FILES = (workdir_lib.CONFIG_FILE, workdir_lib.RESULTS_FILE, _FID_FILES)
# The kinds of table whose records keep a sample grid (the notebook shows them).
PICTURED = ('fid', 'stacked')


def _experiment(name: str):
  """experiments/`name` of this checkout, as a module."""
  return configs.load_config_module(
      os.path.join(analysis.repo_root(), 'experiments', name))


def table(spec: str, runs: str) -> str | None:
  """The markdown table of a `<!-- table: SPEC -->` mark, from the runs under
  `runs`; None when they are not there."""
  if not spec.split():
    raise UserError(f'an empty table mark; valid: {_MARKS}')
  kind, *args = spec.split()
  paths = [os.path.join(runs, arg) for arg in args]
  if kind == 'sweeps' and args:
    return analysis.sweep_table(paths)
  if kind == 'stabilisers' and len(args) == 1:
    return _experiment('stabilisers.py').results_table(args[0], runs)
  if kind == 'stacked' and len(args) == 1:
    return _experiment('stacked_mnist.py').results_table(paths[0])
  if kind == 'fid' and len(args) == 1:
    return analysis.fid_table(paths[0])
  if kind == 'metrics' and len(args) == 1:
    return analysis.runs_metrics_table(paths[0])
  if kind == 'evals' and len(args) > 1:
    return analysis.evals_table(paths[0], args[1:])
  if kind == 'dirac' and len(args) == 1:
    try:
      lr = float(args[0])
    except ValueError:
      raise UserError(f'table mark {spec!r}: the step size must be a number,'
                      f' got {args[0]!r}') from None
    return dynamics.dirac_table(lr)
  raise UserError(f'unknown table mark {spec!r}; valid: {_MARKS}')


def run_patterns(spec: str) -> list[str]:
  """Globs (relative to the runs directory) of the run directories the table
  of a mark reads."""
  kind, *args = spec.split() or ['']
  if kind in ('sweeps', 'stacked'):
    return [os.path.join(arg, '*') for arg in args]
  if kind == 'stabilisers':
    return [f'{sweep}_{arg}/*' for arg in args for sweep in ('compare', 'stabilisers')]
  if kind in ('fid', 'metrics', 'evals'):
    return args[:1]
  return []


def _scoring_unfinished(workdir: str) -> str | None:
  """The FID file of the run that is empty (`python -m gan_jax.fid ... >`
  it is scoring, or failed), else None."""
  for path in files.glob(os.path.join(workdir, _FID_FILES)):
    if not files.read_bytes(path).strip():
      return os.path.basename(path)
  return None


def ended_runs(spec: str, runs: str) -> Iterator[str]:
  """The run directories under `runs` that the mark's table reads and that
  have ended (finished or diverged: not one interrupted, to be resumed),
  relative to `runs`."""
  for pattern in run_patterns(spec):
    for workdir in files.glob(os.path.join(runs, pattern)):
      if not files.isdir(workdir):
        continue  # a sweep's summary.csv
      results = workdir_lib.read_results(workdir) or {}
      if results.get('status') in ('finished', 'diverged'):
        yield os.path.relpath(workdir, runs)


def _seed_0_picture(workdir: str, results: dict) -> str | None:
  """The last sample grid of the run's seed 0 (its first member, by its
  `results`), if it has one."""
  if (results.get('seeds') or [0])[0] == 0:
    return analysis.latest_picture(workdir)
  return None


def keep_records(spec: str, runs: str, records: str) -> list[str]:
  """Makes the record of each of the mark's `ended_runs` in `records` (the
  same relative path): its RECORD_FILES, `analysis.eval_history` and, for
  the PICTURED kinds, the last sample grid of its seed 0 if it has one
  (samples/), in place of any older record of that run. A record with a grid
  keeps one whatever the mark (a run is read by a `stacked` mark and an
  `evals` one, in either order). A run with an empty FID file (scoring under
  way, or failed) is left as it was recorded. Returns what was left so, as
  notes."""
  notes = []
  for run in ended_runs(spec, runs):
    workdir, record = os.path.join(runs, run), os.path.join(records, run)
    empty = _scoring_unfinished(workdir)
    if empty:
      notes.append(f'not recorded (its {empty} is empty: FID scoring is under'
                   f' way or failed): {run}')
      continue
    copies = {os.path.basename(path): files.read_bytes(path)
              for name in RECORD_FILES
              for path in files.glob(os.path.join(workdir, name))}
    results = json.loads(copies[workdir_lib.RESULTS_FILE])  # an ended run has one
    pictured = (spec.split()[0] in PICTURED
                or files.isdir(os.path.join(record, 'samples')))
    picture = _seed_0_picture(workdir, results) if pictured else None
    if picture:
      copies[f'samples/{os.path.basename(picture)}'] = files.read_bytes(picture)
    history = analysis.eval_history(workdir)
    files.remove_tree(record)  # an older record goes whole
    files.makedirs(record)
    for name, content in copies.items():
      files.makedirs(os.path.dirname(os.path.join(record, name)))
      files.write_bytes(os.path.join(record, name), content)
    if history:
      files.write_json(os.path.join(record, analysis.EVALS_FILE), history)
  return notes


def marked_table(path: str, mark: str) -> str | None:
  """The first table of the results file `path` whose mark begins with the
  words of `mark` (e.g. 'stacked', 'fid heldout_*'), as the file shows it;
  None if it has none."""
  words = mark.split()
  with open(path) as f:
    text = f.read()
  for match in _BLOCK.finditer(text):
    if match.group(2).split()[:len(words)] == words:
      return match.group(3)
  return None


def _cells(line: str) -> list[str]:
  return [cell.strip() for cell in line.strip().strip('|').split('|')]


def _seeds(cells: list[str], column: int) -> int:
  """A row's finished seeds: the count its 'seeds' cell starts with."""
  return int(cells[column].split()[0])


def merge_rows(old: str, new: str) -> tuple[str, list[str]]:
  """The table `new` merged into the table `old`, and notes of what of `old`
  was kept. A row is named by its cells before 'seeds'. A row of `old` that
  `new` lacks (its runs have no record) stays where it stood, as does one
  with more seeds than `new`'s (never replace a row with fewer seeds); a
  row new to `old` goes after the row that precedes it in `new` (else
  last). `new` alone if it has no 'seeds' column (a table that is computed
  whole) or `old` is no table; `old` alone if its columns differ from
  `new`'s."""
  old_lines, new_lines = old.strip().splitlines(), new.strip().splitlines()
  header = _cells(new_lines[0])
  if 'seeds' not in header or not old_lines or not old_lines[0].startswith('|'):
    return new, []
  if _cells(old_lines[0]) != header:
    return old, ['the whole table (its columns differ from the computed ones:'
                 ' delete its rows to replace it)']
  column = header.index('seeds')

  def name(line: str) -> str:
    return ' / '.join(_cells(line)[:column])

  computed = {name(line): line for line in new_lines[2:]}
  merged, notes = [], []
  for line in old_lines[2:]:
    replacement = computed.get(name(line))
    if replacement is None:
      notes.append(f'row {name(line)} (no records)')
    elif (shown := _seeds(_cells(line), column)) > (
        recorded := _seeds(_cells(replacement), column)):
      notes.append(f'row {name(line)} (the file has {shown} seeds, its records'
                   f' {recorded})')
      computed[name(line)] = replacement = line
    merged.append(replacement or line)
  rows = [computed.get(name(line), line) for line in new_lines[2:]]
  for previous, line in zip([None, *rows[:-1]], rows, strict=True):
    if line not in merged:
      at = merged.index(previous) + 1 if previous else len(merged)
      merged.insert(at, line)
  return '\n'.join([*new_lines[:2], *merged]) + '\n', notes


def rewrite(text: str, runs: str, records: str) -> tuple[str, list[str]]:
  """`text` with every marked table computed afresh from `records` after
  `keep_records` brought the ended runs of `runs` into it, and notes of
  what was kept as it stood: a mark with no records, rows (`merge_rows`),
  runs not recorded."""
  notes = []

  def replace(match: re.Match) -> str:
    spec, old = match.group(2), match.group(3)
    notes.extend(keep_records(spec, runs, records))
    computed = table(spec, records)
    if computed is None:
      notes.append(f'kept (no records): {spec}')
      return match.group(0)
    computed, kept = merge_rows(old, computed)
    notes.extend(f'kept in {spec}: {what}' for what in kept)
    return f'{match.group(1)}{computed.rstrip()}\n{match.group(4)}'

  return _BLOCK.sub(replace, text), notes


def main(argv: list[str]) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('files', nargs='+', help='results files (markdown)')
  parser.add_argument('--runs', default='runs',
                      help='the directory the marks\' paths are under')
  args = parser.parse_args(argv)
  try:
    for path in args.files:
      with open(path) as f:
        text = f.read()
      records = os.path.join(os.path.dirname(path), 'runs')
      if files.abspath(records) == files.abspath(args.runs):
        raise UserError(f'{path}\'s records would be kept in --runs={args.runs}'
                        ' itself; valid: a results file in another directory'
                        ' (its records go to runs/ beside it)')
      new, notes = rewrite(text, args.runs, records)
      if new != text:
        with open(path, 'w') as f:
          f.write(new)
      print(f'{path}: {len(_BLOCK.findall(text))} marked tables, from the records'
            f' in {records}/ with the ended runs of {args.runs}/ added'
            + ''.join(f'\n  {note}' for note in notes))
  except (UserError, OSError) as e:
    print(f'error: {e}', file=sys.stderr)
    return 1
  return 0


if __name__ == '__main__':
  sys.exit(main(sys.argv[1:]))
