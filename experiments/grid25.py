"""Grid of 25 Gaussians at {-4,-2,0,2,4}^2, std 0.05 (PacGAN's protocol), 3x512 MLPs.

  python -m gan_jax.main --config=experiments/grid25.py
  python -m gan_jax.main --config=experiments/grid25.py --config.loss.name=wgan_gp
  python -m gan_jax.sweep --config=experiments/grid25.py   # the 3 losses, get_sweep()

Expect: scatter plots in runs/grid25/samples/; runs in about a minute on a
2-core CPU. The grid is harder than the ring: expect missed or smeared modes
with short runs.
"""

from gan_jax import configs


def get_config():
  c = configs.toy_config('grid25')  # WGAN-GP toy code's MLPs and Adam
  c.loss.name = 'non_saturating'
  return c


def get_sweep():
  """The loss variants side by side: `python -m gan_jax.sweep` runs one point
  per dict (runs/sweep_grid25/loss.name-<loss>/, then summary.md)."""
  return [{'loss.name': name} for name in ('vanilla', 'non_saturating', 'wgan_gp')]
