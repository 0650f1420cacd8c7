"""Files every reader can trust: atomic writes, strict JSON, checked output
paths, on a local disk or in object storage.

A reader (the sweep summary, a notebook, `jq`, another host) never sees half
a file: on a disk each writer fills `<path>.tmp` and renames it over `path`;
in object storage (`gs://bucket/...`, through fsspec and gcsfs) an object is
written whole or not at all, so it is written in place. JSON is strict (RFC
8259): a NaN or infinite number is written as `null`, since Python's
`NaN`/`Infinity` tokens are rejected by most other JSON readers.

The path functions below (`exists`, `isdir`, `makedirs`, `open_file`, ...)
take either kind of path: `os` for a local one, fsspec for a URL.
"""

from collections.abc import Mapping
import contextlib
import json
import math
import os
import re
import shutil

from absl import logging

from gan_jax.errors import UserError

# ------------------------------------------------------------ the path layer

_URL = re.compile(r'^[a-z][a-z0-9+.-]*://')


def is_remote(path: str) -> bool:
  """Whether `path` is a URL (`gs://bucket/dir`), not a local path."""
  return bool(_URL.match(str(path)))


def _fs(path: str):
  """(fsspec file system, path within it) of a URL. Listings are not cached:
  other hosts write the same directories."""
  import fsspec  # noqa: PLC0415 (only URLs need it)
  protocol = str(path).split('://', 1)[0]
  try:
    fs = fsspec.filesystem(protocol, use_listings_cache=False)  # as Orbax's (runtime)
  except (ImportError, ValueError) as e:
    raise UserError(f'{path}: {protocol}:// needs its fsspec file system'
                    f' ({e}); for gs:// pip install "gan_jax[gcs]"') from None
  return fs, fs._strip_protocol(path)  # noqa: SLF001 (fsspec's own parser)


def abspath(path: str) -> str:
  return path if is_remote(path) else os.path.abspath(path)


def _ask(question: str, path: str) -> bool:
  """os.path's `question` (exists, isdir, isfile) of a local path, or the
  fsspec file system's of a URL (a URL's directory: a prefix holding objects)."""
  if is_remote(path):
    fs, p = _fs(path)
    return getattr(fs, question)(p)
  return getattr(os.path, question)(path)


def exists(path: str) -> bool:
  return _ask('exists', path)


def isdir(path: str) -> bool:
  return _ask('isdir', path)


def isfile(path: str) -> bool:
  return _ask('isfile', path)


def makedirs(path: str) -> None:
  """The directory `path` and its parents (nothing to make under a URL:
  object storage has no directories)."""
  if not is_remote(path):
    os.makedirs(path, exist_ok=True)


def open_file(path: str, mode: str = 'r', **kwargs):
  """`open`, for a local path or a URL (modes r, w, x with b or text; a URL's
  `x` creates the object only if it does not exist, atomically)."""
  if is_remote(path):
    fs, p = _fs(path)
    return fs.open(p, mode, **kwargs)
  return open(path, mode, **kwargs)  # noqa: SIM115 (the caller closes it)


def listdir(path: str) -> list[str]:
  """The names in the directory `path` (a URL: a bucket or a prefix)."""
  if is_remote(path):
    fs, p = _fs(path)
    return sorted(os.path.basename(found.rstrip('/'))
                  for found in fs.ls(p, detail=False))
  return sorted(os.listdir(path))


def read_bytes(path: str) -> bytes:
  with open_file(path, 'rb') as f:
    return f.read()


def remove(path: str) -> None:
  """Removes the file `path`; FileNotFoundError if there is none."""
  if is_remote(path):
    fs, p = _fs(path)
    if not fs.exists(p):
      raise FileNotFoundError(2, 'No such file', path)
    fs.rm_file(p)
  else:
    os.remove(path)


def remove_tree(path: str) -> None:
  """Removes the directory `path` and all below it, if it is there."""
  if is_remote(path):
    fs, p = _fs(path)
    if fs.exists(p):
      fs.rm(p, recursive=True)
  elif os.path.isdir(path):
    shutil.rmtree(path)


def move(source: str, target: str) -> None:
  """Moves the file or directory `source` to `target` (same storage)."""
  if is_remote(source):
    fs, p = _fs(source)
    fs.mv(p, _fs(target)[1], recursive=True)
  else:
    import shutil  # noqa: PLC0415
    shutil.move(source, target)


# Conditional writes of one object (GCS's generation preconditions, through
# gcsfs): what the lock of a workdir in a bucket is built on (workdir.py).

def _gcs_object(path: str):
  fs, p = _fs(path)
  if not path.startswith('gs://'):
    raise UserError(f'{path}: a lock needs gs:// (GCS\'s preconditions)')
  bucket, key, _ = fs.split_path(p)
  return fs, bucket, key


