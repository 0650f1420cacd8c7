"""DCGAN on Stacked MNIST: three random MNIST digits as RGB channels, 1,000 modes.

  python -m gan_jax.main --config=experiments/stacked_mnist.py
  # offline, from local MNIST-format files:
  python -m gan_jax.main --config=experiments/stacked_mnist.py \
      --config.data.source=idx --config.data.path=../shared/data/mnist
  # with the mode count (needs the MNIST classifier: python -m gan_jax.classifier
  # --config=experiments/mnist.py, same data flags):
  python -m gan_jax.main --config=experiments/stacked_mnist.py \
      --config.eval.evaluators=stacked_mnist
  # R3GAN's objective (Huang et al. 2024): rpgan + R1 + R2 on every step
  python -m gan_jax.main --config=experiments/stacked_mnist.py:r3gan \
      --workdir=runs/stacked_mnist_r3gan
  # D a quarter of G's width (PacGAN's Table 3 setting)
  python -m gan_jax.main --config=experiments/stacked_mnist.py:quarter_d \
      --workdir=runs/stacked_mnist_quarter_d
  # the tutorial's recipe (non-saturating, Adam 2e-4, β1 0.5, no stabiliser)
  python -m gan_jax.main --config=experiments/stacked_mnist.py:tutorial \
      --workdir=runs/stacked_mnist_tutorial
  # the table of docs/results/stacked_mnist.md: every row of ROWS, 3 seeds
  # each, one point per (row, seed) (--engine=ray runs them in parallel)
  python -m gan_jax.sweep --config=experiments/stacked_mnist.py:table \
      --config.eval.evaluators=stacked_mnist --sweep=seed=0,1,2 \
      --workdir=runs/stacked_mnist_table

The mode-collapse benchmark of VEEGAN (Srivastava et al. 2017) and PacGAN
(Lin et al. 2018): a generator that covers every digit triple has 1,000
modes. The default is experiments/mnist.py's default (`goal`) with 3 output
channels: the TensorFlow DCGAN tutorial's networks, the hinge loss, Adam 1e-3
with β (0, 0.9), no dropout in D, lazy R1 (γ = 1 every 4th step) and samples
from an average of G's weights (0.97). It covers all 1,000 modes by 2,500
steps where the tutorial's recipe covers 815 (docs/results/stacked_mnist.md
has the table and its commands). About 4.5 steps/s on 2 CPU cores; expect
coloured digit-like shapes in runs/stacked_mnist/samples/ after a few
hundred steps.
"""

import os

from gan_jax import configs

VARIANTS = ('default', 'tutorial', 'r3gan', 'quarter_d', 'table')
_MNIST = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'mnist.py')

# The tutorial's recipe as changes of the default: configs.default_config()'s.
TUTORIAL = {'loss.name': 'non_saturating', 'optim.g_lr': 2e-4, 'optim.d_lr': 2e-4,
            'optim.b1': 0.5, 'optim.b2': 0.999, 'model.dropout': 0.3,
            'optim.g_ema_decay': 0.0, 'loss.r1_weight': 0.0, 'loss.reg_every': 1}
# R3GAN's objective (Huang et al. 2024) as changes of the default.
R3GAN = {'loss.name': 'rpgan', 'loss.r1_weight': 1.0, 'loss.r2_weight': 1.0,
         'loss.reg_every': 1}
# PacGAN's Table 3 setting (Lin et al. 2018, after Metz et al. 2017): D with a
# quarter of G's channels at each resolution (16 and 32, against G's 64 and 128).
QUARTER_D = {'model.d_channels': 32}
# The rows of the table besides the default (issue 30), name -> its changes
# of the default: the recipes, the default without each stabiliser, PacGAN2
# (Lin et al. 2018), the default with a quarter-width D, then each other loss
# with the default's recipe, wgan_gp (5 critic steps) last. A run is the first
# row whose every value it has (`results_table`), so a row comes before any
# row it contains.
ROWS = {
    'tutorial': TUTORIAL,
    'r3gan': R3GAN,
    'no_r1': {'loss.r1_weight': 0.0},
    'no_g_average': {'optim.g_ema_decay': 0.0},
    'pacgan2': {'model.pack': 2},
    'quarter_d': QUARTER_D,
    **{f'loss={name}': {'loss.name': name}
       for name in ('non_saturating', 'vanilla', 'least_squares', 'relativistic',
                    'rpgan', 'wgan_gp')},
}


