"""Sweep points in parallel on Ray (`python -m gan_jax.sweep --engine=ray`).

Every point is one Ray task: `train.train_and_evaluate` of its config in its
sub-workdir, in a worker process of its own (`max_calls=1`: one JAX runtime
per point, started fresh), holding the resources of `--point_resources`. As
many points run at once as the cluster has room for.

A point of several hosts (`--hosts_per_point=N`: a multi-host TPU slice,
several GPU machines) is N tasks, gang-scheduled in a placement group of N
bundles (one per host where the cluster has the nodes), which form one JAX
run through `jax.distributed.initialize`: a small task on the first bundle
picks the coordinator's address (its node, a free port), and the task on
that bundle is process 0. On TPUs the N bundles are held on one slice: the
slice's head resource (`TPU-<type>-head`) is reserved first, and its slice
name then pins every bundle to that slice. The driver (the sweep
command) runs JAX only on the CPU, to check every point first as the local
engine does, then submits them, rewrites the summary as each one
ends, in any order, and prints one progress line per finished point.

Faults:
- a worker that dies mid-point (a preempted node, SIGKILL): the point runs
  again (`--point_retries`) and resumes from its last checkpoint; of a point of
  several hosts, the other tasks are stopped first and the whole gang runs
  again (one lost process ends a JAX run of several);
- a point that diverges is recorded (results.json) and the others go on;
- a point that fails (a user error only its worker sees, such as a data path
  missing on that node, or a worker lost more often than --point_retries)
  does not stop the others; the command then ends with a one-line error;
- SIGINT or SIGTERM to the driver: every running point is cancelled, which
  Ray delivers to its worker as a SIGINT: the point saves a checkpoint and
  stops; the driver waits for them and exits 130 or 143. The same command
  resumes the sweep, skipping finished and diverged points.

With no --ray_address (and no RAY_ADDRESS), `ray.init` starts a local Ray
instance on this machine, which ends with the command.
"""

from collections.abc import Callable, Mapping, Sequence
import dataclasses
import fcntl
import json
import os
import re
import signal
import socket
import tempfile
import time
from typing import Any
import warnings

from absl import logging

from gan_jax import preemption
from gan_jax.errors import TrainingDiverged
from gan_jax.errors import UserError
from gan_jax.errors import one_line
from gan_jax.progress import format_duration
from gan_jax.sweep.points import SweepPoint

# A point's resources when --point_resources is not given, by what the
# cluster has: a GPU each, or one TPU VM host's 4 chips, else one CPU.
DEFAULT_RESOURCES = (('GPU', {'GPU': 1}), ('TPU', {'TPU': 4}),
                     ('CPU', {'CPU': 1}))
STOP_GRACE_S = 600  # how long the driver waits for stopped points to save
# The cores the points of one machine hold (claim_cores).
CORE_LOCKS = os.path.join(tempfile.gettempdir(), f'gan_jax_cores_{os.getuid()}')
_held_core_locks: list[int] = []  # open for the life of the worker


def import_ray():
  """The `ray` module, or a UserError saying how to install it."""
  try:
    import ray  # noqa: PLC0415 (an optional dependency)
  except ImportError:
    raise UserError("--engine=ray needs Ray, which is not installed: pip install"
                    " 'gan_jax[ray]' (or pip install ray), or use"
                    ' --engine=local') from None
  return ray


def parse_resources(text: str | None) -> dict[str, float] | None:
  """--point_resources, a JSON object such as {"CPU": 1} or {"GPU": 0.5}."""
  if not text:
    return None
  try:
    resources = json.loads(text)
  except json.JSONDecodeError:
    resources = None
  if (not isinstance(resources, dict) or not resources or not all(
      isinstance(k, str) and isinstance(v, int | float) and not isinstance(
          v, bool) and v > 0 for k, v in resources.items())):
    raise UserError(f'--point_resources={text!r} is not a JSON object of'
                    ' positive numbers; e.g. \'{"CPU": 1}\', \'{"GPU": 1}\' or'
                    ' \'{"TPU": 4}\'')
  return resources


def default_resources(cluster: Mapping[str, float]) -> dict[str, float]:
  """A point's resources on a cluster with these totals (DEFAULT_RESOURCES)."""
  for name, resources in DEFAULT_RESOURCES:
    if cluster.get(name, 0) > 0:
      return dict(resources)
  return {'CPU': 1}