def write_if_generation(path: str, data: bytes, generation: str) -> str:
  """Writes the object `path` only if its generation is `generation` ('0':
  only if there is none); returns the new generation.

  Raises:
    FileExistsError: the object is not at that generation.
  """
  from urllib.parse import quote  # noqa: PLC0415
  fs, bucket, key = _gcs_object(path)
  written = fs.call(
      'POST', f'{fs._location}/upload/storage/v1/b/{quote(bucket)}/o',  # noqa: SLF001
      uploadType='media', name=key, ifGenerationMatch=generation, data=data,
      json_out=True)
  return str(written['generation'])


def remove_if_generation(path: str, generation: str) -> bool:
  """Deletes the object `path` if it is at `generation`; whether it did."""
  fs, bucket, key = _gcs_object(path)
  try:
    fs.call('DELETE', 'b/{}/o/{}', bucket, key, ifGenerationMatch=generation)
  except (FileExistsError, FileNotFoundError):
    return False
  return True


def read_with_generation(path: str) -> tuple[bytes, str] | None:
  """(contents, generation) of the object `path`, None if there is none. The
  generation is read first: a later writer makes a conditional write on it
  fail, never succeed wrongly."""
  fs, bucket, key = _gcs_object(path)
  p = f'{bucket}/{key}'
  try:
    generation = str(fs.info(p)['generation'])
    return fs.cat_file(p), generation
  except FileNotFoundError:
    return None


def glob(pattern: str) -> list[str]:
  """The paths matching the glob `pattern` (a URL's as URLs), sorted."""
  if is_remote(pattern):
    fs, p = _fs(pattern)
    protocol = pattern.split('://', 1)[0]
    return sorted(f'{protocol}://{found}' for found in fs.glob(p))
  import glob as glob_lib  # noqa: PLC0415
  return sorted(glob_lib.glob(pattern))


def walk_files(root: str) -> list[str]:
  """Every file below `root`, relative to it ('/'-separated), sorted."""
  if is_remote(root):
    fs, p = _fs(root)
    p = p.rstrip('/')
    return sorted(found[len(p) + 1:] for found in fs.find(p))
  found = []
  for directory, _, names in os.walk(root):
    for name in names:
      found.append(os.path.relpath(os.path.join(directory, name), root))
  return sorted(found)


def existing_ancestor(path: str) -> str:
  """The nearest directory-or-file above `path` that exists (absolute)."""
  parent = os.path.dirname(os.path.abspath(path))
  while not os.path.lexists(parent):
    parent = os.path.dirname(parent)
  return parent


def check_writable_file(path: str, flag: str) -> None:
  """UserError unless a file can be written at `path`: not a directory, and
  the nearest existing parent is a writable directory (a URL: not a
  directory; its storage says at the write whether it can be written)."""
  if is_remote(path):
    if isdir(path):
      raise UserError(f'{flag}={path} is a directory; name a file in it')
    return
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
    if e.filename is None:  # gcsfs's errors have a message but no strerror
      raise OSError(e.errno, e.strerror or str(e), path) from e
    raise


def write_text(path: str, text: str) -> None:
  """Writes `text` to `path` atomically."""
  write_bytes(path, text.encode())


def write_bytes(path: str, data: bytes) -> None:
  """Writes `data` to `path` atomically (an object: in place, see above)."""
  if is_remote(path):
    with open_file(path, 'wb') as f:
      f.write(data)
    return
  tmp = path + '.tmp'
  with naming(path):
    with open(tmp, 'wb') as f:
      f.write(data)
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
    with open_file(path, 'rb') as f:
      text = f.read().decode('utf-8')
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
  with open_file(path, 'rb') as f:
    return hashlib.file_digest(f, algorithm).hexdigest()


def write_json(path: str, obj) -> None:
  """Writes `obj` to `path` atomically as strict, indented, key-sorted JSON."""
  write_text(path, json.dumps(strict(obj), indent=2, sort_keys=True,
                              allow_nan=False) + '\n')


def write_npz(path: str, arrays: Mapping) -> None:
  """Writes `arrays` (name -> array) to `path` as an .npz, atomically; makes
  the directory."""
  import io  # noqa: PLC0415

  import numpy as np  # noqa: PLC0415 (the JSON writers need no NumPy)
  makedirs(os.path.dirname(abspath(path)))
  if is_remote(path):
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    write_bytes(path, buffer.getvalue())
    return
  tmp = path + '.tmp'
  with open(tmp, 'wb') as f:
    np.savez(f, **arrays)
  os.replace(tmp, path)


def read_npz(path: str, names: tuple[str, ...], instead: str) -> dict | None:
  """The arrays `names` of the .npz at `path` (a cache), None if there is no
  such file, or when it is damaged (truncated, not an .npz, an array
  missing): then one warning line names it and says `instead`."""
  import io  # noqa: PLC0415

  import numpy as np  # noqa: PLC0415
  if not exists(path):
    return None
  try:
    data = io.BytesIO(read_bytes(path)) if is_remote(path) else path
    with np.load(data, allow_pickle=False) as npz:
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

