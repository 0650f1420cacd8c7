"""Every model and loss gives the same state on one and four devices (a
contract of tests/test_contracts.py, in its own file so that pytest's workers
share them)."""

import json
import subprocess
import sys

from gan_jax import losses
from gan_jax import models
from tests.helpers import REPO
from tests.helpers import command_env


def test_every_model_and_loss_gives_the_same_state_on_one_and_four_devices():
  """Covers each model's BatchNorm over the data axis and each loss's batch
  means over the global batch (a relativistic loss on device-local means
  would differ): one step of each, in a process with 4 forced CPU devices
  (tests/device_runs.py). The DCGAN runs with every stabiliser; its plain
  run on 1 and 4 devices is tests/test_parallel.py's. Each loss's step (its
  own D steps and penalties) also changes both players, all finite."""
  result = subprocess.run(
      [sys.executable, '-m', 'tests.device_runs', 'components'], cwd=REPO,
      env=command_env(4), capture_output=True, text=True, timeout=600,
      check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  out = json.loads(result.stdout.strip().splitlines()[-1])
  differences = out['differences']
  expected = ({f'model:{n}' for n in models.MODELS if n != 'dcgan'}
              | {f'loss:{n}' for n in losses.LOSSES} | {'stabilisers:dcgan'})
  assert set(differences) == expected
  # Float32 summation order only; a loss averaged wrongly is off by ~100 %.
  assert max(differences.values()) < 1e-4, differences
  assert set(out['losses']) == set(losses.LOSSES)
  for name, step in out['losses'].items():
    assert step['g_changed'] and step['d_changed'] and step['finite'], (name, step)
    assert step['d_updates'] == losses.LOSSES[name].d_steps, (name, step)
    penalties = {losses.PENALTIES[p].metric for p in losses.LOSSES[name].penalties}
    assert penalties <= set(step['metrics']), (name, step)
