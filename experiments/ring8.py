"""Ring of 8 Gaussians (PacGAN's protocol: unit circle, std 0.01), 3x512 MLPs.

  python -m gan_jax.main --config=experiments/ring8.py
  python -m gan_jax.main --config=experiments/ring8.py --config.loss.name=wgan_gp
  python -m gan_jax.sweep --config=experiments/ring8.py   # the 3 losses, get_sweep()

Expect: a scatter plot per 1,000 steps in runs/ring8/samples/ with the
generated points (red) on the 8 modes (blue circles); runs in about a minute
on a 2-core CPU (wgan_gp about 3x longer: 5 critic steps).
"""

from gan_jax import configs


def get_config():
  c = configs.toy_config('ring8')  # WGAN-GP toy code's MLPs and Adam
  c.loss.name = 'non_saturating'
  return c


def get_sweep():
  """The loss variants side by side: `python -m gan_jax.sweep` runs one point
  per dict (runs/sweep_ring8/loss.name-<loss>/, then summary.md)."""
  return [{'loss.name': name} for name in ('vanilla', 'non_saturating', 'wgan_gp')]
