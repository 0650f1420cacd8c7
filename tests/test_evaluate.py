"""Evaluators during training, `python -m gan_jax.evaluate`, and their errors."""

import json
import os

import numpy as np
import pytest

from gan_jax import data
from gan_jax import evaluate
from gan_jax import evaluators
from gan_jax import train
from gan_jax.errors import UserError
from tests.conftest import read_events
from tests.conftest import tiny_toy_config


def test_modes_evaluator_scores_perfect_and_collapsed_generators():
  source = data.load(tiny_toy_config().data)
  perfect = np.repeat(source.modes, 10, axis=0)
  assert evaluators.evaluate(('modes',), perfect, source) == pytest.approx(
      {'modes': 8, 'high_quality': 1.0, 'reverse_kl': 0.0}, abs=1e-6)
  collapsed = np.repeat(source.modes[:1], 80, axis=0)
  scores = evaluators.evaluate(('modes',), collapsed, source)
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
  np.testing.assert_equal(rescored, {'step': 6, 'metrics': results['metrics']})
  with open(os.path.join(workdir, 'results.json')) as f:
    saved = json.load(f)
  assert saved['metrics_step'] == 6 and saved['status'] == 'finished'


def test_evaluators_that_do_not_fit_the_data_are_refused(tmp_path):
  config = tiny_toy_config(dataset='swissroll')
  config.eval.evaluators = 'modes'
  with pytest.raises(UserError, match='needs a mixture with known modes'):
    train.train_and_evaluate(config, str(tmp_path / 'a'))
  config.eval.evaluators = 'modes,fid'
  with pytest.raises(UserError, match="unknown eval.evaluators entry='fid'; valid: modes"):
    train.train_and_evaluate(config, str(tmp_path / 'b'))
  assert not os.path.exists(tmp_path / 'a') and not os.path.exists(tmp_path / 'b')
