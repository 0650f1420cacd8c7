"""A prepared dataset: images decoded once into ArrayRecord shards.

`python -m gan_jax.prepare --src=DIR_OR_ZIP --out=OUT` writes OUT/:

  manifest.json                     what the shards hold (MANIFEST_FORMAT)
  images-00000-of-00004.array_record ...

Each record is one image's raw uint8 pixels (H*W*C bytes, row-major), in the
sorted path order of the source; labels (class subfolders) and class names
are in the manifest. `data.name=folder` with `data.path=OUT` reads the shards
instead of decoding files: all into memory (data.pipeline=device), or record
by record (data.pipeline=stream). The manifest records each shard's record
count, byte size and SHA-256, and a hash of all the content: `read` checks
counts and sizes (cheap) on every load; `verify` hashes every byte.
"""

import dataclasses
import hashlib
import json
import os

import numpy as np

from gan_jax.errors import UserError

MANIFEST = 'manifest.json'
MANIFEST_FORMAT = 'gan_jax.prepared/1'
SHARD_BYTES = 256 * 2**20  # a shard's size at most (fewer, larger files)


@dataclasses.dataclass(frozen=True)
class Prepared:
  """A prepared dataset on disk, as its manifest describes it."""
  directory: str
  count: int
  shape: tuple[int, int, int]
  shards: tuple[str, ...]  # absolute paths, in record order
  labels: np.ndarray | None
  classes: tuple[str, ...]
  source: str  # what it was prepared from (for the log)

  def records(self):
    """Random access to the records: grain's ArrayRecordDataSource."""
    import grain  # noqa: PLC0415 (only where a prepared dataset is read)
    return grain.sources.ArrayRecordDataSource(list(self.shards))

  def decode_record(self, record: bytes) -> np.ndarray:
    return np.frombuffer(record, np.uint8).reshape(self.shape)

  def load_all(self) -> np.ndarray:
    """Every image, uint8 [N, H, W, C] (data.pipeline=device)."""
    images = np.empty((self.count, *self.shape), np.uint8)
    records = self.records()
    for start in range(0, self.count, 4096):
      stop = min(start + 4096, self.count)
      chunk = records.__getitems__(range(start, stop))
      images[start:stop] = np.frombuffer(b''.join(chunk), np.uint8).reshape(
          stop - start, *self.shape)
    return images


def is_prepared(directory: str) -> bool:
  return bool(directory) and os.path.isfile(os.path.join(directory, MANIFEST))


