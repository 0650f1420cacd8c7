"""The streaming pipeline's loader alone (data.pipeline=stream): examples/s.

  python benchmarks/stream.py --mnist=../shared/data/mnist --dir=/tmp/stream_bench

Writes the MNIST digits as 28x28 grey PNGs, and as 64x64 RGB PNGs (each
digit tinted and resized), prepares both (python -m gan_jax.prepare), then
times data.stream.Stream delivering batches of 64 to the device (decoding
on threads, or in --workers processes) for each: one JSON line per source.
"""

import argparse
import gzip
import json
import os
import time

import numpy as np
from PIL import Image

from gan_jax import configs
from gan_jax import data
from gan_jax import parallel
from gan_jax import prepare


def write_pngs(directory: str, digits: np.ndarray, labels: np.ndarray,
               size: int, rgb: bool) -> None:
  rng = np.random.default_rng(0)
  for i, (digit, label) in enumerate(zip(digits, labels, strict=True)):
    image = Image.fromarray(digit)
    if rgb:
      tint = rng.uniform(0.3, 1.0, 3)
      image = Image.fromarray((np.asarray(image)[..., None] * tint).astype(np.uint8))
    if size != 28:
      image = image.resize((size, size), Image.Resampling.BICUBIC)
    folder = os.path.join(directory, str(label))
    os.makedirs(folder, exist_ok=True)
    image.save(os.path.join(folder, f'{i:05d}.png'))


def examples_per_s(path: str, workers: int, batches: int, batch: int = 64) -> float:
  config = configs.default_config()
  config.data.name, config.data.path = 'folder', path
  source = data.load(config.data, pipeline='stream')
  mesh = parallel.make_mesh()
  with data.stream.Stream(source.examples, 0, 1, batch, mesh, workers) as feed:
    for _ in range(3):  # threads and workers started, first decodes done
      feed.next()[data.stream.BATCHES].block_until_ready()
    start = time.perf_counter()
    for _ in range(batches):
      feed.next()[data.stream.BATCHES].block_until_ready()
    return batches * batch / (time.perf_counter() - start)


def main() -> None:
  parser = argparse.ArgumentParser()
  parser.add_argument('--mnist', default='../shared/data/mnist')
  parser.add_argument('--dir', default='/tmp/stream_bench')
  parser.add_argument('--num', type=int, default=10_000)
  parser.add_argument('--batches', type=int, default=60)
  parser.add_argument('--workers', type=int, nargs='*', default=[0, 2])
  args = parser.parse_args()
  with gzip.open(os.path.join(args.mnist, 't10k-images-idx3-ubyte.gz')) as f:
    digits = np.frombuffer(f.read()[16:], np.uint8).reshape(-1, 28, 28)[:args.num]
  with gzip.open(os.path.join(args.mnist, 't10k-labels-idx1-ubyte.gz')) as f:
    labels = np.frombuffer(f.read()[8:], np.uint8)[:args.num]
  for name, size, rgb in (('png28', 28, False), ('png64rgb', 64, True)):
    folder = os.path.join(args.dir, name)
    if not os.path.isdir(folder):
      write_pngs(folder, digits, labels, size, rgb)
    if not os.path.isdir(folder + '.prepared'):
      prepare.prepare(folder, folder + '.prepared')
    for path in (folder, folder + '.prepared'):
      for workers in args.workers:
        print(json.dumps({'source': os.path.basename(path), 'workers': workers,
                          'examples_per_s': round(examples_per_s(
                              path, workers, args.batches), 1)}), flush=True)


if __name__ == '__main__':
  main()
