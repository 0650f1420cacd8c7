"""Files every reader can trust: atomic writes and strict JSON.

A reader (the sweep summary, a notebook, `jq`, another host) never sees half
a file: each writer fills `<path>.tmp` and renames it over `path`. JSON is
strict (RFC 8259): a NaN or infinite number is written as `null`, since
Python's `NaN`/`Infinity` tokens are rejected by most other JSON readers.
"""

from collections.abc import Mapping
import json
import math
import os


def write_text(path: str, text: str) -> None:
  """Writes `text` to `path` atomically."""
  tmp = path + '.tmp'
  with open(tmp, 'w') as f:
    f.write(text)
  os.replace(tmp, path)


def strict(obj):
  """`obj` with every NaN or infinite float replaced by None (JSON null)."""
  if isinstance(obj, float):
    return obj if math.isfinite(obj) else None
  if isinstance(obj, Mapping):
    return {key: strict(value) for key, value in obj.items()}
  if isinstance(obj, (list, tuple)):
    return [strict(value) for value in obj]
  return obj


def write_json(path: str, obj) -> None:
  """Writes `obj` to `path` atomically as strict, indented, key-sorted JSON."""
  write_text(path, json.dumps(strict(obj), indent=2, sort_keys=True,
                              allow_nan=False) + '\n')
