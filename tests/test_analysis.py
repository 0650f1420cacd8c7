"""gan_jax.analysis: runs read back (results, curves, samples), sweeps grouped,
tables of mean ± std over seeds."""

import json
import math
import os
import shutil

import numpy as np
import pytest

from gan_jax import analysis
from gan_jax import data
from gan_jax import evaluators
from gan_jax import report
from gan_jax import summary_writer
from gan_jax import train
from gan_jax.errors import UserError
from tests.helpers import REPO
from tests.helpers import read_events
from tests.helpers import toy_results
from tests.helpers import write_fid_run
from tests.helpers import write_image_run
from tests.helpers import write_sweep

RING8 = os.path.join(REPO, 'experiments', 'ring8.py')
TINY = {'num_seeds': 2, 'model.width': 16, 'model.depth': 2,
        'train.batch_size': 32, 'train.num_steps': 20, 'train.log_every': 5,
        'train.eval_every': 10, 'train.sample_every': 20,
        'train.checkpoint_every': 20, 'eval.num_samples': 300}


@pytest.fixture(scope='module')
def two_seeds(tmp_path_factory):
  """A tiny ring8 run of 2 seeds, trained through train.train_once."""
  workdir = str(tmp_path_factory.mktemp('analysis') / 'ring8')
  config = analysis.experiment_config(RING8, {**TINY, 'loss.name': 'non_saturating'})
  return config, workdir, train.train_once(config, workdir)


def test_experiment_config_is_the_file_with_overrides():
  config = analysis.experiment_config(RING8, {'loss.name': 'wgan_gp',
                                              'train.num_steps': 7})
  assert (config.loss.name, config.train.num_steps) == ('wgan_gp', 7)
  assert config.data.name == 'ring8' and config.model.width == 128
  assert analysis.experiment_config(RING8).loss.name == 'vanilla'


def test_repo_root_from_inside_the_checkout_and_from_elsewhere(tmp_path):
  assert analysis.repo_root(os.path.join(REPO, 'notebooks')) == REPO
  assert analysis.repo_root(REPO) == REPO
  assert analysis.repo_root(str(tmp_path)) == REPO  # the package's checkout


def test_train_once_trains_then_loads_and_refuses_another_config(
    two_seeds, monkeypatch):
  config, workdir, results = two_seeds
  assert results['status'] == 'finished' and results['num_seeds'] == 2
  assert analysis.load_results(workdir) == json.loads(json.dumps(results))

  def must_not_train(*args):
    raise AssertionError('trained again')

  monkeypatch.setattr(train, 'train_and_evaluate', must_not_train)
  assert train.train_once(config, workdir) == analysis.load_results(workdir)
  other = analysis.experiment_config(RING8, {**TINY, 'loss.name': 'vanilla'})
  with pytest.raises(UserError, match="loss.name='non_saturating' there"):
    train.train_once(other, workdir)


def test_scalars_are_what_tensorboard_reads_and_curves_split_the_seeds(two_seeds):
  _, workdir, results = two_seeds
  scalars = analysis.read_scalars(workdir)
  (events,) = [os.path.join(workdir, f) for f in os.listdir(workdir)
               if f.startswith('events.out.tfevents.')]
  expected, _ = read_events(events)  # TensorBoard's own loader
  assert set(scalars) == set(expected)
  for tag, pairs in expected.items():
    np.testing.assert_array_equal(scalars[tag][0], [s for s, _ in pairs])
    np.testing.assert_allclose(scalars[tag][1], [v for _, v in pairs],
                               rtol=1e-6, equal_nan=True)

  g_loss = analysis.curve(scalars, 'g_loss')
  np.testing.assert_array_equal(g_loss.steps, [5, 10, 15, 20])
  assert len(g_loss.per_seed) == 2
  np.testing.assert_allclose(g_loss.mean, np.mean(g_loss.per_seed, axis=0),
                             rtol=1e-5)
  modes = analysis.curve(scalars, 'eval/modes')
  np.testing.assert_array_equal(modes.steps, [10, 20])
  assert [m[-1] for m in modes.per_seed] == [
      f['modes'] for f in results['metrics_per_seed']]
  assert analysis.curve({'x': scalars['g_loss']}, 'x').per_seed == []
  with pytest.raises(KeyError):
    analysis.curve(scalars, 'nope')


