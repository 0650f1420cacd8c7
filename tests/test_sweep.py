"""python -m gan_jax.sweep: points, names, runs, resume, summary, commands."""

import csv
import json
import os
import shlex
import shutil
import subprocess
import sys

import ml_collections
import pytest

from gan_jax import analysis
from gan_jax import configs
from gan_jax import files
from gan_jax import losses
from gan_jax import preemption
from gan_jax import report
from gan_jax import sweep
from gan_jax import train
from gan_jax import workdir as workdir_lib
from gan_jax.errors import TrainingDiverged
from gan_jax.errors import UserError
from gan_jax.sweep import points as sweep_points
from tests.helpers import REPO
from tests.helpers import write_json

RING8 = os.path.join(REPO, 'experiments', 'ring8.py')
TINY = {'model.width': 32, 'model.depth': 2, 'train.batch_size': 16,
        'train.num_steps': 4, 'train.log_every': 2, 'train.sample_every': 4,
        'train.checkpoint_every': 2, 'eval.num_samples': 100}


def ring8_config(overrides=TINY) -> ml_collections.ConfigDict:
  """experiments/ring8.py with --config overrides, as the command loads it."""
  config = configs.load_config_module(RING8).get_config()
  config.lock()
  return sweep_points.point_config(config, overrides)


def must_not_train(config, workdir):
  raise AssertionError(f'trained {workdir}')


def read_csv(path) -> list[dict[str, str]]:
  with open(path) as f:
    return list(csv.DictReader(f))


def test_product_order_types_and_names():
  config = ring8_config()
  points = sweep_points.sweep_points(RING8, config, TINY, [
      'loss.name=vanilla,wgan_gp', 'optim.g_lr=1e-3,0.0002,1', 'train.d_steps=1,5'])
  assert points == [{'loss.name': loss, 'optim.g_lr': lr, 'train.d_steps': d}
                    for loss in ('vanilla', 'wgan_gp') for lr in (1e-3, 2e-4, 1.0)
                    for d in (1, 5)]
  assert {type(p['optim.g_lr']) for p in points} == {float}
  assert {type(p['train.d_steps']) for p in points} == {int}
  names = [sweep_points.point_name(p) for p in points]
  assert names[:3] == ['loss.name-vanilla_optim.g_lr-0.001_train.d_steps-1',
                       'loss.name-vanilla_optim.g_lr-0.001_train.d_steps-5',
                       'loss.name-vanilla_optim.g_lr-0.0002_train.d_steps-1']
  assert names[5] == 'loss.name-vanilla_optim.g_lr-1.0_train.d_steps-5'
  assert len(set(names)) == 12
  # Stable: the same values, however written, name the same sub-workdir.
  again = sweep_points.sweep_points(RING8, config, TINY, [
      'loss.name=vanilla,wgan_gp', 'optim.g_lr=0.001,2e-4,1.0', 'train.d_steps=1,5'])
  assert [sweep_points.point_name(p) for p in again] == names

  assert sweep_points.parse_sweep(r'eval.evaluators=,modes\,x', config) == (
      'eval.evaluators', ['', 'modes,x'])
  assert sweep_points.point_name({'eval.evaluators': 'modes,x', 'data.path': '/a b'}) == (
      'eval.evaluators-modes%2Cx_data.path-%2Fa%20b')
  assert sweep_points.point_name({}) == 'base'
  long = sweep_points.point_name({'data.path': 'x' * 300})
  assert len(long) == sweep_points.MAX_NAME and long[-13] == '~'
  assert long != sweep_points.point_name({'data.path': 'x' * 301})
  flagged = ml_collections.ConfigDict({'a': {'flag': False}})
  assert sweep_points.parse_sweep('a.flag=true,0', flagged) == ('a.flag', [True, False])


