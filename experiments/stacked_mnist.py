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
  # the tutorial's recipe (non-saturating, Adam 2e-4, β1 0.5, no stabiliser)
  python -m gan_jax.main --config=experiments/stacked_mnist.py:tutorial \
      --workdir=runs/stacked_mnist_tutorial

The mode-collapse benchmark of VEEGAN (Srivastava et al. 2017) and PacGAN
(Lin et al. 2018): a generator that covers every digit triple has 1,000
modes. The default is experiments/mnist.py's default (`goal`) with 3 output
channels: the TensorFlow DCGAN tutorial's networks, the hinge loss, Adam 1e-3
with β (0, 0.9), no dropout in D, lazy R1 (γ = 1 every 4th step) and samples
from an average of G's weights (0.97). It covers all 1,000 modes by 2,500
steps where the tutorial's recipe covers 815 (docs/results/stacked_mnist.md
has the table and its commands). About 4.5 steps/s on 2 CPU cores; expect
coloured digit-like shapes in runs/stacked_mnist/samples/ after a few
hundred steps.
"""

import os

from gan_jax import configs

VARIANTS = ('default', 'tutorial', 'r3gan')
_MNIST = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'mnist.py')


def get_config(variant: str = 'default'):
  """`default` (experiments/mnist.py's `goal`), `r3gan` (its `r3gan`: the
  relativistic pairing loss with R1 and R2 at weight 1 on every step, not
  tuned here) or `tutorial` (`configs.default_config()`: the non-saturating
  loss, Adam 2e-4, β1 0.5, dropout 0.3 in D, no stabiliser)."""
  configs.check_variant('experiments/stacked_mnist.py', variant, VARIANTS)
  if variant == 'tutorial':
    c = configs.default_config()
  else:
    c = configs.call_config_file(f'{_MNIST}:{"goal" if variant == "default" else variant}')
  c.data.name = 'stacked_mnist'  # 28x28x3, each channel an independent digit
  c.data.source = 'tfds'  # MNIST's source; offline: 'idx' with data.path
  c.train.sample_every = 500
  c.eval.num_samples = 26_000  # VEEGAN/PacGAN's count for the mode metric
  return c
