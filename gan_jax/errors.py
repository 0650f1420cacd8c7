"""The exceptions a user can act on: mistakes (bad config, missing data), a full
disk, a diverged run.

Command-line entry points catch it and print a one-line message instead of a
traceback; everything else is a bug and keeps its traceback.
"""


class UserError(Exception):
  """A mistake in the user's input: the message says what is wrong and what is valid."""


class NoSpace(UserError):
  """A disk (or quota) is full: the message names the path, and for a run its
  last intact checkpoint."""


def is_no_space(error: BaseException) -> bool:
  """Whether `error` (an OSError, or a library's error wrapping one, as
  Orbax's writers raise) says that a disk or quota is full."""
  import errno  # noqa: PLC0415
  if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
    return True
  text = str(error)
  return 'No space left on device' in text or 'Disk quota exceeded' in text


class TrainingDiverged(RuntimeError):
  """A loss became NaN or infinite (the message names the step and the last
  good checkpoint)."""


def one_line(error: BaseException, limit: int = 200) -> str:
  """`Type: message` of an exception, on one line and at most ~limit chars:
  a library's error quoted inside a UserError."""
  text = ' '.join(f'{type(error).__name__}: {error}'.split())
  return text if len(text) <= limit else text[:limit - 3] + '...'
