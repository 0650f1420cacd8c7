"""The PyTorch peer of `gan_jax.bench`: the same two workloads, eager PyTorch.

  pip install torch   # optional; never a dependency of gan_jax or its tests
  python benchmarks/torch_peer.py --workload=dcgan --steps=20
  python benchmarks/torch_peer.py --workload=dcgan_tutorial --steps=20
  python benchmarks/torch_peer.py --workload=wgan_gp_toy --steps=200
  # train the dcgan workload on MNIST and save samples (docs/results/mnist.md):
  python benchmarks/torch_peer.py --train_mnist=../shared/data/mnist \
      --steps=1500 --batch_size=64 --seed=0 --out=runs/peer_mnist/seed_0.npy

Workloads (each step: d_steps discriminator updates, then one generator
update, Adam for both, synthetic data drawn inside the timed step as
gan_jax draws it):

  dcgan        the TensorFlow DCGAN tutorial's generator and discriminator
               on 28x28x1 images, non-saturating loss, batch 256, 1 D step,
               G forwarded twice (a fresh z for G's update): gan_jax's math
               (gan_jax: experiments/mnist.py:tutorial
               --config.train.batch_size=256 --config.train.reuse_fake=False)
  dcgan_tutorial  the same, stepped as the PyTorch DCGAN tutorial: one
               forward of G, its output reused for G's update
               (gan_jax: experiments/mnist.py:tutorial --config.train.batch_size=256)
  wgan_gp_toy  3x512 ReLU MLPs on ring8 (z in R^2), WGAN-GP with
               gp_weight 0.1, batch 256, 5 critic steps
               (gan_jax: experiments/ring8.py --config.loss.name=wgan_gp
               --config.model.width=512 --config.loss.gp_weight=0.1)

The last line printed is one JSON object with steps_per_s, examples_per_s,
threads and the sizes, like gan_jax.bench's.

--train_mnist=DIR trains the `dcgan` workload (the same networks and step,
Adam 2e-4 with beta1 0.5, Radford et al. 2016) on the MNIST-format files in
DIR, read by gan_jax's own idx loader (the images `gan_jax.main` trains on
with data.source=idx), for --steps steps at --batch_size, seeded by --seed;
then it saves --num_samples samples of the generator in eval mode (BatchNorm's
running statistics) as a float32 [N, 28, 28, 1] .npy in [-1, 1], which
benchmarks/mnist_goal.py scores as it scores gan_jax's runs.
"""

import argparse
import json
import math
import os
import time
import types

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

LEAKY_SLOPE = 0.3  # tf.keras.layers.LeakyReLU's default


class DCGANGenerator(nn.Module):
  """Dense 7*7*256, BN, LReLU, ConvT 128 5x5 s1, BN, LReLU, ConvT 64 5x5 s2,
  BN, LReLU, ConvT 1 5x5 s2, tanh; no biases (the tutorial's generator)."""

  def __init__(self, latent_dim: int = 100, channels: int = 1):
    super().__init__()
    bn = dict(momentum=0.01, eps=1e-3)  # Keras momentum 0.99
    self.dense = nn.Linear(latent_dim, 7 * 7 * 256, bias=False)
    self.bn0 = nn.BatchNorm1d(7 * 7 * 256, **bn)
    self.conv1 = nn.ConvTranspose2d(256, 128, 5, 1, padding=2, bias=False)
    self.bn1 = nn.BatchNorm2d(128, **bn)
    self.conv2 = nn.ConvTranspose2d(128, 64, 5, 2, padding=2, output_padding=1,
                                    bias=False)
    self.bn2 = nn.BatchNorm2d(64, **bn)
    self.conv3 = nn.ConvTranspose2d(64, channels, 5, 2, padding=2,
                                    output_padding=1, bias=False)

  def forward(self, z):
    x = F.leaky_relu(self.bn0(self.dense(z)), LEAKY_SLOPE)
    x = x.view(-1, 256, 7, 7)
    x = F.leaky_relu(self.bn1(self.conv1(x)), LEAKY_SLOPE)
    x = F.leaky_relu(self.bn2(self.conv2(x)), LEAKY_SLOPE)
    return torch.tanh(self.conv3(x))


