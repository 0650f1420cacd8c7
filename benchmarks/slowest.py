"""The experiment of the least efficient bfloat16 step in benchmarks/accelerator.sh's runs.

  python benchmarks/slowest.py runs/accelerator/bench.jsonl 2048

Reads the `gan_jax.bench` JSON lines, keeps the bfloat16 ones at the given
batch, and prints the --config of the one with the lowest `mfu` (or, where
the chip's peak is unknown, the lowest TFLOP/s): the step to profile. The
DCGAN's when there is no such line (or no file: every bench failed).
"""

import json
import sys

CONFIG_OF_MODEL = {'dcgan': 'experiments/mnist.py:tutorial',
                   'resnet': 'experiments/cifar10_sngan.py'}


def slowest(lines: list[str], batch: int) -> str:
  """The --config of the least efficient bfloat16 step at `batch`."""
  rows = [json.loads(line) for line in lines if line.strip()]
  rows = [r for r in rows if r['dtype'] == 'bfloat16' and r['batch_size'] == batch]
  if not rows:
    return CONFIG_OF_MODEL['dcgan']
  least = min(rows, key=lambda r: r['mfu'] if r['mfu'] is not None else r['tflops_per_s'])
  return CONFIG_OF_MODEL[least['model']]


if __name__ == '__main__':
  try:
    with open(sys.argv[1]) as f:
      lines = f.readlines()
  except FileNotFoundError:
    lines = []
  print(slowest(lines, int(sys.argv[2])))
