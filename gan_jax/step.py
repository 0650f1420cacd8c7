"""The pure training step: `d_steps` discriminator updates and one generator update.

`train_step` is written for one device and is pure: it draws its slice of the
global batch from (state.key, state.step) inside the compiled program, does
`d_steps` discriminator updates and one generator update, and averages
gradients and batch-norm statistics across the `data` axis.
`train_step_seeds` runs it for every member of a stacked state (gan_jax.gan),
and `compile_step` wraps that once for all devices (gan_jax.parallel) and
compiles it: the program training and `gan_jax.bench` run.
"""

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax.sharding import PartitionSpec as P
import optax

from gan_jax import losses
from gan_jax import models
from gan_jax import parallel
from gan_jax.data import scale_pixels
from gan_jax.data import stream
from gan_jax.gan import GAN
from gan_jax.gan import GANState
from gan_jax.gan import Player
from gan_jax.gan import average_generator
from gan_jax.gan import current_step
from gan_jax.gan import member
from gan_jax.parallel import DATA_AXIS

Array = jax.Array
PyTree = Any

# What every step logs beside the losses (gan_jax.monitor reads them): D's
# mean logits on real and generated data and their gap, r_t = E[sign D(x)]
# on real data, each player's gradient norm and update-to-parameter ratio.
DYNAMICS = ('d_real', 'd_fake', 'd_gap', 'r_t', 'd_grad_norm', 'd_update_ratio',
            'g_grad_norm', 'g_update_ratio')

# A D update's keys: the real batch, z, D's dropout on real and on fake data,
# then two per penalty (losses.PENALTY_KEY_INDEX).
_D_UPDATE_KEYS = 4


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


def _real_batch(gan: GAN, data_arrays: dict, key: Array, slot) -> Array:
  """This device's real examples for one use: drawn from the dataset's arrays
  with `key` (data.pipeline=device), or the streamed batch's `slot` (the D
  update's index; d_steps for G's loss; data.stream)."""
  if stream.BATCHES in data_arrays:
    return scale_pixels(data_arrays[stream.BATCHES][slot])
  return jax.vmap(functools.partial(gan.sample_real, data_arrays))(
      _local_keys(key, gan.batch_size))


def _apply_gradients(optimizer: optax.GradientTransformation, params, opt_state,
                     grads) -> tuple[PyTree, optax.OptState, dict[str, Array]]:
  """Averages this device's gradients over all devices, then one Adam update;
  also its size: the averaged gradient's norm and the update's norm over
  the parameters' (the training dynamics each log line shows)."""
  grads = jax.lax.pmean(grads, DATA_AXIS)
  updates, opt_state = optimizer.update(grads, opt_state, params)
  sizes = {'grad_norm': optax.tree.norm(grads),
           'update_ratio': optax.tree.norm(updates)
                           / (optax.tree.norm(params) + 1e-12)}
  return optax.apply_updates(params, updates), opt_state, sizes


def penalty_keys(keys: Array, name: str) -> tuple[Array, Array]:
  """Penalty `name`'s two keys among a D update's `keys`: for its examples
  (e.g. WGAN-GP's ε) and for D's dropout in its critic. They depend on the
  penalty's entry in losses.PENALTY_KEY_INDEX alone, not on the order of
  losses.PENALTIES or on which other penalties are active."""
  index = _D_UPDATE_KEYS + 2 * losses.PENALTY_KEY_INDEX[name]
  return keys[index], keys[index + 1]


def _d_update_keys(key: Array) -> Array:
  """The keys of one D update (`_D_UPDATE_KEYS`, then two per penalty index).

  With JAX's partitionable Threefry, split(key, n)[i] does not depend on n,
  so a penalty appended to the index leaves every other key as it was."""
  return jax.random.split(
      key, _D_UPDATE_KEYS + 2 * (max(losses.PENALTY_KEY_INDEX.values()) + 1))


