"""gan_jax against its PyTorch peer, side by side in one process.

  pip install torch   # optional; not a dependency of gan_jax or its tests
  python benchmarks/compare.py --workload=dcgan            # the same math
  python benchmarks/compare.py --workload=dcgan_tutorial   # the tutorial's step
  python benchmarks/compare.py --workload=wgan_gp_toy
  # also gan_jax variants, e.g. the reference transposed convolution:
  python benchmarks/compare.py --workload=dcgan --variant=model.transposed_conv=flax

Both sides are built and warmed up first (gan_jax's compile time is
reported), then timed in alternating bursts for --rounds rounds, so that
whatever else the machine does falls on both alike. PyTorch gets
--threads intra-op threads, and XLA:CPU uses every core it sees (2 here). A
figure is the median over the rounds of a burst's steps/s; the ratio is the
median of the rounds' ratios. The last line printed is one JSON object.
"""

import argparse
import json
import os
import statistics
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from gan_jax import runtime  # noqa: E402

runtime.setup()  # the XLA flag and Threefry lowering the commands use

import torch  # noqa: E402
import torch_peer  # noqa: E402

from gan_jax import analysis  # noqa: E402
from gan_jax import bench  # noqa: E402
from gan_jax.sweep import points as sweep_points  # noqa: E402

# The gan_jax side of each workload: config file and overrides.
WORKLOADS = {
    'dcgan': ('experiments/mnist.py:tutorial', {'train.batch_size': 256,
                                                'train.reuse_fake': False}),
    'dcgan_tutorial': ('experiments/mnist.py:tutorial', {'train.batch_size': 256}),
    'wgan_gp_toy': ('experiments/ring8.py', {
        'loss.name': 'wgan_gp', 'model.width': 512, 'model.depth': 3,
        'train.batch_size': 256, 'train.d_steps': 5, 'loss.gp_weight': 0.1}),
}
DEFAULT_STEPS = {'dcgan': 3, 'dcgan_tutorial': 3, 'wgan_gp_toy': 40}  # per burst


def jax_config(workload: str, variant: str | None):
  """The gan_jax config of `workload`, with a variant's KEY=VALUE,... applied."""
  path, overrides = WORKLOADS[workload]
  config = analysis.experiment_config(os.path.join(REPO, path), overrides)
  return sweep_points.point_config(
      config, sweep_points.parse_point(variant, config, '--variant'))


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--workload', choices=sorted(WORKLOADS), required=True)
  parser.add_argument('--rounds', type=int, default=5)
  parser.add_argument('--steps', type=int, help='steps per burst')
  parser.add_argument('--threads', type=int, default=2)
  parser.add_argument('--variant', action='append', default=[],
                      help='another gan_jax side: KEY=VALUE[,KEY=VALUE...]')
  args = parser.parse_args()
  steps = args.steps or DEFAULT_STEPS[args.workload]
  torch.set_num_threads(args.threads)
  torch.manual_seed(0)

  names = ['gan_jax'] + [f'gan_jax {v}' for v in args.variant]
  sides = {name: bench.Stepper(jax_config(args.workload, variant))
           for name, variant in zip(names, [None] + args.variant, strict=True)}
  torch_step = torch_peer.build(args.workload, 256)

  def run_torch(n: int) -> float:
    start = torch_peer.time.perf_counter()
    for _ in range(n):
      torch_step()
    return torch_peer.time.perf_counter() - start

  runners = {name: stepper.run for name, stepper in sides.items()}
  runners['pytorch'] = run_torch
  for run in runners.values():  # warm up
    run(1)
  rates = {name: [] for name in runners}
  for round_index in range(args.rounds):
    for name, run in runners.items():
      rates[name].append(steps / run(steps))
    print(f'round {round_index + 1}: ' + ', '.join(
        f'{name} {r[-1]:.3f}' for name, r in rates.items()), flush=True)

  result = {'workload': args.workload, 'rounds': args.rounds,
            'steps_per_burst': steps, 'threads': args.threads,
            'torch': torch.__version__, 'steps_per_s': {}, 'ratio_to_pytorch': {},
            'compile_s': {name: s.compile_s for name, s in sides.items()}}
  for name, r in rates.items():
    result['steps_per_s'][name] = statistics.median(r)
    if name != 'pytorch':
      result['ratio_to_pytorch'][name] = statistics.median(
          a / b for a, b in zip(r, rates['pytorch'], strict=True))
  for name in rates:
    ratio = result['ratio_to_pytorch'].get(name)
    print(f'{name:40s} {result["steps_per_s"][name]:8.3f} steps/s'
          + (f'  {ratio:.2f}x PyTorch' if ratio else ''))
  print(json.dumps(result, sort_keys=True))


if __name__ == '__main__':
  main()
