"""The training loop: log, sample, checkpoint, evaluate, stop on signals.

`train_and_evaluate(config, workdir)` trains (or resumes) the run of `config`
in `workdir`: it builds the run's fixed parts (gan_jax.gan), restores its
latest intact checkpoint or starts fresh (gan_jax.runs), compiles the step
once (gan_jax.step), then drives it: a log line and TensorBoard scalars every
`train.log_every` steps (metrics are fetched only then: no host sync per
step), sample pictures, evaluations, Orbax checkpoints, and results.json at
the end or when a signal or a NaN stops the run.
"""

import contextlib
import json
import os
import time

from absl import logging
import jax
import ml_collections

import gan_jax
from gan_jax import aggregate
from gan_jax import checkpoints
from gan_jax import configs
from gan_jax import data
from gan_jax import evaluators
from gan_jax import files
from gan_jax import monitor
from gan_jax import parallel
from gan_jax import preemption
from gan_jax import progress
from gan_jax import runs
from gan_jax import runtime
from gan_jax import step as step_lib
from gan_jax import summary_writer
from gan_jax import workdir as workdir_lib
from gan_jax.errors import TrainingDiverged
from gan_jax.errors import is_no_space
from gan_jax.gan import GAN
from gan_jax.gan import GANState
from gan_jax.gan import build_gan
from gan_jax.gan import current_step
from gan_jax.gan import first_divergence
from gan_jax.gan import samples_from
from gan_jax.gan import score_members
from gan_jax.pictures import SamplePictures


def train_once(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """The results of `config`'s run in `workdir`, training it only if it is not
  there already finished at `train.num_steps` (an interrupted run resumes):
  what a notebook calls to show a run without training it twice.

  Raises:
    UserError: `workdir` holds a run of another config (the key that differs
      is named); train it into another workdir.
  """
  results = workdir_lib.read_results(workdir)
  workdir_lib.check_resume(config, workdir)
  if workdir_lib.is_finished(results, config.train.num_steps):
    return results
  return train_and_evaluate(config, workdir)


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
  logging.info('data: %s; pipeline %s (%s)', source.description,
               source.pipeline, source.pipeline_why)
  gan = build_gan(config, source.example_shape, source.sample_one)
  eval_names = evaluators.parse(config.eval.evaluators)
  score_samples = evaluators.build(eval_names, config, source)
  workdir_lib.create(workdir)
  # A signal while restoring or compiling stops the run after its first step.
  with (workdir_lib.run_lock(workdir), preemption.StopSignals() as stop,
        contextlib.ExitStack() as closing):
    ckpts = checkpoints.Checkpoints(os.path.join(workdir, 'checkpoints'),
                                    config.train.max_checkpoints)
    try:
      return _train(config, workdir, source, gan, eval_names, score_samples,
                    mesh, changes, stop, wall_start, ckpts, closing)
    except OSError as e:  # events, pictures, results (checkpoints: NoSpace)
      if not is_no_space(e):
        raise
      raise ckpts.no_space(f'writing {e.filename or workdir}') from None


def _train(config: ml_collections.ConfigDict, workdir: str,
           source: data.DataSource, gan: GAN, eval_names: tuple[str, ...],
           score_samples: evaluators.Scorer, mesh, changes: dict,
           stop: preemption.StopSignals, wall_start: float,
           ckpts: checkpoints.Checkpoints,
           closing: contextlib.ExitStack) -> dict:
  """`train_and_evaluate` once the workdir is locked (`closing` closes what
  it opens: the data stream)."""
  seeds = configs.seeds(config)
  # Saved with every checkpoint: the run's config survives its config.json.
  record = {'config': json.loads(config.to_json_best_effort()),
            'gan_jax_version': gan_jax.__version__}
  state = runs.restore_or_init(gan, seeds, ckpts, mesh)
  start = current_step(state)
  num_steps = config.train.num_steps
  is_main = jax.process_index() == 0

  if is_main:
    files.makedirs(os.path.join(workdir, 'samples'))
    if changes:
      workdir_lib.record_changes(workdir, start, changes)
      logging.warning('config changed since step %d: %s (recorded in %s)', start,
                      workdir_lib.describe_changes(changes),
                      workdir_lib.HISTORY_FILE)
    files.write_text(os.path.join(workdir, 'config.json'),
                     config.to_json_best_effort(indent=2, sort_keys=True))
  writer = summary_writer.SummaryWriter(workdir) if is_main else None
  pictures = SamplePictures(gan, source, seeds, mesh)
  real_data = closing.enter_context(
      RealData(config, source, gan, mesh, ckpts, start))

  compile_start = time.time()
  step_fn = step_lib.compile_step(gan, state, real_data.arrays, mesh)
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
        **({'metrics_about': score_samples.about} if score_samples.about
           else {}),
        # Which generator the pictures and metrics come from: 'ema' or 'raw'.
        'samples_from': samples_from(gan),
        'wall_time_s': time.time() - wall_start, 'compile_s': compile_s,
        'steps_per_s': (trained / (time.time() - train_start) if trained > 0
                        else None),
        'devices': mesh.size, 'processes': jax.process_count(),
        'machine': runtime.machine(),  # the timings' hardware (a record's)
        'data_pipeline': source.pipeline,
        # Divergence and collapse warnings of this run's log steps (monitor).
        'warnings': watch.warnings, **extra}

  losses_per_seed, scores_per_seed = [], []
  watch = monitor.Monitor(seeds, real_above=gan.loss.real_above)
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
    state, step_metrics = step_fn(state, real_data.next())
    if await_each_step:
      jax.block_until_ready(step_metrics)
    last = step == num_steps
    if step % log_every == 0 or last:
      losses_per_seed = aggregate.per_seed(parallel.fetch(step_metrics), seeds)
      check_finite(state, step)
      if is_main:
        watch.check(step, losses_per_seed)
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
                     progress.format_duration((num_steps - step) / steps_per_s))
    if step % sample_every == 0 or last:
      member_pictures = pictures(state)
      if is_main:
        for i, picture in enumerate(member_pictures):
          name = f'step_{step}_seed{i}' if len(seeds) > 1 else f'step_{step}'
          path = os.path.join(workdir, 'samples', f'{name}.png')
          files.write_bytes(path, summary_writer.encode_png(picture))
        writer.image(step, 'samples', member_pictures[0])
    if eval_names and ((eval_every and step % eval_every == 0) or last):
      scores_per_seed = evaluate(state, step)
    stopping = stop.reached(step) and not last
    if step % checkpoint_every == 0 or last or stopping:
      check_finite(state, step)
      ckpts.save(step, state, {**record, **real_data.record()})
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
    if num_steps > start or workdir_lib.read_results(
        workdir, instead='writing it again') is None:
      write_results(final)
    logging.info('done: step %d, %s', final['final_step'],
                 os.path.join(workdir, 'results.json'))
  return final


