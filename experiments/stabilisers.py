"""A 2-D mixture's comparison setup (experiments/ring8.py, grid25.py:baseline)
with each stabiliser, one at a time, on every loss: PacGAN's
packs of 4, R1 (γ = 1), G's moving average, spectral normalisation.

  python -m gan_jax.sweep --config=experiments/stabilisers.py:ring8 \
      --config.num_seeds=5 --workdir=runs/stabilisers_ring8
  python -m gan_jax.sweep --config=experiments/stabilisers.py:grid25 \
      --config.num_seeds=5 --workdir=runs/stabilisers_grid25

One point per (loss, stabiliser): the default loss first and wgan_gp, five
times dearer, last. The same config and seeds as the sweeps of
docs/results/toy_losses.md (runs/compare_<dataset>), which are each loss
without a stabiliser.
Results: docs/results/stabilisers.md.
"""

import os

from gan_jax import configs
from gan_jax.errors import UserError

# name: the overrides that turn the stabiliser on
STABILISERS = {
    'pacgan4': {'model.pack': 4},
    'r1': {'loss.r1_weight': 1.0},
    'g_ema': {'optim.g_ema_decay': 0.999},
    'spectral_norm': {'model.spectral_norm': True},
}
# The losses first in the sweep (the default first); any other registered
# loss follows them, and the dearest, wgan_gp (5 critic steps with a double
# backward pass each), comes last.
LOSS_ORDER = ('vanilla', 'non_saturating', 'hinge', 'least_squares',
              'relativistic')
LAST = 'wgan_gp'
# dataset: the experiment file (and its argument) that the losses are compared in
BASES = {'ring8': 'ring8.py', 'grid25': 'grid25.py:baseline'}


def get_config(dataset: str = 'ring8'):
  """The config of BASES[dataset]: the tuned toy defaults, vanilla, 10,000 steps."""
  if dataset not in BASES:
    raise UserError(f'experiments/stabilisers.py:{dataset} is not a mixture of'
                    f' modes; valid: {", ".join(BASES)}')
  here = os.path.dirname(os.path.abspath(__file__))
  return configs.call_config_file(os.path.join(here, BASES[dataset]))


def loss_order() -> list[str]:
  """Every registered loss: LOSS_ORDER's, the others in the registry's
  order, LAST last."""
  from gan_jax import losses  # noqa: PLC0415 (only sweeps need the registry)
  return sorted(losses.LOSSES, key=lambda n: (
      n == LAST, LOSS_ORDER.index(n) if n in LOSS_ORDER else len(LOSS_ORDER)))


def get_sweep(dataset: str = 'ring8'):
  """Every (loss, stabiliser) point, in `loss_order` (the same for each
  dataset)."""
  del dataset
  return [{'loss.name': name, **overrides}
          for name in loss_order() for overrides in STABILISERS.values()]


def results_table(dataset: str, runs: str = 'runs') -> str | None:
  """The markdown table of docs/results/stabilisers.md: one row per (loss,
  stabiliser) over runs/compare_<dataset> (stabiliser 'none') and
  runs/stabilisers_<dataset>, pooling each run's seeds; None if neither
  sweep is there."""
  from gan_jax import analysis  # noqa: PLC0415 (reads TensorBoard files)
  from gan_jax import files  # noqa: PLC0415
  points = []
  for sweep_name in ('compare', 'stabilisers'):
    directory = os.path.join(runs, f'{sweep_name}_{dataset}')
    if files.isdir(directory):
      points += analysis.read_sweep(directory)
  if not points:
    return None
  groups = analysis.group_variants(points, 'loss.name', STABILISERS)
  order = [(loss, name) for loss in loss_order()
           for name in ('none', *STABILISERS)]
  labels = sorted(groups, key=lambda label: (
      order.index(label) if label in order else len(order), label))
  return analysis.markdown_table(analysis.comparison_rows(
      {label: groups[label] for label in labels}), ('loss', 'stabiliser'))


if __name__ == '__main__':  # python experiments/stabilisers.py grid25 [RUNS]
  import sys  # noqa: PLC0415
  print(results_table(*sys.argv[1:]) or f'no sweep of {sys.argv[1]} in runs/')