@pytest.mark.parametrize('dataset', ['ring8', 'grid25'])
def test_the_stabilisers_sweep_turns_on_one_stabiliser_per_point(tmp_path, dataset):
  """experiments/stabilisers.py (docs/results/stabilisers.md): every loss
  times every stabiliser on the dataset's own experiment file, the default
  loss first, each point a valid run."""
  path = os.path.join(REPO, 'experiments', 'stabilisers.py')
  module = configs.load_config_module(path)
  config = module.get_config(dataset)
  base = {'ring8': 'ring8.py', 'grid25': 'grid25.py:baseline'}[dataset]
  assert config.to_dict() == analysis.experiment_config(
      os.path.join(REPO, 'experiments', base)).to_dict()
  config.lock()
  points = sweep_points.sweep_points(f'{path}:{dataset}', config, TINY, [])
  assert len(points) == len(losses.LOSSES) * len(module.STABILISERS)
  per_loss = len(module.STABILISERS)
  assert [p['loss.name'] for p in points[::per_loss]][:2] == ['vanilla', 'non_saturating']
  assert points[-1]['loss.name'] == 'wgan_gp'
  planned = sweep_points.plan(sweep_points.point_config(config, TINY), points, str(tmp_path), 1)
  assert len({p.workdir for p in planned}) == len(points)
  with pytest.raises(UserError, match='stabilisers.py:mnist is not a mixture'):
    module.get_config('mnist')


def test_config_get_sweep_is_the_base_of_the_product(tmp_path):
  config = ring8_config()
  names = list(losses.LOSSES)  # ring8's get_sweep(): every registered loss
  assert sweep_points.sweep_points(RING8, config, TINY, []) == [
      {'loss.name': loss} for loss in names]
  assert sweep_points.sweep_points(RING8, config, TINY, ['optim.g_lr=1e-3,1e-4']) == [
      {'loss.name': loss, 'optim.g_lr': lr} for loss in names for lr in (1e-3, 1e-4)]
  # The command line wins: a --sweep or --config of a get_sweep() key replaces it.
  assert sweep_points.sweep_points(RING8, config, TINY, ['loss.name=wgan_gp']) == [
      {'loss.name': 'wgan_gp'}]
  with pytest.raises(UserError, match='nothing to sweep'):
    sweep_points.sweep_points(RING8, config, {**TINY, 'loss.name': 'vanilla'}, [])

  path = tmp_path / 'exp.py'
  path.write_text(
      'from gan_jax import configs\n'
      'def get_config():\n  return configs.toy_config("ring8")\n'
      'def get_sweep():\n'
      '  return [{}, {"optim.g_lr": "1e-3", "train.d_steps": 2}]\n')
  assert sweep_points.sweep_points(str(path), config, {}, []) == [
      {}, {'optim.g_lr': 0.001, 'train.d_steps': 2}]
  path.write_text(path.read_text().replace(': 2}', ': 2.5}'))
  with pytest.raises(UserError, match=r'train.d_steps=2.5 \(from get_sweep\(\) of'):
    sweep_points.sweep_points(str(path), config, {}, [])
  path.write_text(path.read_text().replace('return [{}', 'return {}, [{}'))
  with pytest.raises(UserError, match='must return a non-empty list of dicts'):
    sweep_points.sweep_points(str(path), config, {}, [])


BAD_SWEEPS = [
    (['loss.nme=a'], {},
     "unknown config key 'loss.nme'.*valid keys in loss: gp_weight, name, r1_weight,"
     " r2_weight, reg_every"),
    (['loss=vanilla'], {}, "'loss' .* is a section"),
    (['train.num_steps=10,abc'], {}, "train.num_steps='abc' .* is not a valid int"),
    (['optim.g_lr=fast'], {}, "optim.g_lr='fast' .* is not a valid float"),
    (['loss.name'], {}, 'malformed --sweep=loss.name; expected --sweep=KEY=v1,v2'),
    (['=vanilla'], {}, 'malformed --sweep==vanilla'),
    (['loss.name='], {}, 'lists no values'),
    (['loss.name=vanilla,vanilla'], {}, "lists 'vanilla' twice"),
    (['loss.name=vanilla', 'loss.name=wgan_gp'], {}, 'sweep the same key'),
    (['train.num_steps=8'], {'train.num_steps': 4}, 'both set train.num_steps'),
    (['loss.name=vanilla,no_such_loss'], {},
     "sweep point loss.name-no_such_loss: unknown loss.name='no_such_loss'; valid: vanilla,"),
    (['optim.b1=0.5,1.5'], {},  # get_sweep()'s losses times the b1 values
     'sweep point loss.name-vanilla_optim.b1-1.5: optim.b1=1.5 is invalid'),
]


