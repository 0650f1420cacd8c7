"""Evaluators during training, `python -m gan_jax.evaluate`, and their errors."""

import json
import os

import jax
import ml_collections
import numpy as np
import pytest

from gan_jax import classifier
from gan_jax import data
from gan_jax import evaluate
from gan_jax import evaluators
from gan_jax import train
from gan_jax.errors import UserError
from tests.helpers import read_events
from tests.helpers import tiny_image_config
from tests.helpers import tiny_toy_config
from tests.helpers import write_idx_images
from tests.helpers import xla_optimizations

REAL_MNIST = os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), os.pardir, 'shared', 'data', 'mnist')
needs_mnist = pytest.mark.skipif(not os.path.isdir(REAL_MNIST),
                                 reason=f'{REAL_MNIST} absent')


def test_modes_evaluator_scores_perfect_and_collapsed_generators():
  config = tiny_toy_config()
  source = data.load(config.data)
  score = evaluators.build(('modes',), config, source)
  perfect = np.repeat(source.modes, 10, axis=0)
  assert score(perfect) == pytest.approx(
      {'modes': 8, 'high_quality': 1.0, 'reverse_kl': 0.0}, abs=1e-6)
  collapsed = np.repeat(source.modes[:1], 80, axis=0)
  scores = score(collapsed)
  assert scores['modes'] == 1 and scores['reverse_kl'] == pytest.approx(np.log(8))


def test_training_evaluates_periodically_and_evaluate_rescores(tmp_path):
  workdir = str(tmp_path / 'run')
  config = tiny_toy_config()
  config.train.eval_every = 3
  config.eval.num_samples = 500
  results = train.train_and_evaluate(config, workdir)
  assert set(results['metrics']) == {'modes', 'high_quality', 'reverse_kl'}
  assert 0 <= results['metrics']['modes'] <= 8
  [events] = [f for f in os.listdir(workdir) if f.startswith('events.out')]
  scalars, _ = read_events(os.path.join(workdir, events))
  assert [step for step, _ in scalars['eval/modes']] == [3, 6]

  rescored = evaluate.evaluate_run(workdir, num_samples=500)
  # Same checkpoint, same samples (the run's seed): the same figures (NaN
  # reverse KL included, when no sample is high quality yet).
  assert rescored['step'] == 6
  for name in ('metrics', 'metrics_per_seed', 'metrics_summary'):
    np.testing.assert_equal(rescored[name], results[name])
  with open(os.path.join(workdir, 'results.json')) as f:
    saved = json.load(f)
  assert saved['metrics_step'] == 6 and saved['status'] == 'finished'


def test_evaluators_that_do_not_fit_the_data_are_refused(tmp_path):
  config = tiny_toy_config(dataset='swissroll')
  config.eval.evaluators = 'modes'
  with pytest.raises(UserError, match="modes' does not apply to data.name="
                     "'swissroll'; valid: none"):
    train.train_and_evaluate(config, str(tmp_path / 'a'))
  config.eval.evaluators = 'modes,fid'
  with pytest.raises(UserError, match="unknown eval.evaluators='fid'; valid: modes, classifier, inception, stacked_mnist"):
    train.train_and_evaluate(config, str(tmp_path / 'b'))
  assert not os.path.exists(tmp_path / 'a') and not os.path.exists(tmp_path / 'b')


# ----------------------------------------------------------------- images


@pytest.fixture(scope='module')
def mnist_subset(tmp_path_factory):
  """600 real t10k digits as an idx directory (480 train / 120 held out) and
  a LeNet trained on it for a few steps (~95% accurate)."""
  full = data.load_labeled(ml_collections.ConfigDict(
      dict(name='mnist', source='idx', path=REAL_MNIST, tfds_data_dir='')))
  images = np.concatenate([full.train_images, full.test_images])[:600, ..., 0]
  labels = np.concatenate([full.train_labels, full.test_labels])[:600]
  directory = tmp_path_factory.mktemp('mnist600')
  write_idx_images(str(directory / 't10k-images-idx3-ubyte'), images)
  header = b'\0\0\x08\x01' + len(labels).to_bytes(4, 'big')
  (directory / 't10k-labels-idx1-ubyte').write_bytes(
      header + labels.astype(np.uint8).tobytes())
  labeled = data.load_labeled(ml_collections.ConfigDict(
      dict(name='mnist', source='idx', path=str(directory), tfds_data_dir='')))
  with xla_optimizations():  # 120 steps: 43 s without them, 17 s with (AMD EPYC)
    params, info = classifier.train_classifier(labeled, steps=120, batch_size=64,
                                               seed=0, lr=2e-3)
  net_dir = str(tmp_path_factory.mktemp('classifier'))
  classifier.save(net_dir, params, {'dataset': 'mnist', **info})
  return str(directory), net_dir


