"""DCGAN on Fashion-MNIST: the MNIST experiment's settings on the other 28x28x1 set.

  python -m gan_jax.main --config=experiments/fashion_mnist.py
  # offline, from local Fashion-MNIST files in MNIST's idx format:
  python -m gan_jax.main --config=experiments/fashion_mnist.py \
      --config.data.source=idx --config.data.path=DIR
  # with the image metrics (train classifiers/fashion_mnist first:
  # python -m gan_jax.classifier --config=experiments/fashion_mnist.py):
  python -m gan_jax.main --config=experiments/fashion_mnist.py \
      --config.eval.evaluators=classifier

Expect: garment silhouettes after a few hundred steps; the same step time as
MNIST (1.1-1.4 steps/s at batch 64 on a 2-core CPU).
"""

from gan_jax import configs


def get_config():
  c = configs.default_config()  # the MNIST experiment's DCGAN, Adam and batch
  c.data.name = 'fashion_mnist'  # 28x28x1, scaled to [-1, 1]
  c.train.sample_every = 500
  return c
