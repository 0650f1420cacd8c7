"""The one exception type for mistakes a user can fix (bad config, missing data).

Command-line entry points catch it and print a one-line message instead of a
traceback; everything else is a bug and keeps its traceback.
"""


class UserError(Exception):
  """A mistake in the user's input: the message says what is wrong and what is valid."""


class TrainingDiverged(RuntimeError):
  """A loss became NaN or infinite (the message names the step and the last
  good checkpoint)."""


def one_line(error: BaseException, limit: int = 200) -> str:
  """`Type: message` of an exception, on one line and at most ~limit chars:
  a library's error quoted inside a UserError."""
  text = ' '.join(f'{type(error).__name__}: {error}'.split())
  return text if len(text) <= limit else text[:limit - 3] + '...'