def test_a_later_event_file_wins(tmp_path):
  def write(name, pairs):
    writer = summary_writer.SummaryWriter(str(tmp_path))
    for step, value in pairs:
      writer.scalars(step, {'loss': value})
    writer.close()
    os.rename(writer.path, str(tmp_path / name))

  write('events.out.tfevents.1.host', [(1, 1.0), (2, 2.0), (3, 3.0)])
  write('events.out.tfevents.2.host', [(3, 30.0), (4, 40.0)])  # resumed at 2
  steps, values = analysis.read_scalars(str(tmp_path))['loss']
  np.testing.assert_array_equal(steps, [1, 2, 3, 4])
  np.testing.assert_array_equal(values, [1.0, 2.0, 30.0, 40.0])


def test_member_samples_are_the_samples_the_final_evaluation_scored(two_seeds):
  config, workdir, results = two_seeds
  samples = analysis.member_samples(workdir)
  assert [seed for seed, _ in samples] == [0, 1]
  score = evaluators.build(('modes',), config, data.load(config.data))
  for (_, points), figures in zip(samples, results['metrics_per_seed'], strict=True):
    assert points.shape == (300, 2) and points.dtype == np.float32
    assert {'seed': figures['seed'], **score(points)} == pytest.approx(
        figures, nan_ok=True)
  assert analysis.member_samples(workdir, num=10)[1][1].shape == (10, 2)


def test_a_sweep_grouped_by_loss_pools_its_seeds_and_counts_the_rest(tmp_path):
  write_sweep(str(tmp_path))
  points = analysis.read_sweep(str(tmp_path))
  assert [p['name'] for p in points] == [
      f'loss.name-{loss}_seed-{seed}'
      for loss in ('vanilla', 'non_saturating', 'wgan_gp') for seed in (0, 1)]
  assert [p['status'] for p in points] == [
      'finished', 'finished', 'incomplete', 'pending', 'finished', 'pending']
  assert points[3]['config'] is None and points[2]['results'] is None

  groups = analysis.group_runs(points, ('loss.name',))
  assert list(groups) == [('vanilla',), ('non_saturating',), ('wgan_gp',)]
  rows = analysis.comparison_rows(groups)
  vanilla = rows[0]
  modes = vanilla['summary']['modes']
  assert (modes['mean'], modes['std'], modes['n']) == pytest.approx((7, math.sqrt(2), 2))
  assert modes['ci95'] == pytest.approx([7 - 12.7062, 7 + 12.7062])  # t(0.975, 1)
  assert vanilla['summary']['reverse_kl']['n'] == 1
  assert (rows[1]['per_seed'], rows[1]['expected'], rows[1]['other']) == (
      [], 2, {'incomplete': 1, 'pending': 1})

  table = analysis.markdown_table(rows, ('loss',)).splitlines()
  assert table[0] == ('| loss | seeds | modes | HQ % | reverse KL | modes per seed'
                      ' | HQ % per seed |')
  assert table[2] == ('| vanilla | 2 | 7.0 ± 1.4 | 45.0 ± 63.6 | 0.01 (1 of 2)'
                      ' | 8, 6 | 90.0, 0.0 |')
  assert table[3] == ('| non_saturating | 0 of 2, 1 incomplete, 1 pending | n/a'
                      ' | n/a | n/a |  |  |')
  assert table[4] == ('| wgan_gp | 1 of 2, 1 pending | 3.0 | 50.0 | 1.00 | 3 | 50.0 |')


