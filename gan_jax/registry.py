"""What the component registries share: name lookup and typed config keys.

Each kind of component has one registry, a dict from a name to a small spec,
in its own module: `losses.LOSSES`, `losses.PENALTIES`, `models.MODELS`,
`data.DATASETS`, `evaluators.EVALUATORS`, `schedules.SCHEDULES`. Config
validation, error messages, sweeps over "every loss" and the contract tests
read the names from there. A spec whose component has config keys of its own
(a model's width, a penalty's weight) declares them as `Field`s, and the
config schema (`configs.default_config`) takes them from the spec.
"""

from collections.abc import Mapping
import dataclasses
from typing import Any, TypeVar

from gan_jax.errors import UserError

T = TypeVar('T')

# Field.check: a value's constraint, or a tuple of the valid values.
POSITIVE = '> 0'
NON_NEGATIVE = '>= 0'
FRACTION = 'in [0, 1)'


def lookup(registry: Mapping[str, T], key: str, name: str) -> T:
  """registry[name], or a one-line UserError naming `key` and the valid names."""
  if name not in registry:
    raise UserError(f'unknown {key}={name!r}; valid: {", ".join(registry)}')
  return registry[name]


@dataclasses.dataclass(frozen=True)
class Field:
  """A config key a component declares: its default and its constraint.

  Attributes:
    default: the value `configs.default_config` starts from.
    check: POSITIVE, NON_NEGATIVE, FRACTION, or a tuple of the valid values.
    doc: one line for readers of the config.
  """

  default: Any
  check: str | tuple[str, ...]
  doc: str = ''


def check_value(key: str, value: Any, check: str | tuple[str, ...]) -> None:
  """Raises a one-line UserError unless `value` of config `key` meets `check`."""
  if isinstance(check, tuple):
    if value not in check:
      raise UserError(f'unknown {key}={value!r}; valid: {", ".join(map(str, check))}')
    return
  ok = {POSITIVE: lambda v: v > 0, NON_NEGATIVE: lambda v: v >= 0,
        FRACTION: lambda v: 0 <= v < 1}[check]
  if isinstance(value, bool) or not isinstance(value, (int, float)) or not ok(value):
    raise UserError(f'{key}={value!r} is invalid; it must be {check}')


def merged_fields(owner: str, specs: Mapping[str, Any]) -> dict[str, Field]:
  """The union of the `fields` of several specs (e.g. every model's keys under
  `model.`); a key two specs declare with different defaults is a bug."""
  merged = {}
  for name, spec in specs.items():
    for key, field in spec.fields.items():
      if key in merged and merged[key].default != field.default:
        raise ValueError(f'{owner}.{key} is declared twice with different'
                         f' defaults ({name}: {field.default!r})')
      merged[key] = field
  return merged
