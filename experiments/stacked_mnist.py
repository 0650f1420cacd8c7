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

The mode-collapse benchmark of VEEGAN (Srivastava et al. 2017) and PacGAN
(Lin et al. 2018): a generator that covers every digit triple has 1,000
modes. Same model and optimiser as experiments/mnist.py with 3 output
channels; about the MNIST step time. Expect coloured digit-like shapes in
runs/stacked_mnist/samples/ after a few hundred steps.
"""

from gan_jax import configs

VARIANTS = ('default', 'r3gan')


def get_config(variant: str = 'default'):
  """`default` or `r3gan` (the relativistic pairing loss with R1 and R2 at
  weight 1 on every step; not tuned here)."""
  configs.check_variant('experiments/stacked_mnist.py', variant, VARIANTS)
  c = configs.default_config()  # the MNIST experiment's DCGAN, Adam and batch
  c.data.name = 'stacked_mnist'  # 28x28x3, each channel an independent digit
  c.data.source = 'tfds'  # MNIST's source; offline: 'idx' with data.path
  c.train.sample_every = 500
  c.eval.num_samples = 26_000  # VEEGAN/PacGAN's count for the mode metric
  if variant == 'r3gan':
    c.loss.name = 'rpgan'
    c.loss.r1_weight = c.loss.r2_weight = 1.0
  return c