def check_fits(resources: Mapping[str, float], cluster: Mapping[str, float]
               ) -> None:
  """UserError unless a cluster with these totals can hold one point (Ray
  would keep an infeasible task waiting, silently, for ever)."""
  short = {k: v for k, v in resources.items() if cluster.get(k, 0) < v}
  if short:
    has = ', '.join(f'{k} {v:g}' for k, v in sorted(cluster.items())
                    if k in ('CPU', 'GPU', 'TPU') or k in resources)
    raise UserError(
        f'a point holds {json.dumps(resources)} but the Ray cluster has only'
        f' {has or "none of it"}; pass a --point_resources it can hold (on an'
        ' autoscaling cluster, start a node of that kind first)')


# The driver's settings of a GCS emulator (runtime.use_one_storage_layer),
# which a point's worker needs to reach the same gs:// workdir: the workers of
# a cluster whose nodes were started without them would not have them.
STORAGE_ENV = ('STORAGE_EMULATOR_HOST', 'TENSORSTORE_GCS_HTTP_URL',
               'GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT')


def task_options(resources: Mapping[str, float]) -> dict:
  """`ray.remote` options of a point's task: a fresh worker per point, run
  again by the driver, not by Ray, when its worker is lost (run_points); the
  driver's STORAGE_ENV set in its environment."""
  options = {'max_calls': 1, 'max_retries': 0,
             'num_cpus': resources.get('CPU', 0),
             'num_gpus': resources.get('GPU', 0)}
  custom = {k: v for k, v in resources.items() if k not in ('CPU', 'GPU')}
  if custom:
    options['resources'] = custom
  storage = {k: os.environ[k] for k in STORAGE_ENV if k in os.environ}
  if storage:
    options['runtime_env'] = {'env_vars': storage}
  return options


def gpu_memory_fraction(gpu_share: float) -> str | None:
  """XLA_PYTHON_CLIENT_MEM_FRACTION for a point holding `gpu_share` of a GPU
  (JAX takes 75% of a GPU's memory by default, which leaves nothing to the
  points that share it), or None for a whole GPU or none."""
  if 0 < gpu_share < 1:
    return f'{0.9 * gpu_share:.3f}'
  return None


def claim_cores(count: int, lock_dir: str = CORE_LOCKS) -> list[int]:
  """`count` of this process's CPU cores that no other process holds, or []
  when fewer are free. Each is held by a kernel flock on `lock_dir/<core>`
  until the process ends, however it ends."""
  held = []
  for core in sorted(os.sched_getaffinity(0)):
    try:
      os.makedirs(lock_dir, exist_ok=True)
      fd = os.open(os.path.join(lock_dir, str(core)), os.O_CREAT | os.O_RDWR)
    except OSError:
      break  # no place for the locks: the point is not pinned
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
      os.close(fd)
      continue
    held.append((core, fd))
    if len(held) == count:
      _held_core_locks.extend(fd for _, fd in held)
      return [core for core, _ in held]
  for _, fd in held:
    os.close(fd)
  return []


def pinned_cores(resources: Mapping[str, float]) -> int:
  """How many cores --pin_cores pins a point to: its CPUs when it holds a
  whole number of them and nothing else, else 0. XLA:CPU sizes its thread
  pool by the cores a process may use: points sharing every core slow each
  other down, but a point on fewer cores sums in another order, so its
  numbers are those of a run on that many cores, not --engine=local's."""
  cpus = resources.get('CPU', 0)
  if set(resources) == {'CPU'} and cpus >= 1 and float(cpus).is_integer():
    return int(cpus)
  return 0


_HEAD = re.compile(r'TPU-.+-head')  # a TPU slice's head resource


def slice_head(resources: Mapping[str, float], cluster: Mapping[str, float]
               ) -> str | None:
  """The head resource (`TPU-<type>-head`, one per slice, on its first host)
  of the TPU slices a point of several hosts runs on: the one named in its
  resources, else the cluster's only kind; None for points without TPUs."""
  if 'TPU' not in resources:
    return None
  named = [k for k in resources if _HEAD.fullmatch(k)]
  kinds = sorted(k for k in cluster if _HEAD.fullmatch(k))
  if len(named) == 1:
    return named[0]
  if len(kinds) == 1 and not named:
    return kinds[0]
  raise UserError(
      'a point of several TPU hosts runs on one slice: name its kind in'
      ' --point_resources, e.g. \'{"TPU": 4, "TPU-v6e-16-head": 1}\'; the'
      f' cluster has {", ".join(kinds) or "no TPU slices"}')



