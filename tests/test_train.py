"""The training step and loop: every loss trains, runs resume exactly, NaNs stop a run."""

import functools
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_jax import configs
from gan_jax import data
from gan_jax import losses
from gan_jax import parallel
from gan_jax import train
from tests.conftest import restored_state
from tests.conftest import tiny_image_config
from tests.conftest import tiny_toy_config


def build(config):
  config = configs.resolve(config)
  source = data.load(config.data)
  gan = train.build_gan(config, source.example_shape, source.sample_one)
  mesh = parallel.make_mesh(jax.devices()[:1])
  state = jax.jit(functools.partial(train.init_state, gan),
                  out_shardings=parallel.replicated(mesh))(jax.random.key(config.seed))
  step = parallel.shard_map_step(functools.partial(train.train_step, gan), mesh)
  return gan, state, step, parallel.replicate(source.arrays, mesh)


def changed(before, after) -> bool:
  return any(not np.array_equal(a, b) for a, b in
             zip(jax.tree.leaves(before), jax.tree.leaves(after), strict=True))


def all_finite(tree) -> bool:
  return all(np.all(np.isfinite(x)) for x in jax.tree.leaves(tree))


@pytest.mark.parametrize('loss', ['vanilla', 'non_saturating', 'wgan_gp'])
def test_one_step_of_each_loss_changes_both_players_and_stays_finite(loss):
  _, state, step, arrays = build(tiny_toy_config(loss))
  before = jax.device_get((state.g_params, state.d_params, state.d_opt_state))
  state, metrics = step(state, arrays)
  g_params, d_params, d_opt = jax.device_get((state.g_params, state.d_params,
                                              state.d_opt_state))
  assert changed(before[0], g_params) and changed(before[1], d_params)
  assert all_finite((g_params, d_params)) and all_finite(metrics)
  assert int(state.step) == 1
  # wgan_gp does 5 critic updates per generator update (Adam counts them).
  assert int(d_opt[0].count) == (5 if loss == 'wgan_gp' else 1)
  assert ('gp' in metrics) == (loss == 'wgan_gp')


def test_dcgan_wgan_gp_step_on_images_is_finite_and_updates_batch_stats(idx_dir):
  config = tiny_image_config(idx_dir, loss='wgan_gp')
  config.train.d_steps = 2  # keeps the compile short; the scan path is what matters
  _, state, step, arrays = build(config)
  stats_before = jax.device_get(state.g_batch_stats)
  state, metrics = step(state, arrays)
  assert all_finite(jax.device_get((state.g_params, state.d_params))) and all_finite(metrics)
  assert changed(stats_before, jax.device_get(state.g_batch_stats))
  assert float(metrics['gp']) > 0


def test_the_step_is_deterministic_given_seed_and_step():
  _, s1, step, arrays = build(tiny_toy_config())
  _, s2, _, _ = build(tiny_toy_config())
  for _ in range(2):
    s1, m1 = step(s1, arrays)
    s2, m2 = step(s2, arrays)
  assert not changed(jax.device_get(s1.g_params), jax.device_get(s2.g_params))
  assert float(m1['g_loss']) == float(m2['g_loss'])


def test_resumed_run_equals_uninterrupted_run_bitwise(tmp_path, idx_dir):
  # DCGAN: batch norm statistics, dropout and both Adam states must all resume.
  config = tiny_image_config(idx_dir)
  config.train.num_steps = 4
  train.train_and_evaluate(config, str(tmp_path / 'straight'))

  config.train.num_steps = 2
  train.train_and_evaluate(config, str(tmp_path / 'resumed'))
  config.train.num_steps = 4
  results = train.train_and_evaluate(config, str(tmp_path / 'resumed'))
  assert results['resumed_from'] == 2 and results['final_step'] == 4

  straight = restored_state(str(tmp_path / 'straight'))
  resumed = restored_state(str(tmp_path / 'resumed'))
  for a, b in zip(jax.tree.leaves(straight), jax.tree.leaves(resumed), strict=True):
    np.testing.assert_array_equal(a, b)
  assert resumed.step.tolist() == [4]  # one seed: a seed axis of size 1


def test_a_nan_loss_stops_the_run_at_its_step_and_keeps_the_last_good_checkpoint(
    tmp_path, monkeypatch):
  workdir = str(tmp_path / 'run')
  config = tiny_toy_config()
  config.train.num_steps = 3
  train.train_and_evaluate(config, workdir)

  nan_loss = losses.GANLoss(losses.minimax_discriminator_loss,
                            lambda logits: jnp.mean(logits) * jnp.nan)
  monkeypatch.setitem(losses.LOSSES, 'non_saturating', nan_loss)
  config.train.num_steps = 9
  with pytest.raises(train.TrainingDiverged, match='at step 4 .*step 3'):
    train.train_and_evaluate(config, workdir)
  assert sorted(os.listdir(os.path.join(workdir, 'checkpoints'))) == ['3']
  with open(os.path.join(workdir, 'results.json')) as f:
    results = json.load(f)
  assert results['status'] == 'diverged' and results['nonfinite_step'] == 4


def test_learning_rate_schedules_decay_to_zero_over_the_run():
  assert train.learning_rate('constant', 1e-3, 10) == 1e-3
  linear = train.learning_rate('linear', 1e-3, 10)
  cosine = train.learning_rate('cosine', 1e-3, 10)
  np.testing.assert_allclose([float(linear(s)) for s in (0, 5, 10, 20)],
                             [1e-3, 5e-4, 0, 0], atol=1e-12)
  np.testing.assert_allclose([float(cosine(s)) for s in (0, 5, 10)],
                             [1e-3, 5e-4, 0], atol=1e-12)
  # The discriminator's schedule counts its updates, d_steps (5) per step:
  # halfway through them its learning rate is half the peak (Adam's update
  # of a constant gradient is -lr), not 0 as a schedule over num_steps gives.
  config = configs.resolve(tiny_toy_config('wgan_gp'))
  gan = train.build_gan(config, (2,))
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