@pytest.mark.parametrize('flags,overrides,message', BAD_SWEEPS)
def test_bad_input_is_a_user_error_before_anything_runs(flags, overrides, message,
                                                        tmp_path):
  with pytest.raises(UserError, match=message):
    sweep.sweep(RING8, ring8_config({**TINY, **overrides}), {**TINY, **overrides},
                flags, str(tmp_path / 'w'), train_fn=must_not_train)
  assert not (tmp_path / 'w').exists()


def test_sweep_runs_each_point_then_skips_finished_and_resumes_interrupted(tmp_path):
  workdir = str(tmp_path / 'sweep')
  trained = []

  def train_fn(config, point_workdir):
    trained.append(os.path.basename(point_workdir))
    return train.train_and_evaluate(config, point_workdir)

  # --config.loss.name pins the loss that ring8's get_sweep() would sweep.
  pinned = {**TINY, 'loss.name': 'vanilla'}

  def run_sweep(overrides=pinned):
    trained.clear()
    return sweep.sweep(RING8, ring8_config(overrides), overrides,
                       ['seed=0,1'], workdir, train_fn=train_fn)

  # Two seeds: the same programs, so the second run finds them compiled.
  names = ['seed-0', 'seed-1']
  run_sweep()
  assert trained == names
  results = []
  for name in names:
    with open(os.path.join(workdir, name, 'results.json')) as f:
      results.append(json.load(f))
    assert results[-1]['status'] == 'finished' and results[-1]['final_step'] == 4
    assert set(results[-1]['metrics']) == {'modes', 'high_quality', 'reverse_kl'}
    with open(os.path.join(workdir, name, 'config.json')) as f:
      assert json.load(f)['seed'] == int(name[-1])
  rows = read_csv(os.path.join(workdir, 'summary.csv'))
  assert [row['seed'] for row in rows] == ['0', '1']
  assert [row['point'] for row in rows] == names
  for row, result in zip(rows, results, strict=True):
    assert row['status'] == 'finished' and row['final_step'] == '4'
    for metric, value in result['metrics'].items():  # NaN is null in results.json
      assert row[f'{metric}_mean'] == ('' if value is None else repr(float(value)))
      assert row[f'{metric}_std'] == row[f'{metric}_ci95_lo'] == ''
    assert row['steps_per_s'] == repr(result['steps_per_s'])
    assert row['wall_time_s'] == repr(result['wall_time_s'])
  with open(os.path.join(workdir, 'summary.md')) as f:
    markdown = f.read()
  assert ('| seed | status | final_step | high_quality | modes | reverse_kl |'
          in markdown)
  metrics = results[1]['metrics']
  assert (f'| 1 | finished | 4 | {metrics["high_quality"]:.4g} |'
          f' {metrics["modes"]:.4g} |') in markdown

  def mtimes():
    return {n: os.stat(os.path.join(workdir, n, 'results.json')).st_mtime_ns
            for n in names}

  before = mtimes()
  run_sweep()  # everything finished: nothing trains, nothing changes
  assert trained == [] and mtimes() == before

  # Interrupt the second point after its step-2 checkpoint: only it runs again.
  second = os.path.join(workdir, names[1])
  os.remove(os.path.join(second, 'results.json'))
  shutil.rmtree(os.path.join(second, 'checkpoints', '4'))
  run_sweep()
  assert trained == [names[1]]
  with open(os.path.join(second, 'results.json')) as f:
    resumed = json.load(f)
  assert resumed['resumed_from'] == 2 and resumed['final_step'] == 4
  assert mtimes()[names[0]] == before[names[0]]

  # Another config in the same sweep directory is refused before anything runs.
  with pytest.raises(UserError,
                     match=r'holds a run with another config \(optim.b1=0.5'):
    run_sweep({**pinned, 'optim.b1': 0.0})
  assert trained == []


