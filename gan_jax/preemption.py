"""Stopping a run cleanly on SIGTERM (preemption, a cancelled SLURM job) or
SIGINT (Ctrl-C): the step in flight finishes, a checkpoint of it is saved,
results.json says `interrupted`, and the process exits with EXIT_CODES.

One process handles both signals itself. Several processes must all stop at
the same step to save one checkpoint together: there JAX's preemption service
(started by `jax.distributed.initialize`) catches SIGTERM on any process, tells
every process, and `reached_preemption_sync_point(step)` names the same step on
all of them; a SIGINT is passed to it as a SIGTERM of this process.
"""

import signal
import threading

from absl import logging
import jax
from jax.experimental import multihost_utils

# 128 + the signal number, as a shell reports a process the signal ended.
EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}


class Interrupted(Exception):
  """The run stopped on a signal after saving a checkpoint."""

  def __init__(self, message: str, exit_code: int):
    super().__init__(message)
    self.exit_code = exit_code


class RecordedSignals:
  """Within `with`, SIGINT and SIGTERM are recorded in `received` instead of
  ending the process; the first one logs `what` happens next."""

  def __init__(self, what: str):
    self.received: signal.Signals | None = None
    self._what = what
    self._previous = {}

  def _signals(self) -> tuple[signal.Signals, ...]:
    return signal.SIGINT, signal.SIGTERM

  def __enter__(self):
    if threading.current_thread() is not threading.main_thread():
      return self  # Python delivers signals to the main thread only
    for signum in self._signals():
      self._previous[signum] = signal.signal(signum, self._handle)
    return self

  def __exit__(self, *exc) -> None:
    for signum, handler in self._previous.items():
      signal.signal(signum, handler)
    self._previous = {}

  def _handle(self, signum: int, frame) -> None:
    del frame
    first = self.received is None
    self.received = signal.Signals(signum)
    if first:
      logging.warning('%s received: %s', self.received.name, self._what)


class StopSignals(RecordedSignals):
  """Within `with`, SIGTERM and SIGINT ask the loop to stop at a step that
  `reached(step)` names, instead of ending the process."""

  def __init__(self):
    super().__init__('stopping after the step in flight, with a checkpoint')
    self._many = False

  def __enter__(self) -> 'StopSignals':
    self._many = jax.process_count() > 1
    return super().__enter__()

  def _signals(self) -> tuple[signal.Signals, ...]:
    # With many processes JAX's preemption service owns SIGTERM.
    return (signal.SIGINT,) if self._many else super()._signals()

  def _handle(self, signum: int, frame) -> None:
    super()._handle(signum, frame)
    if self._many:
      signal.raise_signal(signal.SIGTERM)  # to JAX's preemption service

  def reached(self, step: int) -> bool:
    """Whether to stop after `step`; every process must ask at every step."""
    if self._many:
      return multihost_utils.reached_preemption_sync_point(step)
    return self.received is not None

  def exit_code(self) -> int:
    """SIGINT's code if this process got a SIGINT, else SIGTERM's (another
    process's preemption notice included)."""
    return EXIT_CODES[self.received or signal.SIGTERM]

  def name(self) -> str:
    return self.received.name if self.received else 'a preemption notice'
