"""Progress of long work as people expect it: a line on stderr every few
seconds with how much is done, the rate and the time left."""

import time

from absl import logging


def format_duration(seconds: float) -> str:
  """'1h05m', '3m07s'."""
  seconds = int(seconds)
  hours, rest = divmod(seconds, 3600)
  return (f'{hours}h{rest // 60:02d}m' if hours
          else f'{rest // 60}m{rest % 60:02d}s')


class Progress:
  """`done(n)` as items finish; logs `what: done/total unit, rate unit/s,
  time left` at most every `every` seconds, and once at the end (when the
  work took longer than `every`)."""

  def __init__(self, what: str, total: int, unit: str = 'images',
               every: float = 5.0):
    self._what, self._total, self._unit, self._every = what, total, unit, every
    self._start = self._last = time.monotonic()
    self._count = 0

  def done(self, count: int) -> None:
    self._count += count
    now = time.monotonic()
    finished = self._count >= self._total
    if now - self._last < self._every and not (
        finished and now - self._start >= self._every):
      return
    self._last = now
    rate = self._count / max(now - self._start, 1e-9)
    left = (self._total - self._count) / rate if rate > 0 else 0.0
    logging.info('%s: %s/%s %s, %.1f %s/s, %s left', self._what,
                 f'{self._count:,}', f'{self._total:,}', self._unit, rate,
                 self._unit, format_duration(left))
