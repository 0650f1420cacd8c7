"""The training step and loop: images train, runs resume exactly, NaNs stop a run.

Every loss and model: tests/test_contracts.py."""

import functools
import json
import os
from typing import Any

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_jax import checkpoints
from gan_jax import configs
from gan_jax import data
from gan_jax import evaluate
from gan_jax import gan as gan_lib
from gan_jax import losses
from gan_jax import models
from gan_jax import parallel
from gan_jax import runs
from gan_jax import schedules
from gan_jax import step as step_lib
from gan_jax import train
from gan_jax.errors import TrainingDiverged
from gan_jax.errors import UserError
from gan_jax.models import mlp
from tests.helpers import leaf_difference
from tests.helpers import restored_state
from tests.helpers import tiny_image_config
from tests.helpers import tiny_toy_config


def build(config):
  config = configs.resolve(config)
  source = data.load(config.data)
  gan = gan_lib.build_gan(config, source.example_shape, source.sample_one)
  mesh = parallel.make_mesh(jax.devices()[:1])
  state = jax.jit(functools.partial(gan_lib.init_state, gan),
                  out_shardings=parallel.replicated(mesh))(jax.random.key(config.seed))
  step = parallel.shard_map_step(functools.partial(step_lib.train_step, gan), mesh)
  return gan, state, step, parallel.replicate(source.arrays, mesh)


def changed(before, after) -> bool:
  return any(not np.array_equal(a, b) for a, b in
             zip(jax.tree.leaves(before), jax.tree.leaves(after), strict=True))


def all_finite(tree) -> bool:
  return all(np.all(np.isfinite(x)) for x in jax.tree.leaves(tree))


def test_dcgan_wgan_gp_step_on_images_is_finite_and_updates_batch_stats(idx_dir):
  config = tiny_image_config(idx_dir, loss='wgan_gp')
  config.train.d_steps = 2  # keeps the compile short; the scan path is what matters
  _, state, step, arrays = build(config)
  stats_before = jax.device_get(state.g.collections['batch_stats'])
  state, metrics = step(state, arrays)
  assert all_finite(jax.device_get((state.g.params, state.d.params))) and all_finite(metrics)
  assert changed(stats_before, jax.device_get(state.g.collections['batch_stats']))
  assert float(metrics['gp']) > 0


def test_the_step_is_deterministic_given_seed_and_step():
  _, s1, step, arrays = build(tiny_toy_config())
  _, s2, _, _ = build(tiny_toy_config())
  for _ in range(2):
    s1, m1 = step(s1, arrays)
    s2, m2 = step(s2, arrays)
  assert not changed(jax.device_get(s1.g.params), jax.device_get(s2.g.params))
  assert float(m1['g_loss']) == float(m2['g_loss'])


def test_a_lazy_step_regularises_every_kth_step_counted_from_the_state():
  calls = []
  step = step_lib.LazyStep(lambda s, a: (calls.append('reg'), {'r1': 0.0}),
                        lambda s, a: (calls.append('plain'), {'r1': 0.0}),
                        every=4, step=3)
  for _ in range(6):
    step(None, None)
  assert calls == ['plain', 'reg', 'plain', 'plain', 'plain', 'reg']  # steps 3-8


def test_a_lazy_step_reports_the_last_regularised_penalty_between():
  """The plain program reports R1 as 0; the log must not (it would read 0 on
  every log step that is not a multiple of reg_every)."""
  values = iter([1.5, 2.5])
  step = step_lib.LazyStep(lambda s, a: (s, {'r1': next(values), 'd_loss': 1.0}),
                        lambda s, a: (s, {'r1': 0.0, 'd_loss': 2.0}),
                        every=2, step=1, metrics=('r1',))
  reported = [step(None, None)[1] for _ in range(4)]  # steps 1-4
  assert [m['r1'] for m in reported] == [0.0, 1.5, 1.5, 2.5]
  assert [m['d_loss'] for m in reported] == [2.0, 1.0, 2.0, 1.0]


def test_the_generator_average_copies_g_until_its_start_then_decays():
  average, current = {'w': jnp.array([1.0, 2.0])}, {'w': jnp.array([3.0, 6.0])}
  copied = gan_lib.average_generator(average, current, 0.9, updates=5, start=5)
  np.testing.assert_array_equal(copied['w'], [3.0, 6.0])
  decayed = gan_lib.average_generator(average, current, 0.9, updates=6, start=5)
  np.testing.assert_allclose(decayed['w'], [0.9 * 1 + 0.1 * 3, 0.9 * 2 + 0.1 * 6],
                             rtol=1e-6)


