"""GAN training: the state, the pure step, and the loop around it.

`train_step` is written for one device and is pure: it draws its slice of the
global batch from (state.key, state.step) inside the compiled program, does
`d_steps` discriminator updates and one generator update, and averages
gradients and batch-norm statistics across the `data` axis. `parallel` wraps
it once for all devices. `train_and_evaluate` is the loop: logging,
TensorBoard, sample pictures, checkpoints, resume, results.
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

from gan_jax import checkpoints
from gan_jax import configs
from gan_jax import data
from gan_jax import evaluators
from gan_jax import losses
from gan_jax import models
from gan_jax import parallel
from gan_jax import summary_writer
from gan_jax import visualize
from gan_jax.errors import UserError
from gan_jax.parallel import DATA_AXIS

Array = jax.Array
PyTree = Any

NUM_GRID_SAMPLES = 64  # 8x8 image grid
NUM_SCATTER_SAMPLES = 1000  # points in a 2-D toy's scatter plot


class TrainingDiverged(RuntimeError):
  """A loss became NaN or infinite."""


@flax.struct.dataclass
class GANState:
  """Everything that changes during training, as one pytree."""

  step: Array  # int32 []: generator updates done
  g_params: PyTree
  g_batch_stats: PyTree  # the generator's BatchNorm running averages ({} if none)
  g_opt_state: optax.OptState
  d_params: PyTree
  d_opt_state: optax.OptState
  key: Array  # typed PRNG key; fixed: each step uses fold_in(key, step)
  nonfinite_step: Array  # int32 []: first generator update with a NaN/inf loss, -1 if none


@dataclasses.dataclass(frozen=True)
class GAN:
  """The fixed parts of a run: models, optimizers, loss, data sampler, sizes."""

  generator: nn.Module
  discriminator: nn.Module
  g_optimizer: optax.GradientTransformation
  d_optimizer: optax.GradientTransformation
  loss: losses.GANLoss
  gp_weight: float
  latent_dim: int
  example_shape: tuple[int, ...]
  batch_size: int  # global
  d_steps: int
  sample_real: Callable[[dict, Array], Array]  # (data arrays, key) -> one example


def learning_rate(schedule: str, peak: float, updates: int) -> optax.ScalarOrSchedule:
  """`peak` throughout ('constant'), or decayed to 0 over `updates` Adam
  updates: linearly (as the WGAN-GP CIFAR-10 code, Gulrajani et al. 2017) or
  along a half cosine (Loshchilov & Hutter 2017)."""
  if schedule == 'linear':
    return optax.linear_schedule(peak, 0.0, updates)
  if schedule == 'cosine':
    return optax.cosine_decay_schedule(peak, updates)
  if schedule == 'constant':
    return peak
  raise ValueError(f'unknown schedule {schedule!r}; valid: {configs.SCHEDULES}')


def build_gan(config: ml_collections.ConfigDict,
              example_shape: tuple[int, ...],
              sample_real: Callable[[dict, Array], Array] | None = None) -> GAN:
  """The run's fixed parts from its (resolved) config; `sample_real` is only
  needed to train (`data.DataSource.sample_one`)."""
  generator, discriminator = models.build(config.model, example_shape)
  num_steps = config.train.num_steps

  def adam(peak_lr: float, updates: int) -> optax.GradientTransformation:
    lr = learning_rate(config.optim.schedule, peak_lr, updates)
    return optax.adam(lr, b1=config.optim.b1, b2=config.optim.b2)

  return GAN(
      generator=generator, discriminator=discriminator,
      g_optimizer=adam(config.optim.g_lr, num_steps),
      d_optimizer=adam(config.optim.d_lr, num_steps * config.train.d_steps),
      loss=losses.LOSSES[config.loss.name], gp_weight=config.loss.gp_weight,
      latent_dim=config.model.latent_dim,
      example_shape=tuple(example_shape),
      batch_size=config.train.batch_size, d_steps=config.train.d_steps,
      sample_real=sample_real)


def init_state(gan: GAN, key: Array) -> GANState:
  """Fresh parameters and optimizer states; pure (jit it with out_shardings)."""
  g_key, d_key, train_key = jax.random.split(key, 3)
  z = jnp.zeros((1, gan.latent_dim))
  x = jnp.zeros((1,) + gan.example_shape)
  g_vars = gan.generator.init(g_key, z, train=False)
  d_params = gan.discriminator.init(d_key, x, train=False)['params']
  return GANState(
      step=jnp.zeros((), jnp.int32),
      g_params=g_vars['params'], g_batch_stats=g_vars.get('batch_stats', {}),
      g_opt_state=gan.g_optimizer.init(g_vars['params']),
      d_params=d_params, d_opt_state=gan.d_optimizer.init(d_params),
      key=train_key, nonfinite_step=jnp.full((), -1, jnp.int32))


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


def _generate(gan: GAN, g_params, g_batch_stats, z: Array) -> tuple[Array, PyTree]:
  """G(z) in training mode: batch statistics averaged over the data axis."""
  fake, updates = gan.generator.apply(
      {'params': g_params, 'batch_stats': g_batch_stats}, z, train=True,
      mutable=['batch_stats'])
  return fake, updates.get('batch_stats', {})


def _discriminate(gan: GAN, d_params, x: Array, key: Array) -> Array:
  """D's logits [B] in training mode, one dropout key per example."""
  def one(example, example_key):
    return gan.discriminator.apply({'params': d_params}, example[None],
                                   train=True, rngs={'dropout': example_key})[0]
  return jax.vmap(one)(x, _local_keys(key, gan.batch_size))


