"""Every model and loss gives the same state on one and four devices (a
contract of tests/test_contracts.py, in its own file so that pytest's workers
share them)."""

import json
import os
import subprocess
import sys

from gan_jax import losses
from gan_jax import models
from tests.conftest import REPO

# One process with 4 forced CPU devices: one step (D's updates, then G's) of
# every model (at its test shape), of every loss (toy MLP) and of the DCGAN
# with every stabiliser, on 1 device and on 4; prints each case's largest
# relative difference as JSON. (One step:
# Adam's first update is ~lr * sign(gradient), which turns round-off in a
# gradient near 0 into differences of 2 lr that later steps compound.)
DEVICE_SCRIPT = r'''
import functools, json, sys
from gan_jax import runtime
runtime.setup()
import jax
jax.config.update('jax_disable_most_optimizations', True)
import numpy as np
from gan_jax import configs, data, losses, models, parallel
from gan_jax import gan as gan_lib
from gan_jax import step as step_lib
from tests import test_contracts as tc

def run(config, source, devices):
  mesh = parallel.make_mesh(jax.devices()[:devices])
  gan = gan_lib.build_gan(config, source.example_shape, source.sample_one)
  state = gan_lib.fresh_states(gan, [config.seed], mesh)
  step = parallel.shard_map_step(functools.partial(step_lib.train_step_seeds, gan), mesh)
  arrays = parallel.replicate(source.arrays, mesh)
  state, _ = step(state, arrays)
  return jax.device_get(state.replace(key=jax.random.key_data(state.key)))

out = {}
cases = [('model', n, tc._small_run(tc._model_config(n), s.test_shape))
         for n, s in models.MODELS.items()]
cases += [('stabilisers', 'dcgan', tc._small_run(tc._stabilised('dcgan'),
                                                 models.MODELS['dcgan'].test_shape))]
cases += [('loss', n, tc._toy_config(n)) for n in losses.LOSSES]
for kind, name, config in cases:
  config = configs.resolve(config)
  source = (data.load(config.data) if config.data.source == 'toy'
            else data.synthetic(config.data.name, num_images=64))
  one, four = run(config, source, 1), run(config, source, 4)
  # Adam's moments and the collections (BatchNorm statistics), each against
  # the largest value of its kind in the state: a gradient that cancels to
  # round-off in one leaf (a critic's bias) must not dominate. Parameters
  # follow from the moments.
  groups = {}
  for (path, a), b in zip(jax.tree_util.tree_flatten_with_path(one)[0],
                          jax.tree.leaves(four), strict=True):
    path = jax.tree_util.keystr(path)
    if a.dtype.kind == 'f' and '.params' not in path:
      group = next((g for g in ('.mu', '.nu') if g in path), 'collections')
      groups.setdefault(group, []).append((a, b))
  out[f'{kind}:{name}'] = max(
      max(float(np.max(np.abs(a - b))) for a, b in pairs)
      / (max(float(np.max(np.abs(a))) for a, _ in pairs) + 1e-12)
      for pairs in groups.values())
print(json.dumps(out))
'''


def test_every_model_and_loss_gives_the_same_state_on_one_and_four_devices():
  """Covers each model's BatchNorm over the data axis and each loss's batch
  means over the global batch (a relativistic loss on device-local means
  would differ)."""
  env = {**os.environ, 'XLA_FLAGS': '--xla_force_host_platform_device_count=4'}
  result = subprocess.run([sys.executable, '-c', DEVICE_SCRIPT], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=600,
                          check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  differences = json.loads(result.stdout.strip().splitlines()[-1])
  expected = ({f'model:{n}' for n in models.MODELS} | {f'loss:{n}' for n in losses.LOSSES}
              | {'stabilisers:dcgan'})
  assert set(differences) == expected
  # Float32 summation order only; a loss averaged wrongly is off by ~100 %.
  assert max(differences.values()) < 1e-4, differences
