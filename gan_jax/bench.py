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
  flops_per_step  the model FLOPs of a step on one device: its matrix
                  products and convolutions, forward and backward, 2 per
                  multiply-add, loops (D steps, the seeds' loop) times their
                  trip counts; a lazily regularised run's mean over its
                  reg_every cycle (`step_flops`)
  tflops_per_s    flops_per_step x steps_per_s / 1e12
  mfu             model FLOPs utilisation: tflops_per_s / the chip's dense
                  peak for train.dtype (PEAK_TFLOPS, or --peak_tflops); null
                  where neither knows it
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
import math
import tempfile
import time

from absl import app
from absl import flags
from absl import logging
import jax
import jax.extend.core as jex_core
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
    ' directory (TensorBoard\'s profile plugin reads it).')
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


def _product(numbers) -> int:
  return math.prod(int(n) for n in numbers)


def equation_flops(eqn) -> float:
  """2 x the multiply-adds of a matrix product or convolution, else 0."""
  name = eqn.primitive.name
  out = eqn.outvars[0].aval.shape
  if name == 'dot_general':
    (contracting, _), _ = eqn.params['dimension_numbers']
    lhs = eqn.invars[0].aval.shape
    return 2.0 * _product(out) * _product(lhs[d] for d in contracting)
  if name == 'conv_general_dilated':
    rhs = eqn.invars[1].aval.shape
    rhs_spec = eqn.params['dimension_numbers'].rhs_spec  # (out, in, *spatial)
    return 2.0 * _product(out) * _product(rhs[d] for d in rhs_spec[1:])
  return 0.0


def jaxpr_flops(jaxpr: jex_core.Jaxpr) -> float:
  """The model FLOPs of a jaxpr: `equation_flops` of every equation, inside
  jit, shard_map (per device), custom derivatives and remat included; a
  scan's body times its length (lax.map is a scan), a cond's costliest
  branch; a while loop's body once (its trip count is not in the jaxpr; the
  step has none). XLA's own count (`cost_analysis`) takes every loop body
  once, so it misses 4 of 5 D steps."""
  total = 0.0
  for eqn in jaxpr.eqns:
    total += equation_flops(eqn)
    inner = [sub.jaxpr if isinstance(sub, jex_core.ClosedJaxpr) else sub
             for sub in jex_core.jaxprs_in_params(eqn.params)]
    if eqn.primitive.name == 'cond':
      total += max(jaxpr_flops(branch) for branch in inner)
    else:
      times = eqn.params['length'] if eqn.primitive.name == 'scan' else 1
      total += times * sum(jaxpr_flops(sub) for sub in inner)
  return total


def step_flops(gan: gan_lib.GAN, state, data_arrays: dict, mesh) -> float:
  """`jaxpr_flops` of the step `compile_step` builds: with lazy penalties,
  the mean over a cycle of one regularised and reg_every - 1 plain steps."""
  def count(regularise: bool) -> float:
    step = step_lib.jitted_step(gan, data_arrays, mesh, regularise)
    return jaxpr_flops(jax.make_jaxpr(step)(state, data_arrays).jaxpr)

  if not step_lib.has_lazy_penalties(gan):
    return count(True)
  return (count(True) + (gan.reg_every - 1) * count(False)) / gan.reg_every


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
    self.flops_per_step = step_flops(gan, self._state, self._data, mesh)

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
  tflops = flops * steps_per_s / 1e12
  peak = peak or peak_tflops(described['device_kind'], c.train.dtype)
  return {
      'steps_per_s': steps_per_s,
      'seed_steps_per_s': steps_per_s * c.num_seeds,
      'examples_per_s': steps_per_s * c.train.batch_size * c.num_seeds,
      'compile_s': stepper.compile_s, 'steps': steps, 'seconds': seconds,
      'flops_per_step': flops, 'tflops_per_s': tflops, 'peak_tflops': peak,
      'mfu': tflops / peak if peak else None, **described}


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