def coordinator_address() -> str:
  """host:port for a point's JAX coordinator: this node, a port free now
  (a task on the first bundle of the point's placement group)."""
  import ray  # noqa: PLC0415 (in a Ray worker)
  with socket.socket() as s:
    s.bind(('', 0))
    port = s.getsockname()[1]
  return f'{ray.util.get_node_ip_address()}:{port}'


def slice_name(hosts: int) -> str:
  """The name of the TPU slice this task runs on (on its head host), which
  every host of the slice has as a resource; UserError unless the slice has
  `hosts` hosts (a JAX run takes all of a slice's hosts)."""
  from ray.util.accelerators import tpu  # noqa: PLC0415 (in a Ray worker)
  name, count = tpu.get_current_pod_name(), tpu.get_current_pod_worker_count()
  if not name or count != hosts:
    raise UserError(f'--hosts_per_point={hosts}, but the TPU slice {name} has'
                    f' {count} hosts: a point takes every host of a slice')
  return name


def run_point(config, workdir: str, gpu_share: float = 0, cores: int = 0,
              coordinator: str | None = None, num_processes: int = 1,
              process_id: int = 0) -> dict:
  """A point's task, in its Ray worker: trains it; returns how it ended,
  {'status': 'finished'|'diverged'|'interrupted'|'error', 'message': ...}.
  A cancelled task arrives as a SIGINT, which training turns into a saved
  checkpoint and `preemption.Interrupted`. Before JAX starts: a point holding
  part of a GPU takes that part of its memory, and one holding `cores` CPUs
  runs on that many cores no other point on its machine holds. One task of a
  point of several hosts joins its JAX run as `process_id` (at `coordinator`;
  with none, on a TPU slice, JAX finds both itself)."""
  fraction = gpu_memory_fraction(gpu_share)
  if fraction:  # a fraction the user set wins
    os.environ.setdefault('XLA_PYTHON_CLIENT_MEM_FRACTION', fraction)
  if cores and len(os.sched_getaffinity(0)) > cores:
    claimed = claim_cores(cores)
    if claimed:
      os.sched_setaffinity(0, claimed)
  from gan_jax import runtime  # noqa: PLC0415 (in the worker, before JAX)
  runtime.setup()
  if num_processes > 1:
    from gan_jax import parallel  # noqa: PLC0415
    parallel.initialize_distributed(coordinator, num_processes, process_id,
                                    detect=True)
  from gan_jax import train  # noqa: PLC0415
  try:
    train.train_and_evaluate(config, workdir)
  except TrainingDiverged as e:
    return {'status': 'diverged', 'message': str(e)}
  except preemption.Interrupted as e:
    return {'status': 'interrupted', 'message': str(e)}
  except UserError as e:
    return {'status': 'error', 'message': str(e)}
  return {'status': 'finished', 'message': ''}


@dataclasses.dataclass
class Progress:
  """Counts for the progress line."""
  total: int
  start: float = dataclasses.field(default_factory=time.monotonic)
  done: int = 0

  def line(self, running: int) -> str:
    elapsed = time.monotonic() - self.start
    left = self.total - self.done
    eta = ''
    if self.done and left:
      eta = f', about {format_duration(elapsed / self.done * left)} left'
    return (f'sweep: {self.done}/{self.total} points done, {running} running'
            f'{eta} ({format_duration(elapsed)} so far)')


def connect(address: str | None):
  """`ray` connected to the cluster at `address` (or RAY_ADDRESS), or to a
  new local instance when neither is set."""
  ray = import_ray()
  address = address or os.environ.get('RAY_ADDRESS') or None
  problem = address and _unreachable(address)
  try:
    if problem:
      raise ConnectionError(problem)
    with warnings.catch_warnings():  # Ray forks and execs its servers at once
      warnings.filterwarnings('ignore', 'os.fork', RuntimeWarning)
      ray.init(address=address, include_dashboard=False, log_to_driver=True,
               logging_level='warning', configure_logging=True)
  except (ConnectionError, TimeoutError, RuntimeError) as e:
    where = f'the Ray cluster at {address}' if address else 'a local Ray instance'
    raise UserError(
        f'cannot connect to {where} ({one_line(e)});'
        ' start one (ray start --head) and pass its address as --ray_address,'
        ' or leave --ray_address and RAY_ADDRESS unset for a local one') from None
  return ray


def _unreachable(address: str) -> str | None:
  """Why nothing answers at a `host:port` or `ray://host:port` address, or
  None (ray.init itself would retry an unreachable one for minutes)."""
  host, sep, port = address.removeprefix('ray://').rpartition(':')
  if not sep or not port.isdigit():
    return None  # 'auto' and the like: Ray resolves them
  try:
    socket.create_connection((host, int(port)), timeout=10).close()
  except OSError as e:
    return e.strerror or type(e).__name__
  return None


