"""GAN training: the state, the pure step, and the loop around it.

`train_step` is written for one device and is pure: it draws its slice of the
global batch from (state.key, state.step) inside the compiled program, does
`d_steps` discriminator updates and one generator update, and averages
gradients and batch-norm statistics across the `data` axis.

A run trains `config.num_seeds` independent GANs (members) at once: every leaf
of its GANState has a leading seed axis [K] (K = 1 included), member i starts
from seed `config.seed + i` and is the run of that seed, and
`train_step_seeds` vmaps `train_step` over the members. `parallel` wraps it
once for all devices. `train_and_evaluate` is the loop: logging, TensorBoard,
sample pictures, checkpoints, resume, results.
"""

from collections.abc import Callable
import dataclasses
import functools
import json
import os
import time
from typing import Any

from absl import logging
import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from gan_jax import aggregate
from gan_jax import checkpoints
from gan_jax import configs
from gan_jax import data
from gan_jax import evaluators
from gan_jax import files
from gan_jax import losses
from gan_jax import models
from gan_jax import parallel
from gan_jax import preemption
from gan_jax import registry
from gan_jax import schedules
from gan_jax import summary_writer
from gan_jax import visualize
from gan_jax import workdir as workdir_lib
from gan_jax.errors import TrainingDiverged  # noqa: F401 (train.TrainingDiverged)
from gan_jax.errors import UserError
from gan_jax.parallel import DATA_AXIS

Array = jax.Array
PyTree = Any

NUM_GRID_SAMPLES = 64  # 8x8 image grid
NUM_SCATTER_SAMPLES = 1000  # points in a 2-D toy's scatter plot


@flax.struct.dataclass
class Player:
  """One player's (G's or D's) trainable state.

  `collections` holds every mutable Flax collection its module creates
  ({'batch_stats': ...} for BatchNorm, {} if none), so a model with state of
  its own trains and checkpoints without changes here.
  """

  params: PyTree
  collections: PyTree  # {collection name: variables}
  opt_state: optax.OptState

  def variables(self, params: PyTree | None = None) -> dict:
    """The module's variables, with `params` in place of the player's own."""
    return {'params': self.params if params is None else params,
            **self.collections}


@flax.struct.dataclass
class GANState:
  """Everything that changes during training, as one pytree.

  The shapes are one member's; a run's state stacks its members on a leading
  seed axis [K] of every leaf (`init_states`, `member`).
  """

  step: Array  # int32 []: generator updates done
  g: Player
  d: Player
  key: Array  # typed PRNG key; fixed: each step uses fold_in(key, step)
  nonfinite_step: Array  # int32 []: first generator update with a NaN/inf loss, -1 if none
  # G's variables (params and collections) averaged over its updates
  # (`average_generator`); {} when the run does not average (g_ema_decay 0).
  g_ema: PyTree = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class GAN:
  """The fixed parts of a run: models, optimizers, loss, data sampler, sizes."""

  generator: nn.Module
  discriminator: nn.Module
  g_optimizer: optax.GradientTransformation
  d_optimizer: optax.GradientTransformation
  loss: losses.Loss
  # (name, penalty, weight) added to D's loss (losses.active_penalties).
  penalties: tuple[tuple[str, losses.Penalty, float], ...]
  # Lazy regularisation (Karras et al. 2020, StyleGAN2, §3.1): the optional
  # penalties (not a loss's own) only on the first D update of every
  # reg_every-th step, weighted reg_every x d_steps, the same expected
  # penalty per D update. The host picks the program (`compile_step`).
  reg_every: int
  generator_reads_real: bool  # G's loss reads D's logits on real data
  latent_dim: int
  example_shape: tuple[int, ...]
  batch_size: int  # global
  d_steps: int
  sample_real: Callable[[dict, Array], Array]  # (data arrays, key) -> one example
  # The generator's exponential moving average (optim.g_ema_decay, 0 = none)
  # and the updates before which it copies G (optim.g_ema_start).
  g_ema_decay: float = 0.0
  g_ema_start: int = 0
  pack: int = 1  # D judges packs of this many examples (models.pack, PacGAN)
  seed_batching: str = 'vmap'  # 'vmap' or 'loop': how members share a program


