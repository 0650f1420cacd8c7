"""Swiss roll (the WGAN-GP paper's toy: sklearn make_swiss_roll, noise 0.25, / 7.5).

  python -m gan_jax.main --config=experiments/swissroll.py --config.loss.name=wgan_gp

Expect: scatter plots in runs/swissroll/samples/ with the generated points
following the spiral; a few minutes on a 2-core CPU with wgan_gp.
"""

from gan_jax import configs


def get_config():
  c = configs.toy_config('swissroll')  # WGAN-GP toy code's MLPs and Adam
  c.loss.name = 'wgan_gp'  # the paper's setting for this toy
  return c
