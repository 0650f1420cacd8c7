"""Learning-rate schedules: the registry `SCHEDULES`, picked by `config.optim.schedule`.

Each maps (peak learning rate, number of Adam updates) to an optax schedule
(or a constant). Adding one is one entry here.
"""

from collections.abc import Callable

import optax

Schedule = Callable[[float, int], optax.ScalarOrSchedule]


def constant(peak: float, updates: int) -> optax.ScalarOrSchedule:
  """`peak` throughout."""
  del updates
  return peak


def linear(peak: float, updates: int) -> optax.ScalarOrSchedule:
  """Decayed linearly to 0 over `updates` (the WGAN-GP CIFAR-10 code,
  Gulrajani et al. 2017)."""
  return optax.linear_schedule(peak, 0.0, updates)


def cosine(peak: float, updates: int) -> optax.ScalarOrSchedule:
  """Decayed to 0 along a half cosine over `updates` (Loshchilov & Hutter
  2017, SGDR)."""
  return optax.cosine_decay_schedule(peak, updates)


SCHEDULES: dict[str, Schedule] = {
    'constant': constant, 'linear': linear, 'cosine': cosine}
