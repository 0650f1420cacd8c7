"""What a run is: its players and state, its fixed parts, its members, its samples.

A run trains `config.num_seeds` independent GANs (members) at once: every leaf
of its GANState has a leading seed axis [K] (K = 1 included), and member i
starts from seed `config.seed + i` and is the run of that seed. `build_gan`
turns a resolved config into the fixed parts (models, optimizers, loss,
penalties, sizes); `fresh_states` makes a new run's state; `generate_samples`
draws samples of one member. The step that trains a state is gan_jax.step,
the loop around it gan_jax.train, a run on disk gan_jax.runs.
"""

from collections.abc import Callable
import dataclasses
import functools
from typing import Any

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from gan_jax import losses
from gan_jax import models
from gan_jax import parallel
from gan_jax import registry
from gan_jax import schedules

Array = jax.Array
PyTree = Any


@flax.struct.dataclass
class Player:
  """One player's (G's or D's) trainable state.

  `collections` holds every mutable Flax collection its module creates
  ({'batch_stats': ...} for BatchNorm, {} if none), so a model with state of
  its own trains and checkpoints without changes elsewhere.
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
  # penalty per D update. The host picks the program (`step.compile_step`).
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
  # One forward of G a step, its batch shared by the D and G updates
  # (train.reuse_fake; step._one_forward_updates).
  reuse_fake: bool = False


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
                                  config.model.name, jax.default_backend()),
      reuse_fake=config.train.get('reuse_fake', False))


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


# ------------------------------------------------------------------ states


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


def fresh_states(gan: GAN, seeds: list[int], mesh) -> GANState:
  """A new run's stacked state (one member per seed), replicated over `mesh`."""
  init = jax.jit(functools.partial(init_states, gan),
                 out_shardings=parallel.replicated(mesh))
  return init(np.asarray(seeds, np.int32))


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


# ------------------------------------------------------------------ generator


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
                  score: Callable[[np.ndarray], dict], raw: bool = False
                  ) -> list[dict]:
  """Each member's figures (`score(samples)`) on `num` samples whose z is
  drawn with its seed (as a one-seed run of that seed draws them), with the
  seed under 'seed'."""
  return [{'seed': seed, **score(generate_samples(
              gan, member(state, i), num, seed, raw=raw))}
          for i, seed in enumerate(seeds)]
