"""Several seeds in one program (`config.num_seeds`): member i is the run of
seed `config.seed + i`; resume, results, sampling and errors per member."""

import functools
import json
import math
import os
import shutil

import jax
import numpy as np
from PIL import Image
import pytest

from gan_jax import aggregate
from gan_jax import checkpoints
from gan_jax import configs
from gan_jax import data
from gan_jax import evaluate
from gan_jax import gan as gan_lib
from gan_jax import parallel
from gan_jax import runs
from gan_jax import step as step_lib
from gan_jax import train
from gan_jax.errors import UserError
from tests.helpers import read_events
from tests.helpers import restored_state
from tests.helpers import tiny_toy_config


def seeds_config(num_seeds: int, seed: int = 0, num_steps: int = 4):
  config = tiny_toy_config()
  config.seed, config.num_seeds = seed, num_seeds
  config.train.num_steps = num_steps
  config.eval.num_samples = 500
  return config


def leaves(state) -> list[np.ndarray]:
  return [np.asarray(x) for x in jax.tree.leaves(state)]


def test_each_member_is_the_run_of_its_seed(tmp_path):
  def config(num_seeds, seed):
    c = seeds_config(num_seeds, seed)
    c.train.sample_every = c.train.checkpoint_every = 4  # only at the end
    return c

  many = train.train_and_evaluate(config(3, seed=3), str(tmp_path / 'k3'))
  stacked = restored_state(str(tmp_path / 'k3'))
  assert many['seeds'] == [3, 4, 5] and many['num_seeds'] == 3
  for i, seed in enumerate([3, 4, 5]):
    workdir = str(tmp_path / f'seed{seed}')
    single = train.train_and_evaluate(config(1, seed=seed), workdir)
    # Parameters, batch statistics, both Adam states, step and key.
    for a, b in zip(leaves(gan_lib.member(stacked, i)),
                    leaves(gan_lib.member(restored_state(workdir), 0)), strict=True):
      np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    # The evaluation's z and the sample picture's z come from the member's seed.
    assert many['metrics_per_seed'][i] == pytest.approx(
        single['metrics_per_seed'][0], nan_ok=True)
    assert many['losses_per_seed'][i] == pytest.approx(
        single['losses_per_seed'][0], rel=1e-5)
    np.testing.assert_array_equal(
        np.asarray(Image.open(tmp_path / 'k3' / 'samples' / f'step_4_seed{i}.png')),
        np.asarray(Image.open(os.path.join(workdir, 'samples', 'step_4.png'))))
  # ... and the members are three different GANs.
  g = [leaves(gan_lib.member(stacked, i).g.params) for i in range(3)]
  for i, j in ((0, 1), (0, 2), (1, 2)):
    assert not any(np.allclose(a, b) for a, b in zip(g[i], g[j], strict=True))


@pytest.fixture(scope='module')
def two_seeds(tmp_path_factory):
  """A 4-step run of two seeds (with the modes evaluator) and its results."""
  workdir = str(tmp_path_factory.mktemp('k2') / 'run')
  return workdir, train.train_and_evaluate(seeds_config(2), workdir)


def test_a_resumed_run_of_two_seeds_equals_the_uninterrupted_one(tmp_path, two_seeds):
  straight, _ = two_seeds
  # An interruption after the step-3 checkpoint (same config: the toy's
  # learning rate decays over train.num_steps, so a shorter run is not a prefix).
  resumed = str(tmp_path / 'resumed')
  train.train_and_evaluate(seeds_config(2), resumed)
  shutil.rmtree(os.path.join(resumed, 'checkpoints', '4'))
  results = train.train_and_evaluate(seeds_config(2), resumed)
  assert results['resumed_from'] == 3 and results['final_step'] == 4
  for a, b in zip(leaves(restored_state(straight)), leaves(restored_state(resumed)),
                  strict=True):
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize('num_seeds', [1, 3])
def test_a_checkpoint_of_other_num_seeds_is_refused(two_seeds, num_seeds):
  workdir, _ = two_seeds
  with pytest.raises(UserError, match=f'num_seeds=2 there, {num_seeds} here'):
    train.train_and_evaluate(seeds_config(num_seeds, num_steps=6), workdir)
  # Allowed to differ in config.json, the checkpoint still refuses it.
  with pytest.raises(UserError, match=f'holds 2 seeds but the config has num_seeds='
                     f'{num_seeds}; resume with --config.num_seeds=2'):
    train.train_and_evaluate(seeds_config(num_seeds, num_steps=6), workdir,
                             allow_config_change=('num_seeds',))


