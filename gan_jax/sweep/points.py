"""A sweep's points: parsed from --sweep flags and get_sweep(), expanded,
named, and checked before any of them runs.

`sweep_points` gives the product of the --sweep flags (the last varying
fastest) times the config file's `get_sweep()`; `plan` turns each point into
a `SweepPoint` (its config and sub-workdir, named by `point_name`), checking
every point's config and every sub-workdir that holds a run of another
config; `command` is a point's `python -m gan_jax.main` command line.
"""

from collections.abc import Mapping, Sequence
import copy
import dataclasses
import hashlib
import itertools
import os
import re
import shlex
from typing import Any

from absl import flags
from absl import logging
import ml_collections

from gan_jax import configs
from gan_jax import workdir as workdir_lib
from gan_jax.errors import UserError

Point = dict[str, Any]  # config key (dotted) -> value, in sweep order

_SAFE = re.compile(r'[A-Za-z0-9._+-]')
MAX_NAME = 200  # characters of a sub-workdir name (file systems allow 255 bytes)
_PARSERS = {bool: flags.BooleanParser(), int: flags.IntegerParser(),
            float: flags.FloatParser()}


@dataclasses.dataclass(frozen=True)
class SweepPoint:
  values: Point  # the swept keys and their values
  name: str  # the sub-workdir's name, point_name(values)
  config: ml_collections.ConfigDict  # the full config of this run
  workdir: str


# ------------------------------------------------------------ parse, expand

def default_workdir(config_arg: str) -> str:
  path = config_arg.split(':', 1)[0]
  return os.path.join('runs', 'sweep_' + os.path.splitext(os.path.basename(path))[0])


def current_value(config: ml_collections.ConfigDict, key: str, origin: str):
  """The config's value at dotted `key`; UserError naming the valid keys."""
  node = configs.find(config, key, origin)
  if isinstance(node, ml_collections.ConfigDict):
    raise UserError(f'{key!r} (from {origin}) is a section, not a value; its'
                    f' keys: {", ".join(sorted(node.keys()))}')
  return node


def _kind(key: str, current, origin: str) -> type:
  kind = type(current)
  if kind not in (bool, int, float, str):
    raise UserError(f'{key} (from {origin}) holds a {kind.__name__}; only str,'
                    ' int, float and bool keys can be swept')
  return kind


def parse_value(key: str, text: str, current, origin: str):
  """`text` as the type of the config's `current` value (str, int, float, bool)."""
  kind = _kind(key, current, origin)
  if kind is str:
    return text
  try:
    return _PARSERS[kind].parse(text)
  except (TypeError, ValueError):
    raise UserError(f'{key}={text!r} (from {origin}) is not a valid {kind.__name__}'
                    f' ({key} is {current!r} in the config)') from None


def coerce_value(key: str, value, current, origin: str):
  """A Python value for `key` from a config's get_sweep(), checked against the
  key's type (strings are parsed as on the command line)."""
  kind = _kind(key, current, origin)
  if isinstance(value, str) and kind is not str:
    return parse_value(key, value, current, origin)
  number = isinstance(value, (int, float)) and not isinstance(value, bool)
  ok = {bool: isinstance(value, bool),
        int: number and isinstance(value, int),
        float: number,
        str: isinstance(value, str)}[kind]
  if not ok:
    raise UserError(f'{key}={value!r} (from {origin}) is not a valid {kind.__name__}'
                    f' ({key} is {current!r} in the config)')
  return float(value) if kind is float else value


def format_value(value) -> str:
  """The text of a value in names, commands and the summary: what
  --config.KEY=<text> parses back to the same value."""
  if isinstance(value, float):
    return repr(value)  # shortest round trip: 0.001, 1e-05
  return str(value)


def parse_sweep(text: str, config: ml_collections.ConfigDict) -> tuple[str, list]:
  """`KEY=v1,v2,...` (a comma inside a value is written `\\,`) -> (KEY, values
  parsed to the key's type)."""
  origin = f'--sweep={text}'
  key, sep, values_text = text.partition('=')
  if not sep or not key:
    raise UserError(f'malformed {origin}; expected --sweep=KEY=v1,v2,...'
                    ' (e.g. --sweep=loss.name=vanilla,wgan_gp)')
  current = current_value(config, key, origin)
  if not values_text:
    raise UserError(f'{origin} lists no values; expected --sweep={key}=v1,v2,...')
  texts = [t.replace('\\,', ',') for t in re.split(r'(?<!\\),', values_text)]
  values = [parse_value(key, t, current, origin) for t in texts]
  _check_no_repeats(values, origin)
  return key, values


def _check_no_repeats(values: Sequence, origin: str) -> None:
  seen = set()
  for value in values:
    if format_value(value) in seen:
      raise UserError(f'{origin} lists {format_value(value)!r} twice')
    seen.add(format_value(value))


def config_sweep(config_arg: str, config: ml_collections.ConfigDict
                 ) -> list[Point] | None:
  """The points of the config file's `get_sweep()` (None if it has none).

  `get_sweep()` returns a non-empty list of dicts {dotted config key: value},
  one per point; it is called like get_config (with the `arg` of
  --config=file.py:arg when there is one).
  """
  points = configs.call_config_file(config_arg, 'get_sweep')
  if points is None:
    return None
  origin = f'get_sweep() of {config_arg.partition(":")[0]}'
  if (not isinstance(points, (list, tuple)) or not points
      or not all(isinstance(p, Mapping) and all(isinstance(k, str) for k in p)
                 for p in points)):
    raise UserError(f'{origin} must return a non-empty list of dicts'
                    f' {{config key: value}}, one per point; got {points!r}')
  checked = []
  for point in points:
    checked.append({
        key: coerce_value(key, value, current_value(config, key, origin), origin)
        for key, value in point.items()})
  return checked