def _d_objective(gan: GAN, d: Player, d_params: PyTree, real: Array,
                 fake: Array, real_keys: Array, fake_keys: Array, keys: Array,
                 penalties, skipped=()) -> tuple[Array, tuple[dict, PyTree]]:
  """D's loss on packs of real and generated examples with `penalties`
  ((name, penalty, weight), each from its keys among `keys`), its metrics
  and D's collections as this pass updates them."""
  # Real and fake in one pass of D (larger matrix products, fewer ops): the
  # same numbers as two passes, since D treats every example on its own (no
  # batch statistics, per-example dropout keys; models/__init__.py).
  both = jnp.concatenate([real, fake])
  both_keys = jnp.concatenate([real_keys, fake_keys])
  logits, collections = _discriminate(gan, d, d_params, both, both_keys,
                                      update_collections=True)
  real_logits, fake_logits = jnp.split(logits, 2)
  loss = gan.loss.d_loss(_global(real_logits), _global(fake_logits))
  # r_t = E[sign(D(x) - boundary)] on real data: 1 when D calls every real
  # example real (Karras et al. 2020, "Training GANs with Limited Data",
  # §2.2; the boundary is the loss's, losses.Loss.real_above, else 0).
  metrics = {'d_real': jnp.mean(real_logits), 'd_fake': jnp.mean(fake_logits),
             'r_t': jnp.mean(jnp.sign(real_logits - (gan.loss.real_above or 0.0)))}
  for name, penalty, weight in penalties:
    keys_key, drop_key = penalty_keys(keys, name)
    critic = lambda x, k=drop_key: _discriminate(  # noqa: E731
        gan, d, d_params, x, _local_keys(k, gan.batch_size)[::gan.pack])[0]
    value = penalty.fn(critic, real, fake,
                       _local_keys(keys_key, gan.batch_size)[::gan.pack])
    loss = loss + weight * value
    metrics[penalty.metric] = value
  # A lazy penalty's metric is 0 on the updates without it (LazyStep
  # reports the last regularised update's instead).
  metrics.update({metric: jnp.zeros((), jnp.float32) for metric in skipped})
  return loss, (metrics, collections)


def _g_objective(gan: GAN, g: Player, g_params: PyTree, d: Player,
                 d_params: PyTree, z: Array, drop_key: Array,
                 real_logits: Array | None) -> tuple[Array, PyTree]:
  """G's loss against D (`d_params`) on G(z), and G's collections as this
  pass updates them (BatchNorm statistics)."""
  fake, collections = _apply(gan.generator, g, g_params, z,
                             update_collections=True)
  fake_logits, _ = _discriminate(gan, d, d_params, *_packs(
      gan, fake, _local_keys(drop_key, gan.batch_size)))
  return gan.loss.g_loss(real_logits, _global(fake_logits)), collections


def _real_logits(gan: GAN, d: Player, d_params: PyTree, data_arrays: dict,
                 real_key: Array, real_drop: Array) -> Array | None:
  """D's logits on a real batch for G's loss, None unless it reads them."""
  if not gan.generator_reads_real:
    return None
  return _global(_discriminate(gan, d, d_params, *_packs(
      gan, _real_batch(gan, data_arrays, real_key, gan.d_steps),
      _local_keys(real_drop, gan.batch_size)))[0])


def _discriminator_update(gan: GAN, state: GANState, data_arrays: dict,
                          key: Array, slot=0, regularise: bool = False,
                          fake: Array | None = None
                          ) -> tuple[GANState, dict[str, Array]]:
  """D update number `slot` of a step (a critic update) on fresh real and
  generated batches; with `regularise`, it adds the lazy penalties too
  (`GAN.reg_every`). The generated batch is G(z) of this update's z, or
  `fake` when given (the step's one forward of G, train.reuse_fake)."""
  keys = _d_update_keys(key)
  real_key, z_key, real_drop, fake_drop = keys[:_D_UPDATE_KEYS]
  real = _real_batch(gan, data_arrays, real_key, slot)
  if fake is None:
    fake, _ = _apply(gan.generator, state.g, state.g.params,
                     _latents(gan, z_key), update_collections=True)
  fake = jax.lax.stop_gradient(fake)

  # D judges packs (gan.pack examples each; one example per pack unless
  # model.pack is set), and so do the penalties: R1's gradient and WGAN-GP's
  # interpolate are a whole pack's, as for any other input of D.
  real, real_keys = _packs(gan, real, _local_keys(real_drop, gan.batch_size))
  fake, fake_keys = _packs(gan, fake, _local_keys(fake_drop, gan.batch_size))

  lazy = gan.reg_every > 1
  penalties, skipped = [], []  # (name, penalty, weight) added; metrics not
  for name, penalty, weight in gan.penalties:
    if not lazy or penalty.with_its_loss_only:
      penalties.append((name, penalty, weight))
    elif regularise:
      penalties.append((name, penalty, weight * gan.reg_every * gan.d_steps))
    else:
      skipped.append(penalty.metric)

  (loss, (metrics, collections)), grads = jax.value_and_grad(
      lambda d_params: _d_objective(gan, state.d, d_params, real, fake,
                                    real_keys, fake_keys, keys, penalties,
                                    skipped), has_aux=True)(state.d.params)
  d_params, d_opt_state, sizes = _apply_gradients(
      gan.d_optimizer, state.d.params, state.d.opt_state, grads)
  d = Player(params=d_params, collections=collections, opt_state=d_opt_state)
  return state.replace(d=d), {'d_loss': loss, **metrics,
                              **{f'd_{k}': v for k, v in sizes.items()}}