def test_results_tensorboard_and_pictures_per_seed_and_their_mean(two_seeds):
  workdir, returned = two_seeds
  with open(os.path.join(workdir, 'results.json')) as f:
    results = json.load(f)
  assert results['num_seeds'] == 2 and results['seeds'] == [0, 1]
  for name, keys in (('losses', {'d_loss', 'g_loss', *step_lib.DYNAMICS}),
                     ('metrics', {'modes', 'high_quality', 'reverse_kl'})):
    per_seed = results[f'{name}_per_seed']
    assert [s['seed'] for s in per_seed] == [0, 1]
    assert all(set(s) == keys | {'seed'} for s in per_seed)
    assert set(results[name]) == set(results[f'{name}_summary']) == keys
    for key in keys:
      values = [s[key] for s in per_seed if not math.isnan(s[key])]
      summary = results[f'{name}_summary'][key]
      assert summary['n'] == len(values)
      if values:
        assert results[name][key] == pytest.approx(np.mean(values))
        assert summary['mean'] == results[name][key]
  assert results['losses_per_seed'][0] != results['losses_per_seed'][1]

  [events] = [f for f in os.listdir(workdir) if f.startswith('events.out')]
  scalars, images = read_events(os.path.join(workdir, events))
  for tag in ('g_loss', 'eval/modes'):
    _, mean = scalars[tag][-1]
    (_, a), (_, b) = scalars[f'seed_0/{tag}'][-1], scalars[f'seed_1/{tag}'][-1]
    assert mean == pytest.approx((a + b) / 2, rel=1e-6)
  assert [step for step, _ in scalars['seed_1/g_loss']] == [2, 4]
  assert images['samples'] == [3, 4]
  assert sorted(os.listdir(os.path.join(workdir, 'samples'))) == [
      'step_3_seed0.png', 'step_3_seed1.png', 'step_4_seed0.png', 'step_4_seed1.png']

  # `gan_jax.evaluate` scores every member again: the same samples, the same figures.
  rescored = evaluate.evaluate_run(workdir, num_samples=500)
  np.testing.assert_equal(rescored['metrics_per_seed'], returned['metrics_per_seed'])
  np.testing.assert_equal(rescored['metrics_summary'], returned['metrics_summary'])
  with open(os.path.join(workdir, 'results.json')) as f:
    saved = json.load(f)
  assert saved['metrics_step'] == 4
  np.testing.assert_equal(saved['metrics_per_seed'], returned['metrics_per_seed'])


def test_restore_member_picks_a_member_and_refuses_an_index_out_of_range(two_seeds):
  """What `python -m gan_jax.sample --seed_index=i` samples (see test_cli)."""
  workdir, _ = two_seeds
  _, gan, state = runs.restore_run(workdir)
  for i in (0, 1):
    _, one, seed = runs.restore_member(workdir, i)
    assert seed == i
    for a, b in zip(leaves(one.g.params), leaves(gan_lib.member(state, i).g.params),
                    strict=True):
      np.testing.assert_array_equal(a, b)
  with pytest.raises(UserError, match=r'--seed_index=2 is out of range: the run in'
                     r' .* has num_seeds=2; valid: 0 to 1$'):
    runs.restore_member(workdir, 2)


def test_summarize_known_numbers_nan_and_one_seed():
  summary = aggregate.summarize([{'seed': 0, 'x': 1.0, 'y': math.nan},
                                 {'seed': 1, 'x': 2.0, 'y': 5.0},
                                 {'seed': 2, 'x': 3.0, 'y': math.nan}])
  half = 4.302652729749462 / math.sqrt(3)  # t_{0.975, 2} std / sqrt(n)
  assert summary['x']['ci95'] == pytest.approx([2 - half, 2 + half])
  assert summary['x'] | {'ci95': None} == {'mean': 2.0, 'std': 1.0, 'ci95': None,
                                           'n': 3}
  assert summary['y'] == {'mean': 5.0, 'std': 0.0, 'ci95': [5.0, 5.0], 'n': 1}
  [one] = aggregate.summarize([{'seed': 0, 'x': math.nan}]).values()
  assert one['n'] == 0 and math.isnan(one['mean']) and math.isnan(one['ci95'][0])
  assert aggregate.results('losses', [{'seed': 4, 'g': 0.5}]) == {
      'losses': {'g': 0.5}, 'losses_per_seed': [{'seed': 4, 'g': 0.5}],
      'losses_summary': {'g': {'mean': 0.5, 'std': 0.0, 'ci95': [0.5, 0.5], 'n': 1}}}
  assert aggregate.results('metrics', []) == {
      'metrics': {}, 'metrics_per_seed': [], 'metrics_summary': {}}
  assert aggregate.describe([{'seed': 0, 'x': 1.0, 'y': math.nan}]) == 'x 1.0000 y nan'
  assert aggregate.describe([{'seed': 0, 'x': 1.0, 'y': math.nan},
                             {'seed': 1, 'x': 3.0, 'y': 2.0}]) == (
      'x 2.0000 (1.0000..3.0000) y 2.0000 (2.0000..2.0000) [NaN in 1 of 2]')


