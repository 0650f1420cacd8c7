"""A run's directory: one run at a time in it, and only the run it holds.

- `lock(workdir)`: a run holds `<workdir>/run.lock` while it works, so a
  second run on the same directory stops with a one-line error naming the
  holder. The lock is the kernel's (`flock`), released when its process ends
  however it ends, so a crashed run never blocks the next one; the file
  records pid, host and command for the message, and is removed on release.
  Where the file system has no `flock` (some FUSE mounts), the record alone
  decides: a holder on this host that is no longer alive is stale.
  In object storage (`gs://`) there is no flock either: the lock is an object
  created only if absent (GCS's `ifGenerationMatch=0` precondition, so of two
  runs starting together one gets it), which its holder renews every
  RENEW_S seconds and deletes on release, each at the generation it wrote
  last (so it never touches a lock another run has taken over). A holder that died on this host is
  stale at once; one on another host (a preempted VM) once it has not renewed
  the lock for LEASE_S seconds. Host clocks are assumed to agree to well
  within LEASE_S (NTP on cloud VMs).
- `check_resume(config, workdir)`: a run on a workdir whose recorded config
  differs from the new config in a key that changes the math stops with a
  one-line error listing the differing keys. FREE_KEYS may change (intervals,
  the length, data and classifier locations); other keys only when named.
  The recorded config is config.json's, or when that is missing or damaged
  the one saved with the newest checkpoint (`run_config`).
- `create(workdir)`: the directory, or a one-line error if it cannot be one.
- `read_results(workdir)`, `is_finished`: what its results.json says.
"""

from collections.abc import Mapping
import contextlib
import errno
import fcntl
import itertools
import json
import os
import socket
import sys
import threading
import time

from absl import logging
import jax
import ml_collections
import orbax.checkpoint as ocp

from gan_jax import checkpoints
from gan_jax import configs
from gan_jax import files
from gan_jax.errors import UserError
from gan_jax.errors import one_line

LOCK_FILE = 'run.lock'
HISTORY_FILE = 'config_history.json'
RESULTS_FILE = 'results.json'
CONFIG_FILE = 'config.json'
CHECKPOINTS_DIR = 'checkpoints'

# Keys a resumed run may change: they do not change what a step computes.
# train.num_steps extends (or shortens) the run; with a decaying
# optim.schedule the remaining steps then follow the schedule of the new length.
FREE_KEYS = (
    'train.num_steps', 'train.log_every', 'train.sample_every',
    'train.checkpoint_every', 'train.eval_every', 'train.max_checkpoints',
    'eval.evaluators', 'eval.num_samples', 'eval.classifier_dir',
    'eval.inception', 'eval.inception_cache',
    'data.path', 'data.tfds_data_dir', 'data.workers',
)
_NO_FLOCK = (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL)
RENEW_S = 60  # how often the holder of a lock in object storage renews it
LEASE_S = 300  # an object-storage lock not renewed for this long is stale


def create(workdir: str) -> bool:
  """Makes `workdir` (and its parents); returns whether it was created.

  Raises:
    UserError: it is a file, sits under one, or cannot be written.
  """
  if files.is_remote(workdir):  # object storage: a prefix, nothing to make
    return _check_remote(workdir)
  if os.path.isdir(workdir):
    if not os.access(workdir, os.W_OK | os.X_OK):
      raise UserError(f'--workdir={workdir} is not writable; pass a directory'
                      ' you can write to')
    return False
  if os.path.lexists(workdir):
    raise UserError(f'--workdir={workdir} is a file, not a directory; pass a'
                    ' directory (it is created if missing)')
  try:
    os.makedirs(workdir, exist_ok=True)  # exist_ok: the other hosts of a run
  except OSError as e:
    raise UserError(f'cannot create --workdir={workdir}: {e.strerror}'
                    f'{_blocking_ancestor(workdir)}; pass a directory you can'
                    ' write to') from None
  return True


def _check_remote(workdir: str) -> bool:
  """`create` of a URL: its bucket must exist and answer; nothing is made."""
  bucket = '/'.join(workdir.split('/')[:3])  # gs://bucket
  if not workdir.startswith('gs://'):
    raise UserError(f'--workdir={workdir}: a URL workdir must be gs://BUCKET/PATH')
  try:
    try:  # listing needs only storage.objects.list, as training does
      files.listdir(bucket)
    except FileNotFoundError:
      raise UserError(f'--workdir={workdir}: there is no bucket {bucket}; create'
                      ' it (gcloud storage buckets create), or name another'
                      ) from None
    if files.isfile(workdir):
      raise UserError(f'--workdir={workdir} is a file, not a directory; pass a'
                      ' directory (it is created if missing)')
    return not files.isdir(workdir)
  except UserError:
    raise
  except Exception as e:  # noqa: BLE001 (gcsfs's HttpError, auth errors, ...)
    raise UserError(f'--workdir={workdir} cannot be reached ({one_line(e)});'
                    ' check the credentials and the bucket\'s permissions'
                    ) from None



