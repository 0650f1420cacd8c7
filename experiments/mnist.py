"""DCGAN on MNIST: the TensorFlow DCGAN tutorial's model, optimiser and batch.

  python -m gan_jax.main --config=experiments/mnist.py
  # offline, from local MNIST-format files (here: the 10k test split):
  python -m gan_jax.main --config=experiments/mnist.py \
      --config.data.source=idx --config.data.path=../shared/data/mnist
  # another loss variant (wgan_gp trains 5 critic steps per generator step):
  python -m gan_jax.main --config=experiments/mnist.py --config.loss.name=wgan_gp

Expect: digit-like strokes in runs/mnist/samples/ after a few hundred steps
and clear digits after a few thousand (the tutorial trains 50 epochs = 11,700
steps). Measured on a 2-core CPU: 0.15-0.18 steps/s (batch 256, compile 7 s),
so the full 10,000 steps take about 16 hours there; use an accelerator, or
`--config.train.num_steps=300` (~30 minutes) for a first look.
"""

from gan_jax import configs


def get_config():
  c = configs.default_config()
  c.data.name = 'mnist'  # 28x28x1, scaled to [-1, 1]
  c.data.source = 'tfds'  # offline: 'idx' with data.path
  c.model.name = 'dcgan'  # the tutorial's generator and discriminator
  c.model.latent_dim = 100  # the tutorial's noise_dim
  c.loss.name = 'non_saturating'  # the tutorial's cross-entropy losses
  c.optim.g_lr = c.optim.d_lr = 1e-4  # the tutorial's Adam(1e-4)
  c.optim.b1, c.optim.b2 = 0.9, 0.999  # Keras' Adam defaults
  c.train.batch_size = 256  # the tutorial's BATCH_SIZE
  c.train.num_steps = 10_000  # ~43 epochs of the 60k training images
  c.train.log_every = 100
  c.train.sample_every = 500
  c.train.checkpoint_every = 1000
  return c
