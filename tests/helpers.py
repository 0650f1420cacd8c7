"""What several test files share: tiny configs and data, running commands,
reading runs back. Test files import this module, never each other."""

import contextlib
import gzip
import json
import math
import os
import shlex
import socket
import struct
import subprocess
import sys
import time

import jax
import ml_collections
import numpy as np
from PIL import Image

from gan_jax import configs
from gan_jax import data
from gan_jax import xla_flags
from tests import specs

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REAL_MNIST = os.path.join(os.path.dirname(REPO), 'shared', 'data', 'mnist')

# XLA:CPU flags of the tests and the commands they run: fusions compiled by
# XLA's elemental emitters, not its MLIR fusion emitters. The tests' programs
# are small and their time mostly compilation, which this halves
# (tests.device_runs components: 91 s -> 48 s, 2026-12-07); an optimised
# DCGAN step compiles no faster and runs about 10% slower, so gan_jax's own
# flags (gan_jax/xla_flags.py) leave the default. Only for a jaxlib known to
# have the flag: an unknown flag in XLA_FLAGS aborts the process.
TEST_XLA_FLAGS = (('--xla_cpu_use_fusion_emitters=false',)
                  if xla_flags.jaxlib_is_known() else ())

# ----------------------------------------------------------------- configs


def tiny_toy_config(loss: str = 'non_saturating', dataset: str = 'ring8'):
  """A toy run small enough to compile and train in a few seconds."""
  c = configs.toy_config(dataset)
  c.loss.name = loss
  c.model.width, c.model.depth = 32, 2
  c.train.batch_size = 16
  c.train.num_steps = 6
  c.train.log_every = 2
  c.train.sample_every = 3
  c.train.checkpoint_every = 3
  return c


def tiny_image_config(data_path: str, loss: str = 'non_saturating'):
  """The real DCGAN on tiny idx data with a small batch."""
  c = configs.default_config()
  c.data.source = 'idx'
  c.data.path = data_path
  c.loss.name = loss
  c.train.batch_size = 8
  c.train.num_steps = 4
  c.train.log_every = 2
  c.train.sample_every = 2
  c.train.checkpoint_every = 2
  return c


def toy_config(loss: str) -> ml_collections.ConfigDict:
  """ring8 with a small MLP, one D step; two steps compile and run in about
  a second."""
  config = configs.toy_config('ring8')
  config.loss.name = loss
  config.model.width, config.model.depth = 32, 2
  config.train.batch_size = 16
  config.train.d_steps = 1  # every loss's math, without its extra D steps
  config.eval.evaluators = ''
  return config


def model_config(name: str, spectral_norm: bool = False,
                 paper_widths: bool = False) -> ml_collections.ConfigDict:
  """Model `name` with its narrower test fields (tests/specs.py) unless
  paper_widths."""
  config = configs.default_config()
  config.model.name = name
  config.model.spectral_norm = spectral_norm
  if not paper_widths:
    config.model.update(specs.model(name).fields)
  return config


def stabilised(name: str) -> ml_collections.ConfigDict:
  """Model `name` with every stabiliser on, the penalties on every update:
  R1, R2 (each pack's input gradient, on this device's examples), spectral
  norm (u from the weights alone), G's average and packs of 2 (PacGAN)."""
  config = model_config(name, spectral_norm=True)
  config.model.pack = 2
  config.loss.r1_weight, config.loss.r2_weight = 1.0, 0.5
  config.optim.g_ema_decay = 0.9
  return config


def dataset_for(shape: tuple[int, ...]) -> str:
  """A registered dataset whose examples have `shape` (synthetic data)."""
  for name, spec in data.DATASETS.items():
    if spec.example_shape is not None and tuple(spec.example_shape) == tuple(shape):
      return name
  raise AssertionError(f'no dataset in data.DATASETS has examples of shape'
                       f' {shape}; give the model a test shape one has')


def small_run(config: ml_collections.ConfigDict,
              shape: tuple[int, ...]) -> ml_collections.ConfigDict:
  """`config` on synthetic data of `shape`, batch 8, few steps, no evaluators."""
  config.data.name = dataset_for(shape)
  config.data.source = data.DATASETS[config.data.name].sources[0]
  config.train.batch_size = 8
  config.train.num_steps = 2
  config.train.log_every = config.train.sample_every = 2
  config.train.checkpoint_every = 2
  config.eval.evaluators = ''
  return config


# ----------------------------------------------------------------- states