def _blocking_ancestor(path: str) -> str:
  """' (X is a file)' for the nearest existing ancestor of `path` that is not
  a directory, else ''."""
  parent = files.existing_ancestor(path)
  return '' if os.path.isdir(parent) else f' ({parent} is a file)'


def _record() -> dict:
  return {'pid': os.getpid(), 'host': socket.gethostname(),
          'since': time.strftime('%Y-%m-%d %H:%M:%S %Z'),
          'renewed': time.time(),
          'command': ' '.join([os.path.basename(sys.executable), *sys.argv])}


def _read_record(path: str) -> dict:
  try:
    with files.open_file(path, 'rb') as f:
      record = json.loads(f.read())
  except (OSError, ValueError):
    return {}
  return record if isinstance(record, dict) else {}


def _describe(record: dict) -> str:
  if not record:
    return 'another process'
  return (f'pid {record.get("pid")} on {record.get("host")} since'
          f' {record.get("since")} ({record.get("command")})')


def _alive_here(record: dict) -> bool:
  """Whether the recorded holder may still run: True unless it is a process
  of this host that no longer exists."""
  if record.get('host') != socket.gethostname():
    return True
  try:
    os.kill(int(record.get('pid', -1)), 0)
  except ProcessLookupError:
    return False
  except (PermissionError, ValueError, TypeError):
    return True
  return True


def _busy(workdir: str, record: dict) -> UserError:
  return UserError(
      f'--workdir={workdir} is in use by {_describe(record)}; wait for that run'
      ' to end, or use another --workdir')


def _write_record(fd: int) -> None:
  os.ftruncate(fd, 0)
  os.lseek(fd, 0, os.SEEK_SET)
  os.write(fd, json.dumps(_record()).encode())
  os.fsync(fd)


def _acquire(workdir: str) -> int:
  """The open, locked lock file's descriptor."""
  path = os.path.join(workdir, LOCK_FILE)
  while True:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      os.close(fd)
      raise _busy(workdir, _read_record(path)) from None
    except OSError as e:
      if e.errno not in _NO_FLOCK:
        os.close(fd)
        raise
      return _acquire_without_flock(workdir, path, fd)
    try:  # the holder may have removed the file between our open and flock
      same = os.stat(path).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
      same = False
    if same:
      break
    os.close(fd)
  stale = _read_record(path)
  if stale:
    logging.warning('taking over the lock of %s, which ended without'
                    ' releasing it', _describe(stale))
  _write_record(fd)
  return fd


def _acquire_without_flock(workdir: str, path: str, fd: int) -> int:
  record = _read_record(path)
  if record and record.get('pid') != os.getpid() and _alive_here(record):
    os.close(fd)
    raise UserError(
        f'--workdir={workdir} is in use by {_describe(record)} (this file system'
        f' has no locks: if that run is gone, delete {path}); or use another'
        ' --workdir')
  _write_record(fd)
  return fd


def _lease_age(record: dict) -> float:
  try:
    return time.time() - float(record['renewed'])
  except (KeyError, TypeError, ValueError):
    return float('inf')


def _acquire_remote(workdir: str, path: str) -> str:
  """Creates the lock object `path` (see the module docstring); returns its
  generation. A stale lock is deleted only at the generation read, so of two
  runs taking it over, one deletes it and the other's delete fails; then only
  one of them can create it."""
  found = files.read_with_generation(path)
  if found is not None:
    try:
      record = json.loads(found[0])
    except ValueError:
      record = {}
    record = record if isinstance(record, dict) else {}
    if _alive_here(record) and _lease_age(record) <= LEASE_S:
      raise UserError(
          f'--workdir={workdir} is in use by {_describe(record)}, which renewed'
          f' its lock {_lease_age(record):.0f}s ago (it is stale after'
          f' {LEASE_S}s); wait for that run to end, or use another --workdir')
    logging.warning('taking over the lock of %s, which ended without'
                    ' releasing it', _describe(record))
    files.remove_if_generation(path, found[1])
  try:
    return files.write_if_generation(path, json.dumps(_record()).encode(), '0')
  except FileExistsError:
    raise _busy(workdir, _read_record(path)) from None


