"""The commands as a user runs them: artifacts of a run, samples, and bad input."""

import json
import os
import socket

import numpy as np
from PIL import Image
import pytest

from gan_jax import data
from gan_jax import losses
from gan_jax import models
from gan_jax import step as step_lib
from tests.helpers import REPO
from tests.helpers import TINY_TOY
from tests.helpers import TINY_TRAIN
from tests.helpers import assert_one_line_error
from tests.helpers import read_events
from tests.helpers import run
from tests.helpers import snapshot
from tests.helpers import write_idx_images


@pytest.fixture(scope='module')
def mnist_run(tmp_path_factory):
  """A 4-step DCGAN run on tiny idx data through the real command."""
  base = tmp_path_factory.mktemp('cli')
  idx = base / 'idx'
  idx.mkdir()
  write_idx_images(str(idx / 't10k-images-idx3-ubyte.gz'),
                   np.random.default_rng(0).integers(0, 256, (40, 28, 28)))
  workdir = str(base / 'run')
  proc = run('gan_jax.main', '--config=experiments/mnist.py', f'--workdir={workdir}',
             '--config.data.source=idx', f'--config.data.path={idx}',
             '--config.train.batch_size=8', *TINY_TRAIN)
  assert proc.returncode == 0, proc.stderr[-3000:]
  return workdir, proc.stderr


def test_a_run_leaves_every_artifact(mnist_run):
  workdir, log = mnist_run
  assert 'step 4/4 |' in log and 'steps/s | ETA' in log and 'g_loss' in log
  assert 'test split: no train file found' in log
  assert sorted(os.listdir(os.path.join(workdir, 'checkpoints'))) == ['2', '4']
  for step in (2, 4):
    grid = Image.open(os.path.join(workdir, 'samples', f'step_{step}.png'))
    assert grid.size == (8 * 30 + 2, 8 * 30 + 2)  # 8x8 grid of 28x28, 2px gaps
  with open(os.path.join(workdir, 'config.json')) as f:
    config = json.load(f)
  assert config['loss']['name'] == 'hinge' and config['train']['d_steps'] == 1
  with open(os.path.join(workdir, 'results.json')) as f:
    results = json.load(f)
  assert results['status'] == 'finished' and results['final_step'] == 4
  # The default's lazy R1 penalty is logged beside the losses and dynamics.
  assert set(results['losses']) == {'d_loss', 'g_loss', 'r1', *step_lib.DYNAMICS}
  assert results['num_seeds'] == 1 and results['seeds'] == [0]
  assert results['losses_per_seed'] == [{'seed': 0, **results['losses']}]
  assert results['wall_time_s'] > 0 and results['steps_per_s'] > 0
  machine = results['machine']  # what the timings were measured on
  assert machine['device_kind'] == 'cpu' and machine['cpu_cores'] == os.cpu_count()
  assert machine['cpu'] and isinstance(machine['cpu'], str)
  [events] = [f for f in os.listdir(workdir) if f.startswith('events.out.tfevents')]
  scalars, images = read_events(os.path.join(workdir, events))
  assert [step for step, _ in scalars['g_loss']] == [2, 4]
  assert 'steps_per_s' in scalars and images['samples'] == [2, 4]


def test_sample_is_deterministic_per_seed(mnist_run, tmp_path):
  workdir, _ = mnist_run
  outputs = {}
  for name, seed in (('a', 3), ('b', 3), ('c', 4)):
    out = str(tmp_path / f'{name}.npy')
    proc = run('gan_jax.sample', f'--workdir={workdir}', '--num=10',
               f'--out={out}', f'--seed={seed}')
    assert proc.returncode == 0, proc.stderr[-3000:]
    outputs[name] = np.load(out)
  assert outputs['a'].shape == (10, 28, 28, 1) and outputs['a'].dtype == np.float32
  assert np.all(np.abs(outputs['a']) <= 1.0)
  np.testing.assert_array_equal(outputs['a'], outputs['b'])
  assert not np.allclose(outputs['a'], outputs['c'])


def test_toy_run_in_the_default_workdir_then_resume_and_sample(tmp_path):
  config = os.path.join(REPO, 'experiments', 'ring8.py')
  proc = run('gan_jax.main', f'--config={config}', *TINY_TOY, cwd=str(tmp_path))
  assert proc.returncode == 0, proc.stderr[-3000:]
  workdir = tmp_path / 'runs' / 'ring8'
  assert (workdir / 'samples' / 'step_4.png').exists()
  assert Image.open(workdir / 'samples' / 'step_4.png').size == (512, 512)

  proc = run('gan_jax.main', f'--config={config}', *TINY_TOY,
             '--config.train.num_steps=6', cwd=str(tmp_path))
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert 'resumed from' in proc.stderr
  assert json.loads((workdir / 'results.json').read_text())['resumed_from'] == 4

  proc = run('gan_jax.sample', f'--workdir={workdir}', '--num=2500',
             f'--out={tmp_path / "s.npy"}')
  assert proc.returncode == 0, proc.stderr[-3000:]
  points = np.load(tmp_path / 's.npy')
  assert points.shape == (2500, 2) and points.dtype == np.float32
  assert_one_line_error(
      run('gan_jax.sample', f'--workdir={workdir}', '--num=5', '--seed_index=1',
          f'--out={tmp_path / "x.npy"}'),
      '--seed_index=1 is out of range', 'num_seeds=1; valid: 0')


