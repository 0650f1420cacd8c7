"""`python -m gan_jax.bench` as a user runs it, and the synthetic data it times."""

import functools
import json
import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_jax import analysis
from gan_jax import bench as bench_lib
from gan_jax import configs
from gan_jax import data
from gan_jax import gan as gan_lib
from gan_jax import parallel
from gan_jax.errors import UserError
from tests.helpers import REPO
from tests.helpers import assert_one_line_error
from tests.helpers import run

RING8 = os.path.join(REPO, 'experiments', 'ring8.py')
TINY_BENCH = ['--config=experiments/ring8.py', '--config.model.width=8',
              '--steps=5', '--warmup=1']


@pytest.fixture(scope='module', autouse=True)
def shared_compilation_cache(tmp_path_factory):
  """The bench commands compile the same step (and --loop compiles it twice):
  through a persistent cache, once."""
  with pytest.MonkeyPatch.context() as patch:
    patch.setenv('JAX_COMPILATION_CACHE_DIR',
                 str(tmp_path_factory.mktemp('bench_jax_cache')))
    patch.setenv('JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS', '0')
    patch.setenv('JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES', '0')
    yield


def bench(*args: str) -> dict:
  """The JSON object on the last line of a successful bench run's stdout."""
  proc = run('gan_jax.bench', *TINY_BENCH, *args)
  assert proc.returncode == 0, proc.stderr[-3000:]
  return json.loads(proc.stdout.strip().splitlines()[-1])


def assert_bare_step(result: dict) -> None:
  assert result['steps_per_s'] > 0 and result['compile_s'] > 0
  assert result['steps'] == 5 and result['seconds'] > 0
  assert math.isclose(result['steps_per_s'], 5 / result['seconds'], rel_tol=1e-9)
  # ring8: batch 256, one seed; a step is one generator update.
  assert result['batch_size'] == 256 and result['num_seeds'] == 1
  assert math.isclose(result['examples_per_s'], result['steps_per_s'] * 256,
                      rel_tol=1e-9)
  assert result['devices'] == 1 and result['backend'] == 'cpu'
  assert result['d_steps'] == 1  # vanilla: the loss's default, resolved
  assert (result['loss'], result['model'], result['data']) == ('vanilla', 'mlp',
                                                               'ring8')


def test_bench_prints_the_step_rate_as_json(tmp_path):
  result = bench('--peak_tflops=2', f'--profile={tmp_path}')
  assert_bare_step(result)
  assert 'loop_steps_per_s' not in result and 'loop_overhead' not in result
  # The MLPs' matrix products alone: G 2->8->8->8->2 and D 2->8->8->8->1 on
  # 256 examples, at least a forward and a backward pass each.
  assert result['flops_per_step'] > 2 * 2 * 256 * (2 * 8 + 8 * 8 * 2 + 8 * 2)
  assert math.isclose(result['tflops_per_s'],
                      result['flops_per_step'] * result['steps_per_s'] / 1e12)
  assert math.isclose(result['mfu'], result['tflops_per_s'] / 2)
  assert (result['dtype'], result['peak_tflops']) == ('float32', 2)
  assert list(tmp_path.glob('plugins/profile/*/*.xplane.pb'))  # the timed steps' trace


def test_model_flops_count_products_and_convolutions_and_their_loops():
  """2 per multiply-add, backward passes included, a scan's body (the D
  steps, lax.map's seeds) times its length: what XLA's own count misses."""
  a, w = jnp.ones((64, 32)), jnp.ones((32, 16))
  flops = lambda f, *args: bench_lib.jaxpr_flops(jax.make_jaxpr(f)(*args).jaxpr)  # noqa: E731
  matmul = 2 * 64 * 32 * 16
  assert flops(jnp.matmul, a, w) == matmul
  # Forward, and the two products of the backward pass (d/da and d/dw).
  assert flops(jax.grad(lambda a, w: jnp.sum(a @ w), (0, 1)), a, w) == 3 * matmul
  assert flops(jax.jit(lambda a: jax.lax.map(lambda x: x @ w, a)),
               jnp.ones((8, 64, 32))) == 8 * matmul
  square = jnp.ones((32, 32))
  five = lambda a: jax.lax.scan(lambda c, _: (c @ square, None), a, None, length=5)[0]  # noqa: E731
  assert flops(five, a) == 5 * 2 * 64 * 32 * 32
  assert flops(lambda a: jax.lax.cond(True, lambda x: x @ w, lambda x: x[:, :16], a),
               a) == matmul  # the costlier branch
  # A 5x5 'SAME' convolution, 3 -> 8 channels on 2 images of 10x10, and a
  # grouped one (3 groups of 1 -> 2 channels).
  image = jnp.ones((2, 10, 10, 3))
  conv = lambda k: jax.lax.conv_general_dilated(  # noqa: E731
      image, k, (1, 1), 'SAME', dimension_numbers=('NHWC', 'HWIO', 'NHWC'),
      feature_group_count=3 if k.shape[2] == 1 else 1)
  assert flops(conv, jnp.ones((5, 5, 3, 8))) == 2 * (2 * 10 * 10 * 8) * (5 * 5 * 3)
  assert flops(conv, jnp.ones((5, 5, 1, 6))) == 2 * (2 * 10 * 10 * 6) * (5 * 5 * 1)
  assert bench_lib.peak_tflops('NVIDIA H100 80GB HBM3', 'bfloat16') == 989.4
  assert bench_lib.peak_tflops('cpu', 'float32') is None


