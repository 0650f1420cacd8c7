"""A run on disk as states: its recorded config and its checkpoints, restored.

`restore_run(workdir)` gives what the commands that read finished runs need
(sample, evaluate, fid, analysis): the run's config, its fixed parts
(gan_jax.gan) and its latest intact checkpoint; `restore_or_init` gives
training its state to start from. Checkpoints of older gan_jax versions
load too (`restore`): from before `num_seeds` (no seed axis), before
`Player` (leaves `g_params/...`) and before G's average (`g_ema`).
"""

import functools
import os
from typing import Any

from absl import logging
import flax
import jax
import jax.numpy as jnp
import ml_collections
import optax

from gan_jax import checkpoints
from gan_jax import configs
from gan_jax import data
from gan_jax import parallel
from gan_jax import workdir as workdir_lib
from gan_jax.errors import UserError
from gan_jax.gan import GAN
from gan_jax.gan import GANState
from gan_jax.gan import Player
from gan_jax.gan import build_gan
from gan_jax.gan import fresh_states
from gan_jax.gan import init_state
from gan_jax.gan import init_states
from gan_jax.gan import member

Array = jax.Array
PyTree = Any


def _replicated_shapes(shapes: GANState, mesh) -> GANState:
  sharding = parallel.replicated(mesh)
  return jax.tree.map(
      lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sharding), shapes)


def abstract_state(gan: GAN, mesh, num_seeds: int) -> GANState:
  """The stacked state's shapes, dtypes and (replicated) shardings, without
  computing it."""
  return _replicated_shapes(jax.eval_shape(
      functools.partial(init_states, gan),
      jax.ShapeDtypeStruct((num_seeds,), jnp.int32)), mesh)


# ------------------------------------------------------------------ old layouts


@flax.struct.dataclass
class _StateBeforePlayers:
  """The checkpoint layout of gan_jax before `Player` (G's BatchNorm
  statistics its only collection, D's none); `restore` loads it."""

  step: Array
  g_params: PyTree
  g_batch_stats: PyTree
  g_opt_state: optax.OptState
  d_params: PyTree
  d_opt_state: optax.OptState
  key: Array
  nonfinite_step: Array


def _before_players(state: GANState) -> _StateBeforePlayers:
  return _StateBeforePlayers(
      step=state.step, g_params=state.g.params,
      g_batch_stats=state.g.collections.get('batch_stats', {}),
      g_opt_state=state.g.opt_state, d_params=state.d.params,
      d_opt_state=state.d.opt_state, key=state.key,
      nonfinite_step=state.nonfinite_step)


def _from_before_players(old: _StateBeforePlayers, abstract: GANState,
                         gan: GAN) -> GANState:
  g_collections = ({'batch_stats': old.g_batch_stats}
                   if 'batch_stats' in abstract.g.collections else {})
  g = Player(old.g_params, g_collections, old.g_opt_state)
  return GANState(
      step=old.step, g=g, d=Player(old.d_params, {}, old.d_opt_state),
      key=old.key, nonfinite_step=old.nonfinite_step,
      g_ema=_average_from(g, gan))


@flax.struct.dataclass
class _StateBeforeAverage:
  """The checkpoint layout before `GANState.g_ema`; `restore` loads it."""

  step: Array
  g: Player
  d: Player
  key: Array
  nonfinite_step: Array


def _average_from(g: Player, gan: GAN) -> PyTree:
  """G's average for a state saved without one: {} when the run keeps none,
  else a copy of G (a run that turns the average on starts it from G)."""
  if gan.g_ema_decay == 0:
    return {}
  return jax.tree.map(jnp.copy, g.variables())


# ------------------------------------------------------------------ restore


