"""train.dtype=bfloat16: layers compute in bfloat16, everything kept stays float32."""

import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from gan_jax import configs
from gan_jax import data
from gan_jax import gan as gan_lib
from gan_jax import models
from gan_jax import parallel
from gan_jax import step as step_lib
from gan_jax.errors import UserError
from tests.helpers import tiny_image_config
from tests.helpers import tiny_toy_config


@pytest.fixture(scope='module', autouse=True)
def _optimized(optimized):
  """XLA's optimisations on: bfloat16 against float32 is about the numerics
  XLA computes when it optimises, as training runs."""


def build_gan(config, dtype: str):
  config = configs.resolve(config)
  config.train.dtype = dtype
  configs.validate(config, 1)
  source = data.load(config.data)
  return gan_lib.build_gan(config, source.example_shape, source.sample_one), source


def run_steps(gan, source, state, num_steps: int):
  """`num_steps` steps of `train_step` on one device; the state and each
  step's metrics on the host."""
  mesh = parallel.make_mesh(jax.devices()[:1])
  step = parallel.shard_map_step(functools.partial(step_lib.train_step, gan), mesh)
  arrays = parallel.replicate(source.arrays, mesh)
  state = jax.device_put(state, parallel.replicated(mesh))
  metrics = []
  for _ in range(num_steps):
    state, step_metrics = step(state, arrays)
    metrics.append(jax.device_get(step_metrics))
  return jax.device_get(state.replace(key=jax.random.key_data(state.key))), metrics


def float_dtypes(tree) -> set[str]:
  return {str(x.dtype) for x in jax.tree.leaves(tree)
          if jnp.issubdtype(x.dtype, jnp.floating)}


def initial_outputs(gan, source, state, num: int = 8):
  """G(z) and the losses at `state` (no dropout, BatchNorm in inference mode)
  on `num` real and `num` generated examples, in the compute dtype of `gan`."""
  @jax.jit
  def run(state):
    real_key, z_key = jax.random.split(jax.random.key(1))
    arrays = jax.tree.map(jnp.asarray, source.arrays)
    real = jax.vmap(functools.partial(source.sample_one, arrays))(
        jax.random.split(real_key, num))
    fake = gan_lib.generate(gan, state.g.variables(),
                          jax.random.normal(z_key, (num, gan.latent_dim)))
    logits = gan.discriminator.apply(state.d.variables(),
                                     jnp.concatenate([real, fake]), train=False)
    real_logits, fake_logits = jnp.split(logits, 2)
    return fake, {'d_loss': gan.loss.d_loss(real_logits, fake_logits),
                  'g_loss': gan.loss.g_loss(real_logits, fake_logits)}
  return jax.device_get(run(state))


def assert_close_losses(metrics16, metrics32):
  for loss in ('d_loss', 'g_loss'):
    assert metrics16[loss].dtype == np.float32
    np.testing.assert_allclose(metrics16[loss], metrics32[loss], rtol=5e-2)


def check_bfloat16(config, bf16_steps: int, compare_first_step: bool):
  """From the same initial state (it does not depend on the compute dtype):
  G's outputs and the losses in bfloat16 are close to float32's, and
  `bf16_steps` bfloat16 training steps are finite and keep every parameter,
  optimizer state and BatchNorm statistic float32. With `compare_first_step`,
  also the first training step's metrics against a float32 step's."""
  gan32, source = build_gan(config, 'float32')
  gan16, _ = build_gan(config, 'bfloat16')
  init = jax.jit(functools.partial(gan_lib.init_state, gan32))
  state = init(jax.random.key(0))

  fake32, losses32 = initial_outputs(gan32, source, state)
  fake16, losses16 = initial_outputs(gan16, source, state)
  assert fake16.dtype == np.float32 and fake16.shape == fake32.shape
  # bfloat16 is really in effect (not silently float32), and close to float32.
  assert not np.array_equal(fake16, fake32)
  np.testing.assert_allclose(fake16, fake32, atol=5e-2)
  assert_close_losses(losses16, losses32)

  # A fresh initial state for each run: the step donates it.
  state16, metrics16 = run_steps(gan16, source, state, bf16_steps)
  for metrics in metrics16:
    assert all(np.isfinite(v) for v in metrics.values()), metrics
    assert all(v.dtype == np.float32 for v in metrics.values()), metrics
  assert float_dtypes((state16.g, state16.d)) == {'float32'}
  assert int(state16.step) == bf16_steps
  if compare_first_step:
    _, [metrics32] = run_steps(gan32, source, init(jax.random.key(0)), 1)
    assert_close_losses(metrics16[0], metrics32)
    for mean_logit in ('d_real', 'd_fake'):  # may be near 0: absolute tolerance
      np.testing.assert_allclose(metrics16[0][mean_logit], metrics32[mean_logit],
                                 atol=2e-2)
  return state16


