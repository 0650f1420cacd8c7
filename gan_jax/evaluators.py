"""Evaluators: sample-quality figures of a generator, picked by `config.eval.evaluators`.

Each evaluator maps generated samples (float32, as `train.generate_samples`
returns them) and the data source to named scalars. They run during training
every `train.eval_every` steps and at the end (TensorBoard `eval/<name>`,
`results.json` `metrics`), and again with `python -m gan_jax.evaluate`.
"""

import numpy as np

from gan_jax import data
from gan_jax import metrics
from gan_jax.errors import UserError

EVALUATORS = ('modes',)


def parse(spec: str) -> tuple[str, ...]:
  """'modes, x' -> ('modes', 'x'); '' -> ()."""
  return tuple(name.strip() for name in spec.split(',') if name.strip())


def check(names: tuple[str, ...], source: data.DataSource) -> None:
  """Raises UserError for an evaluator that does not apply to the data."""
  for name in names:
    if name not in EVALUATORS:
      raise UserError(f'unknown evaluator {name!r} in eval.evaluators; valid:'
                      f' {", ".join(EVALUATORS)}')
    if name == 'modes' and source.modes is None:
      raise UserError(f'eval.evaluators=modes needs a mixture with known modes'
                      f' (ring8, grid25), not data.name={source.name!r}')


def _modes(samples: np.ndarray, source: data.DataSource) -> dict[str, float]:
  """PacGAN's protocol (Lin et al. 2018): modes captured, high-quality
  fraction (within 3 std of the nearest mode), reverse KL to uniform."""
  scores = metrics.mode_coverage(samples, source.modes, source.mode_std)
  return {'modes': int(scores['modes']),
          'high_quality': float(scores['high_quality']),
          'reverse_kl': float(scores['reverse_kl'])}


_FUNCTIONS = {'modes': _modes}


def evaluate(names: tuple[str, ...], samples: np.ndarray,
             source: data.DataSource) -> dict[str, float]:
  """All figures of the evaluators `names` on `samples`, as one flat dict."""
  scores = {}
  for name in names:
    scores.update(_FUNCTIONS[name](samples, source))
  return scores