def build_gan(config: ml_collections.ConfigDict,
              example_shape: tuple[int, ...],
              sample_real: Callable[[dict, Array], Array] | None = None) -> GAN:
  """The run's fixed parts from its (resolved) config; `sample_real` is only
  needed to train (`data.DataSource.sample_one`)."""
  # Runs recorded before train.dtype existed computed in float32.
  generator, discriminator = models.build(config.model, example_shape,
                                          config.train.get('dtype', 'float32'))
  num_steps = config.train.num_steps
  schedule = registry.lookup(schedules.SCHEDULES, 'optim.schedule',
                             config.optim.schedule)

  def adam(peak_lr: float, updates: int) -> optax.GradientTransformation:
    return optax.adam(schedule(peak_lr, updates), b1=config.optim.b1,
                      b2=config.optim.b2)

  loss = registry.lookup(losses.LOSSES, 'loss.name', config.loss.name)
  return GAN(
      generator=generator, discriminator=discriminator,
      g_optimizer=adam(config.optim.g_lr, num_steps),
      d_optimizer=adam(config.optim.d_lr, num_steps * config.train.d_steps),
      loss=loss,
      penalties=losses.active_penalties(config.loss.name, config.loss),
      reg_every=config.loss.get('reg_every', 1),
      generator_reads_real=losses.generator_reads_real(loss),
      latent_dim=config.model.latent_dim,
      example_shape=tuple(example_shape),
      batch_size=config.train.batch_size, d_steps=config.train.d_steps,
      sample_real=sample_real,
      g_ema_decay=config.optim.get('g_ema_decay', 0.0),
      g_ema_start=config.optim.get('g_ema_start', 0),
      pack=config.model.get('pack', 1),
      seed_batching=seed_batching(config.train.get('seed_batching', 'auto'),
                                  config.model.name, jax.default_backend()))


def seed_batching(choice: str, model: str, backend: str) -> str:
  """'vmap' or 'loop' for train.seed_batching=`choice` ('auto': the faster
  one measured for this model and backend, benchmarks/README.md).

  On the CPU a vmapped convolution with per-member kernels is a grouped
  convolution, which XLA:CPU runs at a fraction of a plain one's speed, so
  convolutional models loop over their members; the MLPs' batched matrix
  products are faster than a loop. Elsewhere vmap (not yet measured).
  """
  if choice != 'auto':
    return choice
  convolutional = registry.lookup(models.MODELS, 'model.name', model).convolutional
  return 'loop' if backend == 'cpu' and convolutional else 'vmap'


def _init_player(module: nn.Module, optimizer: optax.GradientTransformation,
                 key: Array, x: Array) -> Player:
  variables = dict(module.init(key, x, train=False))
  params = variables.pop('params')
  return Player(params=params, collections=variables,
                opt_state=optimizer.init(params))


def init_state(gan: GAN, key: Array) -> GANState:
  """Fresh parameters, collections and optimizer states; pure (jit it with
  out_shardings)."""
  g_key, d_key, train_key = jax.random.split(key, 3)
  g = _init_player(gan.generator, gan.g_optimizer, g_key,
                   jnp.zeros((1, gan.latent_dim)))
  return GANState(
      step=jnp.zeros((), jnp.int32), g=g,
      d=_init_player(gan.discriminator, gan.d_optimizer, d_key,
                     jnp.zeros((1,) + models.packed_shape(gan.example_shape,
                                                          gan.pack))),
      key=train_key, nonfinite_step=jnp.full((), -1, jnp.int32),
      g_ema=g.variables() if gan.g_ema_decay > 0 else {})


def init_states(gan: GAN, seeds: Array) -> GANState:
  """One member per seed (int32 [K]), stacked on a leading axis of every leaf;
  member i is `init_state(gan, jax.random.key(seeds[i]))`."""
  return jax.vmap(lambda seed: init_state(gan, jax.random.key(seed)))(seeds)


def member(state: GANState, i: int) -> GANState:
  """Member `i` of a stacked state: its leaves without the seed axis."""
  return jax.tree.map(lambda x: x[i], state)


def current_step(state: GANState) -> int:
  """Generator updates done by a stacked state (the same for every member)."""
  return int(parallel.fetch(state.step)[0])


def first_divergence(nonfinite_step_K: np.ndarray) -> tuple[int, int] | None:
  """(member, step) of the earliest NaN/inf loss of any member, None if none."""
  bad = [(int(step), i) for i, step in enumerate(nonfinite_step_K) if step >= 0]
  if not bad:
    return None
  step, i = min(bad)
  return i, step


def _local_keys(key: Array, global_batch: int) -> Array:
  """This device's slice of one key per example of the global batch.

  Every example's randomness depends on (key, its index in the global batch)
  only, so a run gives the same numbers however the batch is split.
  """
  local = global_batch // jax.lax.axis_size(DATA_AXIS)
  start = jax.lax.axis_index(DATA_AXIS) * local
  return jax.lax.dynamic_slice_in_dim(jax.random.split(key, global_batch),
                                      start, local)


def _latents(gan: GAN, key: Array) -> Array:
  keys = _local_keys(key, gan.batch_size)
  return jax.vmap(lambda k: jax.random.normal(k, (gan.latent_dim,)))(keys)


def _apply(module: nn.Module, player: Player, params: PyTree, *args,
           update_collections: bool, **kwargs) -> tuple[Array, PyTree]:
  """module(*args, train=True) with the player's variables (its `params`
  replaced); returns the output and the player's collections, as updated by
  this pass when `update_collections` (BatchNorm statistics, averaged over
  the data axis by the module; spectral normalisation's power iteration) and
  unchanged otherwise. (Training mode writes them either way, so they are
  always mutable here.)"""
  variables = player.variables(params)
  if not player.collections:
    return module.apply(variables, *args, train=True, **kwargs), player.collections
  out, updates = module.apply(variables, *args, train=True,
                              mutable=list(player.collections), **kwargs)
  if not update_collections:
    return out, player.collections
  return out, {**player.collections, **updates}