def _overlaps(a: str, b: str) -> bool:
  """Whether setting key `a` and key `b` touch the same value (or section)."""
  return a == b or a.startswith(b + '.') or b.startswith(a + '.')


def expand(base: Sequence[Point], sweeps: Sequence[tuple[str, Sequence]]
           ) -> list[Point]:
  """The product: each base point (outermost) times the sweeps' values, the
  last sweep varying fastest."""
  keys = [key for key, _ in sweeps]
  return [{**point, **dict(zip(keys, combo, strict=True))}
          for point in base
          for combo in itertools.product(*(values for _, values in sweeps))]


def sweep_points(config_arg: str, config: ml_collections.ConfigDict,
                 overrides: Mapping[str, Any], sweep_flags: Sequence[str]
                 ) -> list[Point]:
  """The points of a sweep: get_sweep() of the config file times the --sweep flags.

  The command line wins over the config file: when a --sweep flag or a
  --config override sets a key that get_sweep() sweeps, get_sweep() is not used.
  """
  sweeps = [parse_sweep(text, config) for text in sweep_flags]
  keys = [key for key, _ in sweeps]
  for i, key in enumerate(keys):
    for other in keys[i + 1:]:
      if _overlaps(key, other):
        raise UserError(f'--sweep={key}=... and --sweep={other}=... sweep the'
                        ' same key; give each key once')
    for override in overrides:
      if _overlaps(key, override):
        raise UserError(f'--sweep={key}=... and --config.{override}=... both set'
                        f' {key}; keep one of them')
  base = config_sweep(config_arg, config)
  if base is not None:
    pinned = sorted({k for point in base for k in point
                     for fixed in [*keys, *overrides] if _overlaps(k, fixed)})
    if pinned:
      logging.info('not using get_sweep() of %s: the command line sets %s',
                   config_arg, ', '.join(pinned))
      base = None
  if base is None and not sweeps:
    raise UserError(f'nothing to sweep: pass --sweep=KEY=v1,v2,... (or define'
                    f' get_sweep() in {config_arg.split(":", 1)[0]} and do not'
                    ' set its keys on the command line)')
  return expand(base or [{}], sweeps)


def point_name(point: Point) -> str:
  """The sub-workdir of a point: `KEY-VALUE` per swept key, joined by `_`.

  Values are written as `format_value` does (so 1e-3 and 0.001 name the same
  point); characters other than letters, digits and `._+-` become `%XX`
  (UTF-8 bytes, as in URLs), so names are safe on every file system and
  differ when values differ. A name longer than MAX_NAME keeps its first
  characters and ends in `~` and 12 hex digits of its SHA-256. The point
  with no keys is `base`.
  """
  if not point:
    return 'base'
  parts = []
  for key, value in point.items():
    text = ''.join(c if _SAFE.fullmatch(c) else
                   ''.join(f'%{byte:02X}' for byte in c.encode())
                   for c in format_value(value))
    parts.append(f'{key}-{text}')
  name = '_'.join(parts)
  if len(name) > MAX_NAME:
    digest = hashlib.sha256(name.encode()).hexdigest()[:12]
    name = f'{name[:MAX_NAME - 13]}~{digest}'
  return name


def parse_point(text: str, config: ml_collections.ConfigDict,
                origin: str) -> Point:
  """'KEY=VALUE,KEY=VALUE' (a benchmark's --variant) as a point of `config`,
  each value parsed as the key's current value's type."""
  point = {}
  for item in (text.split(',') if text else []):
    key, _, value = item.partition('=')
    point[key] = parse_value(key, value, current_value(config, key, origin),
                             origin)
  return point


def point_config(config: ml_collections.ConfigDict, point: Point
                 ) -> ml_collections.ConfigDict:
  """A fresh copy of `config` with the point's values."""
  config = copy.deepcopy(config)
  for key, value in point.items():
    *parents, last = key.split('.')
    node = config
    for part in parents:
      node = node[part]
    node[last] = value
  return config


def plan(config: ml_collections.ConfigDict, points: Sequence[Point],
         workdir: str, num_devices: int) -> list[SweepPoint]:
  """Every point's config and sub-workdir, all checked before any runs."""
  planned, names = [], {}
  for values in points:
    name = point_name(values)
    if name in names:
      raise UserError(f'points {names[name]!r} and {values!r} both get the'
                      f' sub-workdir name {name!r}; change one of them')
    names[name] = values
    point = SweepPoint(values=values, name=name,
                       config=point_config(config, values),
                       workdir=os.path.join(workdir, name))
    try:
      configs.validate(point.config, num_devices)
    except UserError as e:
      raise UserError(f'sweep point {name}: {e}') from None
    try:
      workdir_lib.check_resume(point.config, point.workdir)
    except UserError as e:
      raise UserError(f'sweep point {name}: {e}') from None
    planned.append(point)
  return planned


def command(config_arg: str, overrides: Mapping[str, Any], point: SweepPoint,
            extra_flags: Sequence[str] = ()) -> str:
  """The shell command of one point: gan_jax.main with every override."""
  args = ['python', '-m', 'gan_jax.main', f'--config={config_arg}',
          f'--workdir={point.workdir}']
  args += [f'--config.{k}={format_value(v)}' for k, v in overrides.items()]
  args += [f'--config.{k}={format_value(v)}' for k, v in point.values.items()]
  return shlex.join([*args, *extra_flags])