def _generator_update(gan: GAN, state: GANState, data_arrays: dict,
                      key: Array) -> tuple[GANState, dict[str, Array]]:
  """One generator update against the current discriminator. D's logits on
  a real batch are computed only when G's loss reads them."""
  # The first two as split(key) gives them (threefry_partitionable): losses
  # that do not read real logits draw what they always drew.
  z_key, drop_key, real_key, real_drop = jax.random.split(key, 4)
  z = _latents(gan, z_key)
  real_logits = _real_logits(gan, state.d, state.d.params, data_arrays,
                             real_key, real_drop)
  (loss, collections), grads = jax.value_and_grad(
      lambda g_params: _g_objective(gan, state.g, g_params, state.d,
                                    state.d.params, z, drop_key, real_logits),
      has_aux=True)(state.g.params)
  g_params, g_opt_state, sizes = _apply_gradients(
      gan.g_optimizer, state.g.params, state.g.opt_state, grads)
  g = Player(params=g_params, collections=collections, opt_state=g_opt_state)
  return state.replace(g=g), {'g_loss': loss,
                              **{f'g_{k}': v for k, v in sizes.items()}}


def _one_forward_updates(gan: GAN, state: GANState, data_arrays: dict,
                         d_key: Array, g_key: Array, regularise: bool
                         ) -> tuple[GANState, dict[str, Array], dict[str, Array]]:
  """One D update and one G update on a single forward of G (train.reuse_fake),
  as the PyTorch DCGAN tutorial steps: z drawn once, G(z) computed once with
  its VJP kept and its BatchNorm statistics taken from that pass; D updated
  on it, then G updated by pulling the gradient of its loss under the new D
  back through the kept VJP. The same numbers as a second forward of G on
  the same z would give, without computing it."""
  key = jax.random.fold_in(d_key, 0)  # the first D update's, as train_step's
  z = _latents(gan, _d_update_keys(key)[1])
  fake, pullback, collections = jax.vjp(
      lambda params: _apply(gan.generator, state.g, params, z,
                            update_collections=True),
      state.g.params, has_aux=True)
  state = state.replace(g=state.g.replace(collections=collections))
  state, d_metrics = _discriminator_update(gan, state, data_arrays, key, 0,
                                           regularise, fake=fake)
  _, drop_key, real_key, real_drop = jax.random.split(g_key, 4)
  real_logits = _real_logits(gan, state.d, state.d.params, data_arrays,
                             real_key, real_drop)

  def g_loss(fake):
    fake_logits, _ = _discriminate(gan, state.d, state.d.params, *_packs(
        gan, fake, _local_keys(drop_key, gan.batch_size)))
    return gan.loss.g_loss(real_logits, _global(fake_logits))

  loss, fake_grad = jax.value_and_grad(g_loss)(fake)
  (grads,) = pullback(fake_grad)
  g_params, g_opt_state, sizes = _apply_gradients(
      gan.g_optimizer, state.g.params, state.g.opt_state, grads)
  g = Player(params=g_params, collections=state.g.collections,
             opt_state=g_opt_state)
  return state.replace(g=g), d_metrics, {
      'g_loss': loss, **{f'g_{k}': v for k, v in sizes.items()}}


