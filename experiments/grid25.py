"""Grid of 25 Gaussians at {-4,-2,0,2,4}^2, std 0.05 (PacGAN's protocol), 3x128 MLPs, batch 1024.

  python -m gan_jax.main --config=experiments/grid25.py
  python -m gan_jax.main --config=experiments/grid25.py --config.loss.name=wgan_gp \
      --workdir=runs/grid25_wgan_gp
  python -m gan_jax.sweep --config=experiments/grid25.py   # every loss, get_sweep()

Expect: scatter plots in runs/grid25/samples/ and the modes evaluator every
1,000 steps. The grid is harder than the ring: a batch of 256 lost modes
(19-21 of 25), 1,024 kept them; see docs/loss_comparison.md.
"""

from gan_jax import configs


def get_config():
  c = configs.toy_config('grid25')  # tuned 3x128 MLPs, Adam 1e-3 -> 0
  c.loss.name = 'vanilla'  # the original minimax game (docs/loss_comparison.md)
  c.train.batch_size = 1024  # 25 modes: 256 lost some
  return c


def get_sweep():
  """Every loss of the registry (losses.LOSSES) side by side: `python -m
  gan_jax.sweep` runs one point per dict (runs/sweep_grid25/loss.name-<loss>/,
  then summary.md)."""
  from gan_jax import losses  # noqa: PLC0415 (only sweeps need the registry)
  return [{'loss.name': name} for name in losses.LOSSES]