@contextlib.contextmanager
def _remote_lock(workdir: str):
  """Holds the lock object, renewing it at the generation this run wrote
  last: if another run has taken it over meanwhile (this one stalled past
  the lease), the renewal fails, one error line says so, and this run
  leaves that run's lock alone."""
  path = os.path.join(workdir, LOCK_FILE)
  try:
    generation = _acquire_remote(workdir, path)
  except OSError as e:
    raise UserError(f'cannot take the lock {path} ({e}); check the bucket\'s'
                    ' permissions') from None
  done = threading.Event()
  held = {'generation': generation}

  def renew():
    while not done.wait(RENEW_S):
      try:
        held['generation'] = files.write_if_generation(
            path, json.dumps(_record()).encode(), held['generation'])
      except FileExistsError:
        logging.error('another run took over the lock %s (this run went %ds'
                      ' without renewing it): two runs now write %s', path,
                      LEASE_S, workdir)
        held['generation'] = None
        return
      except Exception as e:  # noqa: BLE001 (a failed renewal is retried)
        logging.warning('cannot renew the lock %s (%s); it goes stale %ds after'
                        ' its last renewal', path, e, LEASE_S)

  renewer = threading.Thread(target=renew, name='gan_jax-lock', daemon=True)
  renewer.start()
  try:
    yield
  finally:
    done.set()
    renewer.join()
    if held['generation'] is not None:
      try:
        files.remove_if_generation(path, held['generation'])
      except Exception as e:  # noqa: BLE001 (never hides the run's own error)
        logging.warning('cannot release the lock %s (%s); it goes stale %ds'
                        ' after its last renewal', path, e, LEASE_S)


@contextlib.contextmanager
def lock(workdir: str):
  """Holds `<workdir>/run.lock` for the block; `workdir` must exist.

  Raises:
    UserError: another live run holds it (the message names pid and host).
  """
  if files.is_remote(workdir):
    with _remote_lock(workdir):
      yield
    return
  fd = _acquire(workdir)
  path = os.path.join(workdir, LOCK_FILE)
  try:
    yield
  finally:
    with contextlib.suppress(FileNotFoundError):
      os.remove(path)  # before closing: nobody can lock it while we hold it
    os.close(fd)


_lock_calls = itertools.count()  # the same sequence on every process of a run


@contextlib.contextmanager
def run_lock(workdir: str):
  """`lock` for a run of one or many processes: process 0 takes the lock and
  tells every process, through JAX's coordination service, whether it got it
  (all raise the same UserError if not)."""
  if jax.process_count() == 1:
    with lock(workdir):
      yield
    return
  client = ocp.multihost.get_jax_distributed_client()
  key = f'gan_jax/run_lock/{next(_lock_calls)}'
  with contextlib.ExitStack() as stack:
    if jax.process_index() == 0:
      message = ''
      try:
        stack.enter_context(lock(workdir))
      except UserError as e:
        message = str(e)
      client.key_value_set(key, message)
    else:
      message = client.blocking_key_value_get(key, 600_000)
    if message:
      raise UserError(message)
    yield


# ------------------------------------------------------------------ results


def read_results(workdir: str, instead: str = 'reading it as absent'
                 ) -> dict | None:
  """results.json of the run in `workdir`, None if it has none (yet) or it is
  damaged (one line names it and says `instead`: what the caller does)."""
  return files.read_json(os.path.join(workdir, RESULTS_FILE), instead=instead)


def is_finished(results: Mapping | None, num_steps: int) -> bool:
  """Whether a run's results.json says it finished all of `num_steps`."""
  return (results is not None and results.get('status') == 'finished'
          and results.get('final_step') == num_steps)


# ------------------------------------------------------------------ configs

def _flatten(tree, prefix: str = '') -> dict:
  flat = {}
  for key, value in tree.items():
    if isinstance(value, dict):
      flat.update(_flatten(value, f'{prefix}{key}.'))
    else:
      flat[prefix + key] = value
  return flat


def saved_config(workdir: str) -> tuple[int, dict] | None:
  """(step, record) of the newest checkpoint in `workdir` that saved the run's
  config with it ({'config': ..., 'gan_jax_version': ...}), None if none did
  (no checkpoint yet, or checkpoints of an older gan_jax)."""
  directory = os.path.join(workdir, CHECKPOINTS_DIR)
  if not files.isdir(directory):
    return None
  ckpts = checkpoints.Checkpoints(directory)
  for step in ckpts.steps():
    record = ckpts.record(step)
    if isinstance(record.get('config'), dict):
      return step, record
  return None


