"""Runs that survive signals, crashes, damaged checkpoints, shared workdirs and
changed configs (the commands as a user runs them, and their building blocks)."""

import errno
import fcntl
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys

import jax
import numpy as np
import pytest

from gan_jax import checkpoints
from gan_jax import evaluate
from gan_jax import files
from gan_jax import gan as gan_lib
from gan_jax import preemption
from gan_jax import runs
from gan_jax import train
from gan_jax import workdir as workdir_lib
from gan_jax.errors import UserError
from tests.helpers import LONG_TOY
from tests.helpers import assert_one_line_error
from tests.helpers import assert_same_states
from tests.helpers import finish
from tests.helpers import read_json
from tests.helpers import run
from tests.helpers import snapshot
from tests.helpers import start_long_toy
from tests.helpers import tiny_toy_config
from tests.helpers import wait_for


def long_toy_config(num_steps: int):
  """LONG_TOY as a config, with `num_steps`."""
  c = tiny_toy_config('vanilla')
  c.optim.schedule = 'constant'
  c.eval.evaluators = ''
  c.train.num_steps = num_steps
  c.train.log_every, c.train.checkpoint_every = 50, 100
  c.train.sample_every = 10_000_000
  return c


# ------------------------------------------------------------- the commands

def test_a_busy_workdir_is_refused_and_sigterm_saves_the_step_reached(tmp_path):
  """A training run on a busy workdir is refused; SIGTERM saves the step
  reached; resuming gives, bit for bit, the run never interrupted."""
  workdir = str(tmp_path / 'run')
  training = start_long_toy(workdir)
  wait_for(training, 'step 200/')
  busy = run('gan_jax.main', *LONG_TOY, f'--workdir={workdir}')
  assert_one_line_error(busy, f'--workdir={workdir} is in use by pid'
                        f' {training.pid} on', 'another --workdir')
  training.send_signal(signal.SIGTERM)
  rest = finish(training)
  assert training.returncode == preemption.EXIT_CODES[signal.SIGTERM] == 143, rest
  assert 'Traceback' not in rest
  [stopped] = [line for line in rest.splitlines() if line.startswith('stopped:')]
  results = read_json(os.path.join(workdir, 'results.json'))
  step = results['final_step']
  assert results['status'] == 'interrupted' and results['signal'] == 'SIGTERM'
  assert results['last_checkpoint'] == step and step >= 200
  assert f'SIGTERM at step {step}/' in stopped and 'resume' in stopped
  assert str(step) in os.listdir(os.path.join(workdir, 'checkpoints'))
  assert not os.path.exists(os.path.join(workdir, workdir_lib.LOCK_FILE))

  resumed = train.train_and_evaluate(long_toy_config(step + 3), workdir)
  assert resumed['resumed_from'] == step and resumed['status'] == 'finished'
  straight = str(tmp_path / 'straight')
  train.train_and_evaluate(long_toy_config(step + 3), straight)
  assert_same_states(straight, workdir)


def test_a_run_of_another_config_is_refused_or_continued_when_allowed(tmp_path):
  workdir = str(tmp_path / 'run')
  config = long_toy_config(3)
  train.train_and_evaluate(config, workdir)
  before = snapshot(workdir)
  proc = run('gan_jax.main', *LONG_TOY, f'--workdir={workdir}',
             '--config.loss.name=wgan_gp', '--config.optim.b1=0.0')
  assert_one_line_error(
      proc, "loss.name='vanilla' there, 'wgan_gp' here", 'optim.b1=0.5 there',
      'new --workdir', '--allow_config_change=loss.name,optim.b1,train.d_steps')
  assert snapshot(workdir) == before

  # Intervals and the length may change; other keys only when named.
  config.train.num_steps, config.train.log_every = 5, 1
  config.optim.g_lr = 1e-4
  with pytest.raises(UserError, match=r'optim.g_lr=0.001 there, 0.0001 here'):
    train.train_and_evaluate(config, workdir)
  results = train.train_and_evaluate(config, workdir,
                                     allow_config_change=('optim.g_lr',))
  assert results['resumed_from'] == 3 and results['final_step'] == 5
  assert read_json(os.path.join(workdir, 'config.json'))['optim']['g_lr'] == 1e-4
  history = read_json(os.path.join(workdir, workdir_lib.HISTORY_FILE))
  assert history == [{'resumed_at_step': 3, 'changes': {
      'optim.g_lr': {'before': 1e-3, 'after': 1e-4},
      'train.log_every': {'before': 50, 'after': 1},
      'train.num_steps': {'before': 3, 'after': 5}}}]
  with pytest.raises(UserError, match='unknown config key'):
    train.train_and_evaluate(config, workdir, allow_config_change=('optim.nope',))


