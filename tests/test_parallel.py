"""Data parallelism: 1 vs 4 devices, shard_map vs pmap, 1 vs 2 processes agree,
with one seed or several.

JAX fixes its device count when it starts, so each check runs in a subprocess
with `--xla_force_host_platform_device_count`.
"""

import json
import os
import signal
import socket
import subprocess
import sys

import jax
import numpy as np

from gan_jax import configs
from tests.conftest import REPO
from tests.conftest import restored_state

# Trains the tiny DCGAN (batch norm across devices, per-example dropout) in
# one process with 4 CPU devices: seed 0 for 3 steps on 1 device and on 4;
# seeds 0 and 1 for 1 step alone on 1 device, and as one run of two seeds on 4
# -- with the members one after another ('loop', what 'auto' picks for the
# DCGAN on the CPU) and vmapped -- and under pmap. (One step: where Adam's first step, ~ lr * sign(g), flips
# the sign of a round-off-sized gradient, later steps of a seed can differ by
# % between programs, e.g. seed 1 between 1 and 4 devices alone.) Saves each
# member's state as <run>_m<i>.npz (i: member index); prints the metrics.
DEVICE_SCRIPT = r'''
import dataclasses, functools, json, sys
import jax, numpy as np
from gan_jax import configs, data, parallel
from gan_jax import gan as gan_lib
from gan_jax import step as step_lib
from tests.conftest import tiny_image_config

config = configs.resolve(tiny_image_config(sys.argv[1]))
source = data.load(config.data)
gan = gan_lib.build_gan(config, source.example_shape, source.sample_one)
assert gan.seed_batching == 'loop', gan.seed_batching  # 'auto' on the CPU
step_fn = functools.partial(step_lib.train_step_seeds, gan)
vmap_step_fn = functools.partial(step_lib.train_step_seeds,
                                 dataclasses.replace(gan, seed_batching='vmap'))
init = functools.partial(gan_lib.init_states, gan)
out = {}

def save(name, state, metrics):
  """Each member's leaves and metrics."""
  state = jax.device_get(state.replace(key=jax.random.key_data(state.key)))
  for i in range(len(state.step)):
    member = gan_lib.member(state, i)
    np.savez(sys.argv[2] + f'/{name}_m{i}.npz', **{
        jax.tree_util.keystr(p): np.asarray(x)
        for p, x in jax.tree_util.tree_flatten_with_path(member)[0]})
    out[f'{name}_m{i}'] = {k: float(v[i]) for k, v in metrics.items()}

def run_shard_map(devices, runs, step_fn=step_fn):
  mesh = parallel.make_mesh(devices)
  arrays = parallel.replicate(source.arrays, mesh)
  step = parallel.shard_map_step(step_fn, mesh)
  for name, (seeds, steps) in runs.items():
    state = jax.jit(init, out_shardings=parallel.replicated(mesh))(
        np.asarray(seeds, np.int32))
    for _ in range(steps):
      state, metrics = step(state, arrays)
    save(name, state, metrics)

def run_pmap():
  state = parallel.replicate_for_pmap(jax.jit(init)(np.asarray([0, 1], np.int32)))
  arrays = parallel.replicate_for_pmap(source.arrays)
  state, metrics = parallel.pmap_step(step_fn)(state, arrays)
  save('pmap', parallel.unreplicate(state), parallel.unreplicate(metrics))

assert jax.device_count() == 4
run_shard_map(jax.devices()[:1], {'one': ([0], 3), 'seed0_step1': ([0], 1),
                                  'seed1_step1': ([1], 1)})
run_shard_map(jax.devices(), {'four': ([0], 3), 'four_two_seeds': ([0, 1], 1)})
run_shard_map(jax.devices(), {'four_two_seeds_vmap': ([0, 1], 1)}, vmap_step_fn)
run_pmap()
print(json.dumps(out))
'''


def subprocess_env(devices: int) -> dict[str, str]:
  env = dict(os.environ)
  env['XLA_FLAGS'] = f'--xla_force_host_platform_device_count={devices}'
  env['JAX_PLATFORMS'] = 'cpu'
  env['PYTHONPATH'] = REPO
  return env