def write(out: str, examples, shape: tuple[int, int, int],
          classes: tuple[str, ...], source: str) -> dict:
  """Writes `examples` (an iterable of (uint8 [H, W, C] pixels, label or
  None), in order) as ArrayRecord shards and the manifest into `out`;
  returns the manifest. The manifest is written last, so a preparation that
  stops half-way leaves no dataset that claims to be whole."""
  from array_record.python import array_record_module  # noqa: PLC0415
  os.makedirs(out, exist_ok=True)
  per_shard = max(1, SHARD_BYTES // int(np.prod(shape)))
  content = hashlib.sha256()
  parts, labels, writer, in_shard = [], [], None, 0
  for pixels, label in examples:
    if writer is None or in_shard == per_shard:
      if writer is not None:
        writer.close()
      parts.append(os.path.join(out, f'.images-{len(parts):05d}.partial'))
      # group_size:1: every record readable on its own (random access).
      writer = array_record_module.ArrayRecordWriter(parts[-1], 'group_size:1')
      in_shard = 0
    pixels = np.ascontiguousarray(pixels, np.uint8)
    if pixels.shape != tuple(shape):
      raise ValueError(f'an image of shape {pixels.shape}, not {shape}')
    record = pixels.tobytes()
    content.update(record)
    writer.write(record)
    labels.append(label)
    in_shard += 1
  if writer is None:
    raise UserError(f'{source}: none of its images can be decoded; nothing was'
                    ' prepared')
  writer.close()
  shards = []
  for i, part in enumerate(parts):
    name = f'images-{i:05d}-of-{len(parts):05d}.array_record'
    os.replace(part, os.path.join(out, name))
    count = per_shard if i < len(parts) - 1 else len(labels) - per_shard * i
    shards.append({'file': name, 'count': count,
                   'bytes': os.path.getsize(os.path.join(out, name)),
                   'sha256': _file_hash(os.path.join(out, name))})
  manifest = {
      'format': MANIFEST_FORMAT, 'count': len(labels), 'shape': list(shape),
      'dtype': 'uint8', 'source': source, 'shards': shards,
      'content_sha256': content.hexdigest(),
      'labels': None if not classes else [int(x) for x in labels],
      'classes': list(classes)}
  with open(os.path.join(out, MANIFEST), 'w') as f:
    json.dump(manifest, f)
  return manifest


def _file_hash(path: str) -> str:
  digest = hashlib.sha256()
  with open(path, 'rb') as f:
    for block in iter(lambda: f.read(2**22), b''):
      digest.update(block)
  return digest.hexdigest()


def read(directory: str) -> Prepared:
  """The prepared dataset in `directory`, after checking that its shards are
  the ones its manifest lists (each present, of its byte size and record
  count, the counts summing to the total).

  Raises:
    UserError: an unreadable manifest, or shards that do not match it.
  """
  path = os.path.join(directory, MANIFEST)
  try:
    with open(path) as f:
      manifest = json.load(f)
    count, shape = int(manifest['count']), tuple(manifest['shape'])
    shards = manifest['shards']
  except (OSError, ValueError, KeyError, TypeError) as e:
    raise UserError(f'{path} is not a gan_jax manifest ({type(e).__name__}:'
                    f' {e}); prepare the dataset again with python -m'
                    ' gan_jax.prepare') from None
  if manifest.get('format') != MANIFEST_FORMAT:
    raise UserError(f'{path} has format {manifest.get("format")!r}, not'
                    f' {MANIFEST_FORMAT!r}; prepare the dataset again with'
                    ' python -m gan_jax.prepare')
  redo = f'; prepare it again with python -m gan_jax.prepare --out={directory}'
  for shard in shards:
    file = os.path.join(directory, shard['file'])
    if not os.path.isfile(file):
      raise UserError(f'data.path={directory}: shard {shard["file"]}, listed in'
                      f' {MANIFEST}, is missing{redo}')
    if os.path.getsize(file) != shard['bytes']:
      raise UserError(f'data.path={directory}: shard {shard["file"]} holds'
                      f' {os.path.getsize(file)} bytes, but {MANIFEST} says'
                      f' {shard["bytes"]}{redo}')
  if sum(shard['count'] for shard in shards) != count:
    raise UserError(f'data.path={directory}: the shards of {MANIFEST} hold'
                    f' {sum(s["count"] for s in shards)} records, but it says'
                    f' {count}{redo}')
  labels = manifest.get('labels')
  if labels is not None and len(labels) != count:
    raise UserError(f'data.path={directory}: {MANIFEST} has {len(labels)}'
                    f' labels for {count} images{redo}')
  prepared = Prepared(
      directory=directory, count=count, shape=shape,
      shards=tuple(os.path.join(directory, s['file']) for s in shards),
      labels=None if labels is None else np.asarray(labels, np.int32),
      classes=tuple(manifest.get('classes', ())),
      source=str(manifest.get('source', '?')))
  records = len(prepared.records())
  if records != count:
    raise UserError(f'data.path={directory}: its shards hold {records} records,'
                    f' but {MANIFEST} says {count}{redo}')
  return prepared


def verify(directory: str) -> str:
  """Hashes every shard and the content against the manifest: a line saying
  what matched.

  Raises:
    UserError: a shard or the content differs from what the manifest says.
  """
  prepared = read(directory)
  with open(os.path.join(directory, MANIFEST)) as f:
    manifest = json.load(f)
  for shard in manifest['shards']:
    if _file_hash(os.path.join(directory, shard['file'])) != shard['sha256']:
      raise UserError(f'{directory}: shard {shard["file"]} does not match the'
                      f' SHA-256 in {MANIFEST}; prepare the dataset again')
  content = hashlib.sha256()
  records = prepared.records()
  for start in range(0, prepared.count, 4096):
    for record in records.__getitems__(range(start, min(start + 4096,
                                                        prepared.count))):
      content.update(record)
  if content.hexdigest() != manifest['content_sha256']:
    raise UserError(f'{directory}: the records do not match the content'
                    f' SHA-256 in {MANIFEST}; prepare the dataset again')
  return (f'{directory}: {prepared.count} images {"x".join(map(str, prepared.shape))}'
          f' in {len(prepared.shards)} shards, every hash matches')