# The tiny DCGAN's learning rate (tiny_image_config keeps the default).
TINY_LR = max(configs.default_config().optim.g_lr,
              configs.default_config().optim.d_lr)
# How far a leaf of Adam's moments or of the batch-norm statistics may move,
# in norm, relative to its norm, between two summation orders of float32.
NORM_BOUND = 1e-2


def leaf_difference(path: str, actual, desired, steps: int,
                    lr: float = TINY_LR, bound: float = NORM_BOUND) -> str | None:
  """What differs between two runs' leaf at `path` beyond float32 summation
  order, or None.

  The devices sum a gradient in another order than one device does. Each
  element of a sum of n float32 terms then moves by up to ~n·u·Σ|terms|
  (u = 2^-24): for an element whose terms cancel (a gradient that is mostly
  round-off) that is its whole value, whatever the CPU's kernels, so no
  elementwise relative bound holds everywhere. In norm the leaf moves by at
  most ~n·u·‖|terms|‖, which is small unless every element cancels, and
  Adam's first update (~ lr·sign(g)) moves a parameter by at most 2 lr per
  step between two runs. A gradient averaged wrongly (summed over 4 devices:
  the first moment 4x, the second 16x) moves the moments by >= 300 % in norm.
  """
  actual, desired = np.asarray(actual, np.float64), np.asarray(desired, np.float64)
  if 'params' in path and 'opt_state' not in path:
    worst = float(np.max(np.abs(actual - desired), initial=0.0))
    if worst > 2 * steps * lr:
      return f'{path}: a parameter moved by {worst:.3g} > 2 lr x {steps} steps'
    return None
  norm = float(np.linalg.norm(desired))
  moved = float(np.linalg.norm(actual - desired))
  if moved > bound * norm + 1e-12:
    return f'{path}: moved by {moved / (norm or 1):.3g} of its norm'
  return None


# ----------------------------------------------------------------- files


def write_idx_images(path: str, images: np.ndarray) -> None:
  """Writes uint8 [N, H, W] images as an MNIST-format idx3 file (gzip if .gz)."""
  header = struct.pack('>HBB', 0, 0x08, 3) + struct.pack('>III', *images.shape)
  payload = header + images.astype(np.uint8).tobytes()
  opener = gzip.open if path.endswith('.gz') else open
  with opener(path, 'wb') as f:
    f.write(payload)


def write_json(path, obj) -> None:
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, 'w') as f:
    json.dump(obj, f)


def read_json(path) -> dict:
  with open(path) as f:
    return json.load(f)


def snapshot(directory: str) -> dict[str, tuple[int, int]]:
  """Every file below `directory` with its size and modification time."""
  found = {}
  for root, _, names in os.walk(directory):
    for name in names:
      stat = os.stat(os.path.join(root, name))
      found[os.path.join(root, name)] = (stat.st_size, stat.st_mtime_ns)
  return found


# ----------------------------------------------------------------- runs


def read_events(path: str):
  """Scalars and image steps as TensorBoard's own loader reads them."""
  from tensorboard.backend.event_processing import event_file_loader  # noqa: PLC0415
  scalars, images = {}, {}
  for event in event_file_loader.EventFileLoader(path).Load():
    for value in event.summary.value:  # the loader migrates to tensor summaries
      plugin = value.metadata.plugin_data.plugin_name
      if plugin == 'scalars':
        scalars.setdefault(value.tag, []).append(
            (event.step, value.tensor.float_val[0]))
      elif plugin == 'images':
        images.setdefault(value.tag, []).append(event.step)
  return scalars, images


def restored_state(workdir: str):
  """The latest checkpoint of a run as host arrays (the key as raw key data),
  every leaf with the seed axis [num_seeds]."""
  from gan_jax import runs  # noqa: PLC0415
  _, _, state = runs.restore_run(workdir)
  return jax.device_get(state.replace(key=jax.random.key_data(state.key)))


def assert_same_states(a: str, b: str) -> None:
  """The latest checkpoints of the runs in workdirs `a` and `b` are equal, bit
  for bit."""
  for x, y in zip(jax.tree.leaves(restored_state(a)),
                  jax.tree.leaves(restored_state(b)), strict=True):
    np.testing.assert_array_equal(x, y)


# ----------------------------------------------------------------- commands

TINY_TRAIN = ['--config.train.num_steps=4', '--config.train.log_every=2',
              '--config.train.sample_every=2', '--config.train.checkpoint_every=2']
TINY_TOY = ['--config.model.width=32', '--config.model.depth=2',
            '--config.train.batch_size=16', *TINY_TRAIN]