def get_config(variant: str = 'default'):
  """`default` (experiments/mnist.py's `goal`; `table` too, whose sweep is
  ROWS), `r3gan` (the default with R3GAN's objective: the relativistic
  pairing loss with R1 and R2 at weight 1 on every step, not tuned here),
  `quarter_d` (the default with D a quarter of G's width, QUARTER_D) or
  `tutorial` (`configs.default_config()`: the non-saturating loss, Adam 2e-4,
  β1 0.5, dropout 0.3 in D, no stabiliser)."""
  configs.check_variant('experiments/stacked_mnist.py', variant, VARIANTS)
  c = configs.call_config_file(f'{_MNIST}:goal')
  c.data.name = 'stacked_mnist'  # 28x28x3, each channel an independent digit
  c.data.source = 'tfds'  # MNIST's source; offline: 'idx' with data.path
  c.train.sample_every = 500
  c.eval.num_samples = 26_000  # VEEGAN/PacGAN's count for the mode metric
  from gan_jax.sweep import points  # noqa: PLC0415
  return points.point_config(c, ROWS.get(variant, {}))  # a row as a sweep sets it


def get_sweep(variant: str = 'default'):
  """`table`: the default, then each row of ROWS (a point each; the seeds
  come from --sweep=seed=... or config.num_seeds); no sweep otherwise."""
  if variant != 'table':
    return None
  return [{}, *(dict(changes) for changes in ROWS.values())]


def table_rows() -> dict[str, dict]:
  """{row: its config values} of the `:table` sweep, 'default' first: the
  default's own values of every key a row changes, then ROWS."""
  default = get_config()
  keys = {key for changes in ROWS.values() for key in changes}
  return {'default': {key: configs.find(default, key, 'ROWS')
                      for key in sorted(keys)}, **ROWS}


def row_workdirs(directory: str, seed: int = 0) -> dict[str, str]:
  """{row: its point with --sweep=seed=`seed`} in the `:table` sweep in
  `directory`, for the rows that have one (e.g. to show their samples);
  named as the sweep names them."""
  from gan_jax import files  # noqa: PLC0415
  from gan_jax.sweep import points  # noqa: PLC0415
  swept = points.config_sweep(f'{os.path.abspath(__file__)}:table', get_config('table'))
  found = {}
  for row, point in zip(('default', *ROWS), swept, strict=True):
    workdir = os.path.join(directory, points.point_name({**point, 'seed': seed}))
    if files.isdir(workdir):
      found[row] = workdir
  return found


def results_table(directory: str) -> str | None:
  """The table of docs/results/stacked_mnist.md from the `:table` sweep in
  `directory`: a row per `table_rows` name that has points ('default'
  first; 'other' for a point of none, e.g. one with another key swept),
  pooling its seeds, modes and KL as mean [95% interval], then each seed's;
  None if the sweep is not there."""
  from gan_jax import analysis  # noqa: PLC0415 (reads TensorBoard files)
  from gan_jax import files  # noqa: PLC0415
  if not files.isdir(directory):
    return None
  groups = analysis.group_rows(analysis.read_sweep(directory), table_rows(), 'other')
  if not groups:
    return None
  columns = analysis.STACKED_COLUMNS
  return analysis.markdown_table(analysis.comparison_rows(groups), ('row',), columns,
                                 per_seed=tuple(c.key for c in columns), interval=True)
