"""What the component registries share: name lookup and typed config keys.

Each kind of component has one registry, a dict from a name to a small spec,
in its own module: `losses.LOSSES`, `losses.PENALTIES`, `models.MODELS`,
`data.DATASETS`, `evaluators.EVALUATORS`, `schedules.SCHEDULES`. Config
validation, error messages, sweeps over "every loss" and the contract tests
read the names from there. A spec whose component has config keys of its own
(a model's width, a penalty's weight) declares them as `Field`s, and the
config schema (`configs.default_config`) takes them from the spec.
"""

from collections.abc import Collection, Mapping
import dataclasses
from typing import Any, TypeVar

from gan_jax.errors import UserError

T = TypeVar('T')

# Field.check: a value's constraint, or a tuple of the valid values.
POSITIVE = '> 0'
NON_NEGATIVE = '>= 0'
FRACTION = 'in [0, 1)'


def lookup(registry: Mapping[str, T], key: str, name: str,
           among: Collection[str] | None = None, context: str = '') -> T:
  """registry[name], or the one-line UserError every entry point gives for
  a name that is not valid:

    unknown KEY='name'; valid: a, b, c
    KEY='name' does not apply to CONTEXT; valid: a, b

  the second when `name` is in `registry` but not `among` the names that
  `context` allows (e.g. a data.source its dataset cannot be read from).
  """
  if name not in registry:
    raise unknown(key, name, registry)
  if among is not None and name not in among:
    raise UserError(f'{key}={name!r} does not apply to {context}; valid:'
                    f' {", ".join(map(str, among)) or "none"}')
  return registry[name]


def unknown(key: str, value: Any, valid: Collection) -> UserError:
  """The error of a `value` of config `key` that is none of `valid`."""
  return UserError(f'unknown {key}={value!r}; valid: {", ".join(map(str, valid))}')


@dataclasses.dataclass(frozen=True)
class Field:
  """A config key a component declares: its default and its constraint.

  Attributes:
    default: the value `configs.default_config` starts from.
    check: POSITIVE, NON_NEGATIVE, FRACTION, a tuple of the valid values, or
      None (validated otherwise, or free-form: the config schema's seed and
      paths).
    doc: one line for readers of the config (docs/reference.md).
  """

  default: Any
  check: str | tuple | None
  doc: str = ''


def check_value(key: str, value: Any, check: str | tuple[str, ...]) -> None:
  """Raises a one-line UserError unless `value` of config `key` meets `check`."""
  if isinstance(check, tuple):
    if value not in check:
      raise unknown(key, value, check)
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