def _discriminate(gan: GAN, d: Player, d_params: PyTree, x: Array,
                  example_keys: Array,
                  update_collections: bool = False) -> tuple[Array, PyTree]:
  """D's logits [N] on N inputs (examples, or packs with gan.pack > 1) in
  training mode, input i with dropout key i, and D's collections (updated
  only in D's own update).

  D sees the whole batch at once (large matrix products and convolutions) and
  draws each example's dropout masks from that example's key alone.
  """
  return _apply(gan.discriminator, d, d_params, x,
                update_collections=update_collections,
                example_keys_B=example_keys)


def _packs(gan: GAN, x: Array, example_keys: Array) -> tuple[Array, Array]:
  """This device's examples as D's packs of `gan.pack` (models.pack), each
  with its first example's key; unchanged when gan.pack is 1."""
  return models.pack(x, gan.pack), example_keys[::gan.pack]


def _global(logits: Array) -> Array:
  """The logits of the whole global batch, gathered from every device in
  device order: a loss's batch means are then over the global batch. (Its
  gradient flows back to each device's own examples.)"""
  if jax.lax.axis_size(DATA_AXIS) == 1:
    return logits  # no collective to run on one device
  return jax.lax.all_gather(logits, DATA_AXIS, tiled=True)


def _real_batch(gan: GAN, data_arrays: dict, key: Array) -> Array:
  return jax.vmap(functools.partial(gan.sample_real, data_arrays))(
      _local_keys(key, gan.batch_size))


def _apply_gradients(optimizer: optax.GradientTransformation, params, opt_state,
                     grads) -> tuple[PyTree, optax.OptState]:
  """Averages this device's gradients over all devices, then one Adam update."""
  grads = jax.lax.pmean(grads, DATA_AXIS)
  updates, opt_state = optimizer.update(grads, opt_state, params)
  return optax.apply_updates(params, updates), opt_state


def _discriminator_update(gan: GAN, state: GANState, data_arrays: dict,
                          key: Array, regularise: bool = False
                          ) -> tuple[GANState, dict[str, Array]]:
  """One discriminator (critic) update on fresh real and generated batches;
  with `regularise`, it adds the lazy penalties too (`GAN.reg_every`)."""
  # Keys 4 + 2j and 5 + 2j belong to penalty j of losses.PENALTIES, whichever
  # others are active (the gradient penalty's are those it always had).
  keys = jax.random.split(key, 4 + 2 * len(losses.PENALTIES))
  real_key, z_key, real_drop, fake_drop = keys[:4]
  real = _real_batch(gan, data_arrays, real_key)
  fake, _ = _apply(gan.generator, state.g, state.g.params,
                   _latents(gan, z_key), update_collections=True)
  fake = jax.lax.stop_gradient(fake)

  # D judges packs (gan.pack examples each; one example per pack unless
  # model.pack is set), and so do the penalties: R1's gradient and WGAN-GP's
  # interpolate are a whole pack's, as for any other input of D.
  real, real_keys = _packs(gan, real, _local_keys(real_drop, gan.batch_size))
  fake, fake_keys = _packs(gan, fake, _local_keys(fake_drop, gan.batch_size))
  # Real and fake in one pass of D (larger matrix products, fewer ops): the
  # same numbers as two passes, since D treats every example on its own (no
  # batch statistics, per-example dropout keys; models/__init__.py).
  both = jnp.concatenate([real, fake])
  both_keys = jnp.concatenate([real_keys, fake_keys])

  lazy = gan.reg_every > 1
  penalties, skipped = [], []  # (name, penalty, weight) added; metrics not
  for name, penalty, weight in gan.penalties:
    if not lazy or penalty.with_its_loss_only:
      penalties.append((name, penalty, weight))
    elif regularise:
      penalties.append((name, penalty, weight * gan.reg_every * gan.d_steps))
    else:
      skipped.append(penalty.metric)

  def loss_fn(d_params):
    logits, collections = _discriminate(gan, state.d, d_params, both, both_keys,
                                        update_collections=True)
    real_logits, fake_logits = jnp.split(logits, 2)
    loss = gan.loss.d_loss(_global(real_logits), _global(fake_logits))
    metrics = {'d_real': jnp.mean(real_logits), 'd_fake': jnp.mean(fake_logits)}
    for name, penalty, weight in penalties:
      j = list(losses.PENALTIES).index(name)
      keys_key, drop_key = keys[4 + 2 * j], keys[5 + 2 * j]
      critic = lambda x, k=drop_key: _discriminate(  # noqa: E731
          gan, state.d, d_params, x,
          _local_keys(k, gan.batch_size)[::gan.pack])[0]
      value = penalty.fn(critic, real, fake,
                         _local_keys(keys_key, gan.batch_size)[::gan.pack])
      loss = loss + weight * value
      metrics[penalty.metric] = value
    # A lazy penalty's metric is 0 on the updates without it (LazyStep
    # reports the last regularised update's instead).
    metrics.update({metric: jnp.zeros((), jnp.float32) for metric in skipped})
    return loss, (metrics, collections)

  (loss, (metrics, collections)), grads = jax.value_and_grad(
      loss_fn, has_aux=True)(state.d.params)
  d_params, d_opt_state = _apply_gradients(gan.d_optimizer, state.d.params,
                                           state.d.opt_state, grads)
  d = Player(params=d_params, collections=collections, opt_state=d_opt_state)
  return state.replace(d=d), {'d_loss': loss, **metrics}