def test_a_damaged_checkpoint_is_set_aside_and_the_last_intact_one_resumed(tmp_path):
  workdir = str(tmp_path / 'run')
  config = long_toy_config(4)
  config.train.checkpoint_every = 2
  train.train_and_evaluate(config, workdir)
  flip_a_byte(largest_file(os.path.join(workdir, 'checkpoints', '4')))

  # sample and evaluate read the newest intact checkpoint and move nothing.
  _, _, state = runs.restore_run(workdir)
  assert gan_lib.current_step(state) == 2
  assert os.path.isdir(os.path.join(workdir, 'checkpoints', '4'))

  config.train.num_steps = 6
  results = train.train_and_evaluate(config, workdir)
  assert results['resumed_from'] == 2 and results['final_step'] == 6
  aside = os.path.join(workdir, checkpoints.DAMAGED_DIR, '4')
  assert os.path.isdir(aside) and checkpoints.damage(aside)
  assert sorted(os.listdir(os.path.join(workdir, 'checkpoints'))) == ['2', '4', '6']
  straight = str(tmp_path / 'straight')
  train.train_and_evaluate(config, straight)
  assert_same_states(straight, workdir)


def test_paths_that_cannot_be_a_workdir_or_an_output_are_one_line_errors(
    tmp_path):
  a_file = tmp_path / 'file'
  a_file.write_text('not a directory')
  assert_one_line_error(run('gan_jax.main', *LONG_TOY, f'--workdir={a_file}'),
                        f'--workdir={a_file} is a file')
  for path, fragment in ((a_file / 'run', f'({a_file} is a file)'),
                         ('/proc/gan_jax_run', 'cannot create')):
    with pytest.raises(UserError, match=re.escape(fragment)):
      workdir_lib.create(str(path))
  (tmp_path / 'dir.npy').mkdir()
  assert_one_line_error(run('gan_jax.sample', f'--workdir={tmp_path}',
                            '--num=5', f'--out={tmp_path / "dir.npy"}'),
                        'is a directory')
  with pytest.raises(UserError, match=re.escape(f'{a_file} is a file')):
    files.check_writable_file(str(a_file / 'x.npy'), '--out')
  with pytest.raises(UserError, match=r'--num_samples=0 is invalid.*> 0'):
    evaluate.evaluate_run(str(tmp_path), num_samples=0)


@pytest.mark.parametrize('body,line,kind', [
    ('def get_config(:\n  pass\n', 1, 'SyntaxError'),
    ('from gan_jax import configs\n\n\ndef get_config():\n'
     '  return configs.toy_config(nope)\n', 5, "NameError: name 'nope'"),
])
def test_a_broken_config_file_names_its_file_and_line(tmp_path, body, line, kind):
  path = tmp_path / 'broken.py'
  path.write_text(body)
  assert_one_line_error(run('gan_jax.main', f'--config={path}'),
                        f'{path}, line {line}: {kind}')


# ------------------------------------------------------- the building blocks

def test_the_lock_names_its_holder_and_a_dead_holder_does_not_block(tmp_path):
  workdir = str(tmp_path)
  path = os.path.join(workdir, workdir_lib.LOCK_FILE)
  with workdir_lib.lock(workdir):
    record = read_json(path)
    assert record['pid'] == os.getpid() and record['host']
    with pytest.raises(UserError, match=f'in use by pid {os.getpid()} on'):
      with workdir_lib.lock(workdir):
        pass
  assert not os.path.exists(path)
  # A crashed run's file: the kernel's lock is gone with its process.
  dead = subprocess.run([sys.executable, '-c', 'import os; print(os.getpid())'],
                        capture_output=True, text=True).stdout.strip()
  with open(path, 'w') as f:
    json.dump({'pid': int(dead), 'host': workdir_lib.socket.gethostname()}, f)
  with workdir_lib.lock(workdir):
    assert read_json(path)['pid'] == os.getpid()


def test_without_flock_the_record_decides(tmp_path, monkeypatch):
  def no_flock(fd, operation):
    raise OSError(errno.ENOLCK, 'No locks available')

  monkeypatch.setattr(fcntl, 'flock', no_flock)
  path = os.path.join(str(tmp_path), workdir_lib.LOCK_FILE)
  host = workdir_lib.socket.gethostname()
  with open(path, 'w') as f:  # a live process of this host
    json.dump({'pid': os.getppid(), 'host': host}, f)
  with pytest.raises(UserError, match=f'in use by pid {os.getppid()}.*delete'):
    with workdir_lib.lock(str(tmp_path)):
      pass
  with open(path, 'w') as f:  # another host: it cannot be checked from here
    json.dump({'pid': 1, 'host': 'elsewhere'}, f)
  with pytest.raises(UserError, match='on elsewhere'):
    with workdir_lib.lock(str(tmp_path)):
      pass
  os.remove(path)
  with workdir_lib.lock(str(tmp_path)):
    assert read_json(path)['pid'] == os.getpid()