class DCGANDiscriminator(nn.Module):
  """Conv 64 5x5 s2, LReLU, Dropout .3, Conv 128 5x5 s2, LReLU, Dropout .3,
  Dense 1 (the tutorial's discriminator)."""

  def __init__(self, channels: int = 1):
    super().__init__()
    self.conv1 = nn.Conv2d(channels, 64, 5, 2, padding=2)
    self.conv2 = nn.Conv2d(64, 128, 5, 2, padding=2)
    self.dense = nn.Linear(7 * 7 * 128, 1)

  def forward(self, x):
    x = F.dropout(F.leaky_relu(self.conv1(x), LEAKY_SLOPE), 0.3, self.training)
    x = F.dropout(F.leaky_relu(self.conv2(x), LEAKY_SLOPE), 0.3, self.training)
    return self.dense(x.flatten(1))[:, 0]


def mlp(inputs: int, width: int, depth: int, outputs: int) -> nn.Module:
  layers, size = [], inputs
  for _ in range(depth):
    layers += [nn.Linear(size, width), nn.ReLU()]
    size = width
  return nn.Sequential(*layers, nn.Linear(size, outputs))


def ring8_batch(batch: int) -> torch.Tensor:
  """8 Gaussians on the unit circle, std 0.01 (PacGAN's ring)."""
  angles = 2 * math.pi * torch.randint(0, 8, (batch,)) / 8
  centres = torch.stack([torch.cos(angles), torch.sin(angles)], 1)
  return centres + 0.01 * torch.randn(batch, 2)


def dcgan_step(g, d, g_opt, d_opt, images, batch: int, latent: int,
               reuse_fake: bool = False):
  """One discriminator and one generator update, non-saturating loss; with
  `reuse_fake`, G is forwarded once and its output serves both updates, as
  the PyTorch DCGAN tutorial steps."""
  real = images[torch.randint(0, images.shape[0], (batch,))].float() / 127.5 - 1
  if reuse_fake:
    fake = g(torch.randn(batch, latent))
    fake_for_d = fake.detach()
  else:
    with torch.no_grad():
      fake_for_d = g(torch.randn(batch, latent))
  d_loss = (F.softplus(-d(real)).mean() + F.softplus(d(fake_for_d)).mean())
  d_opt.zero_grad(set_to_none=True)
  d_loss.backward()
  d_opt.step()
  if not reuse_fake:
    fake = g(torch.randn(batch, latent))
  g_loss = F.softplus(-d(fake)).mean()
  g_opt.zero_grad(set_to_none=True)
  g_loss.backward()
  g_opt.step()


def wgan_gp_step(g, d, g_opt, d_opt, batch: int, d_steps: int,
                 gp_weight: float):
  """`d_steps` critic updates with gradient penalty, one generator update
  (Gulrajani et al. 2017, Algorithm 1)."""
  for _ in range(d_steps):
    real = ring8_batch(batch)
    with torch.no_grad():
      fake = g(torch.randn(batch, 2))
    eps = torch.rand(batch, 1)
    mixed = (eps * real + (1 - eps) * fake).requires_grad_(True)
    grads, = torch.autograd.grad(d(mixed).sum(), mixed, create_graph=True)
    penalty = ((grads.norm(dim=1) - 1) ** 2).mean()
    d_loss = d(fake).mean() - d(real).mean() + gp_weight * penalty
    d_opt.zero_grad(set_to_none=True)
    d_loss.backward()
    d_opt.step()
  g_loss = -d(g(torch.randn(batch, 2))).mean()
  g_opt.zero_grad(set_to_none=True)
  g_loss.backward()
  g_opt.step()