def _generator_update(gan: GAN, state: GANState, data_arrays: dict,
                      key: Array) -> tuple[GANState, dict[str, Array]]:
  """One generator update against the current discriminator. D's logits on
  a real batch are computed only when G's loss reads them."""
  # The first two as split(key) gives them (threefry_partitionable): losses
  # that do not read real logits draw what they always drew.
  z_key, drop_key, real_key, real_drop = jax.random.split(key, 4)
  z = _latents(gan, z_key)
  real_logits = None
  if gan.generator_reads_real:
    real_logits = _global(_discriminate(
        gan, state.d, state.d.params, *_packs(
            gan, _real_batch(gan, data_arrays, real_key),
            _local_keys(real_drop, gan.batch_size)))[0])

  def loss_fn(g_params):
    fake, collections = _apply(gan.generator, state.g, g_params, z,
                               update_collections=True)
    fake_logits, _ = _discriminate(gan, state.d, state.d.params, *_packs(
        gan, fake, _local_keys(drop_key, gan.batch_size)))
    return gan.loss.g_loss(real_logits, _global(fake_logits)), collections

  (loss, collections), grads = jax.value_and_grad(loss_fn, has_aux=True)(
      state.g.params)
  g_params, g_opt_state = _apply_gradients(gan.g_optimizer, state.g.params,
                                           state.g.opt_state, grads)
  g = Player(params=g_params, collections=collections, opt_state=g_opt_state)
  return state.replace(g=g), {'g_loss': loss}


def train_step(gan: GAN, state: GANState, data_arrays: dict,
               regularise: bool = True) -> tuple[GANState, dict[str, Array]]:
  """`gan.d_steps` discriminator updates, then one generator update.

  Per device and pure: run it through `parallel.shard_map_step` (or
  `parallel.pmap_step`). The randomness of update number `state.step + 1`
  comes from fold_in(state.key, state.step), and the real batch is drawn
  from `data_arrays` inside the step, so a resumed run repeats exactly.
  `regularise`: whether the first D update adds the lazy penalties, for a
  run with `gan.reg_every` > 1 (`compile_step` picks it on the host).

  Returns:
    The new state and scalar metrics averaged over devices (and D steps).
  """
  step_key = jax.random.fold_in(state.key, state.step)
  d_key, g_key = jax.random.split(step_key)

  def d_update(carry, i, regularise=False):
    return _discriminator_update(gan, carry, data_arrays,
                                 jax.random.fold_in(d_key, i), regularise)

  if gan.d_steps == 1:
    state, d_metrics = d_update(state, 0, regularise)
  elif gan.reg_every > 1:  # the first update on its own: it may regularise
    state, first = d_update(state, 0, regularise)
    state, rest = jax.lax.scan(d_update, state, jnp.arange(1, gan.d_steps))
    d_metrics = jax.tree.map(lambda a, b: (a + jnp.sum(b)) / gan.d_steps,
                             first, rest)
  else:
    state, d_metrics = jax.lax.scan(d_update, state, jnp.arange(gan.d_steps))
    d_metrics = jax.tree.map(jnp.mean, d_metrics)
  state, g_metrics = _generator_update(gan, state, data_arrays, g_key)
  if gan.g_ema_decay > 0:
    state = state.replace(g_ema=average_generator(
        state.g_ema, state.g.variables(), gan.g_ema_decay,
        updates=state.step + 1, start=gan.g_ema_start))
  metrics = jax.lax.pmean({**d_metrics, **g_metrics}, DATA_AXIS)

  finite = jnp.isfinite(metrics['d_loss']) & jnp.isfinite(metrics['g_loss'])
  first_bad = jnp.where((state.nonfinite_step < 0) & ~finite, state.step + 1,
                        state.nonfinite_step)
  return state.replace(step=state.step + 1, nonfinite_step=first_bad), metrics


