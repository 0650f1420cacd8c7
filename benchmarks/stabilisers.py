"""Each stabiliser's cost per step against the plain step, in one process.

  python benchmarks/stabilisers.py                       # the DCGAN on MNIST, batch 64
  python benchmarks/stabilisers.py --steps=32 --rounds=5

Builds, as `gan_jax.bench` does (synthetic data of the dataset's shape), the
run of --config with no stabiliser and one run per stabiliser in
`STABILISERS`. It compiles them all, then times them in alternating bursts of
--steps steps for --rounds rounds, so that whatever else the machine does
falls on all of them alike. --steps is a multiple of 16, so that a burst
holds whole periods of lazy R1. A cost is the median over the rounds of
(time per step / the plain step's in the same round) - 1. The last line
printed is one JSON object.
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

# name: (config overrides, its target cost per step)
STABILISERS = {
    'spectral_norm': ({'model.spectral_norm': True}, 0.10),
    'r1': ({'loss.r1_weight': 10.0}, 0.60),
    'r1_lazy16': ({'loss.r1_weight': 10.0, 'loss.reg_every': 16}, 0.15),
    'g_ema': ({'optim.g_ema_decay': 0.999}, 0.05),
}


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--config', default='experiments/mnist.py:tutorial')
  parser.add_argument('--batch', type=int, default=64)
  parser.add_argument('--steps', type=int, default=16, help='steps per burst')
  parser.add_argument('--rounds', type=int, default=3)
  args = parser.parse_args()
  if args.steps % 16:
    parser.error(f'--steps={args.steps} is invalid; use a multiple of 16')
  path = os.path.join(REPO, args.config)
  base = {'train.batch_size': args.batch}
  steppers = {'plain': bench.Stepper(analysis.experiment_config(path, base))}
  for name, (overrides, _) in STABILISERS.items():
    steppers[name] = bench.Stepper(analysis.experiment_config(
        path, {**base, **overrides}))
  for stepper in steppers.values():
    stepper.run(2)  # warm up
  seconds = {name: [] for name in steppers}  # per step
  for round_index in range(args.rounds):
    for name, stepper in steppers.items():
      seconds[name].append(stepper.run(args.steps) / args.steps)
    print(f'round {round_index + 1}: ' + ', '.join(
        f'{n} {1 / s[-1]:.2f}' for n, s in seconds.items()) + ' steps/s',
          flush=True)
  result = {'config': args.config, 'batch': args.batch, 'steps': args.steps,
            'rounds': args.rounds, **steppers['plain'].describe(),
            'plain_steps_per_s': 1 / statistics.median(seconds['plain']),
            'stabilisers': {}}
  for name, (overrides, target) in STABILISERS.items():
    cost = statistics.median(a / b - 1 for a, b in zip(
        seconds[name], seconds['plain'], strict=True))
    result['stabilisers'][name] = {
        'overrides': overrides, 'cost': cost, 'target': target,
        'steps_per_s': 1 / statistics.median(seconds[name]),
        'compile_s': steppers[name].compile_s}
    print(f'{name}: {cost:+.1%} per step (target <= {target:.0%})', flush=True)
  print(json.dumps(result, sort_keys=True))


if __name__ == '__main__':
  main()