def train_step(gan: GAN, state: GANState, data_arrays: dict,
               regularise: bool = True) -> tuple[GANState, dict[str, Array]]:
  """`gan.d_steps` discriminator updates, then one generator update (on the
  D update's generated batch with train.reuse_fake: `_one_forward_updates`).

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
                                 jax.random.fold_in(d_key, i), i, regularise)

  if gan.reuse_fake:  # d_steps is 1 (configs.validate)
    state, d_metrics, g_metrics = _one_forward_updates(
        gan, state, data_arrays, d_key, g_key, regularise)
  elif gan.d_steps == 1:
    state, d_metrics = d_update(state, 0, regularise)
  elif gan.reg_every > 1:  # the first update on its own: it may regularise
    state, first = d_update(state, 0, regularise)
    state, rest = jax.lax.scan(d_update, state, jnp.arange(1, gan.d_steps))
    d_metrics = jax.tree.map(lambda a, b: (a + jnp.sum(b)) / gan.d_steps,
                             first, rest)
  else:
    state, d_metrics = jax.lax.scan(d_update, state, jnp.arange(gan.d_steps))
    d_metrics = jax.tree.map(jnp.mean, d_metrics)
  if not gan.reuse_fake:
    state, g_metrics = _generator_update(gan, state, data_arrays, g_key)
  if gan.g_ema_decay > 0:
    state = state.replace(g_ema=average_generator(
        state.g_ema, state.g.variables(), gan.g_ema_decay,
        updates=state.step + 1, start=gan.g_ema_start))
  metrics = jax.lax.pmean({**d_metrics, **g_metrics}, DATA_AXIS)
  metrics['d_gap'] = metrics['d_real'] - metrics['d_fake']

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
    # A while loop: compiled once, whatever K. Its convolutions' gradients
    # are written in the standard layouts (models.layers), which XLA:CPU
    # runs as fast in a loop as unrolled.
    return jax.lax.map(lambda one: step(one, data_arrays), state)
  return jax.vmap(step, in_axes=(0, None))(state, data_arrays)


# ------------------------------------------------------------------ the game


def game_field(gan: GAN, state: GANState, data_arrays: dict, key: Array):
  """The game's vector field on one fixed batch: a function
  (g_params, d_params) -> (−∇_G L_G, −∇_D L_D), the losses of one D update
  and one G update (with every penalty at its weight, lazy ones too) on the
  real batch, latents and dropout masks that `key` draws, held fixed.

  Per device like `train_step` (run it under shard_map), with G's and D's
  collections those of `state` (BatchNorm in training mode, as in a step).
  Its Jacobian at a checkpoint is the game Jacobian whose spectrum
  gan_jax.dynamics computes (Mescheder et al. 2017, "The Numerics of GANs";
  Berard et al. 2020).
  """
  keys = _d_update_keys(key)
  real_key, z_key, real_drop, fake_drop = keys[:_D_UPDATE_KEYS]
  real, real_keys = _packs(gan, _real_batch(gan, data_arrays, real_key, 0),
                           _local_keys(real_drop, gan.batch_size))
  z = _latents(gan, z_key)
  g_z_key, g_drop_key, g_real_key, g_real_drop = jax.random.split(
      jax.random.fold_in(key, 1), 4)
  g_z = _latents(gan, g_z_key)

  def d_loss(g_params, d_params):
    fake, _ = _apply(gan.generator, state.g, g_params, z, update_collections=True)
    fake, fake_keys = _packs(gan, fake, _local_keys(fake_drop, gan.batch_size))
    return _d_objective(gan, state.d, d_params, real, fake, real_keys, fake_keys,
                        keys, gan.penalties)[0]

  def g_loss(g_params, d_params):
    real_logits = _real_logits(gan, state.d, d_params, data_arrays, g_real_key,
                               g_real_drop)
    return _g_objective(gan, state.g, g_params, state.d, d_params, g_z,
                        g_drop_key, real_logits)[0]

  def field(g_params, d_params):
    g_grad = jax.grad(g_loss, 0)(g_params, d_params)
    d_grad = jax.grad(d_loss, 1)(g_params, d_params)
    return (jax.tree.map(jnp.negative, g_grad), jax.tree.map(jnp.negative, d_grad))

  return field


# ------------------------------------------------------------------ compile


def compile_step(gan: GAN, state: GANState, data_arrays: dict, mesh):
  """`train_step_seeds` over `mesh`, compiled for these (replicated) arguments:
  the step that training and `gan_jax.bench` run. With lazy regularisation
  (`gan.reg_every` > 1), two programs, with and without the lazy penalties,
  and a `LazyStep` that calls the first on every reg_every-th step: a branch
  inside one program ran its penalty ~20x slower on XLA:CPU."""
  def compiled(regularise: bool):
    return jitted_step(gan, data_arrays, mesh, regularise).lower(
        state, data_arrays).compile()

  if not has_lazy_penalties(gan):
    return compiled(True)
  return LazyStep(compiled(True), compiled(False), gan.reg_every,
                  current_step(state), lazy_metrics(gan))


def jitted_step(gan: GAN, data_arrays: dict, mesh, regularise: bool = True):
  """`train_step_seeds` over `mesh`, jitted, not yet compiled (`compile_step`
  compiles it; gan_jax.bench counts its FLOPs)."""
  return parallel.shard_map_step(
      functools.partial(train_step_seeds, gan, regularise=regularise), mesh,
      data_specs(data_arrays))


def data_specs(data_arrays: dict) -> dict:
  """How the step's data argument lies on the devices: the dataset's arrays
  replicated, a streamed batch split along its batch axis (data.stream)."""
  return {name: stream.batch_spec() if name == stream.BATCHES else P()
          for name in data_arrays}


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