def test_a_sweep_without_its_summary_yet_is_read_from_its_configs(tmp_path):
  write_sweep(str(tmp_path))
  os.remove(tmp_path / 'summary.csv')
  points = analysis.read_sweep(str(tmp_path))
  assert [(p['name'], p['status']) for p in points] == [
      ('loss.name-non_saturating_seed-0', 'incomplete'),
      ('loss.name-vanilla_seed-0', 'finished'),
      ('loss.name-vanilla_seed-1', 'finished'),
      ('loss.name-wgan_gp_seed-0', 'finished')]
  groups = analysis.group_runs(points, ('loss.name', 'seed'))
  assert list(groups)[:2] == [('non_saturating', '0'), ('vanilla', '0')]


def test_runs_of_several_seeds_pool_with_single_seed_runs():
  rows = analysis.comparison_rows({
      ('ring8', 'vanilla'): [toy_results([8, 7], [0.9, 0.8], [0.1, 0.2], seeds=[0, 1]),
                             toy_results([6], [0.7], [0.3], seeds=[2])],
      ('ring8', 'wgan_gp'): [{'status': 'diverged', 'num_seeds': 3}]})
  assert [f['seed'] for f in rows[0]['per_seed']] == [0, 1, 2]
  assert rows[0]['summary']['modes']['mean'] == pytest.approx(7.0)
  table = analysis.markdown_table(rows, ('data', 'loss'), per_seed=()).splitlines()
  assert table[0] == '| data | loss | seeds | modes | HQ % | reverse KL |'
  assert table[2] == '| ring8 | vanilla | 3 | 7.0 ± 1.0 | 80.0 ± 10.0 | 0.20 ± 0.10 |'
  assert table[3] == '| ring8 | wgan_gp | 0 of 3, 1 diverged | n/a | n/a | n/a |'


def test_image_runs_their_last_pictures_and_their_metrics_table(tmp_path):
  write_image_run(str(tmp_path / 'mnist_a'), ['step_100.png', 'step_300.png'],
                  {'fid_lenet': 412.345, 'precision': 0.78})
  write_image_run(str(tmp_path / 'mnist_b'),
                  ['step_20_seed0.png', 'step_20_seed1.png', 'step_100_seed0.png'])
  os.makedirs(tmp_path / 'mnist_c' / 'samples')  # no results.json: not a run
  runs = analysis.find_runs(str(tmp_path / 'mnist*'))
  assert runs == [str(tmp_path / 'mnist_a'), str(tmp_path / 'mnist_b')]

  def picture(workdir, member=0):
    path = analysis.latest_picture(str(tmp_path / workdir), member)
    return path and os.path.basename(path)

  assert picture('mnist_a') == 'step_300.png'
  assert picture('mnist_a', 1) is None
  assert picture('mnist_b') == 'step_100_seed0.png'
  assert picture('mnist_b', 1) == 'step_20_seed1.png'
  assert picture('mnist_c') is None

  table = analysis.metrics_table(
      {os.path.basename(w): analysis.load_results(w) for w in runs}).splitlines()
  assert table == ['| run | mnist_a | mnist_b |', '| --- | --- | --- |',
                   '| status | finished | finished |',
                   '| final step | 300 | 300 |',
                   '| fid_lenet | 412.3 |  |', '| precision | 0.78 |  |']


