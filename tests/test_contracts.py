"""Contracts every registry entry keeps: losses, penalties, models, schedules.

Parametrised over the registries, so a new entry is covered without editing
this file. (Datasets and evaluators: tests/test_contracts_data.py; resuming
with every stabiliser: tests/test_contracts_resume.py; one and four devices,
and each loss's step changing both players: tests/test_contracts_devices.py.
Separate files, so that pytest's two workers share them.)
"""


import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_jax import configs
from gan_jax import data
from gan_jax import gan as gan_lib
from gan_jax import losses
from gan_jax import models
from gan_jax import parallel
from gan_jax import schedules
from gan_jax import step as step_lib
from tests import specs
from tests.helpers import model_config
from tests.helpers import toy_config

EXTREME = jnp.array([-1e4, 1e4, -1e4, 1e4, 0.0, -3.0, 60.0], jnp.float32)


# ----------------------------------------------------------------- losses


@pytest.mark.parametrize('name', list(losses.LOSSES))
def test_every_loss_is_finite_with_finite_gradients_at_extreme_logits(name):
  loss = losses.LOSSES[name]
  real, fake = EXTREME, EXTREME[::-1]
  for player in (loss.d_loss, loss.g_loss):
    value, grads = jax.value_and_grad(player, argnums=(0, 1))(real, fake)
    assert np.isfinite(value), (name, player)
    assert all(np.all(np.isfinite(g)) for g in grads), (name, player)


@pytest.mark.parametrize('name', list(losses.LOSSES))
def test_every_loss_is_a_scalar_and_its_penalties_exist(name):
  loss = losses.LOSSES[name]
  real, fake = jnp.linspace(-2, 2, 8), jnp.linspace(1, -3, 8)
  assert loss.d_loss(real, fake).shape == () == loss.g_loss(real, fake).shape
  assert loss.d_steps >= 1
  assert set(loss.penalties) <= set(losses.PENALTIES)


@pytest.mark.parametrize('name', list(losses.PENALTIES))
def test_every_penalty_is_finite_and_per_example(name):
  """Finite, and a mean over examples each with its own key: a batch's
  penalty is the mean of its halves' (a critic with per-example gradients)."""
  penalty = losses.PENALTIES[name]
  w = jnp.array([[0.6, -1.7, 0.3], [1.1, 0.4, -0.9]])
  critic = lambda x: jnp.sum(jnp.tanh(x @ w) ** 2, axis=-1)  # noqa: E731
  rng = np.random.default_rng(0)
  real, fake = (jnp.asarray(rng.normal(size=(8, 2)), jnp.float32) for _ in 'rf')
  keys = jax.random.split(jax.random.key(0), 8)
  whole = penalty.fn(critic, real, fake, keys)
  halves = [penalty.fn(critic, real[s], fake[s], keys[s])
            for s in (slice(0, 4), slice(4, 8))]
  assert np.isfinite(whole)
  np.testing.assert_allclose(whole, np.mean(halves), rtol=1e-5)


def test_every_penalty_has_a_key_index_of_its_own():
  """losses.PENALTY_KEY_INDEX, append only: one index per penalty, no two
  alike, none skipped."""
  assert set(losses.PENALTY_KEY_INDEX) == set(losses.PENALTIES)
  assert sorted(losses.PENALTY_KEY_INDEX.values()) == list(
      range(len(losses.PENALTY_KEY_INDEX)))


def test_the_penalties_keys_are_those_existing_runs_drew():
  """The keys 4 + 2i and 5 + 2i of a D update's split into 10, i the
  penalty's place in PENALTIES when runs were recorded with it: threefry's
  bits, the same on every machine."""
  key = jax.random.key(7)
  before = jax.random.split(key, 10)
  for index, name in enumerate(('gradient_penalty', 'r1', 'r2')):
    for got, want in zip(step_lib.penalty_keys(step_lib._d_update_keys(key), name),  # noqa: SLF001
                         before[4 + 2 * index:6 + 2 * index], strict=True):
      np.testing.assert_array_equal(jax.random.key_data(got),
                                    jax.random.key_data(want))


