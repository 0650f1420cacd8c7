"""Times the training step: `python -m gan_jax.bench --config=experiments/X.py`.

Builds the run's state and compiled step exactly as `gan_jax.main` does, on
synthetic data of the dataset's shape (random images, or the toy mixture
itself: no download, no files), compiles the step, runs --warmup steps, then
times --steps steps. A step is one generator update with its `train.d_steps`
discriminator updates, as in training. The last line printed is one JSON
object:

  steps_per_s     timed steps / their wall time (state blocked on at the end)
  seed_steps_per_s  steps_per_s x num_seeds (member updates)
  examples_per_s  steps_per_s x train.batch_size x num_seeds (generated
                  examples in generator updates)
  seed_batching   how the members share the program ('vmap' or 'loop')
  compile_s       tracing, lowering and compiling the first step
  flops_per_step  XLA's count of the step's floating-point operations (the
                  mean over a lazily regularised run's two programs)
  tflops_per_s    flops_per_step x steps_per_s / 1e12
  mfu             tflops_per_s / the chip's dense peak for train.dtype
                  (PEAK_TFLOPS, or --peak_tflops); null where neither knows it
  devices, backend, device_kind, dtype, and the run's sizes

  python -m gan_jax.bench --config=experiments/mnist.py:tutorial --config.train.batch_size=256
  # also the training loop (logging, the final sample picture and checkpoint)
  # over the same steps, against the bare step: loop_steps_per_s, loop_overhead
  python -m gan_jax.bench --config=experiments/ring8.py --config.model.width=8 --loop
  # on a GPU: model FLOPs utilisation in bfloat16 (benchmarks/accelerator.sh)
  python -m gan_jax.bench --config=experiments/mnist.py:tutorial \
      --config.train.batch_size=2048 --config.train.dtype=bfloat16
"""

import contextlib
import json
import tempfile
import time

from absl import app
from absl import flags
from absl import logging
import jax
import ml_collections
from ml_collections import config_flags

from gan_jax import cli
from gan_jax import configs
from gan_jax import data
from gan_jax import gan as gan_lib
from gan_jax import parallel
from gan_jax import registry
from gan_jax import step as step_lib
from gan_jax import train

_CONFIG = config_flags.DEFINE_config_file(
    'config', None, 'Experiment config file, e.g. experiments/mnist.py.',
    lock_config=True)
_STEPS = flags.DEFINE_integer('steps', 50, 'Timed steps.')
_WARMUP = flags.DEFINE_integer('warmup', 3, 'Untimed steps after compiling.')
_LOOP = flags.DEFINE_bool(
    'loop', False, 'Also time the training loop (gan_jax.main) over --steps'
    ' steps in a temporary workdir: loop_steps_per_s and loop_overhead.')
_PROFILE = flags.DEFINE_string(
    'profile', None, 'Write a profiler trace of the timed steps under this'
    ' directory (TensorBoard\'s profile plugin, or Perfetto, reads it).')
_PEAK = flags.DEFINE_float(
    'peak_tflops', None, 'The chip\'s dense peak in TFLOP/s for train.dtype,'
    ' for `mfu` (default: PEAK_TFLOPS by device kind; none on a CPU).')
flags.mark_flags_as_required(['config'])

# Dense peaks (no sparsity) in TFLOP/s by jax's device_kind, from NVIDIA's
# data sheets. float32 matrix products and convolutions run as TF32 on the
# tensor cores, XLA's default precision on these GPUs.
PEAK_TFLOPS = {
    'NVIDIA H100 80GB HBM3': {'float32': 494.7, 'bfloat16': 989.4},  # SXM5
    'NVIDIA H100 PCIe': {'float32': 378.0, 'bfloat16': 756.0},
    'NVIDIA H200': {'float32': 494.7, 'bfloat16': 989.4},  # SXM
}


def program_flops(compiled) -> float | None:
  """XLA's count of the floating-point operations of one call of a compiled
  program; None where the backend counts none."""
  costs = compiled.cost_analysis()
  if isinstance(costs, (list, tuple)):  # one entry per program, in older jax
    costs = costs[0] if costs else None
  flops = (costs or {}).get('flops', 0.0)
  return float(flops) if flops > 0 else None


def step_flops(step) -> float | None:
  """The floating-point operations of one step of `step_lib.compile_step`'s
  result: a lazily regularised run's mean over its cycle of one regularised
  and every-1 plain steps."""
  if not isinstance(step, step_lib.LazyStep):
    return program_flops(step)
  regularised, plain = program_flops(step.regularised), program_flops(step.plain)
  if regularised is None or plain is None:
    return None
  return (regularised + (step.every - 1) * plain) / step.every