def train_step_seeds(gan: GAN, state: GANState, data_arrays: dict,
                     regularise: bool = True) -> tuple[GANState, dict[str, Array]]:
  """`train_step` of every member of a stacked state, in one program:
  vmapped, or one member after another (`gan.seed_batching`).

  Per device and pure like `train_step`; the metrics have the seed axis [K].
  A lone member runs `train_step` unbatched: one-seed runs compute exactly
  what they did before the seed axis existed (a batched matmul may round
  differently).
  """
  step = functools.partial(train_step, gan, regularise=regularise)
  if state.step.shape == (1,):
    return jax.tree.map(lambda x: x[None], step(member(state, 0), data_arrays))
  if gan.seed_batching == 'loop':
    # Unrolled: as an XLA while loop (lax.map) the DCGAN step ran 30x slower
    # on the CPU. The program (and its compile time) grows with K.
    _, out = jax.lax.scan(lambda _, one: (None, step(one, data_arrays)), None,
                          state, unroll=True)
    return out
  return jax.vmap(step, in_axes=(0, None))(state, data_arrays)


def average_generator(average: PyTree, current: PyTree, decay: float,
                      updates: Array, start: int) -> PyTree:
  """The exponential moving average of G's variables after its update number
  `updates` (from 1): G itself while updates <= `start`, then
  decay · average + (1 − decay) · G (Karras et al. 2018, "Progressive Growing
  of GANs", §A.1; Yazıcı et al. 2019, "The Unusual Effectiveness of
  Averaging in GAN Training").

  Every variable is averaged alike, BatchNorm's running statistics too: the
  averaged generator normalises with the same average of G's statistics as
  its weights are of G's weights (no separate pass to re-estimate them).
  """
  weight = jnp.where(updates <= start, 0.0, decay)
  return jax.tree.map(lambda a, c: weight * a + (1 - weight) * c, average, current)


def generator_variables(gan: GAN, state: GANState, raw: bool = False) -> dict:
  """The variables samples are drawn from: the averaged generator's when the
  run keeps one (optim.g_ema_decay > 0) unless `raw`, else G's own. `state`
  is one member's or a stacked one."""
  if gan.g_ema_decay > 0 and not raw:
    return state.g_ema
  return state.g.variables()


def samples_from(gan: GAN, raw: bool = False) -> str:
  """'ema' or 'raw': which generator `generator_variables` gives, as results
  and commands report it."""
  return 'ema' if gan.g_ema_decay > 0 and not raw else 'raw'


def generate(gan: GAN, variables: dict, z: Array) -> Array:
  """G(z) in inference mode (BatchNorm running averages) with the generator
  `variables` (`generator_variables`): samples to look at."""
  return gan.generator.apply(variables, z, train=False)


@functools.lru_cache(maxsize=8)
def _jitted_generate(gan: GAN):
  """One compiled `generate` per GAN, so repeated evaluations do not retrace."""
  return jax.jit(functools.partial(generate, gan))


def generate_samples(gan: GAN, state: GANState, num: int, seed: int,
                     batch: int = 1000, raw: bool = False) -> np.ndarray:
  """`num` float32 samples in inference mode from z ~ N(0, I) drawn with `seed`,
  of the averaged generator if the run keeps one and not `raw`.

  `state` is one member's (`member(state, i)`). The same seed and state give
  the same samples, whatever `batch` is.
  """
  z = jax.random.normal(jax.random.key(seed), (num, gan.latent_dim))
  generate_fn = _jitted_generate(gan)
  variables = generator_variables(gan, state, raw)
  chunks = [generate_fn(variables, z[i:i + batch])
            for i in range(0, num, batch)]
  return np.concatenate([np.asarray(parallel.fetch(c), np.float32)
                         for c in chunks])


def score_members(gan: GAN, state: GANState, seeds: list[int], num: int,
                  score_samples: evaluators.Scorer, raw: bool = False) -> list[dict]:
  """Each member's figures on `num` samples whose z is drawn with its seed
  (as a one-seed run of that seed draws them), with the seed under 'seed'."""
  return [{'seed': seed, **score_samples(generate_samples(
              gan, member(state, i), num, seed, raw=raw))}
          for i, seed in enumerate(seeds)]


def _format_duration(seconds: float) -> str:
  seconds = int(seconds)
  hours, rest = divmod(seconds, 3600)
  return (f'{hours}h{rest // 60:02d}m' if hours
          else f'{rest // 60}m{rest % 60:02d}s')