def test_a_penalty_inserted_first_leaves_existing_runs_unchanged(monkeypatch):
  """WGAN-GP's ε comes from its keys: a new penalty (inactive here) at the
  front of PENALTIES, with the next key index, changes no number."""
  config = configs.resolve(toy_config('wgan_gp'))
  source = data.load(config.data)
  before, _ = _train_steps(config, source, steps=1)
  new = losses.Penalty(losses.r1_penalty, 'new_weight', 0.0, 'new', 'a new one')
  monkeypatch.setattr(losses, 'PENALTIES', {'new': new, **losses.PENALTIES})
  monkeypatch.setitem(losses.PENALTY_KEY_INDEX, 'new',
                      len(losses.PENALTY_KEY_INDEX))
  after, _ = _train_steps(config, source, steps=1)
  for a, b in zip(jax.tree.leaves(before.d.params), jax.tree.leaves(after.d.params),
                  strict=True):
    np.testing.assert_array_equal(a, b)


def test_lazy_regularisation_adds_k_times_the_penalty_on_every_kth_step():
  """R1 with reg_every = 2 (one D update a step): step 1 adds 2γ·R1 (so its
  loss exceeds the every-step run's, 1·γ·R1, by γ·R1 at the same state and
  keys), step 2 none (its loss is a run's without R1 at step 2's state), step
  3 again; step 2 reports step 1's r1, so no log line reads 0."""
  config = toy_config('non_saturating')
  config.loss.r1_weight = 0.5
  config = configs.resolve(config)
  source = data.load(config.data)
  _, every = _train_steps(config, source, steps=1)
  config.loss.reg_every = 2
  step, state, arrays, mesh = _compiled_step(config, source)
  state, first = step(state, arrays)
  copy = jax.tree.map(jnp.copy, state)  # the step donates its state
  state, second = step(state, arrays)
  _, third = step(state, arrays)
  r1 = [float(m['r1'][0]) for m in (first, second, third)]
  assert r1[0] > 0 and r1[1] == r1[0] and r1[2] > 0 and r1[2] != r1[0]
  np.testing.assert_allclose(r1[0], every['r1'][0], rtol=1e-6)
  np.testing.assert_allclose(float(first['d_loss'][0]) - float(every['d_loss'][0]),
                             0.5 * r1[0], rtol=1e-4)
  config.loss.r1_weight, config.loss.reg_every = 0.0, 1
  unregularised = gan_lib.build_gan(config, source.example_shape, source.sample_one)
  _, without_r1 = step_lib.compile_step(unregularised, copy, arrays, mesh)(copy, arrays)
  np.testing.assert_allclose(second['d_loss'], without_r1['d_loss'], rtol=1e-6)


# ----------------------------------------------------------------- models


def _count(tree) -> int:
  return sum(x.size for x in jax.tree.leaves(tree))


@pytest.mark.parametrize('name', list(models.MODELS))
@pytest.mark.parametrize('dtype', models.DTYPES)
def test_every_model_has_its_shapes_float32_outputs_and_parameter_count(name, dtype):
  """Outputs at the test widths, parameters counted at the defaults
  (tests/specs.py); from shapes alone (tracing, not running: the models run
  in every training test)."""
  spec = specs.model(name)
  g, d = models.build(model_config(name, paper_widths=True).model,
                      spec.shape, dtype)
  z = jnp.ones((3, configs.default_config().model.latent_dim))
  images = jax.ShapeDtypeStruct((3, *spec.shape), jnp.float32)
  g_params = jax.eval_shape(lambda: g.init(jax.random.key(0), z, train=False))
  d_params = jax.eval_shape(lambda x: d.init(jax.random.key(1), x, train=False),
                            images)
  assert (_count(g_params['params']), _count(d_params['params'])) == spec.param_counts
  g, d = models.build(model_config(name).model, spec.shape, dtype)
  g_vars = jax.eval_shape(lambda: g.init(jax.random.key(0), z, train=False))
  x = jax.eval_shape(lambda v: g.apply(v, z, train=False), g_vars)
  d_vars = jax.eval_shape(lambda x: d.init(jax.random.key(1), x, train=False), x)
  logits = jax.eval_shape(lambda v, x: d.apply(v, x, train=False), d_vars, x)
  assert x.shape == (3, *spec.shape) and x.dtype == jnp.float32
  assert logits.shape == (3,) and logits.dtype == jnp.float32