def test_a_diverged_point_is_a_result_and_a_user_error_stops_the_sweep(tmp_path):
  workdir = str(tmp_path / 'sweep')
  trained = []

  def fake_train(config, point_workdir):
    trained.append(config.loss.name)
    os.makedirs(point_workdir)
    if config.loss.name == 'vanilla':
      files.write_json(os.path.join(point_workdir, 'results.json'), {
          'status': 'diverged', 'nonfinite_step': 3, 'final_step': 4,
          'last_checkpoint': 2})
      raise TrainingDiverged('a loss became NaN or infinite at step 3')
    files.write_json(os.path.join(point_workdir, 'results.json'), {
        'status': 'finished', 'final_step': 4, 'metrics': {'modes': 8.0},
        'steps_per_s': 10.0, 'wall_time_s': 2.0})

  flags = ['loss.name=vanilla,wgan_gp']
  sweep.sweep(RING8, ring8_config(), TINY, flags, workdir, train_fn=fake_train)
  assert trained == ['vanilla', 'wgan_gp']
  rows = read_csv(os.path.join(workdir, 'summary.csv'))
  assert [(r['status'], r['final_step'], r['modes_mean']) for r in rows] == [
      ('diverged', '4', ''), ('finished', '4', '8.0')]
  trained.clear()
  sweep.sweep(RING8, ring8_config(), TINY, flags, workdir, train_fn=fake_train)
  assert trained == []  # a diverged point would diverge again: not retried

  def failing_train(config, point_workdir):
    trained.append(config.loss.name)
    raise UserError('data.path does not exist')

  with pytest.raises(UserError, match='data.path does not exist'):
    sweep.sweep(RING8, ring8_config(), TINY, ['loss.name=non_saturating,wgan_gp'],
                str(tmp_path / 'other'), train_fn=failing_train)
  assert trained == ['non_saturating']


def test_a_busy_sweep_directory_is_refused_and_a_signal_stops_the_sweep(tmp_path):
  workdir = str(tmp_path / 'sweep')
  os.makedirs(workdir)
  flags = ['loss.name=vanilla,wgan_gp']
  with workdir_lib.lock(workdir):  # another sweep runs in this directory
    with pytest.raises(UserError, match=f'--workdir={workdir} is in use by pid'):
      sweep.sweep(RING8, ring8_config(), TINY, flags, workdir,
                  train_fn=must_not_train)
  trained = []

  def interrupted_train(config, point_workdir):
    trained.append(config.loss.name)
    os.makedirs(point_workdir)
    files.write_json(os.path.join(point_workdir, 'results.json'), {
        'status': 'interrupted', 'signal': 'SIGTERM', 'final_step': 2})
    raise preemption.Interrupted('SIGTERM at step 2/4', 143)

  with pytest.raises(preemption.Interrupted):
    sweep.sweep(RING8, ring8_config(), TINY, flags, workdir,
                train_fn=interrupted_train)
  assert trained == ['vanilla']  # the sweep stops; the summary says where
  rows = read_csv(os.path.join(workdir, 'summary.csv'))
  assert [r['status'] for r in rows] == ['incomplete', 'pending']


def test_summary_uses_the_spread_over_seeds_when_results_have_it(tmp_path):
  workdir = tmp_path / 'sweep'
  seeds = workdir / 'loss.name-vanilla'
  seeds.mkdir(parents=True)
  (seeds / 'results.json').write_text(json.dumps({
      'status': 'finished', 'final_step': 4, 'num_seeds': 3,
      'metrics': {'modes': 7.0, 'reverse_kl': 0.25},
      'metrics_per_seed': [{'modes': 6.5, 'reverse_kl': 0.2},
                           {'modes': 7.0, 'reverse_kl': 0.25},
                           {'modes': 7.5, 'reverse_kl': 0.3}],
      'metrics_summary': {
          'modes': {'mean': 7.0, 'std': 0.5, 'ci95': [5.7579, 8.2421]},
          'reverse_kl': {'mean': 0.25, 'std': 0.05, 'ci95': [0.1258, 0.3742]}},
      'steps_per_s': 12.5, 'wall_time_s': 30.0}))
  single = workdir / 'loss.name-non_saturating'
  single.mkdir()
  (single / 'results.json').write_text(json.dumps({
      'status': 'finished', 'final_step': 4, 'steps_per_s': 20.0,
      'metrics': {'modes': 8.0, 'reverse_kl': float('nan')}, 'wall_time_s': 9.5}))

  sweep.sweep(RING8, ring8_config(), TINY,
              ['loss.name=vanilla,non_saturating,wgan_gp'], str(workdir),
              summarize_only=True, train_fn=must_not_train)
  rows = read_csv(workdir / 'summary.csv')
  assert list(rows[0]) == [
      'loss.name', 'status', 'final_step', 'num_seeds',
      'modes_mean', 'modes_std', 'modes_ci95_lo', 'modes_ci95_hi',
      'reverse_kl_mean', 'reverse_kl_std', 'reverse_kl_ci95_lo', 'reverse_kl_ci95_hi',
      'steps_per_s', 'wall_time_s', 'point']
  assert list(rows[0].values()) == [
      'vanilla', 'finished', '4', '3', '7.0', '0.5', '5.7579', '8.2421',
      '0.25', '0.05', '0.1258', '0.3742', '12.5', '30.0', 'loss.name-vanilla']
  assert list(rows[1].values()) == [
      'non_saturating', 'finished', '4', '1', '8.0', '', '', '', 'nan', '', '', '',
      '20.0', '9.5', 'loss.name-non_saturating']
  assert list(rows[2].values()) == ['wgan_gp', 'pending'] + [''] * 12 + [
      'loss.name-wgan_gp']
  markdown = (workdir / 'summary.md').read_text().splitlines()
  assert 'mean ± std (ddof=1) over 1/3 seeds' in markdown[2]
  assert markdown[4:] == [
      '| loss.name | status | final_step | modes | reverse_kl | steps_per_s |'
      ' wall_time_s |',
      '| --- | --- | --- | --- | --- | --- | --- |',
      '| vanilla | finished | 4 | 7 ± 0.5 | 0.25 ± 0.05 | 12.5 | 30 |',
      '| non_saturating | finished | 4 | 8 | nan | 20 | 9.5 |',
      '| wgan_gp | pending |  |  |  |  |  |']


