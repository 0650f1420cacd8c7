"""A thin wrapper around Orbax's CheckpointManager for the whole GAN state.

Saves and restores every leaf of the state (parameters, batch statistics, both
optimizer states, step, PRNG key), so a resumed run continues bit for bit.
Typed PRNG keys are stored as their raw key data.
"""

import os

import jax
import orbax.checkpoint as ocp

from gan_jax.errors import UserError


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
  """'g_params/Dense_0/kernel', whether the tree holds dicts, dataclasses or tuples."""
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
    self.directory = os.path.abspath(directory)
    self._manager = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep,
                                             create=False),
        # Named, so that item_metadata works in a process that has not saved.
        item_handlers=ocp.StandardCheckpointHandler())

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def save(self, step: int, state) -> None:
    """Starts saving `state` as checkpoint `step` (finished in the background)."""
    self._manager.save(step, args=ocp.args.StandardSave(_to_storable(state)))

  def shapes(self, step: int) -> dict[str, tuple]:
    """The shape of each leaf of checkpoint `step`, by path ('g_params/...')."""
    return _leaf_paths(self._manager.item_metadata(step).tree)

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
    """Blocks until background saves are on disk."""
    self._manager.wait_until_finished()

  def close(self) -> None:
    self._manager.close()

