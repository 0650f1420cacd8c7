"""ring8 (experiments/ring8.py) with each stabiliser of issue 13, one at a
time, on every loss: R1 (γ = 1), spectral normalisation, G's moving average.

  python -m gan_jax.sweep --config=experiments/ring8_stabilisers.py \
      --config.num_seeds=5 --workdir=runs/stabilisers_ring8

One point per (loss, stabiliser), the mission's losses first; the same
config and seeds as docs/loss_comparison.md's sweep (runs/compare_ring8),
which is each loss without a stabiliser. Results: docs/stabilisers.md.
"""

from gan_jax import configs

# name: the overrides that turn the stabiliser on
STABILISERS = {
    'r1': {'loss.r1_weight': 1.0},
    'spectral_norm': {'model.spectral_norm': True},
    'g_ema': {'optim.g_ema_decay': 0.999},
}
FIRST = ('non_saturating', 'vanilla', 'wgan_gp')  # the mission's losses


def get_config():
  c = configs.toy_config('ring8')  # as experiments/ring8.py
  c.loss.name = 'vanilla'
  return c


def get_sweep():
  """Every (loss, stabiliser) point, the mission's losses first."""
  from gan_jax import losses  # noqa: PLC0415 (only sweeps need the registry)
  names = [*FIRST, *(n for n in losses.LOSSES if n not in FIRST)]
  return [{'loss.name': name, **overrides}
          for name in names for overrides in STABILISERS.values()]