def test_a_run_that_averages_g_samples_and_scores_the_average_unless_raw(tmp_path):
  config = tiny_toy_config()
  config.optim.g_ema_decay, config.optim.g_ema_start = 0.5, 2
  config.eval.evaluators, config.eval.num_samples = 'modes', 200
  workdir = str(tmp_path / 'ema')
  results = train.train_and_evaluate(config, workdir)
  assert results['samples_from'] == 'ema'
  gan, state, seed = runs.restore_member(workdir, 0)
  ema = gan_lib.generate_samples(gan, state, 50, seed)
  raw = gan_lib.generate_samples(gan, state, 50, seed, raw=True)
  z = jax.random.normal(jax.random.key(seed), (50, gan.latent_dim))
  np.testing.assert_array_equal(ema, gan.generator.apply(state.g_ema, z, train=False))
  np.testing.assert_array_equal(raw, gan.generator.apply(state.g.variables(), z,
                                                         train=False))
  assert not np.allclose(ema, raw)  # 4 averaged updates after the copies
  assert evaluate.evaluate_run(workdir, raw=True)['samples_from'] == 'raw'
  with open(os.path.join(workdir, 'results.json')) as f:
    assert json.load(f)['samples_from'] == 'raw'
  # A run without the average has none in its state and samples G.
  plain = gan_lib.build_gan(configs.resolve(tiny_toy_config()), (2,))
  assert gan_lib.init_state(plain, jax.random.key(0)).g_ema == {}
  assert gan_lib.samples_from(plain) == 'raw' == gan_lib.samples_from(gan, raw=True)


def test_a_nan_loss_stops_the_run_at_its_step_and_keeps_the_last_good_checkpoint(
    tmp_path, monkeypatch):
  workdir = str(tmp_path / 'run')
  config = tiny_toy_config()
  config.train.num_steps = 3
  train.train_and_evaluate(config, workdir)

  nan_loss = losses.Loss(losses.minimax_discriminator_loss,
                         lambda real, fake: jnp.mean(fake) * jnp.nan, 'NaN')
  monkeypatch.setitem(losses.LOSSES, 'non_saturating', nan_loss)
  config.train.num_steps = 9
  with pytest.raises(TrainingDiverged, match='at step 4 .*step 3'):
    train.train_and_evaluate(config, workdir)
  assert sorted(os.listdir(os.path.join(workdir, 'checkpoints'))) == ['3']
  with open(os.path.join(workdir, 'results.json')) as f:
    results = json.load(f)
  assert results['status'] == 'diverged' and results['nonfinite_step'] == 4


