"""--engine=ray: sweep points as Ray tasks on a real local Ray instance.

The module's Ray instance runs in a network namespace of its own, whose only
interface is loopback (Ray binds its servers to every interface of a node and
refuses a loopback node address): every server listens on loopback only, and
the sweep commands join that namespace to reach it. The fixture stops it.
"""

import csv
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import jax
import numpy as np
import pytest

from gan_jax import sweep
from gan_jax.errors import UserError
from gan_jax.sweep import ray_engine
from tests import helpers
from tests.helpers import REPO

PORT = 6379  # Ray's default: the namespace has no other servers
TINY = ['--config=experiments/ring8.py', '--config.model.width=32',
        '--config.model.depth=2', '--config.train.batch_size=16',
        '--config.train.log_every=100', '--config.train.checkpoint_every=100',
        '--config.eval.num_samples=1000']


def can_isolate_network() -> bool:
  """Whether this machine lets a process have a network namespace of its
  own (util-linux's unshare, iproute2's ip)."""
  try:
    return subprocess.run(['unshare', '--net', '--map-root-user', 'ip', 'link',
                           'set', 'lo', 'up'], capture_output=True,
                          timeout=30).returncode == 0
  except (OSError, subprocess.TimeoutExpired):
    return False


class Cluster:
  """A Ray head on loopback in a network namespace; commands join it."""

  def __init__(self, devices: int = 1):
    self.temp = tempfile.mkdtemp(prefix='ray', dir='/tmp')  # short socket paths
    # Every worker has `devices` forced CPU devices.
    self.env = dict(helpers.command_env(devices), RAY_AUTH_MODE='disabled')
    head = [sys.executable, '-m', 'ray.scripts.scripts', 'start', '--head',
            f'--port={PORT}', '--num-cpus=2', '--include-dashboard=false',
            '--disable-usage-stats', '--block', f'--temp-dir={self.temp}']
    self.log = os.path.join(self.temp, 'head.log')
    with open(self.log, 'w') as log:
      self.head = subprocess.Popen(
          ['unshare', '--net', '--map-root-user', 'sh', '-c',
           f'ip link set lo up && exec {shlex.join(head)}'],
          env=self.env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while 'block forever' not in self._log():
      if self.head.poll() is not None or time.monotonic() > deadline:
        self.stop()
        raise AssertionError('Ray did not start:\n' + self._log()[-3000:])
      time.sleep(0.2)

  def _log(self) -> str:
    with open(self.log) as f:
      return f.read()

  def join(self) -> list[str]:
    """The prefix of a command that runs in the cluster's network."""
    return ['nsenter', '-t', str(self.head.pid), '--user', '--net',
            '--preserve-credentials']

  def command(self, *args: str) -> list[str]:
    """`python -m gan_jax.sweep --engine=ray args` in the cluster's network."""
    return [*self.join(), sys.executable, '-m', 'gan_jax.sweep',
            '--engine=ray', f'--ray_address=127.0.0.1:{PORT}', *args]

  def start(self, *args: str) -> subprocess.Popen:
    return subprocess.Popen(self.command(*args), cwd=REPO, env=self.env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)

  def stop(self) -> None:
    self.head.terminate()  # `ray start --block` stops what it started
    try:
      self.head.wait(60)
    except subprocess.TimeoutExpired:
      self.head.kill()
    shutil.rmtree(self.temp, ignore_errors=True)


def started_cluster(devices: int = 1):
  if not can_isolate_network():
    pytest.skip('needs a network namespace (unshare --net) for a Ray that'
                ' listens on loopback only')
  cluster = Cluster(devices)
  yield cluster
  cluster.stop()


@pytest.fixture(scope='module')
def cluster():
  yield from started_cluster()


@pytest.fixture
def cluster_of_two_device_workers():
  """Workers of 2 forced CPU devices (the other tests' points run on 1: two
  points of 2 devices each on 2 cores run several times slower)."""
  yield from started_cluster(devices=2)


@pytest.fixture
def bucket(cluster, tmp_path):
  """gs://sweeps on a GCS emulator in the cluster's network (loopback only),
  which keeps its objects as files under the returned directory, where the
  test reads them; cluster.env then points the commands at it. The address
  reaches the points' workers through their tasks' runtime_env
  (ray_engine.STORAGE_ENV): the cluster's nodes were started without it."""
  emulator = subprocess.Popen(
      [*cluster.join(), sys.executable, 'tests/gcs_emulator.py',
       f'--data-dir={tmp_path}', 'start', '--host=127.0.0.1', '--port=9023',
       '--default-bucket=sweeps', '--quiet'], cwd=REPO,
      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  saved = cluster.env
  cluster.env = dict(saved, STORAGE_EMULATOR_HOST='http://127.0.0.1:9023')
  yield str(tmp_path / '.cloudstorage' / 'sweeps')
  cluster.env = saved
  emulator.terminate()
  emulator.wait(30)


def wait_until(condition, what: str, proc: subprocess.Popen, timeout=180):
  deadline = time.monotonic() + timeout
  while not condition():
    if proc.poll() is not None or time.monotonic() > deadline:
      proc.kill()
      raise AssertionError(f'no {what}: {proc.communicate()[1][-3000:]}')
    time.sleep(0.05)


def results(workdir: str) -> dict:
  return helpers.read_json(os.path.join(workdir, 'results.json'))


def summary_rows(workdir: str) -> list[dict]:
  """summary.csv without the columns that time the run."""
  with open(os.path.join(workdir, 'summary.csv')) as f:
    return [{k: v for k, v in row.items() if k not in ('steps_per_s', 'wall_time_s')}
            for row in csv.DictReader(f)]


def test_points_on_ray_equal_local_points_even_when_a_worker_is_killed(
    cluster, bucket):
  """Both sweeps in a gs:// workdir (the emulator's), as on a cluster: the
  points train there, the killed one resumes there, the summary is there."""
  flags = [*TINY, '--config.train.num_steps=400',
           '--config.train.sample_every=400', '--sweep=loss.name=vanilla,hinge']
  on_ray = os.path.join(bucket, 'ray')
  proc = cluster.start('--workdir=gs://sweeps/ray', *flags)
  hinge = os.path.join(on_ray, 'loss.name-hinge')
  wait_until(lambda: os.path.isfile(os.path.join(
      hinge, 'checkpoints', '100', 'commit_success.txt')),
             "hinge's first checkpoint", proc)
  with open(os.path.join(hinge, 'run.lock')) as f:
    os.kill(json.load(f)['pid'], signal.SIGKILL)  # its node is preempted
  out, err = proc.communicate(timeout=300)
  assert proc.returncode == 0, err[-3000:]
  assert 'sweep: 1/2 points done, 1 running' in out, out
  assert 'sweep: 2/2 points done, 0 running' in out, out
  assert results(hinge)['resumed_from'] >= 100  # Ray ran it again: it resumed
  assert results(os.path.join(on_ray, 'loss.name-vanilla'))['resumed_from'] is None

  local = os.path.join(bucket, 'local')
  proc = subprocess.run(
      [*cluster.join(), sys.executable, '-m', 'gan_jax.sweep',
       '--workdir=gs://sweeps/local', *flags], cwd=REPO, env=cluster.env,
      capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  for point in ('loss.name-vanilla', 'loss.name-hinge'):
    helpers.assert_same_states(os.path.join(on_ray, point),
                               os.path.join(local, point))
    ray_results, local_results = (results(os.path.join(w, point))
                                  for w in (on_ray, local))
    for key in ('status', 'final_step', 'metrics', 'losses'):
      assert ray_results[key] == local_results[key], key
  assert summary_rows(on_ray) == summary_rows(local)
  assert [row['status'] for row in summary_rows(on_ray)] == ['finished'] * 2
  assert os.path.isfile(os.path.join(on_ray, 'summary.md'))


def test_a_point_of_two_hosts_is_one_jax_run_and_reruns_whole_when_one_dies(
    cluster_of_two_device_workers, tmp_path):
  """--hosts_per_point=2: two tasks of 2 devices give the numbers of one
  process of 4 (as tests/test_parallel.py's processes do: float32 summation
  order apart). Its process 0 killed as it starts training, the other task
  is stopped and the point runs again whole."""
  flags = [*TINY, '--config.loss.name=non_saturating',
           '--config.train.num_steps=20']
  on_ray = str(tmp_path / 'ray')
  proc = cluster_of_two_device_workers.start(
      f'--workdir={on_ray}', *flags, '--sweep=seed=0',
                       '--hosts_per_point=2', '--point_resources={"CPU": 1}')
  point = os.path.join(on_ray, 'seed-0')
  lock = os.path.join(point, 'run.lock')
  wait_until(lambda: os.path.exists(lock) and os.path.getsize(lock),
             'a training process', proc)
  with open(lock) as f:  # compiling: the kill lands before step 1
    os.kill(json.load(f)['pid'], signal.SIGKILL)  # process 0's node is lost
  out, err = proc.communicate(timeout=300)
  assert proc.returncode == 0, err[-3000:]
  assert 'sweep: 1/1 points done, 0 running' in out, out
  assert 'lost a worker' in err and 'running it again (1 of 3)' in err, err[-3000:]
  ended = results(point)
  assert (ended['processes'], ended['devices']) == (2, 4)
  assert ended['final_step'] == 20

  single = str(tmp_path / 'single')
  proc = helpers.run('gan_jax.main', *flags, f'--workdir={single}', devices=4)
  assert proc.returncode == 0, proc.stderr[-3000:]
  for a, b in zip(jax.tree.leaves(helpers.restored_state(single)),
                  jax.tree.leaves(helpers.restored_state(point)), strict=True):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_a_diverged_point_is_recorded_and_a_signal_stops_the_sweep_to_resume(
    cluster, tmp_path):
  """The healthy point would train for hours: each run of the command ends
  by a signal, so that no point can finish before the signal lands."""
  workdir = str(tmp_path / 'sweep')
  flags = [f'--workdir={workdir}', *TINY, '--config.train.num_steps=10000000',
           '--config.train.sample_every=10000000',
           '--config.loss.name=non_saturating', '--sweep=optim.d_lr=1e30,2e-4']
  diverging = os.path.join(workdir, 'optim.d_lr-1e+30')
  healthy = os.path.join(workdir, 'optim.d_lr-0.0002')

  def checkpoints():
    path = os.path.join(healthy, 'checkpoints')
    return [int(s) for s in os.listdir(path) if s.isdigit()] if os.path.isdir(path) else []

  def stop(proc, signum, to_group=False) -> str:
    if to_group:
      os.killpg(proc.pid, signum)
    else:
      proc.send_signal(signum)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == {signal.SIGINT: 130, signal.SIGTERM: 143}[signum], (
        err[-3000:])
    assert [line for line in err.splitlines() if line.startswith('stopped:')] == [
        f'stopped: {signum.name}: the sweep stopped; its running points saved'
        ' their checkpoints (the same command resumes it)'], err[-3000:]
    return err

  # First as a laptop user runs it: no address, so the command starts a Ray
  # instance of its own (here in a network namespace of its own: loopback
  # only), and Ctrl-C reaches the command's whole process group.
  command = shlex.join([sys.executable, '-m', 'gan_jax.sweep', '--engine=ray',
                        *flags])
  proc = subprocess.Popen(
      ['unshare', '--net', '--map-root-user', 'sh', '-c',
       f'ip link set lo up && exec {command}'], cwd=REPO, env=cluster.env,
      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
      start_new_session=True)
  wait_until(lambda: checkpoints() and os.path.exists(
      os.path.join(diverging, 'results.json')), 'divergence and a checkpoint', proc)
  stop(proc, signal.SIGINT, to_group=True)
  assert results(diverging)['status'] == 'diverged'
  stopped = results(healthy)
  assert stopped['status'] == 'interrupted', stopped['status']
  assert [row['status'] for row in summary_rows(workdir)] == [
      'diverged', 'incomplete']

  proc = cluster.start(*flags)  # the same sweep on a cluster: it resumes
  wait_until(lambda: max(checkpoints()) > stopped['final_step'],
             'a checkpoint after the resume', proc)
  err = stop(proc, signal.SIGTERM)
  assert 'optim.d_lr-1e+30: diverged earlier, skipped' in err
  assert results(healthy)['resumed_from'] == stopped['final_step']
  assert results(healthy)['final_step'] > stopped['final_step']
  assert results(diverging)['status'] == 'diverged'


def test_ray_missing_or_unreachable_is_a_one_line_error(tmp_path):
  fake = tmp_path / 'no_ray' / 'ray'
  fake.mkdir(parents=True)
  (fake / '__init__.py').write_text('raise ImportError("No module named ray")\n')
  command = [sys.executable, '-m', 'gan_jax.sweep', '--engine=ray',
             f'--workdir={tmp_path / "w"}', *TINY, '--config.train.num_steps=4']
  env = helpers.command_env()
  missing = subprocess.run(command, cwd=REPO, capture_output=True, text=True,
                           env=dict(env, PYTHONPATH=f'{fake.parent}:{REPO}'))
  helpers.assert_one_line_error(missing, "pip install 'gan_jax[ray]'")
  unreachable = subprocess.run([*command, '--ray_address=127.0.0.1:1'],
                               cwd=REPO, capture_output=True, text=True, env=env)
  helpers.assert_one_line_error(unreachable, 'cannot connect to the Ray cluster'
                                ' at 127.0.0.1:1', 'ray start --head')
  local = [c for c in command if c != '--engine=ray']
  hosts = subprocess.run([*local, '--hosts_per_point=2'], cwd=REPO,
                         capture_output=True, text=True, env=env)
  helpers.assert_one_line_error(hosts, '--hosts_per_point is for --engine=ray')


def test_a_mistake_is_refused_before_ray_starts(tmp_path):
  def run_sweep(flags, **options):
    config = helpers.tiny_toy_config()
    sweep.sweep('experiments/ring8.py', config, {}, flags, str(tmp_path / 'w'),
                engine=options.pop('engine', 'ray'), ray_options=options)

  with pytest.raises(UserError, match="unknown loss.name='nonsense'"):
    run_sweep(['loss.name=vanilla,nonsense'], address='127.0.0.1:1')
  with pytest.raises(UserError, match="unknown --engine='spark'; valid: local, ray"):
    run_sweep(['loss.name=vanilla'], engine='spark')
  for text in ('{"GPU": -1}', '[1]', 'GPU', '{}', '{"CPU": true}'):
    with pytest.raises(UserError, match='--point_resources=.* is not a JSON'):
      ray_engine.parse_resources(text)


def test_each_point_holds_the_resources_the_cluster_has():
  assert ray_engine.parse_resources('{"GPU": 0.125}') == {'GPU': 0.125}
  assert ray_engine.default_resources({'CPU': 16, 'GPU': 8}) == {'GPU': 1}
  assert ray_engine.default_resources({'CPU': 240, 'TPU': 4}) == {'TPU': 4}
  assert ray_engine.default_resources({'CPU': 2}) == {'CPU': 1}
  assert ray_engine.task_options({'TPU': 4, 'CPU': 1}) == {
      'max_calls': 1, 'max_retries': 0, 'num_cpus': 1, 'num_gpus': 0,
      'resources': {'TPU': 4}}
  ray_engine.check_fits({'GPU': 0.125}, {'CPU': 16, 'GPU': 8})
  with pytest.raises(UserError, match=r'a point holds \{"GPU": 1\} but the Ray'
                     ' cluster has only CPU 2; pass a --point_resources'):
    ray_engine.check_fits({'GPU': 1}, {'CPU': 2, 'memory': 1e9})
  # A point of several TPU hosts runs on one slice: the kind named, or the
  # cluster's only kind.
  head = 'TPU-v6e-16-head'
  assert ray_engine.slice_head({'GPU': 8}, {'GPU': 16}) is None
  assert ray_engine.slice_head({'TPU': 4}, {'TPU': 16, head: 1}) == head
  both = {'TPU': 24, head: 1, 'TPU-v5p-8-head': 1}
  assert ray_engine.slice_head({'TPU': 4, head: 1}, both) == head
  with pytest.raises(UserError, match='name its kind in --point_resources.*'
                     ' the cluster has TPU-v5p-8-head, TPU-v6e-16-head'):
    ray_engine.slice_head({'TPU': 4}, both)
  # Eight points on one GPU: each JAX runtime takes its share of the memory.
  assert ray_engine.gpu_memory_fraction(0.125) == '0.113'
  assert ray_engine.gpu_memory_fraction(1) is None
  assert ray_engine.gpu_memory_fraction(0) is None


def test_points_on_one_machine_claim_cores_no_other_point_holds(tmp_path):
  assert ray_engine.pinned_cores({'CPU': 1}) == 1
  assert ray_engine.pinned_cores({'CPU': 0.5}) == 0
  assert ray_engine.pinned_cores({'CPU': 1, 'GPU': 1}) == 0
  cores = sorted(os.sched_getaffinity(0))
  locks = str(tmp_path / 'cores')
  claims = [ray_engine.claim_cores(1, locks) for _ in cores]  # flocks conflict
  assert sorted(sum(claims, [])) == cores                       # in one process too
  assert ray_engine.claim_cores(1, locks) == []  # all held: the point is not pinned