def test_fid_results_pool_the_scored_members_into_a_table(tmp_path):
  write_fid_run(str(tmp_path / 'fid_a'), 'vanilla', 1500, [99.1, 123.1])
  write_fid_run(str(tmp_path / 'fid_b'), 'wgan_gp', 1500, [51.8, None])
  write_fid_run(str(tmp_path / 'fid_c'), 'non_saturating', 1500, [None, None])
  results = {w: analysis.fid_results(str(tmp_path / w)) for w in ('fid_a', 'fid_b', 'fid_c')}
  assert [f['seed'] for f in results['fid_a']['metrics_per_seed']] == [0, 1]
  assert [f['fid'] for f in results['fid_b']['metrics_per_seed']] == [51.8]
  assert results['fid_b']['weights_hash'] == ['1dd9ccc25932d506']
  assert 'samples_from' not in results['fid_b']  # neither results.json nor fid said
  assert results['fid_c'] is None  # nothing scored yet
  assert analysis.fid_results(str(tmp_path / 'missing')) is None

  rows = analysis.comparison_rows({('vanilla',): [results['fid_a']],
                                   ('wgan_gp',): [results['fid_b']]})
  table = analysis.markdown_table(rows, ('loss',), analysis.INCEPTION_COLUMNS,
                                  per_seed=('fid',)).splitlines()
  assert table[0] == ('| loss | seeds | FID | KID x 1000 | precision | recall |'
                      ' density | coverage | FID per seed |')
  # 111.1 ± 17.0: the mean and ddof-1 std of 99.1 and 123.1.
  assert table[2] == ('| vanilla | 2 | 111.1 ± 17.0 | 111.1 ± 17.0 | 0.25 ± 0.00 |'
                      ' 0.50 ± 0.00 | 0.20 ± 0.00 | 0.30 ± 0.00 | 99.1, 123.1 |')
  assert table[3].startswith('| wgan_gp | 1 of 2 | 51.8 | 51.8 |')

  # A run per seed pools into one row of the report's table.
  write_fid_run(str(tmp_path / 'fid_d'), 'vanilla', 1500, [105.1])
  table = analysis.fid_table(str(tmp_path / 'fid_*')).splitlines()
  assert [line.split(' | ')[:3] for line in table[2:]] == [  # fid_c: unscored
      ['| vanilla', '1,500', '3'], ['| wgan_gp', '1,500', '1 of 2']]
  assert table[2].endswith('| 99.1, 123.1, 105.1 |')


