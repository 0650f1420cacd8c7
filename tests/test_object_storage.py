"""gs:// workdirs, against a local GCS emulator (tests/gcs_emulator.py) that
listens on loopback and that the module's fixture starts and stops."""

import json
import os
import socket
import subprocess
import sys
import time

import fsspec.config
import jax
import numpy as np
import pytest

from gan_jax import analysis
from gan_jax import data
from gan_jax import fid
from gan_jax import files
from gan_jax import runtime
from gan_jax import train
from gan_jax import workdir as workdir_lib
from gan_jax.errors import UserError
from tests import helpers
from tests.test_contracts_resume import stabilised_run

BUCKET = 'gan-jax-test'


@pytest.fixture(scope='module')
def bucket():
  """gs://BUCKET on an emulator on loopback; the environment points
  gan_jax's files (gcsfs) and checkpoints (TensorStore) at it."""
  port = helpers.free_port()
  server = subprocess.Popen(
      [sys.executable, os.path.join(helpers.REPO, 'tests', 'gcs_emulator.py'),
       'start',
       '--host=127.0.0.1', f'--port={port}', '--in-memory',
       f'--default-bucket={BUCKET}', '--quiet'],
      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  deadline = time.monotonic() + 60
  while True:
    try:
      socket.create_connection(('127.0.0.1', port), 0.5).close()
      break
    except OSError:
      if server.poll() is not None or time.monotonic() > deadline:
        server.kill()
        pytest.fail('the GCS emulator did not start')
      time.sleep(0.1)
  names = ('STORAGE_EMULATOR_HOST', 'TENSORSTORE_GCS_HTTP_URL',
           'GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT')
  saved = {name: os.environ.get(name) for name in names}
  saved_conf = dict(fsspec.config.conf.get('gs', {}))
  for name in names:
    os.environ.pop(name, None)
  os.environ['STORAGE_EMULATOR_HOST'] = f'http://127.0.0.1:{port}'
  runtime.use_one_storage_layer()
  try:
    yield f'gs://{BUCKET}'
  finally:
    fsspec.config.conf['gs'] = saved_conf
    for name, value in saved.items():
      if value is None:
        os.environ.pop(name, None)
      else:
        os.environ[name] = value
    server.terminate()
    server.wait(30)


def test_a_run_on_a_gs_workdir_writes_everything_there_and_resumes_bit_exactly(
    bucket):
  """Checkpoints (with checksums), config, results, events and samples go to
  the bucket; a run killed after checkpoint 2 (its lock left behind) resumes
  there and equals the uninterrupted run. The MLP with every stabiliser: the
  MLP's case of the resume contract (tests/test_contracts_resume.py)."""
  config = stabilised_run('mlp')
  config.train.num_steps = 4
  source = data.synthetic(config.data.name, num_images=64)
  straight, resumed = f'{bucket}/straight', f'{bucket}/resumed'
  train.train_and_evaluate(config, straight, source)

  listed = files.walk_files(straight)
  for name in ('config.json', 'results.json', 'samples/step_4.png',
               'checkpoints/2/checksums.sha256', 'checkpoints/4/checksums.sha256'):
    assert name in listed, listed
  assert 'run.lock' not in listed  # released
  assert files.read_json(f'{straight}/results.json')['status'] == 'finished'
  # What a notebook reads (gan_jax.analysis): runs, curves, pictures.
  assert analysis.find_runs(f'{bucket}/*') == [straight]
  steps, _ = analysis.read_scalars(straight)['g_loss']
  assert list(steps) == [2, 4]
  assert analysis.latest_picture(straight) == f'{straight}/samples/step_4.png'
  picture = analysis.load_picture(f'{straight}/samples/step_4.png')
  assert picture.dtype == np.uint8 and picture.ndim in (2, 3) and picture.max() > 0
  assert fid.is_run(straight) and not fid.is_dataset(straight)  # fid scores it
  # The Inception cache's files (eval.inception_cache=gs://...).
  cache = f'{bucket}/inception_cache/reference.npz'
  files.cache_npz(cache, {'mu': np.arange(3.0)})
  np.testing.assert_array_equal(
      files.read_npz(cache, ('mu',), instead='')['mu'], np.arange(3.0))

  # Killed after checkpoint 2: no checkpoint 4, no results, a lock whose
  # holder (a process of this host) is gone.
  fs, root = files._fs(bucket)  # noqa: SLF001
  for name in listed:
    if not name.startswith(('checkpoints/4/', 'results.json')):
      fs.copy(f'{root}/straight/{name}', f'{root}/resumed/{name}')
  dead = subprocess.run([sys.executable, '-c', 'import os; print(os.getpid())'],
                        capture_output=True, text=True, check=True)
  files.write_text(f'{resumed}/run.lock', json.dumps(
      {'pid': int(dead.stdout), 'host': socket.gethostname(),
       'renewed': time.time()}))
  train.train_and_evaluate(config, resumed, source)
  a, b = helpers.restored_state(straight), helpers.restored_state(resumed)
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
    np.testing.assert_array_equal(x, y)


def test_a_gs_lock_is_held_until_its_lease_runs_out(bucket):
  with pytest.raises(UserError, match='there is no bucket gs://no-such-bucket'):
    workdir_lib.create('gs://no-such-bucket/run')
  workdir = f'{bucket}/locked'
  assert workdir_lib.create(workdir)  # nothing there yet
  path = f'{workdir}/run.lock'
  other = {'pid': 1, 'host': 'another-host', 'since': 'now', 'command': 'x'}
  files.write_text(path, json.dumps({**other, 'renewed': time.time()}))
  with pytest.raises(UserError, match='in use by pid 1 on another-host'):
    with workdir_lib.lock(workdir):
      pass
  files.write_text(path, json.dumps(
      {**other, 'renewed': time.time() - workdir_lib.LEASE_S - 1}))
  with workdir_lib.lock(workdir):  # a preempted host's lock: stale, taken
    assert files.read_json(path)['pid'] == os.getpid()
    with pytest.raises(UserError, match=f'pid {os.getpid()}'):
      with workdir_lib.lock(workdir):
        pass
    # What two runs taking over one stale lock meet: one write of generation
    # 0 (absent) and one delete at the generation read can succeed, not two.
    _, generation = files.read_with_generation(path)
    with pytest.raises(FileExistsError):
      files.write_if_generation(path, b'{}', '0')
    assert not files.remove_if_generation(path, str(int(generation) + 1))
    # Taken over meanwhile (this run stalled): release leaves it alone.
    files.write_text(path, json.dumps({**other, 'renewed': time.time()}))
  assert files.read_json(path)['pid'] == 1
  assert files.remove_if_generation(path, files.read_with_generation(path)[1])
  assert not files.exists(path)