def _apply_gradients(optimizer: optax.GradientTransformation, params, opt_state,
                     grads) -> tuple[PyTree, optax.OptState]:
  """Averages this device's gradients over all devices, then one Adam update."""
  grads = jax.lax.pmean(grads, DATA_AXIS)
  updates, opt_state = optimizer.update(grads, opt_state, params)
  return optax.apply_updates(params, updates), opt_state


def _discriminator_update(gan: GAN, state: GANState, data_arrays: dict,
                          key: Array) -> tuple[GANState, dict[str, Array]]:
  """One discriminator (critic) update on fresh real and generated batches."""
  real_key, z_key, real_drop, fake_drop, gp_key, gp_drop = jax.random.split(key, 6)
  real = jax.vmap(functools.partial(gan.sample_real, data_arrays))(
      _local_keys(real_key, gan.batch_size))
  fake, _ = _generate(gan, state.g_params, state.g_batch_stats,
                      _latents(gan, z_key))
  fake = jax.lax.stop_gradient(fake)

  def loss_fn(d_params):
    real_logits = _discriminate(gan, d_params, real, real_drop)
    fake_logits = _discriminate(gan, d_params, fake, fake_drop)
    loss = gan.loss.discriminator(real_logits, fake_logits)
    metrics = {'d_real': jnp.mean(real_logits), 'd_fake': jnp.mean(fake_logits)}
    if gan.loss.gradient_penalty:
      epsilon = jax.vmap(jax.random.uniform)(_local_keys(gp_key, gan.batch_size))
      penalty = losses.gradient_penalty(
          lambda x: _discriminate(gan, d_params, x, gp_drop), real, fake, epsilon)
      loss = loss + gan.gp_weight * penalty
      metrics['gp'] = penalty
    return loss, metrics

  (loss, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(
      state.d_params)
  d_params, d_opt_state = _apply_gradients(gan.d_optimizer, state.d_params,
                                           state.d_opt_state, grads)
  return (state.replace(d_params=d_params, d_opt_state=d_opt_state),
          {'d_loss': loss, **metrics})


def _generator_update(gan: GAN, state: GANState,
                      key: Array) -> tuple[GANState, dict[str, Array]]:
  """One generator update against the current discriminator."""
  z_key, drop_key = jax.random.split(key)
  z = _latents(gan, z_key)

  def loss_fn(g_params):
    fake, batch_stats = _generate(gan, g_params, state.g_batch_stats, z)
    loss = gan.loss.generator(_discriminate(gan, state.d_params, fake, drop_key))
    return loss, batch_stats

  (loss, batch_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(
      state.g_params)
  g_params, g_opt_state = _apply_gradients(gan.g_optimizer, state.g_params,
                                           state.g_opt_state, grads)
  return (state.replace(g_params=g_params, g_batch_stats=batch_stats,
                        g_opt_state=g_opt_state),
          {'g_loss': loss})


def train_step(gan: GAN, state: GANState,
               data_arrays: dict) -> tuple[GANState, dict[str, Array]]:
  """`gan.d_steps` discriminator updates, then one generator update.

  Per device and pure: run it through `parallel.shard_map_step` (or
  `parallel.pmap_step`). The randomness of update number `state.step + 1`
  comes from fold_in(state.key, state.step), and the real batch is drawn
  from `data_arrays` inside the step, so a resumed run repeats exactly.

  Returns:
    The new state and scalar metrics averaged over devices (and D steps).
  """
  step_key = jax.random.fold_in(state.key, state.step)
  d_key, g_key = jax.random.split(step_key)

  def d_update(carry, i):
    return _discriminator_update(gan, carry, data_arrays,
                                 jax.random.fold_in(d_key, i))

  if gan.d_steps == 1:
    state, d_metrics = d_update(state, 0)
  else:
    state, d_metrics = jax.lax.scan(d_update, state, jnp.arange(gan.d_steps))
    d_metrics = jax.tree.map(jnp.mean, d_metrics)
  state, g_metrics = _generator_update(gan, state, g_key)
  metrics = jax.lax.pmean({**d_metrics, **g_metrics}, DATA_AXIS)

  finite = jnp.isfinite(metrics['d_loss']) & jnp.isfinite(metrics['g_loss'])
  first_bad = jnp.where((state.nonfinite_step < 0) & ~finite, state.step + 1,
                        state.nonfinite_step)
  return state.replace(step=state.step + 1, nonfinite_step=first_bad), metrics


def generate(gan: GAN, g_params, g_batch_stats, z: Array) -> Array:
  """G(z) in inference mode (BatchNorm running averages): samples to look at."""
  return gan.generator.apply({'params': g_params, 'batch_stats': g_batch_stats},
                             z, train=False)


@functools.lru_cache(maxsize=8)
def _jitted_generate(gan: GAN):
  """One compiled `generate` per GAN, so repeated evaluations do not retrace."""
  return jax.jit(functools.partial(generate, gan))


def generate_samples(gan: GAN, state: GANState, num: int, seed: int,
                     batch: int = 1000) -> np.ndarray:
  """`num` float32 samples in inference mode from z ~ N(0, I) drawn with `seed`.

  The same seed and state give the same samples, whatever `batch` is.
  """
  z = jax.random.normal(jax.random.key(seed), (num, gan.latent_dim))
  generate_fn = _jitted_generate(gan)
  chunks = [generate_fn(state.g_params, state.g_batch_stats, z[i:i + batch])
            for i in range(0, num, batch)]
  return np.concatenate([np.asarray(parallel.fetch(c), np.float32)
                         for c in chunks])


def _format_duration(seconds: float) -> str:
  seconds = int(seconds)
  hours, rest = divmod(seconds, 3600)
  return (f'{hours}h{rest // 60:02d}m' if hours
          else f'{rest // 60}m{rest % 60:02d}s')


def write_json(path: str, obj) -> None:
  tmp = path + '.tmp'
  with open(tmp, 'w') as f:
    json.dump(obj, f, indent=2, sort_keys=True)
  os.replace(tmp, path)  # atomic: a reader never sees half a file


class _SamplePictures:
  """Pictures of G on a fixed z: an 8x8 grid for images, a scatter plot for toys."""

  def __init__(self, gan: GAN, source: data.DataSource, seed: int, mesh):
    self._source = source
    z_key, real_key = jax.random.split(jax.random.fold_in(jax.random.key(seed), 1))
    count = NUM_GRID_SAMPLES if source.kind == 'images' else NUM_SCATTER_SAMPLES
    z = jax.random.normal(z_key, (count, gan.latent_dim))
    self._z = parallel.replicate(np.asarray(z), mesh)
    self._generate = jax.jit(functools.partial(generate, gan),
                             out_shardings=parallel.replicated(mesh))
    if source.kind == 'points':
      arrays = jax.tree.map(jnp.asarray, source.arrays)
      sample = jax.jit(jax.vmap(functools.partial(source.sample_one, arrays)))
      self._real = np.asarray(sample(jax.random.split(real_key, count)))

  def __call__(self, state: GANState) -> np.ndarray:
    """uint8 [H, W, C]. Every process must call it (it runs on all devices)."""
    fake = parallel.fetch(self._generate(state.g_params, state.g_batch_stats,
                                         self._z))
    if self._source.kind == 'images':
      return visualize.image_grid(fake)
    return visualize.scatter_plot(self._real, fake, modes_K2=self._source.modes)


def abstract_state(gan: GAN, mesh) -> GANState:
  """The state's shapes, dtypes and (replicated) shardings, without computing it."""
  sharding = parallel.replicated(mesh)
  return jax.tree.map(
      lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sharding),
      jax.eval_shape(functools.partial(init_state, gan), jax.random.key(0)))


def _restore_or_init(gan: GAN, seed: int, ckpts: checkpoints.Checkpoints, mesh):
  latest = ckpts.latest_step()
  if latest is None:
    init = jax.jit(functools.partial(init_state, gan),
                   out_shardings=parallel.replicated(mesh))
    return init(jax.random.key(seed))
  state = ckpts.restore(abstract_state(gan, mesh), latest)
  logging.info('resumed from %s/%d', ckpts.directory, latest)
  return state


def load_run_config(workdir: str) -> ml_collections.ConfigDict:
  """The resolved config a run in `workdir` recorded in config.json."""
  path = os.path.join(workdir, 'config.json')
  if not os.path.exists(path):
    raise UserError(f'--workdir={workdir} holds no run (no config.json); pass'
                    ' the workdir of a gan_jax.main run')
  with open(path) as f:
    return ml_collections.ConfigDict(json.load(f))


def restore_run(workdir: str, mesh=None
                ) -> tuple[ml_collections.ConfigDict, GAN, GANState]:
  """The config, fixed parts and latest checkpointed state of the run in `workdir`."""
  config = load_run_config(workdir)
  ckpts = checkpoints.Checkpoints(os.path.join(workdir, 'checkpoints'))
  if ckpts.latest_step() is None:
    raise UserError(f'--workdir={workdir} has no checkpoint yet (nothing in'
                    f' {ckpts.directory}); train first or wait for a checkpoint')
  gan = build_gan(config, data.example_shape(config.data.name))
  state = ckpts.restore(abstract_state(gan, mesh or parallel.make_mesh()))
  ckpts.close()
  return config, gan, state


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Trains (or resumes) the run of `config` in `workdir`; returns results.json's content.

  Raises:
    UserError: a bad config, missing data, or a checkpoint that does not fit.
    TrainingDiverged: a loss became NaN/inf (the last good checkpoint stays).
  """
  wall_start = time.time()
  mesh = parallel.make_mesh()
  configs.validate(config, mesh.size)
  config = configs.resolve(config)
  source = data.load(config.data)
  logging.info('data: %s', source.description)
  gan = build_gan(config, source.example_shape, source.sample_one)
  eval_names = evaluators.parse(config.eval.evaluators)
  score_samples = evaluators.build(eval_names, config, source)
  ckpts = checkpoints.Checkpoints(os.path.join(workdir, 'checkpoints'),
                                  config.train.max_checkpoints)
  state = _restore_or_init(gan, config.seed, ckpts, mesh)
  start = int(parallel.fetch(state.step))
  num_steps = config.train.num_steps
  is_main = jax.process_index() == 0

  if is_main:
    os.makedirs(os.path.join(workdir, 'samples'), exist_ok=True)
    with open(os.path.join(workdir, 'config.json'), 'w') as f:
      f.write(config.to_json_best_effort(indent=2, sort_keys=True))
  writer = summary_writer.SummaryWriter(workdir) if is_main else None
  pictures = _SamplePictures(gan, source, config.seed, mesh)
  data_arrays = parallel.replicate(source.arrays, mesh)

  compile_start = time.time()
  step_fn = parallel.shard_map_step(functools.partial(train_step, gan), mesh)
  step_fn = step_fn.lower(state, data_arrays).compile()
  compile_s = time.time() - compile_start
  logging.info('compiled the train step in %.1fs; %d devices, global batch %d,'
               ' loss %s, model %s', compile_s, mesh.size,
               gan.batch_size, config.loss.name, config.model.name)

  def check_finite(state: GANState, step: int) -> None:
    bad_step = int(parallel.fetch(state.nonfinite_step))
    if bad_step >= 0:
      ckpts.wait()
      good = ckpts.latest_step()
      where = (f'the last good checkpoint is step {good} in {ckpts.directory}'
               if good is not None else 'no checkpoint was saved')
      if is_main:
        write_json(os.path.join(workdir, 'results.json'), {
            'status': 'diverged', 'nonfinite_step': bad_step,
            'final_step': step, 'last_checkpoint': good})
      raise TrainingDiverged(
          f'a loss became NaN or infinite at step {bad_step} (checked at step'
          f' {step}); {where}')

  def evaluate(state: GANState, step: int) -> dict[str, float]:
    samples = generate_samples(gan, state, config.eval.num_samples, config.seed)
    scores = score_samples(samples)
    if is_main:
      writer.scalars(step, {f'eval/{k}': v for k, v in scores.items()})
      logging.info('eval step %d | %s', step,
                   ' '.join(f'{k} {v:.4g}' for k, v in scores.items()))
    return scores

  metrics, scores = {}, {}
  train_start = last_time = time.time()
  last_step = start
  for step in range(start + 1, num_steps + 1):
    state, step_metrics = step_fn(state, data_arrays)
    last = step == num_steps
    if step % config.train.log_every == 0 or last:
      metrics = {k: float(v) for k, v in parallel.fetch(step_metrics).items()}
      check_finite(state, step)
      now = time.time()
      steps_per_s = (step - last_step) / (now - last_time)
      last_time, last_step = now, step
      if is_main:
        writer.scalars(step, {**metrics, 'steps_per_s': steps_per_s})
        writer.flush()
        logging.info('step %d/%d | %s | %.2f steps/s | ETA %s', step, num_steps,
                     ' '.join(f'{k} {v:.4f}' for k, v in sorted(metrics.items())),
                     steps_per_s, _format_duration((num_steps - step) / steps_per_s))
    if step % config.train.sample_every == 0 or last:
      picture = pictures(state)
      if is_main:
        path = os.path.join(workdir, 'samples', f'step_{step}.png')
        summary_writer.to_pil(picture).save(path)
        writer.image(step, 'samples', picture)
    eval_every = config.train.eval_every
    if eval_names and ((eval_every and step % eval_every == 0) or last):
      scores = evaluate(state, step)
    if step % config.train.checkpoint_every == 0 or last:
      check_finite(state, step)
      ckpts.save(step, state)

  ckpts.wait()
  ckpts.close()
  trained = num_steps - start
  results = {
      'status': 'finished', 'final_step': max(num_steps, start),
      'resumed_from': start or None, 'losses': metrics, 'metrics': scores,
      'wall_time_s': time.time() - wall_start, 'compile_s': compile_s,
      'steps_per_s': trained / (time.time() - train_start) if trained > 0 else None,
      'devices': mesh.size, 'processes': jax.process_count(),
  }
  if is_main:
    writer.close()
    if trained > 0 or not os.path.exists(os.path.join(workdir, 'results.json')):
      write_json(os.path.join(workdir, 'results.json'), results)
    logging.info('done: step %d, %s', results['final_step'],
                 os.path.join(workdir, 'results.json'))
  return results