def peak_tflops(device_kind: str, dtype: str) -> float | None:
  """PEAK_TFLOPS of the chip for `dtype`, None for a chip not listed."""
  return PEAK_TFLOPS.get(device_kind, {}).get(dtype)


class Stepper:
  """The run's state and compiled step on synthetic data, ready to time.

  `compile_s` is the time to trace, lower and compile the step; `run(n)`
  does n steps and returns their wall time, the state blocked on at the end.
  """

  def __init__(self, config: ml_collections.ConfigDict):
    mesh = parallel.make_mesh()
    configs.validate(config, mesh.size)
    self.config = configs.resolve(config)
    self.devices = mesh.size
    source = data.synthetic(self.config.data.name)
    gan = gan_lib.build_gan(self.config, source.example_shape, source.sample_one)
    self.seed_batching = gan.seed_batching
    self._state = gan_lib.fresh_states(gan, configs.seeds(self.config), mesh)
    self._data = parallel.replicate(source.arrays, mesh)
    start = time.perf_counter()
    self._step = step_lib.compile_step(gan, self._state, self._data, mesh)
    self.compile_s = time.perf_counter() - start
    self.flops_per_step = step_flops(self._step)

  def run(self, steps: int) -> float:
    jax.block_until_ready(self._state)
    start = time.perf_counter()
    state = self._state
    for _ in range(steps):
      state, metrics = self._step(state, self._data)
    jax.block_until_ready((state, metrics))
    self._state = state
    return time.perf_counter() - start

  def describe(self) -> dict:
    """The sizes that say what a step is."""
    c = self.config
    return {'devices': self.devices, 'backend': jax.default_backend(),
            'device_kind': jax.devices()[0].device_kind, 'dtype': c.train.dtype,
            'data': c.data.name, 'model': c.model.name, 'loss': c.loss.name,
            'batch_size': c.train.batch_size, 'd_steps': c.train.d_steps,
            'num_seeds': c.num_seeds, 'seed_batching': self.seed_batching}


def time_step(config: ml_collections.ConfigDict, steps: int,
              warmup: int, peak: float | None = None,
              profile: str | None = None) -> dict:
  """Compiles the run's step on synthetic data and times `steps` of it; `mfu`
  against `peak` TFLOP/s (default: PEAK_TFLOPS of the device); with
  `profile`, a profiler trace of the timed steps there."""
  stepper = Stepper(config)
  if warmup:
    stepper.run(warmup)
  with jax.profiler.trace(profile) if profile else contextlib.nullcontext():
    seconds = stepper.run(steps)
  steps_per_s = steps / seconds
  c = stepper.config
  described = stepper.describe()
  flops = stepper.flops_per_step
  tflops = flops * steps_per_s / 1e12 if flops else None
  peak = peak or peak_tflops(described['device_kind'], c.train.dtype)
  return {
      'steps_per_s': steps_per_s,
      'seed_steps_per_s': steps_per_s * c.num_seeds,
      'examples_per_s': steps_per_s * c.train.batch_size * c.num_seeds,
      'compile_s': stepper.compile_s, 'steps': steps, 'seconds': seconds,
      'flops_per_step': flops, 'tflops_per_s': tflops, 'peak_tflops': peak,
      'mfu': tflops / peak if tflops and peak else None, **described}


def time_loop(config: ml_collections.ConfigDict, steps: int) -> float:
  """Steps/s of the training loop (`train.train_and_evaluate`) on synthetic
  data: `steps` steps after compiling, logging every train.log_every steps,
  one sample picture and one checkpoint at the end, no evaluators."""
  config = ml_collections.ConfigDict(config.to_dict())
  config.train.num_steps = steps
  config.train.sample_every = config.train.checkpoint_every = steps
  config.eval.evaluators = ''
  source = data.synthetic(config.data.name)
  with tempfile.TemporaryDirectory() as workdir:
    return train.train_and_evaluate(config, workdir, source)['steps_per_s']


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {" ".join(argv[1:])}')
  registry.check_value('--steps', _STEPS.value, registry.POSITIVE)
  registry.check_value('--warmup', _WARMUP.value, registry.NON_NEGATIVE)
  if _PEAK.value is not None:
    registry.check_value('--peak_tflops', _PEAK.value, registry.POSITIVE)
  result = time_step(_CONFIG.value, _STEPS.value, _WARMUP.value, _PEAK.value,
                     _PROFILE.value)
  logging.info('bare step: %.2f steps/s, compile %.1fs', result['steps_per_s'],
               result['compile_s'])
  if _LOOP.value:
    loop = time_loop(_CONFIG.value, _STEPS.value)
    result['loop_steps_per_s'] = loop
    result['loop_overhead'] = 1 - loop / result['steps_per_s']
  print(json.dumps(result, sort_keys=True))


if __name__ == '__main__':
  cli.run(main)