def test_print_commands_prints_one_exact_command_per_point(tmp_path, capsys):
  overrides = {**TINY, 'data.path': '/my data/x'}
  workdir = str(tmp_path / 'shared sweep')
  extra = ['--coordinator_address=host0:1234', '--num_processes=2', '--process_id=1']
  sweep.sweep(RING8, ring8_config(overrides), overrides,
              ['loss.name=vanilla,wgan_gp', 'optim.g_lr=1e-3'], workdir,
              print_commands=True, extra_flags=extra, train_fn=must_not_train)
  lines = capsys.readouterr().out.splitlines()
  tiny_flags = [f'--config.{k}={sweep_points.format_value(v)}' for k, v in TINY.items()]
  assert [shlex.split(line) for line in lines] == [
      ['python', '-m', 'gan_jax.main', f'--config={RING8}',
       f'--workdir={workdir}/loss.name-{loss}_optim.g_lr-0.001', *tiny_flags,
       '--config.data.path=/my data/x', f'--config.loss.name={loss}',
       '--config.optim.g_lr=0.001', *extra]
      for loss in ('vanilla', 'wgan_gp')]
  assert not os.path.exists(workdir)


def run_command(*args: str):
  env = dict(os.environ, PYTHONPATH=REPO, JAX_PLATFORMS='cpu')
  return subprocess.run([sys.executable, '-m', 'gan_jax.sweep', *args], cwd=REPO,
                        env=env, capture_output=True, text=True, timeout=300)


def test_the_command_prints_commands_with_the_multi_host_flags():
  proc = run_command('--config=experiments/ring8.py', '--print_commands',
                     '--sweep=optim.g_lr=1e-3', '--config.train.num_steps=4',
                     '--coordinator_address=host0:1234', '--num_processes=2',
                     '--process_id=1')
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert [shlex.split(line) for line in proc.stdout.splitlines()] == [
      ['python', '-m', 'gan_jax.main', '--config=experiments/ring8.py',
       f'--workdir=runs/sweep_ring8/loss.name-{loss}_optim.g_lr-0.001',
       '--config.train.num_steps=4', f'--config.loss.name={loss}',
       '--config.optim.g_lr=0.001', '--coordinator_address=host0:1234',
       '--num_processes=2', '--process_id=1']
      for loss in losses.LOSSES]


def test_bad_input_on_the_command_line_is_a_one_line_error(tmp_path):
  # Bad values and malformed flags take the same path (UserError in main ->
  # cli.run), tested in-process above; one process shows the command's end.
  proc = run_command('--config=experiments/ring8.py', f'--workdir={tmp_path / "w"}',
                     '--sweep=loss.nme=vanilla')
  assert proc.returncode == 1, proc.stderr[-3000:]
  assert 'Traceback' not in proc.stderr, proc.stderr[-3000:]
  errors = [line for line in proc.stderr.splitlines() if line.startswith('error:')]
  assert errors == ["error: unknown config key 'loss.nme' (from"
                    " --sweep=loss.nme=vanilla); valid keys in loss: gp_weight,"
                    " name, r1_weight, r2_weight, reg_every"], proc.stderr[-3000:]
  assert not (tmp_path / 'w').exists()


