"""Data parallelism: 1 vs 4 devices, shard_map vs pmap, 1 vs 2 processes agree,
with one seed or several.

JAX fixes its device count when it starts, so each check runs in a subprocess
with `--xla_force_host_platform_device_count`.
"""

import json
import os
import signal
import subprocess
import sys

import jax
import numpy as np

from tests.helpers import LONG_TOY
from tests.helpers import REPO
from tests.helpers import command_env
from tests.helpers import finish
from tests.helpers import free_port
from tests.helpers import leaf_difference
from tests.helpers import restored_state
from tests.helpers import wait_for


def test_one_and_four_devices_and_pmap_and_two_seeds_agree(tmp_path, idx_dir):
  proc = subprocess.run(
      [sys.executable, '-m', 'tests.device_runs', 'dcgan', idx_dir,
       str(tmp_path)], env=command_env(4), cwd=REPO, capture_output=True,
      text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  metrics = json.loads(proc.stdout.strip().splitlines()[-1])

  def differences(name: str, reference: str, steps: int) -> list[str]:
    actual, desired = (np.load(tmp_path / f'{n}.npz') for n in (name, reference))
    assert len(desired.files) > 40  # the whole DCGAN state: params, stats, Adam moments
    return [d for path in desired.files
            if (d := leaf_difference(path, actual[path], desired[path], steps))]

  # Each run's member against the same seed trained alone on one device.
  same = {'four_m0': ('one_m0', 3),
          'four_two_seeds_m0': ('seed0_step1_m0', 1),
          'four_two_seeds_m1': ('seed1_step1_m0', 1),
          'four_two_seeds_vmap_m0': ('seed0_step1_m0', 1),
          'four_two_seeds_vmap_m1': ('seed1_step1_m0', 1),
          'pmap_m0': ('seed0_step1_m0', 1), 'pmap_m1': ('seed1_step1_m0', 1)}
  for name, (reference, steps) in same.items():
    assert differences(name, reference, steps) == [], name
    for key, value in metrics[reference].items():
      np.testing.assert_allclose(metrics[name][key], value, rtol=1e-4, atol=1e-5)
  # The bound catches a step that sums the devices' gradients instead of
  # averaging them: every moment of G and D.
  wrong = differences('four_summed_m0', 'seed0_step1_m0', 1)
  assert sum('.mu[' in d or '.nu[' in d for d in wrong) >= 20, wrong
  seed0, seed1 = (np.load(tmp_path / f'four_two_seeds_m{i}.npz') for i in (0, 1))
  assert not all(np.allclose(seed0[p], seed1[p]) for p in seed0.files
                 if p.startswith('.g.params'))


def test_two_processes_agree_with_one_and_stop_together_on_a_signal(tmp_path):
  """Two processes of 2 devices train as one of 4; a SIGINT to process 1
  reaches process 0 through JAX's preemption service, and both stop after
  the same step with one checkpoint (exit 130 where the signal came, 143 on
  the other)."""
  multi = str(tmp_path / 'multi')
  port = free_port()
  logs = [None, open(tmp_path / 'process1.log', 'w')]
  workers = [subprocess.Popen(
      [sys.executable, '-m', 'gan_jax.main', *LONG_TOY, f'--workdir={multi}',
       '--config.train.log_every=10', f'--coordinator_address=localhost:{port}',
       '--num_processes=2', f'--process_id={i}'],
      env=command_env(2), cwd=REPO, stderr=subprocess.PIPE if i == 0 else logs[1],
      text=True) for i in range(2)]
  try:
    wait_for(workers[0], 'step 20/')
    workers[1].send_signal(signal.SIGINT)
    rest = finish(workers[0])
    workers[1].wait(timeout=120)
  finally:
    for w in workers:
      w.kill()
    logs[1].close()
  log1 = (tmp_path / 'process1.log').read_text()
  assert workers[0].returncode == 143, rest[-3000:]
  assert workers[1].returncode == 130, log1[-3000:]
  assert 'process 1 of 2; 2 local of 4 global devices' in log1
  with open(os.path.join(multi, 'results.json')) as f:
    results = json.load(f)
  step = results['final_step']
  assert results['status'] == 'interrupted' and step >= 20
  assert results['processes'] == 2 and results['devices'] == 4
  for log in (rest, log1):
    assert f'at step {step}/' in log and 'Traceback' not in log
  assert os.listdir(os.path.join(multi, 'checkpoints')) == [str(step)]
  # Only process 0 writes logs, pictures and results.
  events = [f for f in os.listdir(multi) if f.startswith('events.out')]
  assert len(events) == 1

  single = str(tmp_path / 'single')
  proc = subprocess.run(
      [sys.executable, '-m', 'gan_jax.main', *LONG_TOY, f'--workdir={single}',
       f'--config.train.num_steps={step}'],
      env=command_env(4), cwd=REPO, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  for a, b in zip(jax.tree.leaves(restored_state(single)),
                  jax.tree.leaves(restored_state(multi)), strict=True):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