def test_mlp_toy_in_bfloat16_is_close_to_float32_and_trains():
  check_bfloat16(tiny_toy_config(), bf16_steps=3, compare_first_step=True)


def test_dcgan_in_bfloat16_is_close_to_float32_and_trains(idx_dir):
  # Not the float32 step: compiling the DCGAN step twice would double the time.
  state16 = check_bfloat16(tiny_image_config(idx_dir), bf16_steps=2,
                           compare_first_step=False)
  assert float_dtypes(state16.g.collections) == {'float32'}


@pytest.mark.parametrize('name,shape', [('mlp', (2,)), ('dcgan', (8, 8, 1))])
def test_bfloat16_models_keep_float32_params_and_outputs(name, shape):
  model_config = configs.default_config().model
  model_config.name = name
  model_config.width, model_config.depth = 16, 2
  g32, d32 = models.build(model_config, shape)
  g16, d16 = models.build(model_config, shape, 'bfloat16')
  assert g16.dtype == d16.dtype == jnp.bfloat16
  assert g32.dtype == d32.dtype == jnp.float32
  z = jax.random.normal(jax.random.key(0), (3, model_config.latent_dim))

  @jax.jit
  def init_and_apply(key):
    g_vars = g16.init(key, z, train=False)
    fake = g16.apply(g_vars, z, train=False)
    d_vars = d16.init(key, fake, train=False)
    return g_vars, fake, d_vars, d16.apply(d_vars, fake, train=False)

  g_vars, fake, d_vars, logits = init_and_apply(jax.random.key(1))
  # The same key gives the same float32 parameters whatever the compute dtype.
  g_vars32 = jax.jit(functools.partial(g32.init, train=False))(
      jax.random.key(1), z)
  for a, b in zip(jax.tree.leaves(g_vars), jax.tree.leaves(g_vars32), strict=True):
    np.testing.assert_array_equal(a, b)
  assert float_dtypes((g_vars, d_vars)) == {'float32'}
  assert fake.dtype == jnp.float32 and fake.shape == (3, *shape)
  assert logits.dtype == jnp.float32 and logits.shape == (3,)


def test_bad_dtype_is_a_one_line_user_error():
  config = tiny_toy_config()
  config.train.dtype = 'float16'
  with pytest.raises(UserError,
                     match=r"^unknown train.dtype='float16'; valid: float32,"
                     r' bfloat16$'):
    configs.validate(config, 1)
  with pytest.raises(UserError, match='valid: float32, bfloat16'):
    models.build(config.model, (2,), 'float16')


def test_default_is_float32_and_runs_recorded_without_the_key_build():
  assert configs.default_config().train.dtype == 'float32'
  config = configs.resolve(tiny_toy_config()).to_dict()
  del config['train']['dtype']  # a config.json from before train.dtype existed
  gan = gan_lib.build_gan(ml_collections.ConfigDict(config), (2,))
  assert gan.generator.dtype == gan.discriminator.dtype == jnp.float32