# The tiny DCGAN's learning rate (tiny_image_config keeps the default).
TINY_LR = max(configs.default_config().optim.g_lr,
              configs.default_config().optim.d_lr)


def assert_state_leaf_close(path: str, actual, desired, steps: int = 3,
                            lr: float = TINY_LR) -> None:
  """Equal up to float32 summation order.

  Adam's moments and the batch-norm statistics are compared tightly against
  their own scale: a gradient averaged wrongly (e.g. summed over devices)
  shows there even though Adam's update is scale-invariant. The parameters
  themselves may differ by up to 2 lr per step where a gradient is round-off
  noise (Adam's first update is ~ lr * sign(g)).
  """
  actual, desired = np.asarray(actual, np.float64), np.asarray(desired, np.float64)
  scale = np.max(np.abs(desired)) if desired.size else 0.0
  if 'params' in path and 'opt_state' not in path:
    atol = 2 * steps * lr
  else:
    atol = 1e-3 * scale + 1e-12
  np.testing.assert_allclose(actual, desired, rtol=1e-4, atol=atol, err_msg=path)


def test_one_and_four_devices_and_pmap_and_two_seeds_agree(tmp_path, idx_dir):
  proc = subprocess.run(
      [sys.executable, '-c', DEVICE_SCRIPT, idx_dir, str(tmp_path)],
      env=subprocess_env(4), cwd=REPO, capture_output=True, text=True,
      timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  metrics = json.loads(proc.stdout.strip().splitlines()[-1])
  # Each run's member against the same seed trained alone on one device.
  same = {'four_m0': ('one_m0', 3),
          'four_two_seeds_m0': ('seed0_step1_m0', 1),
          'four_two_seeds_m1': ('seed1_step1_m0', 1),
          'four_two_seeds_vmap_m0': ('seed0_step1_m0', 1),
          'four_two_seeds_vmap_m1': ('seed1_step1_m0', 1),
          'pmap_m0': ('seed0_step1_m0', 1), 'pmap_m1': ('seed1_step1_m0', 1)}
  for name, (reference, steps) in same.items():
    actual, desired = (np.load(tmp_path / f'{n}.npz') for n in (name, reference))
    assert len(desired.files) > 40  # the whole DCGAN state: params, stats, Adam moments
    for path in desired.files:
      assert_state_leaf_close(path, actual[path], desired[path], steps=steps)
    for key, value in metrics[reference].items():
      np.testing.assert_allclose(metrics[name][key], value, rtol=1e-4, atol=1e-5)
  seed0, seed1 = (np.load(tmp_path / f'four_two_seeds_m{i}.npz') for i in (0, 1))
  assert not all(np.allclose(seed0[p], seed1[p]) for p in seed0.files
                 if p.startswith('.g.params'))


def free_port() -> int:
  with socket.socket() as s:
    s.bind(('localhost', 0))
    return s.getsockname()[1]


def test_two_processes_agree_with_one_and_stop_together_on_a_signal(tmp_path):
  """Two processes of 2 devices train as one of 4; a SIGINT to process 1
  reaches process 0 through JAX's preemption service, and both stop after
  the same step with one checkpoint (exit 130 where the signal came, 143 on
  the other)."""
  from tests.test_robustness import LONG_TOY  # noqa: PLC0415
  from tests.test_robustness import finish  # noqa: PLC0415
  from tests.test_robustness import wait_for  # noqa: PLC0415
  multi = str(tmp_path / 'multi')
  port = free_port()
  logs = [None, open(tmp_path / 'process1.log', 'w')]
  workers = [subprocess.Popen(
      [sys.executable, '-m', 'gan_jax.main', *LONG_TOY, f'--workdir={multi}',
       '--config.train.log_every=10', f'--coordinator_address=localhost:{port}',
       '--num_processes=2', f'--process_id={i}'],
      env=subprocess_env(2), cwd=REPO, stderr=subprocess.PIPE if i == 0 else logs[1],
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
      env=subprocess_env(4), cwd=REPO, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  for a, b in zip(jax.tree.leaves(restored_state(single)),
                  jax.tree.leaves(restored_state(multi)), strict=True):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