def test_report_rewrites_each_marked_table_from_its_runs(tmp_path, capsys):
  """python -m gan_jax.report: the sweep's table computed from the records it
  keeps of the runs (an MNIST run's with its seed 0's last sample grid, which
  a later mark of another kind over the same run keeps), a mark whose runs
  are absent kept as it stood, and marked_table."""
  write_sweep(str(tmp_path / 'runs' / 'compare_ring8'))
  path = tmp_path / 'runs' / 'compare_ring8' / 'loss.name-vanilla_seed-0' / 'config.json'
  path.write_text(json.dumps({**json.loads(path.read_text()),
                              'data': {'name': 'ring8'}}))
  (tmp_path / 'docs').mkdir()
  doc = tmp_path / 'docs' / 'results.md'
  write_fid_run(str(tmp_path / 'runs' / 'heldout_a'), 'hinge', 1500, [38.7, 38.2],
                ['step_500_seed0.png', 'step_1500_seed0.png', 'step_1500_seed1.png'])
  doc.write_text('# Results\n\n<!-- table: sweeps compare_ring8 -->\nold\n'
                 '<!-- /table -->\n\n<!-- table: fid fid_mnist_* -->\nkept\n'
                 '<!-- /table -->\n\n<!-- table: fid heldout_* -->\n<!-- /table -->\n'
                 '\n<!-- table: evals heldout_a fid -->\n<!-- /table -->\n')
  assert report.main([str(doc), f'--runs={tmp_path / "runs"}']) == 0
  text = doc.read_text()
  assert '| ring8 | vanilla | 2 | 7.0 ± 1.4 |' in text and '\nold\n' not in text
  # From the records of the runs that ended: wgan_gp's pending seed is not one.
  assert '| ring8 | wgan_gp | 1 | 3.0 |' in text
  assert '\nkept\n' in text
  assert '\n  kept (no records): fid fid_mnist_*' in capsys.readouterr().out
  records = tmp_path / 'docs' / 'runs' / 'compare_ring8'  # beside the file
  assert sorted(os.listdir(records)) == ['loss.name-vanilla_seed-0',
                                         'loss.name-vanilla_seed-1',
                                         'loss.name-wgan_gp_seed-0']
  assert sorted(os.listdir(records / 'loss.name-vanilla_seed-0')) == [
      'config.json', 'results.json']
  held_out_record = tmp_path / 'docs' / 'runs' / 'heldout_a'
  assert sorted(os.listdir(held_out_record)) == [
      'config.json', 'fid_member0.json', 'fid_member1.json', 'results.json', 'samples']
  assert os.listdir(held_out_record / 'samples') == ['step_1500_seed0.png']  # seed 0's last
  held_out = tmp_path / 'runs' / 'heldout_a'
  assert ((held_out_record / 'samples' / 'step_1500_seed0.png').read_bytes()
          == (held_out / 'samples' / 'step_1500_seed0.png').read_bytes())
  # A sweep's record keeps no picture (the notebook shows none of it).
  assert not (records / 'loss.name-vanilla_seed-0' / 'samples').exists()
  assert '| hinge | 1,500 | 2 | 38.5 ± 0.4 |' in text
  assert report.marked_table(str(doc), 'fid') == 'kept\n'  # the first fid mark's, as shown
  assert report.marked_table(str(doc), 'fid heldout_*').startswith('| loss | steps |')
  assert report.marked_table(str(doc), 'stacked') is None
  assert report.main([str(doc), '--runs=/nonexistent']) == 0
  assert doc.read_text() == text  # recomputed from the records alone
  # A member being scored again (its FID file empty) leaves the record as it was.
  (held_out / 'fid_member1.json').write_text('')
  capsys.readouterr()
  assert report.main([str(doc), f'--runs={tmp_path / "runs"}']) == 0
  assert ('not recorded (its fid_member1.json is empty: FID scoring is under way'
          ' or failed): heldout_a') in capsys.readouterr().out
  assert doc.read_text() == text
  # A run's new record replaces the old one whole: no score of before stays.
  (held_out / 'fid_member1.json').unlink()
  (held_out / 'samples' / 'step_1500_seed0.png').unlink()
  assert report.main([str(doc), f'--runs={tmp_path / "runs"}']) == 0
  assert not (held_out_record / 'fid_member1.json').exists()
  assert os.listdir(held_out_record / 'samples') == ['step_500_seed0.png']
  shutil.rmtree(held_out / 'samples')  # no picture left: none in the record either
  assert report.main([str(doc), f'--runs={tmp_path / "runs"}']) == 0
  assert not (held_out_record / 'samples').exists()
  assert doc.read_text() == text  # the file's row of 2 seeds, not the record's 1
  assert ('kept in fid heldout_*: row hinge / 1,500 (the file has 2 seeds, its'
          ' records 1)') in capsys.readouterr().out
  beside_runs = tmp_path / 'results.md'  # its records would be runs/ itself
  beside_runs.write_text(text)
  assert report.main([str(beside_runs), f'--runs={tmp_path / "runs"}']) == 1
  assert "records would be kept in --runs=" in capsys.readouterr().err
  for mark, said in (('pie chart', "unknown table mark 'pie chart'"),
                     (' ', 'an empty table mark')):
    doc.write_text(f'<!-- table: {mark} -->\n<!-- /table -->\n')
    capsys.readouterr()
    assert report.main([str(doc)]) == 1
    assert f'{said}; valid: sweeps DIR...' in capsys.readouterr().err