def test_grid25_defaults_to_its_goal_recipe_and_keeps_the_compared_baseline():
  """experiments/grid25.py: the goal recipe by default
  (docs/results/stabilisers.md), `:baseline` the setup the losses are
  compared in (docs/results/toy_losses.md)."""
  path = os.path.join(REPO, 'experiments', 'grid25.py')
  goal, baseline = (analysis.experiment_config(path + arg) for arg in ('', ':baseline'))
  assert (goal.loss.name, goal.loss.r1_weight, goal.train.num_steps) == (
      'non_saturating', 1.0, 30_000)
  assert (baseline.loss.name, baseline.loss.r1_weight, baseline.train.num_steps) == (
      'vanilla', 0.0, 10_000)
  assert goal.train.batch_size == baseline.train.batch_size == 1024
  with pytest.raises(UserError, match='grid25.py:best is not a variant; valid: goal, baseline'):
    analysis.experiment_config(path + ':best')


def test_mnist_defaults_to_its_goal_recipe_and_keeps_the_peers_tutorial_recipe():
  """experiments/mnist.py: the tuned recipe of docs/results/mnist.md by
  default, `:tutorial` the PyTorch peer's (benchmarks/torch_peer.py), which
  the speed benchmarks compare against."""
  path = os.path.join(REPO, 'experiments', 'mnist.py')
  goal, tutorial = (analysis.experiment_config(path + arg) for arg in ('', ':tutorial'))
  recipe = lambda c: (c.loss.name, c.optim.g_lr, c.optim.d_lr, c.optim.b1,  # noqa: E731
                      c.optim.b2, c.model.dropout, c.optim.g_ema_decay,
                      c.loss.r1_weight, c.loss.reg_every)
  assert recipe(goal) == ('hinge', 1e-3, 1e-3, 0.0, 0.9, 0.0, 0.97, 1.0, 4)
  # Radford et al.'s Adam, as the peer trains.
  assert recipe(tutorial) == ('non_saturating', 2e-4, 2e-4, 0.5, 0.999, 0.3, 0.0,
                              0.0, 1)
  for c in (goal, tutorial):  # the tutorial's networks and batch
    assert (c.model.name, c.train.batch_size) == ('dcgan', 64)
  # The peer's step: one forward of G, its batch shared by both updates.
  assert tutorial.train.reuse_fake and not goal.train.reuse_fake
  with pytest.raises(UserError, match='mnist.py:best is not a variant; valid: goal, tutorial'):
    analysis.experiment_config(path + ':best')


def test_the_r3gan_variants_are_rpgan_with_r1_and_r2_on_every_step():
  """R3GAN's objective (Huang et al. 2024) as a variant of the experiments
  that compare it (issue 30): nothing else changed from their default."""
  for name in ('mnist.py', 'stacked_mnist.py'):
    path = os.path.join(REPO, 'experiments', name)
    default, r3gan = (analysis.experiment_config(path + arg)
                      for arg in ('', ':r3gan'))
    assert (r3gan.loss.name, r3gan.loss.r1_weight, r3gan.loss.r2_weight,
            r3gan.loss.reg_every) == ('rpgan', 1.0, 1.0, 1)
    for key in ('loss.name', 'loss.r1_weight', 'loss.r2_weight',
                'loss.reg_every'):
      section, field = key.split('.')
      default[section][field] = r3gan[section][field]
    assert default.to_dict() == r3gan.to_dict()


def test_stacked_mnist_trains_the_mnist_recipes_on_three_channels():
  """Stacked MNIST's default is MNIST's (`goal`) and `tutorial` the
  project's base recipe; only the data and the mode metric's 26,000
  samples (PacGAN's count) differ."""
  directory = os.path.join(REPO, 'experiments')
  stacked = {arg: analysis.experiment_config(
      os.path.join(directory, 'stacked_mnist.py') + arg) for arg in ('', ':tutorial')}
  mnist = analysis.experiment_config(os.path.join(directory, 'mnist.py'))
  base = configs.default_config()
  for recipe, config in ((mnist, stacked['']), (base, stacked[':tutorial'])):
    assert (config.data.name, config.eval.num_samples) == ('stacked_mnist', 26_000)
    for section, field in (('data', 'name'), ('data', 'source'),
                           ('eval', 'num_samples'), ('train', 'sample_every')):
      recipe[section][field] = config[section][field]
    assert config.to_dict() == recipe.to_dict()


