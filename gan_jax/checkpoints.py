"""A thin wrapper around Orbax's CheckpointManager for the whole GAN state.

Saves and restores every leaf of the state (parameters, batch statistics, both
optimizer states, step, PRNG key), so a resumed run continues bit for bit.
Typed PRNG keys are stored as their raw key data.

Integrity: once a checkpoint is on disk, the SHA-256 of each of its files goes
into `<step>/checksums.sha256` (the format of `sha256sum`, so
`cd checkpoints/<step> && sha256sum -c checksums.sha256` checks it by hand).
Restoring verifies them first (`damage`); a checkpoint saved without them (by
an older gan_jax, or by a run killed in the moment between Orbax finishing the
save and the checksums being written) is checked by restoring it.
"""

from collections.abc import Callable
import os
import shutil

from absl import logging
import jax
import numpy as np
import orbax.checkpoint as ocp

from gan_jax import files
from gan_jax.errors import NoSpace
from gan_jax.errors import UserError
from gan_jax.errors import is_no_space

CHECKSUMS = 'checksums.sha256'
DAMAGED_DIR = 'damaged_checkpoints'  # beside checkpoints/, where training moves them


def _checkpoint_files(step_dir: str) -> list[str]:
  """Every file below `step_dir` but the checksums, relative, sorted."""
  return [path for path in files.walk_files(step_dir) if path != CHECKSUMS]


def write_checksums(step_dir: str) -> None:
  """Records the SHA-256 of every file of a finished checkpoint."""
  files.write_text(os.path.join(step_dir, CHECKSUMS), ''.join(
      f'{files.digest(os.path.join(step_dir, path))}  {path}\n'
      for path in _checkpoint_files(step_dir)))


def damage(step_dir: str) -> str | None:
  """What is wrong with the checkpoint in `step_dir` by its checksums: None
  if every file is there with its recorded SHA-256 (or if it has no
  checksums: see the module docstring), else the first problem found."""
  path = os.path.join(step_dir, CHECKSUMS)
  if not files.exists(path):
    return None
  try:
    with files.open_file(path, 'rb') as f:
      recorded = dict(reversed(line.rstrip('\n').split('  ', 1))
                      for line in f.read().decode().splitlines()
                      if line.strip())
  except (OSError, ValueError, UnicodeDecodeError) as e:
    return f'unreadable {CHECKSUMS} ({e})'
  for name, digest in sorted(recorded.items()):
    file_path = os.path.join(step_dir, name)
    if not files.isfile(file_path):
      return f'{name} is missing'
    if files.digest(file_path) != digest:
      return f'{name} does not match its checksum'
  extra = sorted(set(_checkpoint_files(step_dir)) - set(recorded))
  if extra:
    return f'{extra[0]} was not part of it'
  return None


def _to_storable(state):
  return state.replace(key=jax.random.key_data(state.key))


def _abstract_storable(abstract_state):
  """`_to_storable` for a tree of jax.ShapeDtypeStruct (with shardings)."""
  key_data = jax.eval_shape(jax.random.key_data, abstract_state.key)
  return abstract_state.replace(key=jax.ShapeDtypeStruct(
      key_data.shape, key_data.dtype,
      sharding=getattr(abstract_state.key, 'sharding', None)))


def _from_storable(stored):
  return stored.replace(key=jax.random.wrap_key_data(stored.key))


def _path_name(path) -> str:
  """'g/params/Dense_0/kernel', whether the tree holds dicts, dataclasses or tuples."""
  parts = []
  for entry in path:
    for attr in ('key', 'name', 'idx'):
      if hasattr(entry, attr):
        parts.append(str(getattr(entry, attr)))
        break
  return '/'.join(parts)


def _leaf_paths(tree) -> dict[str, tuple]:
  leaves, _ = jax.tree_util.tree_flatten_with_path(tree)
  return {_path_name(path): tuple(leaf.shape) for path, leaf in leaves}