def restore(gan: GAN, ckpts: checkpoints.Checkpoints, mesh, num_seeds: int,
            step: int | None = None) -> GANState:
  """Checkpoint `step` (default: the latest) as a state of `num_seeds` members.

  Checkpoints of older gan_jax versions load too: one from before
  `num_seeds` existed (no seed axis) as the one member of a one-seed run, one
  from before `Player` (leaves `g_params/...`) into the players, and one from
  before `g_ema` with G's average (if the run keeps one) starting from G.
  """
  step = ckpts.latest_step() if step is None else step
  shapes = ckpts.shapes(step)
  stored = shapes.get('step')  # [K], or [] without a seed axis
  stored_seeds = stored[0] if stored else 1
  if stored is not None and stored_seeds != num_seeds:
    seeds = f'{stored_seeds} seed' + 's' * (stored_seeds > 1)
    raise UserError(
        f'the checkpoint holds {seeds} but the config has num_seeds={num_seeds};'
        f' resume with --config.num_seeds={stored_seeds}, or train into a new'
        f' --workdir (checkpoint: {ckpts.directory}/{step})')
  no_seed_axis = stored == ()
  abstract = (_replicated_shapes(jax.eval_shape(
      functools.partial(init_state, gan), jax.random.key(0)), mesh)
              if no_seed_axis else abstract_state(gan, mesh, num_seeds))
  if any(path.startswith('g_params/') for path in shapes):
    state = _from_before_players(
        ckpts.restore(_before_players(abstract), step), abstract, gan)
  elif not ckpts.has_node(step, 'g_ema'):
    old = ckpts.restore(_StateBeforeAverage(
        step=abstract.step, g=abstract.g, d=abstract.d, key=abstract.key,
        nonfinite_step=abstract.nonfinite_step), step)
    state = GANState(step=old.step, g=old.g, d=old.d, key=old.key,
                     nonfinite_step=old.nonfinite_step,
                     g_ema=_average_from(old.g, gan))
  else:
    state = ckpts.restore(abstract, step)
  if no_seed_axis:
    return jax.jit(lambda s: jax.tree.map(lambda x: x[None], s),
                   out_shardings=parallel.replicated(mesh))(state)
  return state


def restore_or_init(gan: GAN, seeds: list[int], ckpts: checkpoints.Checkpoints,
                    mesh) -> GANState:
  """The newest intact checkpoint (damaged newer ones are set aside), or a
  fresh state when there is none: where training starts."""
  restored = ckpts.restore_intact(
      lambda step: restore(gan, ckpts, mesh, len(seeds), step), set_aside=True)
  if restored is None:
    return fresh_states(gan, seeds, mesh)
  step, state = restored
  logging.info('resumed from %s/%d', ckpts.directory, step)
  return state


def load_run_config(workdir: str) -> ml_collections.ConfigDict:
  """The resolved config of the run in `workdir`: config.json's, or the one
  saved with its newest checkpoint when config.json is missing or damaged
  (which is then rewritten: `workdir.run_config`)."""
  recorded = workdir_lib.run_config(workdir, rewrite=True)
  if recorded is None:
    raise UserError(f'--workdir={workdir} holds no run (no config.json); pass'
                    ' the workdir of a gan_jax.main run')
  config = ml_collections.ConfigDict(recorded)
  if 'num_seeds' not in config:  # a run from before num_seeds existed
    config.num_seeds = 1
  return config


def restore_run(workdir: str, mesh=None
                ) -> tuple[ml_collections.ConfigDict, GAN, GANState]:
  """The config, fixed parts and latest checkpointed (stacked) state of the
  run in `workdir`."""
  config = load_run_config(workdir)
  ckpts = checkpoints.Checkpoints(os.path.join(workdir, 'checkpoints'))
  if ckpts.latest_step() is None:
    raise UserError(f'--workdir={workdir} has no checkpoint yet (nothing in'
                    f' {ckpts.directory}); train first or wait for a checkpoint')
  gan = build_gan(config, data.example_shape_of(config.data))
  mesh = mesh or parallel.make_mesh()
  _, state = ckpts.restore_intact(
      lambda step: restore(gan, ckpts, mesh, config.num_seeds, step),
      set_aside=False)
  ckpts.close()
  return config, gan, state


def restore_member(workdir: str, seed_index: int, mesh=None,
                   flag: str = '--seed_index') -> tuple[GAN, GANState, int]:
  """Member `seed_index` of the latest checkpoint of the run in `workdir`: the
  fixed parts, the member's state (no seed axis) and its seed. `flag` names
  the index in the error when the run has no such member."""
  config, gan, state = restore_run(workdir, mesh)
  seeds = configs.seeds(config)
  if not 0 <= seed_index < len(seeds):
    valid = '0' if len(seeds) == 1 else f'0 to {len(seeds) - 1}'
    raise UserError(f'{flag}={seed_index} is out of range: the run in'
                    f' {workdir} has num_seeds={len(seeds)}; valid: {valid}')
  return gan, member(state, seed_index), seeds[seed_index]