class _SamplePictures:
  """Pictures of each member's G (its average when the run keeps one) on a
  fixed z (drawn with the member's seed): an 8x8 grid for images, a scatter
  plot for toys."""

  def __init__(self, gan: GAN, source: data.DataSource, seeds: list[int], mesh):
    self._gan = gan
    self._source = source
    count = NUM_GRID_SAMPLES if source.kind == 'images' else NUM_SCATTER_SAMPLES
    keys = [jax.random.split(jax.random.fold_in(jax.random.key(seed), 1))
            for seed in seeds]
    z = np.stack([np.asarray(jax.random.normal(z_key, (count, gan.latent_dim)))
                  for z_key, _ in keys])
    self._z = parallel.replicate(z, mesh)
    self._generate = jax.jit(jax.vmap(functools.partial(generate, gan)),
                             out_shardings=parallel.replicated(mesh))
    if source.kind == 'points':
      arrays = jax.tree.map(jnp.asarray, source.arrays)
      sample = jax.jit(jax.vmap(functools.partial(source.sample_one, arrays)))
      self._real = [np.asarray(sample(jax.random.split(real_key, count)))
                    for _, real_key in keys]

  def __call__(self, state: GANState) -> list[np.ndarray]:
    """uint8 [H, W, C] per member. Every process must call it (it runs on all
    devices)."""
    fake = parallel.fetch(self._generate(generator_variables(self._gan, state),
                                         self._z))
    if self._source.kind == 'images':
      return [visualize.image_grid(f) for f in fake]
    return [visualize.scatter_plot(real, f, modes_K2=self._source.modes)
            for real, f in zip(self._real, fake, strict=True)]


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


@flax.struct.dataclass
class _StateBeforePlayers:
  """The checkpoint layout of gan_jax before `Player` (G's BatchNorm
  statistics its only collection, D's none); `_restore` loads it."""

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
  """The checkpoint layout before `GANState.g_ema`; `_restore` loads it."""

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


def _restore(gan: GAN, ckpts: checkpoints.Checkpoints, mesh, num_seeds: int,
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


def fresh_states(gan: GAN, seeds: list[int], mesh) -> GANState:
  """A new run's stacked state (one member per seed), replicated over `mesh`."""
  init = jax.jit(functools.partial(init_states, gan),
                 out_shardings=parallel.replicated(mesh))
  return init(np.asarray(seeds, np.int32))


def compile_step(gan: GAN, state: GANState, data_arrays: dict, mesh):
  """`train_step_seeds` over `mesh`, compiled for these (replicated) arguments:
  the step that training and `gan_jax.bench` run. With lazy regularisation
  (`gan.reg_every` > 1), two programs, with and without the lazy penalties,
  and a `LazyStep` that calls the first on every reg_every-th step: a branch
  inside one program ran its penalty ~20x slower on XLA:CPU."""
  def compiled(regularise: bool):
    step_fn = parallel.shard_map_step(
        functools.partial(train_step_seeds, gan, regularise=regularise), mesh)
    return step_fn.lower(state, data_arrays).compile()

  if not has_lazy_penalties(gan):
    return compiled(True)
  return LazyStep(compiled(True), compiled(False), gan.reg_every,
                  current_step(state), lazy_metrics(gan))


def lazy_metrics(gan: GAN) -> tuple[str, ...]:
  """The metrics of the penalties the run applies lazily: with reg_every > 1,
  R1's and R2's when weighted > 0 (a loss's own penalty never is lazy)."""
  if gan.reg_every <= 1:
    return ()
  return tuple(penalty.metric for _, penalty, _ in gan.penalties
               if not penalty.with_its_loss_only)


def has_lazy_penalties(gan: GAN) -> bool:
  """Whether the run regularises lazily: reg_every > 1 and a penalty it
  applies lazily (R1 or R2 weighted > 0; a loss's own penalty never is)."""
  return bool(lazy_metrics(gan))


class LazyStep:
  """The compiled step of a lazily regularised run: `regularised` when the
  generator updates done (counted on the host from `step`) are a multiple
  of `every`, else `plain`. Called as the compiled step is.

  The plain program reports the lazy penalties (`metrics`) as 0; this step
  reports them as the last regularised update computed them (0 before the
  first), so a log line or results.json shows the penalty whichever update
  it falls on. Device arrays only: no host sync."""

  def __init__(self, regularised, plain, every: int, step: int,
               metrics: tuple[str, ...] = ()):
    self._regularised, self._plain = regularised, plain
    self._every, self._step = every, step
    self._metrics, self._last = metrics, {}

  def __call__(self, state: GANState, data_arrays: dict):
    regularise = self._step % self._every == 0
    self._step += 1
    if regularise:
      state, metrics = self._regularised(state, data_arrays)
      self._last = {name: metrics[name] for name in self._metrics}
      return state, metrics
    state, metrics = self._plain(state, data_arrays)
    return state, {**metrics, **self._last}


def _restore_or_init(gan: GAN, seeds: list[int], ckpts: checkpoints.Checkpoints,
                     mesh) -> GANState:
  """The newest intact checkpoint (damaged newer ones are set aside), or a
  fresh state when there is none."""
  restored = ckpts.restore_intact(
      lambda step: _restore(gan, ckpts, mesh, len(seeds), step), set_aside=True)
  if restored is None:
    return fresh_states(gan, seeds, mesh)
  step, state = restored
  logging.info('resumed from %s/%d', ckpts.directory, step)
  return state


def load_run_config(workdir: str) -> ml_collections.ConfigDict:
  """The resolved config a run in `workdir` recorded in config.json."""
  path = os.path.join(workdir, 'config.json')
  if not os.path.exists(path):
    raise UserError(f'--workdir={workdir} holds no run (no config.json); pass'
                    ' the workdir of a gan_jax.main run')
  with open(path) as f:
    config = ml_collections.ConfigDict(json.load(f))
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
  gan = build_gan(config, data.example_shape(config.data.name))
  mesh = mesh or parallel.make_mesh()
  _, state = ckpts.restore_intact(
      lambda step: _restore(gan, ckpts, mesh, config.num_seeds, step),
      set_aside=False)
  ckpts.close()
  return config, gan, state


def restore_member(workdir: str, seed_index: int, mesh=None
                   ) -> tuple[GAN, GANState, int]:
  """Member `seed_index` of the latest checkpoint of the run in `workdir`: the
  fixed parts, the member's state (no seed axis) and its seed."""
  config, gan, state = restore_run(workdir, mesh)
  seeds = configs.seeds(config)
  if not 0 <= seed_index < len(seeds):
    valid = '0' if len(seeds) == 1 else f'0 to {len(seeds) - 1}'
    raise UserError(f'--seed_index={seed_index} is out of range: the run in'
                    f' {workdir} has num_seeds={len(seeds)}; valid: {valid}')
  return gan, member(state, seed_index), seeds[seed_index]


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str,
                       source: data.DataSource | None = None,
                       allow_config_change: tuple[str, ...] = ()) -> dict:
  """Trains (or resumes) the run of `config` in `workdir`; returns results.json's content.

  `source` replaces the data `config.data` names (`gan_jax.bench` passes
  synthetic data). A workdir holding a run of another config is refused,
  unless the keys that differ are workdir.FREE_KEYS or in
  `allow_config_change`. The run holds the workdir's lock throughout.

  Raises:
    UserError: a bad config, missing data, a workdir in use or of another
      run, or a checkpoint that does not fit.
    TrainingDiverged: a loss became NaN/inf (the last good checkpoint stays).
    preemption.Interrupted: SIGTERM or SIGINT; a checkpoint of the step
      reached was saved.
  """
  wall_start = time.time()
  mesh = parallel.make_mesh()
  configs.validate(config, mesh.size)
  for key in allow_config_change:
    configs.find(config, key, '--allow_config_change')
  config = configs.resolve(config)
  changes = workdir_lib.check_resume(config, workdir, tuple(allow_config_change))
  source = source or data.load(config.data)
  logging.info('data: %s', source.description)
  gan = build_gan(config, source.example_shape, source.sample_one)
  eval_names = evaluators.parse(config.eval.evaluators)
  score_samples = evaluators.build(eval_names, config, source)
  workdir_lib.create(workdir)
  # A signal while restoring or compiling stops the run after its first step.
  with workdir_lib.run_lock(workdir), preemption.StopSignals() as stop:
    return _train(config, workdir, source, gan, eval_names, score_samples, mesh,
                  changes, stop, wall_start)