@pytest.mark.parametrize('name', list(models.MODELS))
def test_every_discriminator_treats_each_example_with_its_own_key(name):
  """Example b's logit depends on x[b] and example_keys_B[b] alone: the same
  for the whole batch, a part of it, and a shuffled batch."""
  spec = specs.model(name)
  g, d = models.build(model_config(name).model, spec.shape)
  x = jax.random.uniform(jax.random.key(0), (4, *spec.shape), minval=-1.0)
  keys = jax.random.split(jax.random.key(1), 4)
  variables = d.init(jax.random.key(2), x, train=False)
  logits = d.apply(variables, x, train=True, example_keys_B=keys)
  part = d.apply(variables, x[2:], train=True, example_keys_B=keys[2:])
  order = jnp.array([3, 0, 2, 1])
  shuffled = d.apply(variables, x[order], train=True, example_keys_B=keys[order])
  np.testing.assert_allclose(part, logits[2:], rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(shuffled, logits[order], rtol=1e-5, atol=1e-6)
  del g


@pytest.mark.parametrize('name', list(models.MODELS))
def test_every_discriminator_spectrally_normalised_has_unit_spectral_norms(name):
  """model.spectral_norm: after enough training passes (one power iteration
  each, the weights held fixed), each stored sigma is the weight's largest
  singular value by SVD, and D in eval mode equals the plain D with every
  weight divided by it."""
  spec = specs.model(name)
  config = model_config(name)
  config.model.spectral_norm = True
  _, d = models.build(config.model, spec.shape)
  x = jax.random.uniform(jax.random.key(0), (2, *spec.shape), minval=-1.0)
  keys = jax.random.split(jax.random.key(1), 2)
  variables = d.init(jax.random.key(2), x, train=False)

  @jax.jit
  def iterate(variables):
    def one(_, v):
      _, updates = d.apply(v, x, train=True, example_keys_B=keys,
                           mutable=[models.SPECTRAL_NORM_COLLECTION])
      return {**v, **updates}
    return jax.lax.fori_loop(0, 300, one, variables)

  variables = iterate(variables)
  stats = variables[models.SPECTRAL_NORM_COLLECTION]['SpectralNorm_0']
  plain = variables['params']['discriminator']
  weights = 0
  for path, w in jax.tree_util.tree_flatten_with_path(plain)[0]:
    if w.ndim < 2:
      continue
    name_ = 'discriminator/' + '/'.join(k.key for k in path)
    largest = float(jnp.linalg.svd(w.reshape(-1, w.shape[-1]), compute_uv=False)[0])
    np.testing.assert_allclose(float(stats[f'{name_}/sigma']), largest, rtol=1e-3)
    plain = _set(plain, path, w / largest)
    weights += 1
  assert weights >= 2  # every weight matrix, the output layer's too
  _, plain_d = models.build(model_config(name).model, spec.shape)
  np.testing.assert_allclose(d.apply(variables, x, train=False),
                             plain_d.apply({'params': plain}, x, train=False),
                             rtol=2e-3, atol=1e-5)


def _set(tree, path, value):
  """`tree` (nested dicts) with the leaf at `path` replaced."""
  key = path[0].key
  return {**tree, key: value if len(path) == 1 else _set(tree[key], path[1:], value)}


# ----------------------------------------------------------------- schedules


@pytest.mark.parametrize('name', list(schedules.SCHEDULES))
def test_every_schedule_starts_at_its_peak_and_stays_in_range(name):
  schedule = schedules.SCHEDULES[name](1e-3, 100)
  values = [float(schedule(s)) if callable(schedule) else schedule
            for s in (0, 50, 100, 150)]
  np.testing.assert_allclose(values[0], 1e-3)
  assert all(0 <= v <= 1e-3 * (1 + 1e-6) for v in values)


# ----------------------------------------------------------------- helpers


def _compiled_step(config, source):
  """(step, fresh stacked state, data arrays, mesh) of a one-member run on one
  device, the step compiled as training compiles it."""
  gan = gan_lib.build_gan(config, source.example_shape, source.sample_one)
  mesh = parallel.make_mesh(jax.devices()[:1])
  state = gan_lib.fresh_states(gan, [config.seed], mesh)
  arrays = parallel.replicate(source.arrays, mesh)
  return step_lib.compile_step(gan, state, arrays, mesh), state, arrays, mesh


def _train_steps(config, source, steps: int):
  """The member's state and the last step's metrics after `steps` steps."""
  step, state, arrays, _ = _compiled_step(config, source)
  for _ in range(steps):
    state, metrics = step(state, arrays)
  return gan_lib.member(state, 0), jax.device_get(metrics)
