"""Shared command-line plumbing: user mistakes become one line, not a traceback.

Bad flags (an unknown config key, a value of the wrong type, a missing or
broken config file), bad config values, missing data and the like print
`error: ...` on stderr and exit with status 1. A run stopped by SIGTERM or
SIGINT prints `stopped: ...` and exits with 143 or 130
(`preemption.EXIT_CODES`). Anything else is a bug and keeps its traceback.

`run` is every command's entry point (main, sweep, bench, evaluate, sample,
classifier), and the one place that calls `runtime.setup()`: first, before
absl parses flags and before the command touches JAX (main.py's
`parallel.initialize_distributed` included).
"""

from collections.abc import Callable
import logging as py_logging
import os
import signal
import sys
import traceback

from absl import app
from absl import flags
from absl import logging

from gan_jax import configs
from gan_jax import preemption
from gan_jax import runtime
from gan_jax.errors import TrainingDiverged
from gan_jax.errors import UserError
from gan_jax.errors import is_no_space

# What a command's exit status means (docs/reference.md prints this table).
EXIT_STATUSES = (
    (0, 'done: the run finished, or the command printed or wrote its result'),
    (1, 'error: a mistake (one line on stderr: what is wrong and what is'
        ' valid), missing data, a busy or foreign workdir, or a loss that'
        ' became NaN or infinite (the last good checkpoint stays)'),
    (preemption.EXIT_CODES[signal.SIGINT], 'stopped by SIGINT (Ctrl-C): the'
     ' step in flight finished and its checkpoint was saved'),
    (preemption.EXIT_CODES[signal.SIGTERM], 'stopped by SIGTERM (a preempted'
     ' VM, scancel): the step in flight finished and its checkpoint was saved'),
    (128 + signal.SIGKILL, 'killed by SIGKILL, which no program can catch: the'
     ' last checkpoint stays; run the same command to resume'),
)


def raw_generator_flag() -> Callable[[], bool]:
  """The value of --raw_generator, the flag that `sample`, `evaluate` and
  `fid` share: defined by the first of them imported (absl's flags are
  process-wide)."""
  if 'raw_generator' not in flags.FLAGS:
    flags.DEFINE_bool(
        'raw_generator', False, 'Use G itself, not its moving average (runs'
        ' with optim.g_ema_decay > 0).')
  return lambda: flags.FLAGS.raw_generator


def define_multi_host_flags() -> Callable[[], dict]:
  """Defines --coordinator_address, --num_processes and --process_id, the
  flags of a run over several processes that `main` and `sweep` share;
  returns what gives their values, as parallel.initialize_distributed's
  keyword arguments (also the flags' names)."""
  coordinator = flags.DEFINE_string(
      'coordinator_address', None,
      'Multi-host: host:port of process 0, the same on every process.')
  num_processes = flags.DEFINE_integer(
      'num_processes', None, 'Multi-host: number of processes.')
  process_id = flags.DEFINE_integer(
      'process_id', None, 'Multi-host: this process, 0 .. num_processes-1.')
  return lambda: {'coordinator_address': coordinator.value,
                  'num_processes': num_processes.value,
                  'process_id': process_id.value}


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


def config_file_error(error: BaseException, path: str) -> str | None:
  """'path, line N: Type: message' when `error` (or an error it was raised
  from) is a syntax error in the config file at `path` or was raised while
  running its code; None otherwise."""
  given, path = path, os.path.abspath(path)
  seen = set()
  while error is not None and id(error) not in seen:
    seen.add(id(error))
    if (isinstance(error, SyntaxError) and error.filename
        and os.path.abspath(error.filename) == path):
      return f'{given}, line {error.lineno}: SyntaxError: {error.msg}'
    frames = [frame for frame in traceback.extract_tb(error.__traceback__)
              if os.path.abspath(frame.filename) == path]
    if frames:
      message = str(error).strip().splitlines()
      return (f'{given}, line {frames[-1].lineno}: {type(error).__name__}'
              + (f': {message[0]}' if message else ''))
    error = error.__cause__ or error.__context__
  return None


def _config_path(argv: list[str]) -> str | None:
  for i, arg in enumerate(argv):
    if arg.startswith('--config='):
      return arg.split('=', 1)[1].split(':', 1)[0]
    if arg == '--config' and i + 1 < len(argv):
      return argv[i + 1].split(':', 1)[0]
  return None


def parse_flags(argv: list[str]) -> list[str]:
  """absl's flag parsing, with one-line errors instead of tracebacks."""
  try:
    rest = flags.FLAGS(argv)
    if 'config' in flags.FLAGS and flags.FLAGS['config'].present:
      flags.FLAGS.config.keys()  # loads the config file now, not mid-run
  except Exception as e:  # noqa: BLE001 (classified below; bugs are re-raised)
    path = _config_path(argv)
    in_file = path and config_file_error(e, path)
    if in_file:
      fail(f'the config file does not load: {in_file}')
    if isinstance(e, flags.Error):
      fail(f'{e}')
    if isinstance(e, (AttributeError, KeyError, TypeError, ValueError)):
      fail(_unknown_config_key(argv) or f'bad flag: {str(e).splitlines()[0]}')
    if isinstance(e, OSError):
      fail(f'cannot load the config file: {str(e).splitlines()[-1].strip()}')
    raise
  return rest


class _Terminated(BaseException):  # noqa: N818 (a signal, not an error)
  """SIGTERM outside training: a BaseException, as KeyboardInterrupt is, so
  that no `except Exception` (a logging handler's, say) swallows it."""


def _terminate(signum, frame) -> None:
  del signum, frame
  raise _Terminated


class _QuietLibraries(py_logging.Filter):
  """Drops the INFO chatter of Orbax (a dozen lines per checkpoint), and the
  errors its background writers log when a disk is full: the command reports
  that once, in one line (errors.NoSpace)."""

  def filter(self, record: py_logging.LogRecord) -> bool:
    error = record.exc_info[1] if record.exc_info else None
    if error is not None and is_no_space(error):
      return False
    if '/orbax/' not in record.pathname:
      return True
    return record.levelno >= py_logging.WARNING and not is_no_space(
        Exception(record.getMessage()))


def run(main: Callable[[list[str]], None]) -> None:
  """`runtime.setup()`, then `absl.app.run(main)` with one-line errors for
  user mistakes."""
  runtime.setup()

  def guarded(argv: list[str]) -> None:
    logging.get_absl_handler().addFilter(_QuietLibraries())
    # SIGTERM stops a command as Ctrl-C does (training saves a checkpoint
    # first: preemption.StopSignals takes both signals over while it runs).
    signal.signal(signal.SIGTERM, _terminate)
    try:
      main(argv)
    except (UserError, TrainingDiverged) as e:
      fail(str(e))
    except preemption.Interrupted as e:
      print(f'stopped: {e}', file=sys.stderr)
      sys.exit(e.exit_code)
    except (KeyboardInterrupt, _Terminated) as e:  # no training: nothing to save
      signum = signal.SIGTERM if isinstance(e, _Terminated) else signal.SIGINT
      print(f'stopped: {signum.name} (nothing was being trained; nothing to'
            ' save)', file=sys.stderr)
      sys.exit(preemption.EXIT_CODES[signum])

  app.run(guarded, flags_parser=parse_flags)