def test_learning_rate_schedules_decay_to_zero_over_the_run():
  assert schedules.constant(1e-3, 10) == 1e-3
  linear = schedules.linear(1e-3, 10)
  cosine = schedules.cosine(1e-3, 10)
  np.testing.assert_allclose([float(linear(s)) for s in (0, 5, 10, 20)],
                             [1e-3, 5e-4, 0, 0], atol=1e-12)
  np.testing.assert_allclose([float(cosine(s)) for s in (0, 5, 10)],
                             [1e-3, 5e-4, 0], atol=1e-12)
  # The discriminator's schedule counts its updates, d_steps (5) per step:
  # halfway through them its learning rate is half the peak (Adam's update
  # of a constant gradient is -lr), not 0 as a schedule over num_steps gives.
  config = configs.resolve(tiny_toy_config('wgan_gp'))
  gan = gan_lib.build_gan(config, (2,))
  d_updates = config.train.num_steps * config.train.d_steps
  assert config.train.d_steps == 5
  params, grads = {'w': jnp.ones(())}, {'w': jnp.ones(())}
  opt_state = gan.d_optimizer.init(params)
  for _ in range(d_updates // 2):
    _, opt_state = gan.d_optimizer.update(grads, opt_state, params)
  updates, _ = gan.d_optimizer.update(grads, opt_state, params)
  np.testing.assert_allclose(float(updates['w']), -0.5 * config.optim.d_lr, rtol=1e-3)


def test_an_unknown_schedule_is_a_user_error():
  config = tiny_toy_config()
  config.optim.schedule = 'exponential'
  with pytest.raises(configs.UserError,
                     match="unknown optim.schedule='exponential'; valid: constant,"
                     ' linear, cosine'):
    configs.validate(config, 1)


@flax.struct.dataclass
class StateOfEbf5d69:
  """train.GANState as gan_jax wrote it up to commit ebf5d69, verbatim."""
  step: jax.Array
  g_params: Any
  g_batch_stats: Any
  g_opt_state: Any
  d_params: Any
  d_opt_state: Any
  key: jax.Array
  nonfinite_step: jax.Array


def assert_restores_as(state, old, gan, mesh, tmp_path):
  """Saves `old` (an older checkpoint layout) as checkpoint 3, restores it
  with runs.restore and checks it equals `state` leaf for leaf; returns
  the restored state."""
  ckpts = checkpoints.Checkpoints(str(tmp_path / 'checkpoints'))
  ckpts.save(3, old)
  ckpts.wait()
  restored = runs.restore(gan, ckpts, mesh, 1)
  ckpts.close()
  want, got = (jax.device_get(s.replace(key=jax.random.key_data(s.key)))
               for s in (state, restored))
  assert jax.tree.structure(want) == jax.tree.structure(got)
  for a, b in zip(jax.tree.leaves(want), jax.tree.leaves(got), strict=True):
    np.testing.assert_array_equal(a, b)
  return restored


@pytest.mark.parametrize('model, seed_axis', [('dcgan', True), ('mlp', True),
                                              ('mlp', False)])
def test_a_checkpoint_from_before_players_loads_into_them(tmp_path, model, seed_axis):
  """The layout before train.Player (g_params, g_batch_stats, ...), with and
  without BatchNorm statistics, with and without the seed axis."""
  config = configs.default_config() if model == 'dcgan' else tiny_toy_config()
  config = configs.resolve(config)
  gan = gan_lib.build_gan(config, (28, 28, 1) if model == 'dcgan' else (2,))
  mesh = parallel.make_mesh(jax.devices()[:1])
  state = gan_lib.fresh_states(gan, [0], mesh)
  old = StateOfEbf5d69(
      step=state.step, g_params=state.g.params,
      g_batch_stats=state.g.collections.get('batch_stats', {}),
      g_opt_state=state.g.opt_state, d_params=state.d.params,
      d_opt_state=state.d.opt_state, key=state.key,
      nonfinite_step=state.nonfinite_step)
  if not seed_axis:  # before num_seeds existed
    old = jax.tree.map(lambda x: x[0], old)
  assert_restores_as(state, old, gan, mesh, tmp_path)


@flax.struct.dataclass
class StateOf37505fb:
  """The checkpoint layout before GANState.g_ema (the state of 37505fb)."""

  step: Any
  g: Any
  d: Any
  key: Any
  nonfinite_step: Any


@pytest.mark.parametrize('decay', [0.0, 0.9])
def test_a_checkpoint_from_before_the_average_of_g_loads(tmp_path, decay):
  """Without g_ema (not even an empty node): it loads as it was, and a run
  that now averages G starts its average from G."""
  config = tiny_toy_config()
  config.optim.g_ema_decay = decay
  gan = gan_lib.build_gan(configs.resolve(config), (2,))
  mesh = parallel.make_mesh(jax.devices()[:1])
  state = gan_lib.fresh_states(gan, [0], mesh)
  restored = assert_restores_as(state, StateOf37505fb(
      step=state.step, g=state.g, d=state.d, key=state.key,
      nonfinite_step=state.nonfinite_step), gan, mesh, tmp_path)
  assert (restored.g_ema == {}) == (decay == 0)


class SpectralNormCritic(nn.Module):
  """A critic with a collection of its own (spectral normalisation's)."""

  @nn.compact
  def __call__(self, x, train: bool, example_keys_B=None):
    del example_keys_B
    h = nn.relu(nn.SpectralNorm(nn.Dense(16))(x, update_stats=train))
    return nn.SpectralNorm(nn.Dense(1))(h, update_stats=train)[:, 0]


def test_a_discriminator_with_its_own_collection_trains_and_resumes(
    tmp_path, monkeypatch):
  """Registered as a model, no change to the step: its power-iteration state
  lives in D's collections, is updated by D's own updates only, and is
  checkpointed."""
  spec = models.Model(
      lambda config, shape, dtype: (mlp.Generator(16, 1, shape[0]),
                                    SpectralNormCritic()),
      fields={}, summary='test', convolutional=False)
  monkeypatch.setitem(models.MODELS, 'spectral_norm_test', spec)
  config = tiny_toy_config('wgan_gp')  # penalty passes and 5 critic steps
  config.model.name = 'spectral_norm_test'
  config.optim.schedule = 'constant'  # a decay would follow num_steps
  _, state, step, arrays = build(config)
  before = jax.device_get(state.d.collections)
  assert 'batch_stats' in before
  state, metrics = step(state, arrays)
  assert all_finite(metrics)
  assert changed(before, jax.device_get(state.d.collections))

  config.train.num_steps = 4
  train.train_and_evaluate(config, str(tmp_path / 'straight'))
  config.train.num_steps = 2
  train.train_and_evaluate(config, str(tmp_path / 'resumed'))
  config.train.num_steps = 4
  train.train_and_evaluate(config, str(tmp_path / 'resumed'))
  straight = restored_state(str(tmp_path / 'straight'))
  resumed = restored_state(str(tmp_path / 'resumed'))
  for (path, a), b in zip(jax.tree_util.tree_flatten_with_path(straight)[0],
                          jax.tree.leaves(resumed), strict=True):
    np.testing.assert_array_equal(a, b, err_msg=jax.tree_util.keystr(path))


def test_reuse_fake_is_two_passes_of_g_on_one_z_with_one_forward(idx_dir):
  """train.reuse_fake steps as the PyTorch DCGAN tutorial does: z drawn once,
  D updated on G(z), G updated through the same pass. It equals the step
  written out with two explicit passes of G on that z (the second's batch
  statistics dropped) to float32 rounding."""
  config = tiny_image_config(idx_dir)  # the DCGAN: BatchNorm in G, dropout in D
  config.train.reuse_fake = True
  gan, state, step, arrays = build(config)
  mesh = parallel.make_mesh(jax.devices()[:1])

  def reference(state, arrays):
    d_key, g_key = jax.random.split(jax.random.fold_in(state.key, state.step))
    key = jax.random.fold_in(d_key, 0)
    z = step_lib._latents(gan, step_lib._d_update_keys(key)[1])
    _, statistics = step_lib._apply(gan.generator, state.g, state.g.params, z,
                                    update_collections=True)
    state = state.replace(g=state.g.replace(collections=statistics))
    state, _ = step_lib._discriminator_update(gan, state, arrays, key)  # G(z) again
    _, drop_key, real_key, real_drop = jax.random.split(g_key, 4)
    real_logits = step_lib._real_logits(gan, state.d, state.d.params, arrays,
                                        real_key, real_drop)
    grads = jax.grad(lambda params: step_lib._g_objective(  # and a third time
        gan, state.g, params, state.d, state.d.params, z, drop_key,
        real_logits)[0])(state.g.params)
    params, opt_state, _ = step_lib._apply_gradients(
        gan.g_optimizer, state.g.params, state.g.opt_state, grads)
    return state.replace(g=state.g.replace(params=params, opt_state=opt_state),
                         step=state.step + 1), {}

  expected, _ = parallel.shard_map_step(reference, mesh)(
      jax.tree.map(jnp.copy, state), arrays)
  got, metrics = step(state, arrays)
  # Float32 rounding: the one pass and the passes again are different
  # programs; Adam's first step turns rounding in a gradient near 0 into up
  # to 2 lr (tests/helpers.py's leaf_difference says how far each may go).
  leaves = jax.tree_util.tree_leaves_with_path(jax.device_get(got.replace(
      key=jax.random.key_data(got.key))))
  others = jax.tree.leaves(jax.device_get(expected.replace(
      key=jax.random.key_data(expected.key))))
  assert len(leaves) > 40
  assert [d for (path, a), b in zip(leaves, others, strict=True)
          if (d := leaf_difference(jax.tree_util.keystr(path), a, b, steps=1,
                                   bound=1e-4))] == []
  assert all_finite(metrics)
  config.loss.name = 'wgan_gp'  # 5 critic steps a step: refused, in one line
  with pytest.raises(UserError, match=r'^train.reuse_fake=True needs one D update'
                     r' a step, but train.d_steps is 5 \(loss.name=wgan_gp\)'):
    configs.validate(config, 1)


def test_reuse_fake_resumes_bit_exactly(tmp_path):
  config = tiny_toy_config()
  config.train.reuse_fake = True
  config.optim.schedule = 'constant'
  train.train_and_evaluate(config, str(tmp_path / 'straight'))
  config.train.num_steps = 3
  train.train_and_evaluate(config, str(tmp_path / 'resumed'))
  config.train.num_steps = 6
  train.train_and_evaluate(config, str(tmp_path / 'resumed'))
  for a, b in zip(jax.tree.leaves(restored_state(str(tmp_path / 'straight'))),
                  jax.tree.leaves(restored_state(str(tmp_path / 'resumed'))),
                  strict=True):
    np.testing.assert_array_equal(a, b)