def test_a_step_counts_every_d_step_and_a_lazy_run_its_cycle():
  """ring8 with 5 D steps against 1: 4 more D updates; lazy R1 every 4th
  step: a quarter of R1's products."""
  def step_flops(overrides):
    config = configs.resolve(analysis.experiment_config(RING8, {
        'model.width': 8, **overrides}))
    source = data.synthetic(config.data.name)
    gan = gan_lib.build_gan(config, source.example_shape, source.sample_one)
    # Shapes are all a count needs: no parameters initialised.
    state = jax.eval_shape(functools.partial(gan_lib.init_states, gan),
                           np.asarray(configs.seeds(config), np.int32))
    return bench_lib.step_flops(gan, state, source.arrays, parallel.make_mesh())

  one, five = step_flops({'train.d_steps': 1}), step_flops({'train.d_steps': 5})
  two = step_flops({'train.d_steps': 2})
  assert five - one == pytest.approx(4 * (two - one))  # each D update alike
  assert two - one > 0.3 * one  # a D update is a large part of a step
  r1 = step_flops({'loss.r1_weight': 1.0})
  lazy = step_flops({'loss.r1_weight': 1.0, 'loss.reg_every': 4})
  assert r1 > one and lazy == pytest.approx(one + (r1 - one) / 4)  # vanilla: d_steps 1


@pytest.mark.parametrize('args,fragments', [
    (['--steps=0'], ['--steps=0', '> 0']),
    (['--warmup=-1'], ['--warmup=-1', '>= 0']),
    (['--peak_tflops=0'], ['--peak_tflops=0', '> 0']),
    (['--config.model.widht=8'], ['unknown config key', 'width']),
    (['--config.train.dtype=float16'], ['train.dtype', 'float32, bfloat16']),
])
def test_bad_input_is_a_one_line_error(args, fragments):
  proc = run('gan_jax.bench', *TINY_BENCH, *args)
  assert_one_line_error(proc, *fragments)
  assert not proc.stdout.strip()  # no JSON line


def test_synthetic_mnist_is_random_uint8_images_of_its_shape():
  source = data.synthetic('mnist', num_images=16)
  assert source.kind == 'images' and source.example_shape == (28, 28, 1)
  images = source.arrays['images']
  assert images.shape == (16, 28, 28, 1) and images.dtype == np.uint8
  assert images.min() < 64 and images.max() > 192  # spread over [0, 255]
  np.testing.assert_array_equal(images,
                                data.synthetic('mnist', num_images=16).arrays['images'])
  assert not np.array_equal(
      images, data.synthetic('mnist', num_images=16, seed=1).arrays['images'])
  example = source.sample_one(source.arrays, jax.random.key(0))
  assert example.shape == (28, 28, 1) and example.dtype == np.float32
  assert -1 <= float(example.min()) and float(example.max()) <= 1


def test_synthetic_toy_is_the_mixture_itself():
  source = data.synthetic('ring8')
  assert source.kind == 'points' and source.example_shape == (2,)
  assert source.modes.shape == (8, 2) and source.mode_std == data.toys.RING8_STD
  np.testing.assert_allclose(np.linalg.norm(source.modes, axis=1), 1, rtol=1e-6)
  arrays = jax.tree.map(jnp.asarray, source.arrays)  # as the step has them
  points = jax.vmap(lambda key: source.sample_one(arrays, key))(
      jax.random.split(jax.random.key(0), 64))
  assert points.shape == (64, 2)
  # Every point lies within 5 std of a mode of the ring.
  distances = np.linalg.norm(np.asarray(points)[:, None] - source.modes[None], axis=2)
  assert np.all(distances.min(axis=1) < 5 * data.toys.RING8_STD)


def test_synthetic_unknown_dataset_is_a_user_error():
  with pytest.raises(UserError, match="data.name='imagenet'.*valid: mnist"):
    data.synthetic('imagenet')