class RealData:
  """The step's data argument, step after step: the dataset's arrays,
  replicated on the devices once (data.pipeline=device), or the run's stream
  of real batches (data.stream), read on from where checkpoint `start` left
  it (its record's 'data_stream').

  `arrays` is what the step is compiled for; `next()` the argument of the
  next step; `record()` what a checkpoint saves of it (the stream's
  position)."""

  def __init__(self, config: ml_collections.ConfigDict, source: data.DataSource,
               gan: GAN, mesh, ckpts: checkpoints.Checkpoints, start: int):
    self._source, self._stream = source, None
    if source.pipeline != 'stream':
      self.arrays = parallel.replicate(source.arrays, mesh)
      return
    num_slots = data.stream.slots(gan.d_steps, gan.generator_reads_real)
    self.arrays = data.stream.abstract_batches(source.examples, num_slots,
                                               gan.batch_size, mesh)
    self._stream = data.stream.Stream(
        source.examples, data.stream.data_seed(config.seed), num_slots,
        gan.batch_size, mesh, config.data.get('workers', 0),
        self._position(ckpts, start))

  def _position(self, ckpts: checkpoints.Checkpoints, start: int) -> int:
    if not start:
      return 0
    saved = ckpts.record(start).get('data_stream')
    if saved is None:
      logging.warning('checkpoint %d holds no stream position (a run of'
                      ' data.pipeline=device saved it): the stream starts at'
                      ' batch %d', start, start)
      return start
    if saved.get('examples') != self._source.examples.count:
      logging.warning('the dataset holds %d examples, but held %s when'
                      ' checkpoint %d was saved: the order read from here on'
                      ' differs from the first run\'s', self._source.examples.count,
                      saved.get('examples'), start)
    return saved['next_batch']

  def next(self) -> dict:
    return self.arrays if self._stream is None else self._stream.next()

  def record(self) -> dict:
    if self._stream is None:
      return {}
    return {'data_stream': {**self._stream.state(),
                            'examples': self._source.examples.count}}

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    if self._stream is not None:
      self._stream.close()
