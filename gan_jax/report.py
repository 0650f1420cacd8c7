"""Rewrites the tables of results files from the runs they were measured on.

  python -m gan_jax.report docs/results/toy_losses.md [...] [--runs=runs]

A results file marks every table it shows with the runs it comes from,

  <!-- table: sweeps compare_ring8 compare_grid25 -->
  | data | loss | seeds | ... |
  <!-- /table -->

and this command replaces what stands between the marks with the table
gan_jax.analysis computes from those runs (paths under --runs), so no figure
of a results file is typed by hand. The kinds of table:

  sweeps DIR...         `gan_jax.sweep` directories by (data, loss): PacGAN's
                        modes, high quality and reverse KL over seeds
  stabilisers DATASET   experiments/stabilisers.py's (loss, stabiliser) table
  stacked DIR           experiments/stacked_mnist.py's `:table` sweep by row:
                        modes and KL, mean [95% interval] and every seed's
  fid GLOB              MNIST runs that `python -m gan_jax.fid` scored, by
                        (loss, steps): Inception FID, KID, precision/recall...
  metrics GLOB          single runs' final figures side by side
  dirac LR              the Dirac-GAN of every loss x penalty x optimiser at
                        step size LR (gan_jax.dynamics; needs no runs)

A table whose runs are not there is kept as it stands, and a line says so.
"""

import argparse
import os
import re
import sys

from gan_jax import analysis
from gan_jax import configs
from gan_jax import dynamics
from gan_jax.errors import UserError

_MARKS = ('sweeps DIR..., stabilisers DATASET, stacked DIR, fid GLOB, metrics GLOB,'
          ' dirac LR')
_BLOCK = re.compile(r'(<!-- table: ([^>]*?) -->\n)(.*?)(<!-- /table -->)', re.DOTALL)


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
  if kind == 'dirac' and len(args) == 1:
    try:
      lr = float(args[0])
    except ValueError:
      raise UserError(f'table mark {spec!r}: the step size must be a number,'
                      f' got {args[0]!r}') from None
    return dynamics.dirac_table(lr)
  raise UserError(f'unknown table mark {spec!r}; valid: {_MARKS}')


def rewrite(text: str, runs: str) -> tuple[str, list[str]]:
  """`text` with every marked table computed afresh from `runs`, and the
  marks kept as they stood (their runs are not there)."""
  kept = []

  def replace(match: re.Match) -> str:
    computed = table(match.group(2), runs)
    if computed is None:
      kept.append(match.group(2))
      return match.group(0)
    return f'{match.group(1)}{computed.rstrip()}\n{match.group(4)}'

  return _BLOCK.sub(replace, text), kept


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
      new, kept = rewrite(text, args.runs)
      if new != text:
        with open(path, 'w') as f:
          f.write(new)
      marks = len(_BLOCK.findall(text))
      print(f'{path}: {marks - len(kept)} of {marks} tables computed from'
            f' {args.runs}/' + ''.join(f'; kept (no runs): {spec}' for spec in kept))
  except (UserError, OSError) as e:
    print(f'error: {e}', file=sys.stderr)
    return 1
  return 0


if __name__ == '__main__':
  sys.exit(main(sys.argv[1:]))
