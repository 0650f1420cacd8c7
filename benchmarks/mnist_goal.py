"""The MNIST goal: experiments/mnist.py's defaults against the PyTorch
peer, both trained 1,500 steps at batch 64 on the same offline digits and
scored by the same evaluator in one process.

  DATA=../shared/data/mnist   # MNIST-format files (here: the 10k test split)
  python -m gan_jax.classifier --config=experiments/mnist.py \
      --config.data.source=idx --config.data.path=$DATA          # once
  python -m gan_jax.main --config=experiments/mnist.py --config.data.source=idx \
      --config.data.path=$DATA --config.train.num_steps=1500 --config.num_seeds=3 \
      --workdir=runs/mnist_goal_gan_jax
  for s in 0 1 2; do python benchmarks/torch_peer.py --train_mnist=$DATA \
      --steps=1500 --batch_size=64 --seed=$s --threads=1 \
      --out=runs/mnist_goal_peer/seed_$s.npy; done
  python benchmarks/mnist_goal.py --data=$DATA --run=runs/mnist_goal_gan_jax \
      --peer=runs/mnist_goal_peer [--inception_num=2000]

Every set is scored by the `classifier` evaluator of gan_jax (the project's
LeNet: FID in its feature space, precision/recall, density/coverage against
real training digits, and the share of the most frequent digit). gan_jax's
members are sampled as `gan_jax.evaluate` samples them (the averaged
generator, and with --raw too the raw one, from the same runs); the peer's
samples are its .npy files. --inception_num adds Inception FID against every
digit of --data at that many samples (slow on a CPU: ~13 images/s). Every
set's Inception features are cached by content (inception.cached_features), so
a second scoring of the same samples reads them back.

Prints a markdown table (mean ± std over seeds, and the worst seed) and the
goals, each met or missed; --out writes every figure as JSON.
"""

import argparse
import glob
import json
import os

import numpy as np

from gan_jax import analysis
from gan_jax import configs
from gan_jax import data
from gan_jax import evaluators
from gan_jax import fid
from gan_jax import runs

# (figure, column, whether lower is better)
COLUMNS = (('fid_lenet', 'FID (LeNet)', True), ('precision', 'precision', False),
           ('recall', 'recall', False), ('density', 'density', False),
           ('coverage', 'coverage', False),
           ('top_class_share', 'top digit share', True))
INCEPTION = ('fid_inception', 'FID (Inception)', True)
# The goals against the peer's means.
FID_RATIO_GOAL = 0.65
TOP_SHARE_GOAL = 0.15


def score_sets(sets: dict[str, list[np.ndarray]], data_path: str,
               inception_num: int) -> dict[str, list[dict]]:
  """{system: [figures of each seed's samples]}."""
  config = analysis.experiment_config('experiments/mnist.py', {
      'data.source': 'idx', 'data.path': data_path})
  score = evaluators.build(('classifier',), config, data.load(config.data))
  if inception_num:
    from gan_jax import inception  # noqa: PLC0415
    weights = inception.load('')
    reference = fid.read_set(f'mnist:idx:{data_path}', None)
  scores = {}
  for system, seeds in sets.items():
    scores[system] = []
    for samples in seeds:
      figures = score(samples)
      if inception_num:
        figures['fid_inception'] = fid.compare(
            reference, samples[:inception_num], weights,
            what=(f'mnist:idx:{data_path}', system), cached=(True, True))['fid']
      scores[system].append(figures)
  return scores


def summary(values: list[float], lower_is_better: bool) -> str:
  worst = max(values) if lower_is_better else min(values)
  spread = f' ± {np.std(values, ddof=1):.3g}' if len(values) > 1 else ''
  return f'{np.mean(values):.3g}{spread} ({worst:.3g})'


def table(scores: dict[str, list[dict]]) -> str:
  columns = COLUMNS + ((INCEPTION,) if 'fid_inception' in
                       next(iter(scores.values()))[0] else ())
  lines = ['| system | seeds | ' + ' | '.join(c[1] for c in columns) + ' |',
           '|---|---|' + '---|' * len(columns)]
  for system, seeds in scores.items():
    cells = [summary([s[key] for s in seeds], lower) for key, _, lower in columns]
    lines.append(f'| {system} | {len(seeds)} | ' + ' | '.join(cells) + ' |')
  return '\n'.join(lines)


def goals(ours: list[dict], peer: list[dict]) -> list[tuple[str, bool]]:
  """The MNIST goals for our seeds against the peer's: (line, met)."""
  mean = lambda seeds, key: float(np.mean([s[key] for s in seeds]))  # noqa: E731
  ratio = mean(ours, 'fid_lenet') / mean(peer, 'fid_lenet')
  top = max(s['top_class_share'] for s in ours)
  return [
      (f'mean FID (LeNet) {ratio:.2f}x the peer\'s (goal: at most'
       f' {FID_RATIO_GOAL}x)', ratio <= FID_RATIO_GOAL),
      *[(f'mean {key} {mean(ours, key):.3f} vs the peer\'s {mean(peer, key):.3f}'
         ' (goal: above)', mean(ours, key) > mean(peer, key))
        for key in ('recall', 'coverage')],
      (f'the most frequent digit at most {top:.1%} of a seed\'s samples (goal:'
       f' at most {TOP_SHARE_GOAL:.0%} on every seed)', top <= TOP_SHARE_GOAL),
  ]


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--data', required=True, help='MNIST-format files')
  parser.add_argument('--run', required=True, help='gan_jax run (its members)')
  parser.add_argument('--peer', required=True,
                      help='directory of the peer\'s seed_*.npy samples')
  parser.add_argument('--raw', action='store_true',
                      help='score the run\'s raw generator too')
  parser.add_argument('--inception_num', type=int, default=0)
  parser.add_argument('--out', default='')
  args = parser.parse_args()
  num = configs.default_config().eval.num_samples
  members = len(configs.seeds(runs.load_run_config(args.run)))
  peer_files = sorted(glob.glob(os.path.join(args.peer, 'seed_*.npy')))
  if not peer_files:
    raise SystemExit(f'{args.peer} holds no seed_*.npy files of the peer')
  sets = {'PyTorch peer': [fid.read_set(p, num) for p in peer_files],
          'gan_jax': [fid.read_set(args.run, num, m) for m in range(members)]}
  if args.raw:
    sets['gan_jax, raw G'] = [fid.read_set(args.run, num, m, raw=True)
                              for m in range(members)]
  scores = score_sets(sets, args.data, args.inception_num)
  print(table(scores))
  print()
  for line, met in goals(scores['gan_jax'], scores['PyTorch peer']):
    print(f'- {"met" if met else "MISSED"}: {line}')
  if args.out:
    with open(args.out, 'w') as f:
      json.dump(scores, f, indent=1)


if __name__ == '__main__':
  main()
