"""Ring of 8 Gaussians (PacGAN's protocol: unit circle, std 0.01), 3x128 MLPs.

  python -m gan_jax.main --config=experiments/ring8.py
  python -m gan_jax.main --config=experiments/ring8.py --config.loss.name=wgan_gp \
      --workdir=runs/ring8_wgan_gp
  python -m gan_jax.sweep --config=experiments/ring8.py   # every loss, get_sweep()

Expect: scatter plots in runs/ring8/samples/ with the generated points (red)
on the 8 modes (blue circles), and the modes evaluator every 1,000 steps; see
docs/results/toy_losses.md for every loss over 5 seeds, with times.
"""

from gan_jax import configs


def get_config():
  c = configs.toy_config('ring8')  # tuned 3x128 MLPs, Adam 1e-3 -> 0
  # the original minimax game (docs/results/toy_losses.md)
  c.loss.name = 'vanilla'
  return c


def get_sweep():
  """Every loss of the registry (losses.LOSSES) side by side: `python -m
  gan_jax.sweep` runs one point per dict (runs/sweep_ring8/loss.name-<loss>/,
  then summary.md)."""
  from gan_jax import losses  # noqa: PLC0415 (only sweeps need the registry)
  return [{'loss.name': name} for name in losses.LOSSES]