def run_config(workdir: str, rewrite: bool = False) -> dict | None:
  """The resolved config of the run in `workdir` (nested), None when it
  holds no run.

  It is config.json's; when that is missing or damaged (empty, truncated,
  not JSON), the config saved with the newest checkpoint, and one line says
  so; with `rewrite`, config.json is written again from it.

  Raises:
    DamagedFile: config.json is damaged and no checkpoint saved the config.
  """
  path = os.path.join(workdir, CONFIG_FILE)
  damaged = None
  try:
    config = files.read_json(path)
  except files.DamagedFile as e:
    config, damaged = None, str(e)
  if config is not None:
    return config
  saved = saved_config(workdir)
  if saved is None:
    if damaged:
      raise files.DamagedFile(f'{damaged}, and no checkpoint of the run saved'
                              ' its config; restore it, or train into a new'
                              ' --workdir')
    return None
  problem = damaged or f'{path} is missing'
  step, record = saved
  source = (f'checkpoint {step} (gan_jax {record.get("gan_jax_version", "?")})')
  action = f'using the config saved with {source}'
  if rewrite and jax.process_index() == 0:
    try:
      files.write_json(path, record['config'])
      action = f'rewrote it from the config saved with {source}'
    except OSError as e:
      action += f' (it could not be rewritten: {e.strerror})'
  logging.warning('%s; %s', problem, action)
  return record['config']


def recorded_config(workdir: str) -> dict | None:
  """`run_config` of the run in `workdir`, flattened ({'loss.name': ...});
  None if it holds no run, or its config cannot be read (one line says so)."""
  try:
    recorded = run_config(workdir)
  except files.DamagedFile as e:
    logging.warning('%s', e)
    return None
  return None if recorded is None else _flatten(recorded)


def config_changes(config: ml_collections.ConfigDict, workdir: str
                   ) -> dict[str, tuple]:
  """{key: (recorded value, new value)} for every key whose value differs
  between the run recorded in `workdir` and `config` (resolved). Keys that
  only one of them has (a run recorded before the key existed) are skipped."""
  recorded = recorded_config(workdir)
  if recorded is None:
    if checkpoints.Checkpoints(os.path.join(workdir, CHECKPOINTS_DIR)).steps():
      logging.warning('%s holds checkpoints but no record of the config they'
                      ' were trained with (no config.json; they predate the'
                      ' config saved with each checkpoint): this config is not'
                      ' checked against theirs', workdir)
    return {}
  wanted = _flatten(configs.resolve(config).to_dict())
  return {key: (recorded[key], value) for key, value in wanted.items()
          if key in recorded and recorded[key] != value}


def describe_changes(changes: dict[str, tuple]) -> str:
  return '; '.join(f'{key}={old!r} there, {new!r} here'
                   for key, (old, new) in changes.items())


def check_resume(config: ml_collections.ConfigDict, workdir: str,
                 allowed: tuple[str, ...] = ()) -> dict[str, tuple]:
  """The changes of `config` against the run in `workdir` (`config_changes`).

  Raises:
    UserError: a key outside FREE_KEYS and `allowed` differs; the message
      lists those keys and how to go on.
  """
  if files.is_remote(workdir):  # before reading it: one line if unreachable
    _check_remote(workdir)
  changes = config_changes(config, workdir)
  refused = {key: change for key, change in changes.items()
             if key not in FREE_KEYS and key not in allowed}
  if refused:
    raise UserError(
        f'{workdir} holds a run with another config ({describe_changes(refused)});'
        ' train into a new --workdir, or continue this run with the new values'
        f' by passing --allow_config_change={",".join(refused)}')
  return changes


def record_changes(workdir: str, step: int, changes: dict[str, tuple]) -> None:
  """Appends the changes a resumed run made to `<workdir>/config_history.json`
  (config.json then holds the new values)."""
  path = os.path.join(workdir, HISTORY_FILE)
  try:
    history = files.read_json(path, kind=list) or []
  except files.DamagedFile as e:  # kept beside, never lost
    logging.warning('%s; kept as %s.damaged, and a new history starts', e,
                    HISTORY_FILE)
    files.move(path, path + '.damaged')
    history = []
  history.append({'resumed_at_step': step,
                  'changes': {key: {'before': old, 'after': new}
                              for key, (old, new) in changes.items()}})
  files.write_json(path, history)