def run_points(points: Sequence[SweepPoint], after_each: Callable[[], None],
               *, address: str | None = None,
               resources: Mapping[str, float] | None = None,
               retries: int = 3, pin_cores: bool = False,
               hosts: int = 1) -> None:
  """Runs `points` (those still to train) as Ray tasks, `hosts` tasks each;
  returns when all have ended. Raises preemption.Interrupted after a SIGINT
  or SIGTERM, once the running points have saved their checkpoints."""
  if not points:
    return
  ray = connect(address)
  try:
    cluster = ray.cluster_resources()
    resources = dict(resources or default_resources(cluster))
    head = slice_head(resources, cluster) if hosts > 1 else None
    resources = {k: v for k, v in resources.items() if k != head}
    check_fits({k: v * hosts for k, v in resources.items()}, cluster)
    logging.info('Ray: %d points, each on %d host(s) holding %s, on a cluster'
                 ' of %s', len(points), hosts, resources, cluster)
    launcher = _Launcher(ray, resources, hosts, head,
                         pinned_cores(resources) if pin_cores else 0)
    _run(ray, launcher, points, retries, after_each)
  finally:
    ray.shutdown()


@dataclasses.dataclass
class _Gang:
  """The tasks of one point, one per host, and how each ended."""
  point: SweepPoint
  attempt: int = 0
  tasks: list = dataclasses.field(default_factory=list)
  groups: list = dataclasses.field(default_factory=list)  # placement groups
  slice_task: Any = None  # TPUs: names the slice before the tasks start
  outcomes: dict = dataclasses.field(default_factory=dict)

  def waiting(self) -> list:
    return [t for t in [self.slice_task, *self.tasks]
            if t is not None and t not in self.outcomes]


class _Launcher:
  """Starts the tasks of a point: one, or a gang of `hosts` in a placement
  group, whose first task is process 0 of their JAX run."""

  def __init__(self, ray, resources: Mapping[str, float], hosts: int,
               head: str | None, cores: int):
    self._ray, self._resources, self._hosts, self._head = (
        ray, dict(resources), hosts, head)
    self._task = ray.remote(**task_options(resources))(run_point)
    self._args = (resources.get('GPU', 0), cores)

  def start(self, point: SweepPoint, attempt: int = 0) -> _Gang:
    gang = _Gang(point, attempt)
    remote = self._ray.remote
    if self._hosts == 1:
      gang.tasks = [self._task.remote(point.config, point.workdir, *self._args)]
    elif self._head:  # the slice's head host first, then the slice's hosts
      group = self._group(gang, [{self._head: 1}], 'PACK')
      gang.slice_task = remote(num_cpus=0, resources={self._head: 1})(
          slice_name).options(scheduling_strategy=self._on(group, 0)
                              ).remote(self._hosts)
    else:
      group = self._group(gang, [self._resources] * self._hosts, 'SPREAD')
      address = remote(num_cpus=0)(coordinator_address).options(
          scheduling_strategy=self._on(group, 0)).remote()
      self._start_tasks(gang, group, address)
    return gang

  def start_on_slice(self, gang: _Gang, name: str) -> None:
    """The tasks of a TPU point, one on each host of slice `name`, where JAX
    finds its coordinator and process ids itself."""
    group = self._group(gang, [{**self._resources, name: 1}] * self._hosts,
                        'STRICT_SPREAD')
    self._start_tasks(gang, group, None)

  def _start_tasks(self, gang: _Gang, group, address) -> None:
    point = gang.point
    gang.tasks = [self._task.options(scheduling_strategy=self._on(group, i)).remote(
        point.config, point.workdir, *self._args, address, self._hosts, i)
                  for i in range(self._hosts)]

  def _group(self, gang: _Gang, bundles: list, strategy: str):
    group = self._ray.util.placement_group(bundles, strategy=strategy)
    gang.groups.append(group)
    return group

  @staticmethod
  def _on(group, bundle: int):
    from ray.util import scheduling_strategies  # noqa: PLC0415
    return scheduling_strategies.PlacementGroupSchedulingStrategy(
        group, placement_group_bundle_index=bundle)

  def release(self, gang: _Gang) -> None:
    for group in gang.groups:
      self._ray.util.remove_placement_group(group)
    gang.groups = []


# How a point ended, from how its tasks ended: the first status of this list
# that any of them has (a lost process ends the others of its JAX run).
_WORST_FIRST = ('lost', 'error', 'diverged', 'interrupted', 'finished')