def dcgan(images: torch.Tensor, batch: int, reuse_fake: bool = False):
  """(generator, the dcgan workload's step as a no-argument function) on uint8
  [N, 1, 28, 28] `images`."""
  g, d = DCGANGenerator(), DCGANDiscriminator()
  adam = dict(lr=2e-4, betas=(0.5, 0.999))
  g_opt, d_opt = (torch.optim.Adam(g.parameters(), **adam),
                  torch.optim.Adam(d.parameters(), **adam))
  return g, lambda: dcgan_step(g, d, g_opt, d_opt, images, batch, 100,
                               reuse_fake)


WORKLOADS = ('dcgan', 'dcgan_tutorial', 'wgan_gp_toy')


def build(workload: str, batch: int):
  """The workload's step as a no-argument function."""
  if workload in ('dcgan', 'dcgan_tutorial'):
    return dcgan(torch.randint(0, 256, (1024, 1, 28, 28), dtype=torch.uint8),
                 batch, reuse_fake=workload == 'dcgan_tutorial')[1]
  g, d = mlp(2, 512, 3, 2), mlp(2, 512, 3, 1)
  d_forward = d.forward
  d.forward = lambda x: d_forward(x)[:, 0]
  adam = dict(lr=1e-3, betas=(0.5, 0.9))
  g_opt, d_opt = (torch.optim.Adam(g.parameters(), **adam),
                  torch.optim.Adam(d.parameters(), **adam))
  return lambda: wgan_gp_step(g, d, g_opt, d_opt, batch, 5, 0.1)


def train_mnist(directory: str, steps: int, batch: int, num_samples: int,
                out: str) -> dict:
  """Trains the dcgan workload on the MNIST files of `directory`; saves
  `num_samples` samples to `out`."""
  from gan_jax import data  # noqa: PLC0415 (the repository's loader)
  source = data.load(types.SimpleNamespace(name='mnist', source='idx',
                                           path=directory))
  images, description = source.arrays['images'], source.description
  g, step = dcgan(torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(),
                  batch)
  start = time.perf_counter()
  for _ in range(steps):
    step()
  seconds = time.perf_counter() - start
  g.eval()
  with torch.no_grad():
    samples = torch.cat([g(torch.randn(500, 100))
                         for _ in range(math.ceil(num_samples / 500))])
  samples = samples[:num_samples].permute(0, 2, 3, 1).numpy().astype(np.float32)
  os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
  np.save(out, samples)
  return {'data': description, 'out': out, 'num_samples': num_samples,
          'train_seconds': seconds}


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--workload', choices=WORKLOADS, default='dcgan')
  parser.add_argument('--train_mnist', default='',
                      help='train the dcgan workload on the MNIST files of'
                      ' this directory and save samples to --out')
  parser.add_argument('--out', default='peer_mnist.npy')
  parser.add_argument('--num_samples', type=int, default=10_000)
  parser.add_argument('--seed', type=int, default=0)
  parser.add_argument('--steps', type=int, default=20)
  parser.add_argument('--warmup', type=int, default=3)
  parser.add_argument('--batch_size', type=int, default=256)
  parser.add_argument('--threads', type=int, default=2)
  args = parser.parse_args()
  torch.set_num_threads(args.threads)
  torch.manual_seed(args.seed)
  if args.train_mnist:
    print(json.dumps({
        **train_mnist(args.train_mnist, args.steps, args.batch_size,
                      args.num_samples, args.out),
        'steps': args.steps, 'batch_size': args.batch_size, 'seed': args.seed,
        'threads': torch.get_num_threads(), 'torch': torch.__version__,
    }, sort_keys=True))
    return
  step = build(args.workload, args.batch_size)
  for _ in range(args.warmup):
    step()
  start = time.perf_counter()
  for _ in range(args.steps):
    step()
  seconds = time.perf_counter() - start
  print(json.dumps({
      'workload': args.workload, 'steps_per_s': args.steps / seconds,
      'examples_per_s': args.steps * args.batch_size / seconds,
      'steps': args.steps, 'seconds': seconds, 'batch_size': args.batch_size,
      'threads': torch.get_num_threads(), 'torch': torch.__version__,
  }, sort_keys=True))


if __name__ == '__main__':
  main()