BAD_CONFIGS = [
    (['--config.loss.name=no_such_loss'], ['loss.name', ', '.join(losses.LOSSES)]),
    (['--config.model.name=no_such_model'], ['model.name', ', '.join(models.MODELS)]),
    (['--config.data.name=no_such_data'], ['data.name', ', '.join(data.DATASETS)]),
    (['--config.train.foo=1'], ['unknown config key', 'batch_size', 'num_steps']),
    (['--config.train.num_steps=abc'], ['num_steps', 'abc']),
    (['--config.optim.d_lr=-0.1'], ['optim.d_lr', '> 0']),
    (['--config.train.num_steps=0'], ['train.num_steps', '> 0']),
    (['--config.data.source=idx'], ['data.source', 'toy']),
]


@pytest.mark.parametrize('flags,fragments', BAD_CONFIGS)
def test_bad_config_is_one_line_error(flags, fragments, tmp_path):
  proc = run('gan_jax.main', '--config=experiments/ring8.py',
             f'--workdir={tmp_path / "w"}', *flags)
  assert_one_line_error(proc, *fragments)
  assert not (tmp_path / 'w').exists()


def test_missing_config_file_and_missing_data_dir_are_one_line_errors(tmp_path):
  assert_one_line_error(run('gan_jax.main', '--config=experiments/nope.py'),
                        'experiments/nope.py')
  proc = run('gan_jax.main', '--config=experiments/mnist.py',
             f'--workdir={tmp_path / "w"}', '--config.data.source=idx',
             '--config.data.path=/no/such/dir')
  assert_one_line_error(proc, "data.path='/no/such/dir' does not exist",
                        'idx3-ubyte')


def test_batch_that_does_not_divide_across_devices(tmp_path):
  proc = run('gan_jax.main', '--config=experiments/ring8.py',
             f'--workdir={tmp_path / "w"}', '--config.train.batch_size=6',
             devices=4)
  assert_one_line_error(proc, 'train.batch_size=6', '4 devices', 'multiple of 4')


def _dns_works() -> bool:
  try:
    socket.getaddrinfo('storage.googleapis.com', 443)
    return True
  except OSError:
    return False


@pytest.mark.skipif(_dns_works(), reason='has network: TFDS would download MNIST')
def test_offline_tfds_says_how_to_use_local_files(tmp_path):
  proc = run('gan_jax.main', '--config=experiments/mnist.py',
             f'--workdir={tmp_path / "w"}',
             f'--config.data.tfds_data_dir={tmp_path / "tfds"}')
  assert_one_line_error(proc, 'mnist', '--config.data.source=idx',
                        '--config.data.path=DIR')


def test_a_checkpoint_that_does_not_fit_is_refused_and_left_alone(tmp_path):
  workdir = str(tmp_path / 'w')
  proc = run('gan_jax.main', '--config=experiments/ring8.py',
             f'--workdir={workdir}', *TINY_TOY)
  assert proc.returncode == 0, proc.stderr[-3000:]
  before = snapshot(workdir)
  # Allowed to differ from config.json (test_robustness: refused unless
  # allowed), the model must still fit the checkpoint.
  proc = run('gan_jax.main', '--config=experiments/ring8.py',
             f'--workdir={workdir}', *TINY_TOY, '--config.model.width=64',
             '--config.train.num_steps=8', '--allow_config_change=model.width')
  assert_one_line_error(proc, 'does not fit', 'shape', 'new --workdir')
  assert snapshot(workdir) == before


def test_sample_without_a_checkpoint_is_one_line_error(tmp_path):
  assert_one_line_error(
      run('gan_jax.sample', f'--workdir={tmp_path}', '--num=5',
          f'--out={tmp_path / "x.npy"}'), 'no config.json')
  assert_one_line_error(run('gan_jax.evaluate', f'--workdir={tmp_path}'),
                        'no config.json')
  (tmp_path / 'config.json').write_text(json.dumps({'data': {'name': 'ring8'}}))
  assert_one_line_error(
      run('gan_jax.sample', f'--workdir={tmp_path}', '--num=5',
          f'--out={tmp_path / "x.npy"}'), 'no checkpoint')
  assert_one_line_error(
      run('gan_jax.sample', f'--workdir={tmp_path}', '--num=0',
          f'--out={tmp_path / "x.npy"}'), '--num=0')