def test_the_first_divergence_names_the_member_and_its_step():
  assert gan_lib.first_divergence(np.array([-1, -1])) is None
  assert gan_lib.first_divergence(np.array([-1, 7, 5, 5])) == (2, 5)


def test_num_seeds_must_be_positive():
  config = tiny_toy_config()
  config.num_seeds = 0
  with pytest.raises(UserError, match=r'^num_seeds=0 is invalid; it must be > 0$'):
    configs.validate(config, 1)


def test_a_checkpoint_without_the_seed_axis_restores_as_one_seed(tmp_path):
  """Runs from before num_seeds (no seed axis, no num_seeds in config.json)."""
  config = configs.resolve(tiny_toy_config())
  gan = gan_lib.build_gan(config, (2,))
  state = jax.jit(functools.partial(gan_lib.init_state, gan))(jax.random.key(0))
  ckpts = checkpoints.Checkpoints(str(tmp_path / 'checkpoints'))
  ckpts.save(3, state)
  ckpts.wait()
  ckpts.close()
  old_config = config.to_dict()
  del old_config['num_seeds']
  (tmp_path / 'config.json').write_text(json.dumps(old_config))
  config, _, restored = runs.restore_run(str(tmp_path))
  assert config.num_seeds == 1 and gan_lib.current_step(restored) == 0
  assert parallel.fetch(restored.step).shape == (1,)
  two = seeds_config(2)
  with pytest.raises(UserError, match='holds 1 seed but the config has num_seeds=2'):
    train.train_and_evaluate(two, str(tmp_path))
  host = lambda s: s.replace(key=jax.random.key_data(s.key))
  for a, b in zip(leaves(host(gan_lib.member(restored, 0))), leaves(host(state)),
                  strict=True):
    np.testing.assert_array_equal(a, b)


def test_auto_seed_batching_loops_over_conv_members_on_the_cpu_only():
  assert gan_lib.seed_batching('auto', 'dcgan', 'cpu') == 'loop'
  assert gan_lib.seed_batching('auto', 'mlp', 'cpu') == 'vmap'
  assert gan_lib.seed_batching('auto', 'dcgan', 'gpu') == 'vmap'
  assert gan_lib.seed_batching('vmap', 'dcgan', 'cpu') == 'vmap'
  config = seeds_config(2)
  config.train.seed_batching = 'scan'
  with pytest.raises(UserError, match="train.seed_batching='scan'; valid: auto,"
                     ' vmap, loop'):
    configs.validate(config, 1)


def test_looped_and_vmapped_members_take_the_same_step():
  """'loop' and 'vmap' compute the same members (the DCGAN's, against the
  one-seed runs, on 1 and 4 devices: test_parallel)."""
  config = configs.resolve(seeds_config(3))
  source = data.load(config.data)
  mesh = parallel.make_mesh(jax.devices()[:1])
  arrays = parallel.replicate(source.arrays, mesh)
  out = {}
  for way in ('loop', 'vmap'):
    config.train.seed_batching = way
    gan = gan_lib.build_gan(config, source.example_shape, source.sample_one)
    assert gan.seed_batching == way
    state = gan_lib.fresh_states(gan, configs.seeds(config), mesh)
    step = step_lib.compile_step(gan, state, arrays, mesh)
    for _ in range(2):
      state, metrics = step(state, arrays)
    out[way] = jax.device_get((state.replace(key=jax.random.key_data(state.key)),
                               metrics))
  for a, b in zip(leaves(out['loop']), leaves(out['vmap']), strict=True):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_looped_members_are_one_program_whatever_their_number():
  """train.seed_batching='loop' runs the members in a while loop: the program
  (and its compile time) is the same for 2 seeds as for 8 (unrolled, 8 DCGAN
  seeds compiled 4.7x longer than one)."""
  source = data.synthetic('mnist')
  mesh = parallel.make_mesh(jax.devices()[:1])
  arrays = parallel.replicate(source.arrays, mesh)
  programs = {}
  for k in (2, 8):
    config = configs.default_config()
    config.num_seeds, config.train.seed_batching = k, 'loop'
    config.train.batch_size = 8
    config = configs.resolve(config)
    gan = gan_lib.build_gan(config, source.example_shape, source.sample_one)
    state = jax.eval_shape(functools.partial(
        gan_lib.fresh_states, gan, configs.seeds(config), mesh))
    step = parallel.shard_map_step(
        functools.partial(step_lib.train_step_seeds, gan), mesh)
    programs[k] = step.lower(state, arrays).as_text()
  assert 'while' in programs[2]
  # The same text but for the seed count in the shapes.
  assert abs(len(programs[8]) - len(programs[2])) < 0.01 * len(programs[2])