def _run(ray, launcher: _Launcher, points: Sequence[SweepPoint], retries: int,
         after_each: Callable[[], None]) -> None:
  progress = Progress(total=len(points))
  failures = []
  gangs = [launcher.start(point) for point in points]
  with preemption.RecordedSignals('stopping every running point (each saves'
                                  ' a checkpoint)') as signals:
    while gangs and signals.received is None:
      owner = {task: gang for gang in gangs for task in gang.waiting()}
      ready, _ = ray.wait(list(owner), num_returns=1, timeout=1.0)
      for task in ready:
        gang = owner[task]
        gang.outcomes[task] = outcome = _outcome(ray, task)
        if task == gang.slice_task and outcome['status'] == 'finished':
          launcher.start_on_slice(gang, outcome['name'])
        elif outcome['status'] == 'lost':  # the others cannot go on without it
          for other in gang.waiting():
            ray.cancel(other, force=True)
        if gang.waiting():
          continue
        launcher.release(gang)
        gangs.remove(gang)
        ended = _ended(gang)
        if ended['status'] == 'lost' and gang.attempt < retries:
          logging.warning('sweep point %s lost a worker (%s); running it again'
                          ' (%d of %d), from its last checkpoint',
                          gang.point.name, ended['message'], gang.attempt + 1,
                          retries)
          gangs.append(launcher.start(gang.point, gang.attempt + 1))
          continue
        failures += _report(gang.point, ended)
        progress.done += 1
        after_each()
        print(progress.line(len(gangs)), flush=True)
    if signals.received is not None:
      _stop(ray, launcher, gangs, after_each, signals.received)
  if failures:
    raise UserError(f'{len(failures)} of {progress.total} sweep points did not'
                    f' finish: {"; ".join(failures)}; the same command resumes'
                    ' them')


def _stop(ray, launcher: _Launcher, gangs: list[_Gang],
          after_each: Callable[[], None], signum: signal.Signals) -> None:
  """Cancels the running points (each saves a checkpoint), waits for them,
  and raises preemption.Interrupted."""
  for gang in gangs:
    for task in gang.waiting():
      ray.cancel(task, force=False)
  deadline = time.monotonic() + STOP_GRACE_S
  while any(g.waiting() for g in gangs) and time.monotonic() < deadline:
    owner = {task: gang for gang in gangs for task in gang.waiting()}
    ready, _ = ray.wait(list(owner), num_returns=len(owner), timeout=1.0)
    for task in ready:
      owner[task].outcomes[task] = _outcome(ray, task)
  for gang in gangs:
    launcher.release(gang)
    if gang.outcomes:
      _report(gang.point, _ended(gang))
  after_each()
  raise preemption.Interrupted(
      f'{signum.name}: the sweep stopped; its running points saved their'
      ' checkpoints (the same command resumes it)', preemption.EXIT_CODES[signum])


def _outcome(ray, task) -> dict:
  """How a task ended: run_point's outcome, {'status': 'finished', 'name':
  ...} of a slice's name, or 'interrupted' (cancelled), 'error' (an
  exception in the task) or 'lost' (its worker or node died)."""
  try:
    value = ray.get(task)
  except ray.exceptions.TaskCancelledError:
    return {'status': 'interrupted', 'message': 'cancelled before it started'}
  except ray.exceptions.RayTaskError as e:
    cause = e.cause if isinstance(e.cause, UserError) else e
    return {'status': 'error', 'message': one_line(cause)}
  except ray.exceptions.RayError as e:
    return {'status': 'lost', 'message': one_line(e)}
  return value if isinstance(value, dict) else {'status': 'finished',
                                                'name': value}


def _ended(gang: _Gang) -> dict:
  """How a point ended, from its tasks' outcomes (_WORST_FIRST)."""
  tasks = [o for t, o in gang.outcomes.items() if t != gang.slice_task]
  return min(tasks or gang.outcomes.values(),
             key=lambda o: _WORST_FIRST.index(o['status']))


def _report(point: SweepPoint, outcome: dict) -> list[str]:
  """Logs how `point` ended; [why] if it failed (a user error in the point,
  or its worker lost more often than --point_retries), else []."""
  status, message = outcome['status'], outcome.get('message', '')
  if status == 'finished':
    logging.info('sweep point %s finished', point.name)
    return []
  logging.warning('sweep point %s %s: %s', point.name, status, message)
  return [f'{point.name}: {message}'] if status in ('error', 'lost') else []
