"""K seeds in one program against one seed at K times the batch, in one process.

  python benchmarks/seeds.py --config=experiments/mnist.py:tutorial --batch=64 --seeds=2,4,8
  python benchmarks/seeds.py --config=experiments/mnist.py:tutorial --batch=64 --seeds=4 \\
      --seed_batching=vmap
  # the toys: K seeds against one seed at the same batch (seed-steps/s)
  python benchmarks/seeds.py --config=experiments/ring8.py --batch=256 --seeds=8 \\
      --same_batch --steps=200

For each K it builds, as `gan_jax.bench` does (synthetic data), the run of K
seeds at batch --batch and the run of one seed at batch K x --batch (or, with
--same_batch, at --batch), compiles both, then times them in alternating
bursts for --rounds rounds, so that whatever else the machine does falls on
both alike. A figure is the median over the rounds of a burst's rate; the
ratio is the median of the rounds' ratios of examples/s (generated examples
in generator updates). The last line printed is one JSON object.
"""

import argparse
import json
import os
import statistics
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from gan_jax import runtime  # noqa: E402

runtime.setup()  # the XLA flag and Threefry lowering the commands use

from gan_jax import analysis  # noqa: E402
from gan_jax import bench  # noqa: E402
from gan_jax.sweep import points as sweep_points  # noqa: E402


def config(path: str, variant: str, overrides: dict):
  """The experiment's config with `overrides` and the --variant's KEY=VALUE."""
  base = analysis.experiment_config(path, overrides)
  return sweep_points.point_config(
      base, sweep_points.parse_point(variant, base, '--variant'))


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--config', required=True)
  parser.add_argument('--batch', type=int, default=64)
  parser.add_argument('--seeds', default='2,4,8', help='comma-separated K')
  parser.add_argument('--seed_batching', default='auto',
                      choices=('auto', 'vmap', 'loop'))
  parser.add_argument('--same_batch', action='store_true',
                      help='one seed at --batch, not K x --batch')
  parser.add_argument('--variant', default='',
                      help='KEY=VALUE,... set on both sides, e.g.'
                      ' train.reuse_fake=False')
  parser.add_argument('--rounds', type=int, default=3)
  parser.add_argument('--steps', type=int, default=0,
                      help='steps per burst of one seed (default: 16/K + 2)')
  args = parser.parse_args()
  path = os.path.join(REPO, args.config)

  result = {'config': args.config, 'batch': args.batch, 'rounds': args.rounds,
            'same_batch': args.same_batch, 'runs': []}
  for k in map(int, args.seeds.split(',')):
    many = bench.Stepper(config(path, args.variant, {
        'train.batch_size': args.batch, 'num_seeds': k,
        'train.seed_batching': args.seed_batching}))
    one_batch = args.batch if args.same_batch else k * args.batch
    one = bench.Stepper(config(path, args.variant,
                               {'train.batch_size': one_batch}))
    steps = args.steps or 16 // k + 2
    sides = {'seeds': (many, k * args.batch), 'one': (one, one_batch)}
    for stepper, _ in sides.values():
      stepper.run(1)  # warm up
    rates = {name: [] for name in sides}  # examples/s
    for round_index in range(args.rounds):
      for name, (stepper, examples) in sides.items():
        rates[name].append(steps * examples / stepper.run(steps))
      print(f'K={k} round {round_index + 1}: {k} seeds'
            f' {rates["seeds"][-1]:.1f}, one seed {rates["one"][-1]:.1f}'
            ' examples/s', flush=True)
    run = {'num_seeds': k, 'seed_batching': many.seed_batching,
           'one_seed_batch': one_batch, 'steps_per_burst': steps,
           'compile_s': {'seeds': many.compile_s, 'one': one.compile_s},
           'examples_per_s': {n: statistics.median(r) for n, r in rates.items()},
           'ratio': statistics.median(
               a / b for a, b in zip(rates['seeds'], rates['one'], strict=True))}
    run['seed_steps_per_s'] = {
        'seeds': run['examples_per_s']['seeds'] / args.batch,
        'one': run['examples_per_s']['one'] / one_batch}
    print(f'K={k} ({many.seed_batching}): {run["examples_per_s"]["seeds"]:.1f}'
          f' against {run["examples_per_s"]["one"]:.1f} examples/s of one seed'
          f' at batch {one_batch}: {run["ratio"]:.2f}x; compile'
          f' {many.compile_s:.1f} s against {one.compile_s:.1f} s', flush=True)
    result['runs'].append(run)
  print(json.dumps(result, sort_keys=True))


if __name__ == '__main__':
  main()
