"""Sweep points in parallel on Ray (`python -m gan_jax.sweep --engine=ray`).

Every point is one Ray task: `train.train_and_evaluate` of its config in its
sub-workdir, in a worker process of its own (`max_calls=1`: one JAX runtime
per point, started fresh), holding the resources of `--point_resources`. As
many points run at once as the cluster has room for. The driver (the sweep
command) runs JAX only on the CPU, to check every point first as the local
engine does, then submits them, rewrites the summary as each one
ends, in any order, and prints one progress line per finished point.

Faults:
- a worker that dies mid-point (a preempted node, SIGKILL): Ray runs the task
  again (`--point_retries`), which resumes from the point's last checkpoint;
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
import signal
import socket
import tempfile
import time
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


def task_options(resources: Mapping[str, float], retries: int) -> dict:
  """`ray.remote` options of a point's task: a fresh worker per point."""
  options = {'max_calls': 1, 'max_retries': retries, 'retry_exceptions': False,
             'num_cpus': resources.get('CPU', 0),
             'num_gpus': resources.get('GPU', 0)}
  custom = {k: v for k, v in resources.items() if k not in ('CPU', 'GPU')}
  if custom:
    options['resources'] = custom
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


def run_point(config, workdir: str, gpu_share: float = 0, cores: int = 0
              ) -> dict:
  """A point's task, in its Ray worker: trains it; returns how it ended,
  {'status': 'finished'|'diverged'|'interrupted'|'error', 'message': ...}.
  A cancelled task arrives as a SIGINT, which training turns into a saved
  checkpoint and `preemption.Interrupted`. Before JAX starts: a point holding
  part of a GPU takes that part of its memory, and one holding `cores` CPUs
  runs on that many cores no other point on its machine holds."""
  fraction = gpu_memory_fraction(gpu_share)
  if fraction:  # a fraction the user set wins
    os.environ.setdefault('XLA_PYTHON_CLIENT_MEM_FRACTION', fraction)
  if cores and len(os.sched_getaffinity(0)) > cores:
    claimed = claim_cores(cores)
    if claimed:
      os.sched_setaffinity(0, claimed)
  from gan_jax import runtime  # noqa: PLC0415 (in the worker, before JAX)
  runtime.setup()
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
               retries: int = 3, pin_cores: bool = False) -> None:
  """Runs `points` (those still to train) as Ray tasks; returns when all have
  ended. Raises preemption.Interrupted after a SIGINT or SIGTERM, once the
  running points have saved their checkpoints."""
  if not points:
    return
  ray = connect(address)
  try:
    resources = dict(resources or default_resources(ray.cluster_resources()))
    check_fits(resources, ray.cluster_resources())
    logging.info('Ray: %d points, each with %s, on a cluster of %s',
                 len(points), resources, ray.cluster_resources())
    task = ray.remote(**task_options(resources, retries))(run_point)
    args = resources.get('GPU', 0), pinned_cores(resources) if pin_cores else 0
    _wait_for(ray, {task.remote(p.config, p.workdir, *args): p for p in points},
              after_each)
  finally:
    ray.shutdown()


def _wait_for(ray, running: dict, after_each: Callable[[], None]) -> None:
  progress = Progress(total=len(running))
  failures = []
  with preemption.RecordedSignals('stopping every running point (each saves'
                                  ' a checkpoint)') as signals:
    while running and signals.received is None:
      ready, _ = ray.wait(list(running), num_returns=1, timeout=1.0)
      for ref in ready:
        failures += _report(ray, ref, running.pop(ref))
        progress.done += 1
        after_each()
        print(progress.line(len(running)), flush=True)
    if signals.received is not None:
      _stop(ray, running, after_each, signals.received)
  if failures:
    raise UserError(f'{len(failures)} of {progress.total} sweep points did not'
                    f' finish: {"; ".join(failures)}; the same command resumes'
                    ' them')


def _stop(ray, running: dict, after_each: Callable[[], None],
          signum: signal.Signals) -> None:
  """Cancels the running points (each saves a checkpoint), waits for them,
  and raises preemption.Interrupted."""
  for ref in running:
    ray.cancel(ref, force=False)
  deadline = time.monotonic() + STOP_GRACE_S
  while running and time.monotonic() < deadline:
    ready, _ = ray.wait(list(running), num_returns=len(running), timeout=1.0)
    for ref in ready:
      _report(ray, ref, running.pop(ref))
  after_each()
  raise preemption.Interrupted(
      f'{signum.name}: the sweep stopped; its running points saved their'
      ' checkpoints (the same command resumes it)', preemption.EXIT_CODES[signum])


def _report(ray, ref, point: SweepPoint) -> list[str]:
  """Logs how `point`'s task ended; [why] if it failed (a user error in the
  point, or its worker lost more often than --point_retries), else []."""
  try:
    outcome = ray.get(ref)
  except ray.exceptions.TaskCancelledError:
    outcome = {'status': 'interrupted', 'message': 'cancelled before it started'}
  except ray.exceptions.RayError as e:
    outcome = {'status': 'failed', 'message': one_line(e)}
  status, message = outcome['status'], outcome['message']
  if status == 'finished':
    logging.info('sweep point %s finished', point.name)
    return []
  logging.warning('sweep point %s %s: %s', point.name, status, message)
  return [f'{point.name}: {message}'] if status in ('error', 'failed') else []
