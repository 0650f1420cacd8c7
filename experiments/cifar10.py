"""DCGAN on CIFAR-10: the tutorial architecture at 32x32x3 (G starts from 8x8).

  python -m gan_jax.main --config=experiments/cifar10.py

Needs TFDS to download CIFAR-10 (or --config.data.tfds_data_dir=DIR holding a
prepared copy). Expect blurry object-like colour blobs after ~5,000 steps:
this small model is a baseline, not a state-of-the-art CIFAR generator. Each
step costs more than MNIST's (32x32x3 images, G starts from 8x8): use an
accelerator.
"""

from gan_jax import configs


def get_config():
  c = configs.default_config()  # the MNIST experiment's DCGAN, Adam and batch
  c.data.name = 'cifar10'  # 32x32x3, scaled to [-1, 1]
  c.data.source = 'tfds'
  c.train.num_steps = 20_000
  c.train.sample_every = 1000
  return c
