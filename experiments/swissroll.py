"""Swiss roll (the WGAN-GP paper's toy: sklearn make_swiss_roll, noise 0.25, / 7.5).

  python -m gan_jax.main --config=experiments/swissroll.py --config.loss.name=wgan_gp

Expect: scatter plots in runs/swissroll/samples/ with the generated points
following the spiral; a few minutes on a 2-core CPU with wgan_gp.
"""

from gan_jax import configs


def get_config():
  c = configs.toy_config('swissroll')
  c.loss.name = 'wgan_gp'  # the paper's setting for this toy
  # The WGAN-GP toy code's (gan_toy.py) MLPs and Adam, not the tuned ring/grid's.
  c.model.width = 512
  c.optim.g_lr = c.optim.d_lr = 1e-4
  c.optim.schedule = 'constant'
  c.train.num_steps = 5_000
  return c
