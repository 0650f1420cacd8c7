"""Files every reader can trust: atomic writes, strict JSON, checked output paths.

A reader (the sweep summary, a notebook, `jq`, another host) never sees half
a file: each writer fills `<path>.tmp` and renames it over `path`. JSON is
strict (RFC 8259): a NaN or infinite number is written as `null`, since
Python's `NaN`/`Infinity` tokens are rejected by most other JSON readers.
"""

from collections.abc import Mapping
import contextlib
import json
import math
import os

from absl import logging

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


@contextlib.contextmanager
def naming(path: str):
  """An OSError inside that names no file (a write that failed, e.g. for want
  of space) is raised again naming `path`, so that its one-line message can."""
  try:
    yield
  except OSError as e:
    if e.filename is None:
      raise OSError(e.errno, e.strerror, path) from e
    raise


def write_text(path: str, text: str) -> None:
  """Writes `text` to `path` atomically."""
  tmp = path + '.tmp'
  with naming(path):
    with open(tmp, 'w') as f:
      f.write(text)
    os.replace(tmp, path)


class DamagedFile(UserError):
  """A file a command reads is there but cannot be used: empty, truncated,
  not JSON (or not the JSON it should be), unreadable. The message names the
  file and what is wrong with it."""


def read_json(path: str, instead: str | None = None, kind: type | None = dict):
  """The JSON value in `path` (of type `kind` unless None), None if there is
  no such file.

  A file that is there but empty, truncated, not JSON, of another kind or
  unreadable: with `instead`, one warning line naming the file, what is
  wrong and `instead` (what the command does without it), then None;
  without `instead`, DamagedFile. Never a traceback of the JSON parser.
  """
  try:
    with open(path, encoding='utf-8') as f:
      text = f.read()
  except FileNotFoundError:
    return None
  except (OSError, UnicodeDecodeError) as e:
    problem = f'cannot be read ({getattr(e, "strerror", None) or e})'
  else:
    try:
      value = json.loads(text)
    except ValueError:
      problem = 'is empty' if not text.strip() else 'is not valid JSON (truncated?)'
    else:
      if kind is None or isinstance(value, kind):
        return value
      problem = f'holds a JSON {type(value).__name__}, not an {kind.__name__}'
  if instead is None:
    raise DamagedFile(f'{path} {problem}')
  logging.warning('%s %s; %s', path, problem, instead)
  return None


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


def read_npz(path: str, names: tuple[str, ...], instead: str) -> dict | None:
  """The arrays `names` of the .npz at `path` (a cache), None if there is no
  such file, or when it is damaged (truncated, not an .npz, an array
  missing): then one warning line names it and says `instead`."""
  import numpy as np  # noqa: PLC0415
  if not os.path.exists(path):
    return None
  try:
    with np.load(path, allow_pickle=False) as npz:
      return {name: npz[name] for name in names}
  except Exception as e:  # noqa: BLE001 (any unreadable cache is recomputed)
    logging.warning('%s is damaged (%s); %s', path,
                    ' '.join(str(e).split())[:120], instead)
    return None


def cache_npz(path: str, arrays: Mapping) -> None:
  """`write_npz` of a cache: a write that fails (read-only, disk full) is one
  warning line; the value is computed again next time."""
  try:
    write_npz(path, arrays)
  except OSError as e:
    logging.warning('cannot cache %s (%s); it is computed again next time',
                    path, e.strerror)

