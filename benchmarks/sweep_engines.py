"""The wall time of a ring8 sweep with --engine=ray against --engine=local.

  python benchmarks/sweep_engines.py [--points=4,8,16] [--workdir=runs/bench_sweep]

Each size runs `python -m gan_jax.sweep --config=experiments/ring8.py` (the
config's 10,000 steps) over four losses, times as many seeds as make the
points, with --engine=local, --engine=ray and --engine=ray --pin_cores, each
in a fresh workdir; Ray's local instance is started by the command and
counted in its wall time. Also times Ray's
start-up alone (ray.init + ray.shutdown). Prints a markdown table. Run it
with nothing else on the machine.
"""

import json
import os
import shutil
import subprocess
import sys
import time

from absl import app
from absl import flags

_POINTS = flags.DEFINE_list('points', ['4', '8', '16'], 'Sweep sizes.')
_WORKDIR = flags.DEFINE_string('workdir', 'runs/bench_sweep', 'Scratch space.')
LOSSES = 'vanilla,non_saturating,hinge,least_squares'
ENGINES = {'local': ['--engine=local'], 'ray': ['--engine=ray'],
           'pinned': ['--engine=ray', '--pin_cores']}


def timed(command: list[str]) -> float:
  start = time.perf_counter()
  subprocess.run(command, check=True, stdout=subprocess.DEVNULL,
                 stderr=subprocess.DEVNULL)
  return time.perf_counter() - start


def ray_startup_s() -> float:
  return float(subprocess.run(
      [sys.executable, '-c', 'import time, ray; t = time.perf_counter();'
       ' ray.init(include_dashboard=False); ray.shutdown();'
       ' print(time.perf_counter() - t)'],
      check=True, capture_output=True, text=True).stdout.split()[-1])


def point_walls(workdir: str) -> list[float]:
  walls = []
  for name in sorted(os.listdir(workdir)):
    path = os.path.join(workdir, name, 'results.json')
    if os.path.exists(path):
      with open(path) as f:
        walls.append(json.load(f)['wall_time_s'])
  return walls


def main(argv):
  del argv
  startup = ray_startup_s()
  print(f'Ray start-up (ray.init + shutdown): {startup:.1f} s\n')
  print('| points | local | ray | ray / local | ray --pin_cores | pinned / local |'
        ' mean point wall: local, ray, pinned |')
  print('| --- | --- | --- | --- | --- | --- | --- |')
  for size in map(int, _POINTS.value):
    seeds = ','.join(str(s) for s in range(size // 4))
    walls, means = {}, {}
    for engine, engine_flags in ENGINES.items():
      workdir = os.path.join(_WORKDIR.value, f'{engine}_{size}')
      shutil.rmtree(workdir, ignore_errors=True)
      walls[engine] = timed(
          [sys.executable, '-m', 'gan_jax.sweep', '--config=experiments/ring8.py',
           f'--workdir={workdir}', *engine_flags,
           f'--sweep=loss.name={LOSSES}', f'--sweep=seed={seeds}'])
      point = point_walls(workdir)
      means[engine] = sum(point) / len(point)
    print(f'| {size} | {walls["local"]:.0f} s | {walls["ray"]:.0f} s |'
          f' {walls["ray"] / walls["local"]:.2f}x | {walls["pinned"]:.0f} s |'
          f' {walls["pinned"] / walls["local"]:.2f}x | {means["local"]:.1f},'
          f' {means["ray"]:.1f}, {means["pinned"]:.1f} s |', flush=True)


if __name__ == '__main__':
  app.run(main)