def test_stop_signals_turn_a_signal_into_a_stop_request():
  before = signal.getsignal(signal.SIGTERM)
  with preemption.StopSignals() as stop:
    assert not stop.reached(1)
    signal.raise_signal(signal.SIGINT)
    assert stop.reached(2) and stop.exit_code() == 130 and stop.name() == 'SIGINT'
    signal.raise_signal(signal.SIGTERM)
    assert stop.exit_code() == 143
  assert signal.getsignal(signal.SIGTERM) is before


def largest_file(directory: str) -> str:
  paths = [os.path.join(root, name) for root, _, names in os.walk(directory)
           for name in names if name != checkpoints.CHECKSUMS]
  return max(paths, key=os.path.getsize)


def flip_a_byte(path: str) -> None:
  data = bytearray(open(path, 'rb').read())
  data[len(data) // 2] ^= 0xFF
  with open(path, 'wb') as f:
    f.write(data)


def damage_kinds():
  def truncate(step_dir):
    path = largest_file(step_dir)
    os.truncate(path, os.path.getsize(path) // 2)

  def truncate_metadata(step_dir):
    os.truncate(os.path.join(step_dir, 'default', '_METADATA'), 10)

  def delete_item(step_dir):
    shutil.rmtree(os.path.join(step_dir, 'default'))

  return {'flipped byte': lambda d: flip_a_byte(largest_file(d)),
          'truncated data file': truncate,
          'truncated _METADATA': truncate_metadata,
          'deleted item directory': delete_item}


@pytest.fixture(scope='module')
def saved_steps(tmp_path_factory):
  """Checkpoints 1 and 2 of a small state, with their checksums, as a template."""
  directory = str(tmp_path_factory.mktemp('ckpts') / 'checkpoints')
  ckpts = checkpoints.Checkpoints(directory)
  state = gan_lib.GANState(
      step=np.int32(0),
      g=gan_lib.Player({'w': np.arange(2000, dtype=np.float32)}, {}, ()),
      d=gan_lib.Player({'w': np.ones(3, np.float32)}, {}, ()),
      key=jax.random.key(0), nonfinite_step=np.int32(-1))
  for step in (1, 2):
    ckpts.save(step, state.replace(step=np.int32(step)))
  ckpts.close()
  return directory, jax.eval_shape(lambda: state)


@pytest.mark.parametrize('kind', sorted(damage_kinds()))
def test_each_kind_of_damage_is_found_and_the_older_checkpoint_restored(
    saved_steps, tmp_path, kind):
  template, abstract = saved_steps
  directory = str(tmp_path / 'checkpoints')
  shutil.copytree(template, directory)
  assert checkpoints.damage(os.path.join(directory, '2')) is None
  damage_kinds()[kind](os.path.join(directory, '2'))
  assert checkpoints.damage(os.path.join(directory, '2'))

  ckpts = checkpoints.Checkpoints(directory)
  restore = lambda step: ckpts.restore(abstract, step)
  step, state = ckpts.restore_intact(restore, set_aside=False)
  assert step == 1 and int(state.step) == 1
  assert os.path.isdir(os.path.join(directory, '2'))  # read-only: nothing moves

  damage_kinds()[kind](os.path.join(directory, '1'))
  before = snapshot(directory)
  with pytest.raises(UserError, match=r'no intact checkpoint .*2: .*; 1: '):
    ckpts.restore_intact(restore, set_aside=True)
  assert snapshot(directory) == before  # nothing moved when none is intact


def test_a_checkpoint_without_checksums_is_checked_by_restoring_it(
    saved_steps, tmp_path):
  template, abstract = saved_steps
  directory = str(tmp_path / 'checkpoints')
  shutil.copytree(template, directory)
  for step in ('1', '2'):
    os.remove(os.path.join(directory, step, checkpoints.CHECKSUMS))
  os.truncate(os.path.join(directory, '2', 'default', '_METADATA'), 10)
  ckpts = checkpoints.Checkpoints(directory)
  step, _ = ckpts.restore_intact(lambda s: ckpts.restore(abstract, s),
                                 set_aside=False)
  assert step == 1


def test_json_files_are_strict():
  obj = {'a': math.nan, 'b': [1.0, math.inf, -math.inf], 'c': {'d': 2}}
  assert files.strict(obj) == {'a': None, 'b': [1.0, None, None], 'c': {'d': 2}}


def test_write_json_writes_null_for_nan(tmp_path):
  path = str(tmp_path / 'x.json')
  files.write_json(path, {'fid': math.nan, 'n': 3})

  def reject(token):
    raise ValueError(token)

  with open(path) as f:
    assert json.load(f, parse_constant=reject) == {'fid': None, 'n': 3}
  assert not os.path.exists(path + '.tmp')
