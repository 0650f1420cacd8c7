"""Files every reader can trust: atomic writes, strict JSON, checked output paths.

A reader (the sweep summary, a notebook, `jq`, another host) never sees half
a file: each writer fills `<path>.tmp` and renames it over `path`. JSON is
strict (RFC 8259): a NaN or infinite number is written as `null`, since
Python's `NaN`/`Infinity` tokens are rejected by most other JSON readers.
"""

from collections.abc import Mapping
import json
import math
import os

from gan_jax.errors import UserError


def existing_ancestor(path: str) -> str:
  """The nearest directory-or-file above `path` that exists (absolute)."""
  parent = os.path.dirname(os.path.abspath(path))
  while not os.path.lexists(parent):
    parent = os.path.dirname(parent)
  return parent


def check_writable_file(path: str, flag: str) -> None:
  """UserError unless a file can be written at `path`: not a directory, and
  the nearest existing parent is a writable directory."""
  if os.path.isdir(path):
    raise UserError(f'{flag}={path} is a directory; name a file in it')
  parent = existing_ancestor(path)
  if not os.path.isdir(parent):
    raise UserError(f'{flag}={path} cannot be written: {parent} is a file, not'
                    ' a directory')
  if not os.access(parent, os.W_OK | os.X_OK):
    raise UserError(f'{flag}={path} cannot be written: {parent} is not'
                    ' writable')


def write_text(path: str, text: str) -> None:
  """Writes `text` to `path` atomically."""
  tmp = path + '.tmp'
  with open(tmp, 'w') as f:
    f.write(text)
  os.replace(tmp, path)


def read_json(path: str):
  """The JSON file at `path`, None if there is none (yet)."""
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return json.load(f)


def strict(obj):
  """`obj` with every NaN or infinite float replaced by None (JSON null)."""
  if isinstance(obj, float):
    return obj if math.isfinite(obj) else None
  if isinstance(obj, Mapping):
    return {key: strict(value) for key, value in obj.items()}
  if isinstance(obj, (list, tuple)):
    return [strict(value) for value in obj]
  return obj


def digest(path: str, algorithm: str = 'sha256') -> str:
  """The hex digest of the file at `path` (hashlib's `algorithm`)."""
  import hashlib  # noqa: PLC0415
  with open(path, 'rb') as f:
    return hashlib.file_digest(f, algorithm).hexdigest()


def write_json(path: str, obj) -> None:
  """Writes `obj` to `path` atomically as strict, indented, key-sorted JSON."""
  write_text(path, json.dumps(strict(obj), indent=2, sort_keys=True,
                              allow_nan=False) + '\n')


def write_npz(path: str, arrays: Mapping) -> None:
  """Writes `arrays` (name -> array) to `path` as an .npz, atomically; makes
  the directory."""
  import numpy as np  # noqa: PLC0415 (the JSON writers need no NumPy)
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  tmp = path + '.tmp'
  with open(tmp, 'wb') as f:
    np.savez(f, **arrays)
  os.replace(tmp, path)