def _train(config: ml_collections.ConfigDict, workdir: str,
           source: data.DataSource, gan: GAN, eval_names: tuple[str, ...],
           score_samples: evaluators.Scorer, mesh, changes: dict,
           stop: preemption.StopSignals, wall_start: float) -> dict:
  """`train_and_evaluate` once the workdir is locked."""
  ckpts = checkpoints.Checkpoints(os.path.join(workdir, 'checkpoints'),
                                  config.train.max_checkpoints)
  seeds = configs.seeds(config)
  state = _restore_or_init(gan, seeds, ckpts, mesh)
  start = current_step(state)
  num_steps = config.train.num_steps
  is_main = jax.process_index() == 0

  if is_main:
    os.makedirs(os.path.join(workdir, 'samples'), exist_ok=True)
    if changes:
      workdir_lib.record_changes(workdir, start, changes)
      logging.warning('config changed since step %d: %s (recorded in %s)', start,
                      workdir_lib.describe_changes(changes),
                      workdir_lib.HISTORY_FILE)
    files.write_text(os.path.join(workdir, 'config.json'),
                     config.to_json_best_effort(indent=2, sort_keys=True))
  writer = summary_writer.SummaryWriter(workdir) if is_main else None
  pictures = _SamplePictures(gan, source, seeds, mesh)
  data_arrays = parallel.replicate(source.arrays, mesh)

  compile_start = time.time()
  step_fn = compile_step(gan, state, data_arrays, mesh)
  compile_s = time.time() - compile_start
  logging.info('compiled the train step in %.1fs; %d devices, global batch %d,'
               ' loss %s, model %s, seeds %s', compile_s, mesh.size,
               gan.batch_size, config.loss.name, config.model.name,
               ','.join(map(str, seeds)))

  def write_results(results: dict) -> None:
    if is_main:
      files.write_json(os.path.join(workdir, 'results.json'), results)

  def check_finite(state: GANState, step: int) -> None:
    nonfinite = parallel.fetch(state.nonfinite_step)
    diverged = first_divergence(nonfinite)
    if diverged is not None:
      i, bad_step = diverged
      ckpts.wait()
      good = ckpts.latest_step()
      where = (f'the last good checkpoint is step {good} in {ckpts.directory}'
               if good is not None else 'no checkpoint was saved')
      write_results({
          'status': 'diverged', 'nonfinite_step': bad_step,
          'nonfinite_seed': seeds[i],
          'diverged_seeds': [s for s, n in zip(seeds, nonfinite, strict=True)
                             if n >= 0],
          'final_step': step, 'last_checkpoint': good})
      whose = f' in seed {seeds[i]} (member {i})' if len(seeds) > 1 else ''
      raise TrainingDiverged(
          f'a loss became NaN or infinite at step {bad_step}{whose} (checked at'
          f' step {step}); {where}')

  def evaluate(state: GANState, step: int) -> list[dict]:
    per_seed = score_members(gan, state, seeds, config.eval.num_samples,
                             score_samples)
    if is_main:
      writer.scalars(step, aggregate.scalars(per_seed, 'eval/'))
      logging.info('eval step %d | %s', step, aggregate.describe(per_seed, '.4g'))
    return per_seed

  def results(status: str, step: int, **extra) -> dict:
    trained = step - start
    return {
        'status': status, 'final_step': max(step, start),
        'resumed_from': start or None, 'num_seeds': len(seeds), 'seeds': seeds,
        **aggregate.results('losses', losses_per_seed),
        **aggregate.results('metrics', scores_per_seed),
        **({'metrics_about': score_samples.about}
           if getattr(score_samples, 'about', None) else {}),
        # Which generator the pictures and metrics come from: 'ema' or 'raw'.
        'samples_from': samples_from(gan),
        'wall_time_s': time.time() - wall_start, 'compile_s': compile_s,
        'steps_per_s': (trained / (time.time() - train_start) if trained > 0
                        else None),
        'devices': mesh.size, 'processes': jax.process_count(), **extra}

  losses_per_seed, scores_per_seed = [], []
  train_start = last_time = time.time()
  last_step = start
  # Plain ints: a ConfigDict lookup per step would cost the loop time.
  log_every, sample_every, eval_every, checkpoint_every = (
      config.train.log_every, config.train.sample_every,
      config.train.eval_every, config.train.checkpoint_every)
  # Several CPU processes (loopback tests of multi-host runs) deadlocked in
  # their collectives with ~100 steps queued; there each step is awaited.
  await_each_step = jax.process_count() > 1 and jax.default_backend() == 'cpu'
  for step in range(start + 1, num_steps + 1):
    state, step_metrics = step_fn(state, data_arrays)
    if await_each_step:
      jax.block_until_ready(step_metrics)
    last = step == num_steps
    if step % log_every == 0 or last:
      losses_per_seed = aggregate.per_seed(parallel.fetch(step_metrics), seeds)
      check_finite(state, step)
      now = time.time()
      steps_per_s = (step - last_step) / (now - last_time)
      last_time, last_step = now, step
      if is_main:
        writer.scalars(step, {**aggregate.scalars(losses_per_seed),
                              'steps_per_s': steps_per_s})
        writer.flush()
        logging.info('step %d/%d | %s | %.2f steps/s | ETA %s', step,
                     num_steps, aggregate.describe(losses_per_seed),
                     steps_per_s,
                     _format_duration((num_steps - step) / steps_per_s))
    if step % sample_every == 0 or last:
      member_pictures = pictures(state)
      if is_main:
        for i, picture in enumerate(member_pictures):
          name = f'step_{step}_seed{i}' if len(seeds) > 1 else f'step_{step}'
          summary_writer.to_pil(picture).save(
              os.path.join(workdir, 'samples', f'{name}.png'))
        writer.image(step, 'samples', member_pictures[0])
    if eval_names and ((eval_every and step % eval_every == 0) or last):
      scores_per_seed = evaluate(state, step)
    stopping = stop.reached(step) and not last
    if step % checkpoint_every == 0 or last or stopping:
      check_finite(state, step)
      ckpts.save(step, state)
    if stopping:
      losses_per_seed = aggregate.per_seed(parallel.fetch(step_metrics), seeds)
      ckpts.close()
      write_results(results('interrupted', step, signal=stop.name(),
                            last_checkpoint=step))
      if is_main:
        writer.close()
      raise preemption.Interrupted(
          f'{stop.name()} at step {step}/{num_steps}: checkpoint'
          f' {step} saved in {ckpts.directory}; run the same command to'
          ' resume', stop.exit_code())

  ckpts.close()
  final = results('finished', num_steps)
  if is_main:
    writer.close()
    if num_steps > start or not os.path.exists(
        os.path.join(workdir, 'results.json')):
      write_results(final)
    logging.info('done: step %d, %s', final['final_step'],
                 os.path.join(workdir, 'results.json'))
  return final