class Checkpoints:
  """Checkpoints of one run, in `directory` (created on the first save)."""

  def __init__(self, directory: str, max_to_keep: int = 3):
    self.directory = files.abspath(directory)
    self._unchecksummed = []  # steps saved in the background, not yet summed
    self._manager = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep,
                                             create=False),
        # Named, so that item_metadata works in a process that has not saved.
        item_handlers=ocp.StandardCheckpointHandler())

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def steps(self) -> list[int]:
    """The checkpoints' steps, newest first."""
    return sorted(self._manager.all_steps(), reverse=True)

  def step_dir(self, step: int) -> str:
    return os.path.join(self.directory, str(step))

  def save(self, step: int, state, record: dict | None = None) -> None:
    """Starts saving `state` as checkpoint `step` (finished in the background),
    with `record` (JSON: the run's config) in its metadata; the previous save
    is finished and checksummed first.

    Raises:
      NoSpace: the disk lacks room for it (checked before writing, and caught
        when a background write fails for want of space).
    """
    self.wait()
    self._check_space(step, state)
    self._manager.save(step, args=ocp.args.StandardSave(_to_storable(state)),
                       custom_metadata=record or {})
    self._unchecksummed.append(step)

  def record(self, step: int) -> dict:
    """What `save` recorded with checkpoint `step` ({} for one of an older
    gan_jax, or when its metadata cannot be read)."""
    try:
      return dict(self._manager.metadata(step).custom_metadata or {})
    except Exception:  # noqa: BLE001 (unreadable metadata: no record)
      return {}

  def no_space(self, what: str) -> NoSpace:
    """The one-line error of a run that ran out of space `what` (e.g.
    'writing PATH'), naming its last intact checkpoint."""
    good = self.latest_step()
    last = (f'the last intact checkpoint is {good} in {self.directory}'
            if good is not None else 'no checkpoint was saved')
    return NoSpace(f'no space left on device {what}; {last}; free some space'
                   ' and run the same command to resume')

  def _check_space(self, step: int, state) -> None:
    """NoSpace unless the disk holds `state` once more (with a margin): a
    full disk stops the run before a write half fails. Decided by process 0
    for all processes of a run, so that they stop together."""
    needed = int(1.2 * sum(leaf.nbytes for leaf in jax.tree.leaves(state))) + 2**18
    free = None  # object storage: no bound to check
    if jax.process_index() == 0 and not files.is_remote(self.directory):
      free = shutil.disk_usage(files.existing_ancestor(
          os.path.join(self.directory, 'x'))).free
    fits = free is None or free >= needed
    if jax.process_count() > 1:
      from jax.experimental import multihost_utils  # noqa: PLC0415
      fits = bool(multihost_utils.broadcast_one_to_all(np.int32(fits)))
    if not fits:
      raise self.no_space(
          f'for checkpoint {step} in {self.directory} ({needed / 2**20:.1f} MiB'
          f' needed, {(free or 0) / 2**20:.1f} MiB free)')

  def shapes(self, step: int) -> dict[str, tuple]:
    """The shape of each leaf of checkpoint `step`, by path ('g/params/...')."""
    return _leaf_paths(self._manager.item_metadata(step).tree)

  def has_node(self, step: int, name: str) -> bool:
    """Whether checkpoint `step`'s tree has a top-level node `name`, even an
    empty one (which `shapes` cannot show: it lists leaves)."""
    return name in self._manager.item_metadata(step).tree

  def check_fits(self, abstract_state, step: int) -> None:
    """Raises UserError unless checkpoint `step` has exactly the leaves and
    shapes of `abstract_state` (e.g. the config's model changed)."""
    stored = self.shapes(step)
    wanted = _leaf_paths(_abstract_storable(abstract_state))
    hint = (f'; resume with the config this run was started with, or train'
            f' into a new --workdir (checkpoint: {self.directory}/{step})')
    for path, shape in wanted.items():
      if path not in stored:
        raise UserError(f'the checkpoint does not fit the model built from this'
                        f' config: it has no {path}{hint}')
      if stored[path] != shape:
        raise UserError(f'the checkpoint does not fit the model built from this'
                        f' config: {path} has shape {stored[path]} there but'
                        f' {shape} here{hint}')
    extra = sorted(set(stored) - set(wanted))
    if extra:
      raise UserError(f'the checkpoint does not fit the model built from this'
                      f' config: it has {extra[0]}, which this model lacks{hint}')

  def restore(self, abstract_state, step: int | None = None):
    """Restores checkpoint `step` (default: the latest) into the shardings of
    `abstract_state`, a tree of jax.ShapeDtypeStruct with `.sharding` set."""
    step = self.latest_step() if step is None else step
    self.check_fits(abstract_state, step)
    stored = self._manager.restore(
        step, args=ocp.args.StandardRestore(_abstract_storable(abstract_state)))
    return _from_storable(stored)

  def wait(self) -> None:
    """Blocks until background saves are on disk, with their checksums.

    Raises:
      NoSpace: a background write failed for want of space.
    """
    try:
      self._manager.wait_until_finished()
    except Exception as e:
      if not is_no_space(e) or not self._unchecksummed:
        raise
      step, self._unchecksummed = self._unchecksummed[-1], []
      raise self.no_space(f'writing checkpoint {step} in {self.directory}') from None
    if jax.process_index() == 0:
      for step in self._unchecksummed:
        if files.isdir(self.step_dir(step)):  # not already rotated out
          write_checksums(self.step_dir(step))
    self._unchecksummed = []

  def restore_intact(self, restore_fn: Callable[[int], object],
                     set_aside: bool) -> tuple[int, object] | None:
    """The newest checkpoint that is intact: (step, restore_fn(step)), or None
    if there is no checkpoint.

    A damaged one (its files do not match its checksums, or, without
    checksums, restoring it fails) is named in a one-line warning and skipped.
    With `set_aside` (training, which will save that step again) the damaged
    ones newer than the intact one are moved to DAMAGED_DIR beside the
    checkpoints, never deleted. UserError (a checkpoint of another model)
    passes through.

    Raises:
      UserError: there are checkpoints, and none of them is intact (nothing
        is moved then).
    """
    damaged = []
    for step in self.steps():
      problem = damage(self.step_dir(step))
      if problem is None:
        try:
          restored = restore_fn(step)
        except UserError:
          raise
        except Exception as e:  # noqa: BLE001 (any failure to read is damage)
          problem = f'cannot be read: {type(e).__name__}: {_first_line(e)}'
        else:
          if set_aside and damaged:
            self._set_aside([bad for bad, _ in damaged])
          return step, restored
      logging.warning('checkpoint %d in %s is damaged (%s); trying the one'
                      ' before it', step, self.directory, problem)
      damaged.append((step, problem))
    if damaged:
      listed = '; '.join(f'{step}: {problem}' for step, problem in damaged)
      raise UserError(f'no intact checkpoint in {self.directory} ({listed});'
                      ' restore a copy, or train into a new --workdir')
    return None

  def _set_aside(self, steps: list[int]) -> None:
    """Moves damaged checkpoints out of Orbax's sight, to DAMAGED_DIR."""
    aside = os.path.join(os.path.dirname(self.directory), DAMAGED_DIR)
    if jax.process_index() == 0:
      files.makedirs(aside)
      for step in steps:
        target = os.path.join(aside, str(step))
        suffix = 1
        while files.exists(target):
          target = os.path.join(aside, f'{step}.{suffix}')
          suffix += 1
        files.move(self.step_dir(step), target)
        logging.warning('moved damaged checkpoint %d to %s', step, target)
    if jax.process_count() > 1:
      from jax.experimental import multihost_utils  # noqa: PLC0415
      multihost_utils.sync_global_devices('gan_jax: damaged checkpoints moved')
    self._manager.reload()

  def close(self) -> None:
    self.wait()
    self._manager.close()


def _first_line(error: Exception) -> str:
  text = str(error).strip()
  return text.splitlines()[0][:200] if text else ''