@needs_mnist
def test_classifier_evaluator_writes_results_and_caches_the_real_floor(
    tmp_path, mnist_subset):
  data_dir, net_dir = mnist_subset
  config = tiny_image_config(data_dir)
  config.eval.evaluators = 'classifier'
  config.eval.classifier_dir = net_dir
  config.eval.num_samples = 100
  workdir = str(tmp_path / 'run')
  results = train.train_and_evaluate(config, workdir)
  figures = ('fid_lenet', 'kid_lenet', 'kid_lenet_std', 'precision', 'recall',
             'density', 'coverage', 'score_lenet', 'top_class_share')
  scores = results['metrics']
  assert set(scores) == set(figures) | {f'real_{k}' for k in figures}
  with open(os.path.join(workdir, 'results.json')) as f:
    written = json.load(f)
  assert written['metrics'] == pytest.approx(scores)
  about = written['metrics_about']['classifier']  # which LeNet measured them
  assert about['directory'] == net_dir and len(about['weights_hash']) == 16
  assert about['test_accuracy'] == classifier.load(net_dir).info['test_accuracy']
  # Held-out real digits against the real reference: the floor. Four steps of
  # a DCGAN are far above it.
  assert scores['real_fid_lenet'] < 0.2 * scores['fid_lenet']
  assert scores['real_kid_lenet'] < 0.2 * scores['kid_lenet']
  # The untrained generator's samples are nearly one image: no recall, little
  # coverage (precision alone can't tell: one point inside a wide real ball).
  assert scores['real_recall'] > 0.5 > scores['recall']
  assert scores['real_coverage'] > 0.5 > scores['coverage']
  assert scores['real_score_lenet'] > 5 > scores['score_lenet'] >= 1
  assert scores['real_top_class_share'] < 0.25 < scores['top_class_share']

  # The floor is computed once per dataset, classifier and sample count, and
  # read back from the classifier's floors.json afterwards.
  with open(os.path.join(net_dir, evaluators.FLOORS_FILE)) as f:
    floors = json.load(f)
  [key] = floors
  assert key.startswith('classifier | mnist') and key.endswith('| n=100')
  assert floors[key]['fid_lenet'] == pytest.approx(scores['real_fid_lenet'])
  floors[key]['fid_lenet'] = 123.0
  with open(os.path.join(net_dir, evaluators.FLOORS_FILE), 'w') as f:
    json.dump(floors, f)
  evaluators._REFERENCES.clear()  # a new process
  rescored = evaluate.evaluate_run(workdir)
  assert rescored['metrics']['real_fid_lenet'] == 123.0
  assert rescored['metrics']['fid_lenet'] == pytest.approx(scores['fid_lenet'])


@needs_mnist
def test_stacked_mnist_evaluator_counts_digit_triples(tmp_path, mnist_subset):
  data_dir, net_dir = mnist_subset
  config = tiny_image_config(data_dir)
  config.data.name = 'stacked_mnist'
  config.eval.classifier_dir = net_dir
  config.eval.num_samples = 500
  source = data.load(config.data)
  score = evaluators.build(('stacked_mnist',), config, source)
  assert score.about['stacked_mnist']['directory'] == net_dir
  keys = jax.random.split(jax.random.key(evaluators.SUBSET_SEED), 500)
  real = np.asarray(jax.vmap(source.sample_one, (None, 0))(source.arrays, keys))
  scores = score(real)
  # The real samples of the floor score exactly the floor; 500 draws of 1,000
  # equally likely triples show about 1000 (1 - e^-0.5) = 393 of them.
  assert scores['modes'] == scores['real_modes']
  assert scores['reverse_kl'] == scores['real_reverse_kl']
  assert 330 < scores['modes'] < 450
  collapsed = score(np.repeat(real[:1], 500, axis=0))
  assert collapsed['modes'] == 1
  assert collapsed['reverse_kl'] == pytest.approx(np.log(1000))
  # Each channel is classified on its own: swapping two channels of one
  # image swaps its digits.
  net = classifier.load(net_dir)
  digits = evaluators.stacked_digits(net, real[:20])
  np.testing.assert_array_equal(
      evaluators.stacked_digits(net, real[:20, ..., ::-1]), digits[:, ::-1])


def test_image_evaluators_are_refused_for_other_data_or_without_classifier(
    tmp_path, idx_dir):
  config = tiny_toy_config()
  config.eval.evaluators = 'classifier'
  with pytest.raises(UserError, match="classifier' does not apply to data.name="
                     "'ring8'; valid: modes"):
    train.train_and_evaluate(config, str(tmp_path / 'a'))
  config = tiny_image_config(idx_dir)
  config.eval.evaluators = 'classifier'
  config.eval.classifier_dir = str(tmp_path / 'none')
  with pytest.raises(UserError, match='no trained classifier in .*none.*; train'
                     ' one with: python -m gan_jax.classifier'):
    train.train_and_evaluate(config, str(tmp_path / 'b'))
  assert not os.path.exists(tmp_path / 'a') and not os.path.exists(tmp_path / 'b')