# A tiny toy run that would take hours: it ends by signal. A constant learning
# rate, so that a run of another num_steps computes the same steps.
LONG_TOY = ['--config=experiments/ring8.py', '--config.model.width=32',
            '--config.model.depth=2', '--config.train.batch_size=16',
            '--config.optim.schedule=constant', '--config.eval.evaluators=',
            '--config.train.num_steps=10000000', '--config.train.log_every=50',
            '--config.train.checkpoint_every=100',
            '--config.train.sample_every=10000000']


def free_port() -> int:
  """A TCP port free on loopback now (a coordinator's)."""
  with socket.socket() as s:
    s.bind(('localhost', 0))
    return s.getsockname()[1]


@contextlib.contextmanager
def xla_optimizations():
  """XLA's optimisations on in this process within the block, for programs
  that run long enough for them to pay (tests/conftest.py turns them off)."""
  jax.config.update('jax_disable_most_optimizations', False)
  try:
    yield
  finally:
    jax.config.update('jax_disable_most_optimizations', True)


def command_env(devices: int = 1, optimized: bool = False) -> dict[str, str]:
  """The environment of a command run by a test: this checkout, the CPU,
  `devices` forced CPU devices, XLA's optimisations off unless `optimized`
  (tests/conftest.py says why)."""
  return dict(os.environ, PYTHONPATH=REPO, JAX_PLATFORMS='cpu',
              XLA_FLAGS=' '.join((f'--xla_force_host_platform_device_count={devices}',
                                  *TEST_XLA_FLAGS)),
              JAX_DISABLE_MOST_OPTIMIZATIONS=str(not optimized).lower())


def run(module: str, *args: str, cwd: str = REPO, devices: int = 1):
  """`python -m module args` as a user runs it; its CompletedProcess."""
  return subprocess.run([sys.executable, '-m', module, *args], cwd=cwd,
                        env=command_env(devices), capture_output=True,
                        text=True, timeout=300)


def assert_one_line_error(proc, *fragments: str) -> None:
  """Exit status 1, no traceback, one `error:` line holding every fragment."""
  assert proc.returncode == 1, proc.stderr[-2000:]
  assert 'Traceback' not in proc.stderr, proc.stderr[-2000:]
  errors = [line for line in proc.stderr.splitlines() if line.startswith('error:')]
  assert len(errors) == 1, proc.stderr[-2000:]
  for fragment in fragments:
    assert fragment in errors[0], errors[0]


def start_long_toy(workdir: str, *flags: str, devices: int = 1) -> subprocess.Popen:
  """LONG_TOY in `workdir` as a background command, its stderr piped."""
  return subprocess.Popen(
      [sys.executable, '-m', 'gan_jax.main', *LONG_TOY, f'--workdir={workdir}',
       *flags], cwd=REPO, env=command_env(devices), stderr=subprocess.PIPE,
      text=True)


def wait_for(proc: subprocess.Popen, fragment: str, timeout: float = 240) -> str:
  """The process's stderr up to the first line containing `fragment`."""
  deadline, seen = time.time() + timeout, []
  while time.time() < deadline:
    line = proc.stderr.readline()
    if not line and proc.poll() is not None:
      break
    seen.append(line)
    if fragment in line:
      return ''.join(seen)
  proc.kill()
  raise AssertionError(f'no {fragment!r} in:\n' + ''.join(seen)[-3000:])


def finish(proc: subprocess.Popen, timeout: float = 120) -> str:
  """The rest of the process's stderr once it ends (killed after `timeout`)."""
  try:
    _, rest = proc.communicate(timeout=timeout)
  finally:
    proc.kill()
  return rest



# ----------------------------------------------------------------- hand-made runs


def toy_results(modes, high_quality, reverse_kl, seeds=(0,), status='finished'):
  """A results.json of a finished toy run: one entry per seed."""
  per_seed = [{'seed': s, 'modes': m, 'high_quality': h, 'reverse_kl': r}
              for s, m, h, r in zip(seeds, modes, high_quality, reverse_kl,
                                    strict=True)]
  return {'status': status, 'final_step': 100, 'num_seeds': len(seeds),
          'seeds': list(seeds), 'metrics': per_seed[0] if len(seeds) == 1 else {},
          'metrics_per_seed': per_seed}