def test_merge_rows_keeps_the_rows_without_records_and_places_new_ones():
  head = '| loss | steps | seeds | FID |\n| --- | --- | --- | --- |\n'
  old = head + '| hinge | 1,500 | 3 | 38.5 |\n| vanilla | 1,500 | 1 | 41.8 |\n'
  new = head + '| hinge | 1,500 | 1 | 37.0 |\n| rpgan | 1,500 | 1 | 35.5 |\n'
  merged, notes = report.merge_rows(old, new)
  # hinge has 3 seeds in the file and 1 in the records: never fewer seeds.
  assert merged.splitlines()[2:] == ['| hinge | 1,500 | 3 | 38.5 |',
                                     '| rpgan | 1,500 | 1 | 35.5 |',
                                     '| vanilla | 1,500 | 1 | 41.8 |']
  assert notes == ['row hinge / 1,500 (the file has 3 seeds, its records 1)',
                   'row vanilla / 1,500 (no records)']  # named by the cells before 'seeds'
  more = new.replace('| hinge | 1,500 | 1 | 37.0 |', '| hinge | 1,500 | 4 of 5 | 37.0 |')
  assert report.merge_rows(old, more)[0].splitlines()[2] == '| hinge | 1,500 | 4 of 5 | 37.0 |'
  other_columns = '| loss | steps | seeds | KID |\n| --- | --- | --- | --- |\n| x | 1 | 1 | 2 |\n'
  assert report.merge_rows(other_columns, new) == (other_columns, [
      'the whole table (its columns differ from the computed ones: delete its'
      ' rows to replace it)'])
  assert report.merge_rows('old\n', new) == (new, [])
  assert report.merge_rows(old, old) == (old, [])
  evals = '| seed | 10 |\n| --- | --- |\n| 0 | 8 |\n'  # computed whole
  assert report.merge_rows('| seed | 5 |\n| --- | --- |\n| 1 | 2 |\n', evals) == (evals, [])


def test_evals_table_shows_each_members_evaluations_from_its_record(two_seeds, tmp_path):
  """`<!-- table: evals GLOB NAME... -->`: the evaluations over training, kept
  in the run's record (evals.json) and read back from it alone."""
  _, workdir, results = two_seeds
  history = analysis.eval_history(workdir)
  assert [step for step, _ in history['seed_1/eval/modes']] == [10, 20]
  (tmp_path / 'docs').mkdir()
  doc = tmp_path / 'docs' / 'results.md'
  doc.write_text('<!-- table: evals ring8 modes reverse_kl -->\n<!-- /table -->\n')
  assert report.main([str(doc), f'--runs={os.path.dirname(workdir)}']) == 0
  record = tmp_path / 'docs' / 'runs' / 'ring8'
  assert json.loads((record / 'evals.json').read_text()) == history
  lines = doc.read_text().splitlines()[1:-1]
  assert lines[0] == '| seed | 10 | 20 |'
  for i, seed in enumerate(results['seeds']):
    modes = dict(map(tuple, history[f'seed_{i}/eval/modes']))
    kl = dict(map(tuple, history[f'seed_{i}/eval/reverse_kl']))
    cells = [f'{modes[step]:.0f} / ' + ('n/a' if kl[step] is None else f'{kl[step]:.3f}')
             for step in (10, 20)]  # a count whole, the rest to 3 decimals
    assert lines[2 + i] == f'| {seed} | {cells[0]} | {cells[1]} |'
  final = results['metrics_per_seed'][1]  # the last evaluation is the final one
  assert history['seed_1/eval/modes'][-1][1] == final['modes']
  assert report.main([str(doc), '--runs=/nonexistent']) == 0
  assert doc.read_text().splitlines()[1:-1] == lines  # from the record alone


def test_read_sweep_orders_unlisted_points_by_their_numbers(tmp_path):
  """Kept records have no summary.csv: points follow by name, seed-2 before seed-10."""
  for seed in (10, 2, 1):
    (tmp_path / f'seed-{seed}').mkdir()
    (tmp_path / f'seed-{seed}' / 'config.json').write_text('{}')
  assert [p['name'] for p in analysis.read_sweep(str(tmp_path))] == [
      'seed-1', 'seed-2', 'seed-10']
