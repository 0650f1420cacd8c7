"""A workdir's own files cannot lie or crash a command: the config kept in the
checkpoint, damaged JSON, a read-only workdir, a full disk. Each through the
commands, as a user runs them."""

import json
import os
import shutil

import pytest

from tests.helpers import TINY_TOY
from tests.helpers import assert_one_line_error
from tests.helpers import assert_same_states
from tests.helpers import can_mount
from tests.helpers import read_json
from tests.helpers import run
from tests.helpers import run_mounted

RING8 = ['--config=experiments/ring8.py', '--config.eval.num_samples=200', *TINY_TOY]
needs_mounts = pytest.mark.skipif(
    not can_mount(), reason='needs `unshare --mount` (util-linux) to make a'
    ' full disk or a read-only workdir')


def truncate(path: str) -> None:
  with open(path) as f:
    text = f.read()
  with open(path, 'w') as f:
    f.write(text[:len(text) // 2])


def no_traceback(proc) -> None:
  assert 'Traceback' not in proc.stderr, proc.stderr[-3000:]


@pytest.fixture(scope='module')
def toy_run(tmp_path_factory):
  """A finished 4-step ring8 run (checkpoints at 2 and 4)."""
  workdir = str(tmp_path_factory.mktemp('files') / 'run')
  proc = run('gan_jax.main', *RING8, f'--workdir={workdir}')
  assert proc.returncode == 0, proc.stderr[-3000:]
  return workdir


def copy_of(workdir: str, tmp_path) -> str:
  copy = str(tmp_path / 'run')
  shutil.copytree(workdir, copy)
  return copy


def test_without_config_json_the_checkpoint_still_guards_the_run(toy_run, tmp_path):
  """config.json deleted, then the same workdir run with another loss and
  learning rate: refused, as with config.json (the config is read from the
  checkpoint); with the run's own config it resumes and config.json is
  written again."""
  workdir = copy_of(toy_run, tmp_path)
  os.remove(os.path.join(workdir, 'config.json'))
  proc = run('gan_jax.main', *RING8, f'--workdir={workdir}',
             '--config.loss.name=hinge', '--config.optim.g_lr=0.5')
  assert_one_line_error(proc, 'holds a run with another config', 'loss.name=',
                        'optim.g_lr=', '--allow_config_change=')
  assert 'config.json is missing; using the config saved with checkpoint 4' in proc.stderr
  assert not os.path.exists(os.path.join(workdir, 'config.json'))
  assert not os.path.exists(os.path.join(workdir, 'config_history.json'))
  proc = run('gan_jax.main', *RING8, f'--workdir={workdir}',
             '--config.train.num_steps=6')
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert read_json(os.path.join(workdir, 'config.json'))['loss']['name'] == 'vanilla'


@pytest.mark.parametrize('damage', ['truncated', 'empty'])
def test_a_damaged_config_json_is_rebuilt_from_the_checkpoint(toy_run, tmp_path,
                                                              damage):
  """sample, evaluate and main each read the run's config from its newest
  checkpoint, say so in one line, and write config.json again."""
  workdir = copy_of(toy_run, tmp_path)
  path = os.path.join(workdir, 'config.json')
  commands = [
      ('gan_jax.sample', f'--workdir={workdir}', '--num=10',
       f'--out={tmp_path / "s.npy"}'),
      ('gan_jax.evaluate', f'--workdir={workdir}', '--num_samples=200'),
      ('gan_jax.main', *RING8, f'--workdir={workdir}', '--config.train.num_steps=6'),
  ]
  for command in commands:
    if damage == 'truncated':
      truncate(path)
    else:
      open(path, 'w').close()
    proc = run(*command)
    assert proc.returncode == 0, proc.stderr[-3000:]
    no_traceback(proc)
    said = 'is empty' if damage == 'empty' else 'is not valid JSON (truncated?)'
    assert f'{path} {said};' in proc.stderr, (command[0], proc.stderr[-2000:])
    assert read_json(path)['loss']['name'] == 'vanilla'


def test_a_damaged_config_json_without_a_saved_config_is_one_line(tmp_path):
  workdir = tmp_path / 'run'
  workdir.mkdir()
  (workdir / 'config.json').write_text('{"loss": ')
  (workdir / 'checkpoints').mkdir()
  proc = run('gan_jax.sample', f'--workdir={workdir}', '--num=4',
             f'--out={tmp_path / "s.npy"}')
  assert_one_line_error(proc, f'{workdir}/config.json is not valid JSON',
                        'no checkpoint of the run saved its config')


def test_a_damaged_results_json_is_replaced_by_evaluate(toy_run, tmp_path):
  workdir = copy_of(toy_run, tmp_path)
  path = os.path.join(workdir, 'results.json')
  truncate(path)
  proc = run('gan_jax.evaluate', f'--workdir={workdir}', '--num_samples=200')
  assert proc.returncode == 0, proc.stderr[-3000:]
  no_traceback(proc)
  assert (f'{path} is not valid JSON (truncated?); writing a new one with these'
          ' figures') in proc.stderr
  printed = json.loads(proc.stdout)
  assert read_json(path)['metrics'] == printed['metrics']


def test_a_sweep_marks_and_reruns_a_point_whose_results_are_damaged(tmp_path):
  sweep = ['--config=experiments/ring8.py', *TINY_TOY, '--config.eval.evaluators=',
           '--sweep=loss.name=vanilla,hinge', f'--workdir={tmp_path / "sweep"}']
  assert run('gan_jax.sweep', *sweep).returncode == 0
  point = tmp_path / 'sweep' / 'loss.name-hinge'
  truncate(str(point / 'results.json'))
  proc = run('gan_jax.sweep', *sweep, '--summarize_only')
  assert proc.returncode == 0, proc.stderr[-3000:]
  no_traceback(proc)
  assert "the summary marks sweep point loss.name-hinge 'damaged results.json'" in proc.stderr
  assert '| hinge | damaged results.json |' in (tmp_path / 'sweep' / 'summary.md').read_text()
  proc = run('gan_jax.sweep', *sweep)  # runs it again: it resumes, finished
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert 'sweep point loss.name-hinge runs again' in proc.stderr
  assert read_json(str(point / 'results.json'))['status'] == 'finished'
  assert '| hinge | finished |' in (tmp_path / 'sweep' / 'summary.md').read_text()


@needs_mounts
def test_evaluate_on_a_read_only_workdir_prints_its_figures_then_one_line(
    toy_run, tmp_path):
  workdir = copy_of(toy_run, tmp_path)
  before = (tmp_path / 'run' / 'results.json').read_text()
  proc = run_mounted(workdir, 'gan_jax.evaluate', f'--workdir={workdir}',
                     '--num_samples=200', read_only=True)
  assert_one_line_error(proc, f'cannot write {workdir}/results.json: Read-only'
                        ' file system; the figures above are not recorded')
  assert set(json.loads(proc.stdout)['metrics']) == {'modes', 'high_quality',
                                                     'reverse_kl'}
  assert (tmp_path / 'run' / 'results.json').read_text() == before


@needs_mounts
def test_a_full_disk_is_one_line_naming_the_last_intact_checkpoint(tmp_path):
  """A checkpoint the disk has no room for stops the run before it is
  written; a picture that cannot be written too. Each is one line; the
  checkpoints written stay intact and the run resumes exactly elsewhere."""
  disk, kept = tmp_path / 'disk', tmp_path / 'kept'
  disk.mkdir()
  toy = ['--config=experiments/ring8.py', '--config.model.width=64',
         '--config.eval.evaluators=', '--config.train.num_steps=30',
         '--config.train.log_every=10', '--config.train.sample_every=1000',
         '--config.train.checkpoint_every=10', '--config.optim.schedule=constant']
  proc = run_mounted(str(disk), 'gan_jax.main', *toy, f'--workdir={disk}/run',
                     size='700k', after=f'cp -r {disk}/run {kept}')
  assert_one_line_error(proc, 'no space left on device for checkpoint 20 in',
                        'MiB needed', 'the last intact checkpoint is 10 in',
                        'run the same command to resume')
  assert not [line for line in proc.stderr.splitlines() if line.startswith('E')]
  assert os.listdir(kept / 'checkpoints') == ['10']
  proc = run('gan_jax.main', *toy, f'--workdir={kept}')
  assert proc.returncode == 0, proc.stderr[-3000:]
  straight = str(tmp_path / 'straight')
  assert run('gan_jax.main', *toy, f'--workdir={straight}').returncode == 0
  assert_same_states(straight, str(kept))

  # Pictures fill the disk before the first checkpoint.
  proc = run_mounted(str(disk), 'gan_jax.main', *toy, f'--workdir={disk}/run',
                     '--config.model.width=8', '--config.train.sample_every=1',
                     '--config.train.checkpoint_every=1000', size='300k')
  assert_one_line_error(proc, f'no space left on device writing {disk}/run/',
                        'no checkpoint was saved')