def write_sweep(directory) -> None:
  """A hand-made `gan_jax.sweep --sweep=seed=0,1` of ring8's three losses:
  vanilla finished on both seeds (seed 1 without a high-quality sample: NaN
  reverse KL), wgan_gp finished on seed 0 and pending on seed 1,
  non_saturating seed 0 running (config.json, no results.json)."""
  rows = [('vanilla', 0, 'finished'), ('vanilla', 1, 'finished'),
          ('non_saturating', 0, 'incomplete'), ('non_saturating', 1, 'pending'),
          ('wgan_gp', 0, 'finished'), ('wgan_gp', 1, 'pending')]
  figures = {('vanilla', 0): (8, 0.9, 0.01), ('vanilla', 1): (6, 0.0, math.nan),
             ('wgan_gp', 0): (3, 0.5, 1.0)}
  lines = ['loss.name,seed,status,final_step,num_seeds,point']
  for loss, seed, status in rows:
    point = f'loss.name-{loss}_seed-{seed}'
    lines.append(f'{loss},{seed},{status},,1,{point}')
    if status == 'pending':
      continue
    config = {'loss': {'name': loss}, 'seed': seed, 'num_seeds': 1}
    write_json(os.path.join(directory, point, 'config.json'), config)
    if status == 'finished':
      m, h, r = figures[loss, seed]
      write_json(os.path.join(directory, point, 'results.json'),
                 toy_results([m], [h], [r], seeds=[seed]))
  with open(os.path.join(directory, 'summary.csv'), 'w') as f:
    f.write('\n'.join(lines) + '\n')


def write_image_run(workdir, pictures, metrics=None) -> None:
  """A hand-made image run: results.json and samples/<picture>.png files,
  each picture a grey of its own."""
  write_json(os.path.join(workdir, 'results.json'),
             {'status': 'finished', 'final_step': 300, 'metrics': metrics or {}})
  os.makedirs(os.path.join(workdir, 'samples'), exist_ok=True)
  for index, name in enumerate(pictures):
    Image.new('L', (8, 8), 40 * index).save(os.path.join(workdir, 'samples', name))


def write_fid_run(workdir, loss, steps, fids, pictures=()) -> None:
  """A hand-made MNIST run of len(fids) seeds, each member scored as
  `python -m gan_jax.fid ... --member=i > fid_member<i>.json` writes it (an
  empty file for a None: the redirect of a command that failed)."""
  write_image_run(workdir, pictures)
  write_json(os.path.join(workdir, 'results.json'),
             {'status': 'finished', 'final_step': steps, 'num_seeds': len(fids),
              'seeds': list(range(len(fids))), 'metrics': {}})
  write_json(os.path.join(workdir, 'config.json'),
             {'loss': {'name': loss}, 'train': {'num_steps': steps}})
  for member, fid in enumerate(fids):
    with open(os.path.join(workdir, f'fid_member{member}.json'), 'w') as f:
      if fid is not None:
        f.write(json.dumps({'fid': fid, 'kid': fid / 1000, 'kid_std': 0.001,
                            'precision': 0.25, 'recall': 0.5, 'density': 0.2,
                            'coverage': 0.3, 'n_a': 10000, 'n_b': 10000,
                            'weights_hash': '1dd9ccc25932d506'}) + '\n')


# ----------------------------------------------------------------- mounts


def can_mount() -> bool:
  """Whether this machine lets a process mount in a namespace of its own
  (util-linux's unshare): how the tests make a full disk or a read-only
  workdir without touching the machine's own mounts."""
  try:
    return subprocess.run(['unshare', '--mount', '--map-root-user', 'true'],
                          capture_output=True, timeout=30).returncode == 0
  except (OSError, subprocess.TimeoutExpired):
    return False


def run_mounted(mount: str, module: str, *args: str, size: str | None = None,
                read_only: bool = False, after: str = ''):
  """`python -m module args` where `mount` is, for this process only, a
  tmpfs of `size` (a small disk that fills) or a read-only view of itself;
  `after` is a shell command run there once the command ends (e.g. to copy
  out what it left)."""
  if size:
    setup = f'mount -t tmpfs -o size={size} tmpfs {mount}'
  else:
    assert read_only
    setup = f'mount --bind {mount} {mount} && mount -o remount,ro,bind {mount}'
  command = shlex.join([sys.executable, '-m', module, *args])
  script = f'{setup} && {command}; status=$?; {after or "true"}; exit $status'
  return subprocess.run(['unshare', '--mount', '--map-root-user', 'sh', '-c',
                         script], cwd=REPO, env=command_env(),
                        capture_output=True, text=True, timeout=300)
