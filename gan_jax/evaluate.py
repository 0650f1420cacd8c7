"""Re-scores the latest checkpoint of a finished (or running) run.

  python -m gan_jax.evaluate --workdir=runs/ring8 [--evaluators=modes] [--num_samples=2500]

Scores every member of a run of several seeds (member i from its own seed,
`config.seed + i`, as during training). Prints the figures as JSON and records
them in the workdir's results.json: `metrics` (the mean over seeds),
`metrics_per_seed`, `metrics_summary` and `metrics_step` (the checkpoint they
come from), and `samples_from`: 'ema' for a run that averages its generator
(optim.g_ema_decay > 0), unless --raw_generator, else 'raw'.
"""

import json
import os

from absl import app
from absl import flags

from gan_jax import aggregate
from gan_jax import cli
from gan_jax import configs
from gan_jax import data
from gan_jax import evaluators
from gan_jax import files
from gan_jax import gan as gan_lib
from gan_jax import registry
from gan_jax import runs
from gan_jax.errors import UserError

_WORKDIR = flags.DEFINE_string('workdir', None, 'A run directory of gan_jax.main.')
_EVALUATORS = flags.DEFINE_string(
    'evaluators', None, 'Comma-separated evaluators (default: the run config\'s'
    f' eval.evaluators); valid: {", ".join(evaluators.EVALUATORS)}.')
_NUM_SAMPLES = flags.DEFINE_integer(
    'num_samples', None, 'Generated samples (default: the run config\'s eval.num_samples).')
_RAW = cli.raw_generator_flag()
flags.mark_flags_as_required(['workdir'])


def evaluate_run(workdir: str, names: tuple[str, ...] | None = None,
                 num_samples: int | None = None, raw: bool = False) -> dict:
  """Scores every member of the latest checkpoint in `workdir`; updates its
  results.json."""
  if num_samples is not None:
    registry.check_value('--num_samples', num_samples, registry.POSITIVE)
  config, gan, state = runs.restore_run(workdir)
  names = evaluators.parse(config.eval.evaluators) if names is None else names
  if not names:
    raise UserError(f'no evaluators: the run in {workdir} has eval.evaluators=""'
                    f'; pass --evaluators (valid: {", ".join(evaluators.EVALUATORS)})')
  num_samples = config.eval.num_samples if num_samples is None else num_samples
  config.eval.num_samples = num_samples
  score_samples = evaluators.build(names, config, data.load(config.data))
  per_seed = gan_lib.score_members(gan, state, configs.seeds(config), num_samples,
                                 score_samples, raw=raw)
  figures = aggregate.results('metrics', per_seed)
  step = gan_lib.current_step(state)

  path = os.path.join(workdir, 'results.json')
  results = {}
  if os.path.exists(path):
    with open(path) as f:
      results = json.load(f)
  about = score_samples.about
  results.update(**figures, metrics_step=step,
                 samples_from=gan_lib.samples_from(gan, raw))
  results.pop('metrics_about', None)  # an earlier scoring's, maybe other evaluators
  if about:
    results['metrics_about'] = about
  files.write_json(path, results)
  return {'step': step, **figures, 'samples_from': gan_lib.samples_from(gan, raw),
          **({'metrics_about': about} if about else {})}


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {" ".join(argv[1:])}')
  names = (None if _EVALUATORS.value is None
           else evaluators.parse(_EVALUATORS.value))
  print(json.dumps(evaluate_run(_WORKDIR.value, names, _NUM_SAMPLES.value,
                                _RAW()), indent=2, sort_keys=True))


if __name__ == '__main__':
  cli.run(main)
