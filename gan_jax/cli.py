"""Shared command-line plumbing: user mistakes become one line, not a traceback.

Bad flags (an unknown config key, a value of the wrong type, a missing config
file), bad config values, missing data and the like print `error: ...` on
stderr and exit with status 1. Anything else is a bug and keeps its traceback.
"""

from collections.abc import Callable
import logging as py_logging
import sys

from absl import app
from absl import flags
from absl import logging

from gan_jax import configs
from gan_jax.errors import UserError


def fail(message: str) -> None:
  print(f'error: {message}', file=sys.stderr)
  sys.exit(1)


def _unknown_config_key(argv: list[str]) -> str | None:
  """Names the first --config.KEY=... override that is not in the schema."""
  schema = configs.default_config()
  for arg in argv:
    if not arg.startswith('--config.'):
      continue
    dotted = arg[len('--config.'):].split('=', 1)[0]
    try:
      configs.find(schema, dotted, arg)
    except UserError as e:
      return str(e)
  return None


def parse_flags(argv: list[str]) -> list[str]:
  """absl's flag parsing, with one-line errors instead of tracebacks."""
  try:
    rest = flags.FLAGS(argv)
    if 'config' in flags.FLAGS and flags.FLAGS['config'].present:
      flags.FLAGS.config.keys()  # loads the config file now, not mid-run
  except flags.Error as e:
    fail(f'{e}')
  except (AttributeError, KeyError, TypeError, ValueError) as e:
    fail(_unknown_config_key(argv) or f'bad flag: {str(e).splitlines()[0]}')
  except OSError as e:
    fail(f'cannot load the config file: {str(e).splitlines()[-1].strip()}')
  return rest


class _QuietLibraries(py_logging.Filter):
  """Drops the INFO chatter of Orbax (a dozen lines per checkpoint)."""

  def filter(self, record: py_logging.LogRecord) -> bool:
    return record.levelno >= py_logging.WARNING or '/orbax/' not in record.pathname


def run(main: Callable[[list[str]], None]) -> None:
  """`absl.app.run(main)` with one-line errors for user mistakes."""
  from gan_jax import train  # noqa: PLC0415 (not needed to parse flags)

  def guarded(argv: list[str]) -> None:
    logging.get_absl_handler().addFilter(_QuietLibraries())
    try:
      main(argv)
    except (UserError, train.TrainingDiverged) as e:
      fail(str(e))

  app.run(guarded, flags_parser=parse_flags)