def test_the_stacked_mnist_table_is_a_sweep_of_its_rows_read_back_by_row(tmp_path):
  """`:table` sweeps the default and every ROWS entry; results_table names a
  point by the first row whose values it has (R3GAN is not `loss=rpgan`, the
  tutorial not `no_r1`) and pools each row's seeds."""
  path = os.path.join(REPO, 'experiments', 'stacked_mnist.py')
  experiment = configs.load_config_module(path)
  points = configs.call_config_file(path + ':table', 'get_sweep')
  assert points[0] == {} and len(points) == 1 + len(experiment.ROWS)
  assert points[-1] == {'loss.name': 'wgan_gp'}  # the dearest last
  assert configs.call_config_file(path, 'get_sweep') is None
  figures = {('default', 0): (1000, 0.05), ('default', 1): (1000, 0.07),
             ('r3gan', 0): (999, 0.10), ('tutorial', 0): (815, 1.3),
             ('loss=rpgan', 0): (990, 0.2)}
  for (row, seed), (modes, kl) in figures.items():
    changes = {**experiment.ROWS.get(row, {}), 'seed': seed}
    config = analysis.experiment_config(path + ':table', changes)
    workdir = tmp_path / sweep_points.point_name(changes)
    write_json(str(workdir / 'config.json'), config.to_dict())
    write_json(str(workdir / 'results.json'), {
        'status': 'finished', 'final_step': 10_000, 'seeds': [seed],
        'metrics': {'modes': modes, 'reverse_kl': kl, 'real_modes': 1000}})
  table = experiment.results_table(str(tmp_path)).splitlines()
  assert table[0] == '| row | seeds | modes | KL | modes per seed | KL per seed |'
  assert table[2:] == [  # the KL interval clipped at 0 (t: -0.067)
      '| default | 2 | 1000.0 [1000.0, 1000.0] | 0.060 [0.000, 0.187] | 1000, 1000'
      ' | 0.050, 0.070 |',
      '| tutorial | 1 | 815.0 | 1.300 | 815 | 1.300 |',
      '| r3gan | 1 | 999.0 | 0.100 | 999 | 0.100 |',
      '| loss=rpgan | 1 | 990.0 | 0.200 | 990 | 0.200 |']
  assert experiment.results_table(str(tmp_path / 'missing')) is None
  assert list(experiment.row_workdirs(str(tmp_path))) == [
      'default', 'tutorial', 'r3gan', 'loss=rpgan']
  # Every row's point is its own row; a point of none (another key swept) is 'other'.
  rows = experiment.table_rows()
  for row, changes in {'default': {}, **experiment.ROWS}.items():
    config = analysis.experiment_config(path + ':table', changes).to_dict()
    assert analysis.variant_of({'values': {}, 'config': config}, rows, 'other') == row
  stray = analysis.experiment_config(path + ':table', {'optim.g_lr': 5e-4}).to_dict()
  assert analysis.variant_of({'values': {}, 'config': stray}, rows, 'other') == 'other'
  # The report keeps the runs' records and computes the table from them; a
  # row it has no record of (measured before records) stays as it stood.
  quarter_d = '| quarter_d | 3 | 1000.0 [1000.0, 1000.0] | 0.131 | 1000 | 0.131 |'
  marked = (f'<!-- table: stacked {tmp_path.name} -->\n{table[0]}\n{table[1]}\n'
            f'| default | 1 | 1.0 | 9.000 | 1 | 9.000 |\n{quarter_d}\n<!-- /table -->\n')
  records = str(tmp_path.parent / 'records')
  text, notes = report.rewrite(marked, str(tmp_path.parent), records)
  assert notes == [f'kept in stacked {tmp_path.name}: row quarter_d (no records)']
  assert text.splitlines()[1:-1] == [*table, quarter_d]
  assert sorted(os.listdir(os.path.join(records, tmp_path.name))) == sorted(
      os.listdir(tmp_path))
  empty = str(tmp_path.parent / 'no_runs')  # the runs gone: the records alone
  assert report.rewrite(marked, empty, records)[0] == text
