"""MNIST-format IDX files (`data.source=idx`): images, labels and labeled splits.

A directory holds `train-*` and/or `t10k-*` files, gzip-compressed or not;
training reads the train split if present, else the test split (t10k), and
the log says which.
"""

import gzip
import math
import os
import struct
import zlib

from absl import logging
import numpy as np

from gan_jax.data.datasets import DATASETS
from gan_jax.data.labeled import T10K_HELD_OUT_FRACTION
from gan_jax.data.labeled import LabeledData
from gan_jax.data.labeled import checked_labeled
from gan_jax.errors import UserError
from gan_jax.errors import one_line

_IDX_DTYPES = {
    0x08: np.dtype('u1'),
    0x09: np.dtype('i1'),
    0x0B: np.dtype('>i2'),
    0x0C: np.dtype('>i4'),
    0x0D: np.dtype('>f4'),
    0x0E: np.dtype('>f8'),
}
_IDX_SPLITS = (('train', 'train split'),
               ('t10k', 'test split: no train file found'))
_IDX_HINT = ('train-images-idx3-ubyte[.gz] or t10k-images-idx3-ubyte[.gz]')


def read_idx(path: str) -> np.ndarray:
  """The array stored in an IDX file (gzip-compressed or not).

  Raises:
    UserError: the file cannot be read or is not a valid IDX file.
  """
  try:
    with open(path, 'rb') as f:
      payload = f.read()
    if payload[:2] == b'\x1f\x8b':
      payload = gzip.decompress(payload)
  except (OSError, EOFError, zlib.error) as e:
    raise UserError(f'cannot read idx file {path}: {one_line(e)}') from e
  if len(payload) < 4 or payload[:2] != b'\x00\x00':
    raise UserError(f'{path} is not an idx file (bad magic number'
                    f' {payload[:4].hex() or "<empty>"}; expected 0000 + dtype + ndim)')
  code, ndim = payload[2], payload[3]
  if code not in _IDX_DTYPES:
    raise UserError(f'{path} has unknown idx dtype code 0x{code:02x}; valid:'
                    f' {", ".join(f"0x{c:02x}" for c in _IDX_DTYPES)}')
  header_size = 4 + 4 * ndim
  if len(payload) < header_size:
    raise UserError(f'{path} is truncated: {len(payload)} bytes, shorter than'
                    f' its {header_size}-byte idx header')
  shape = struct.unpack(f'>{ndim}I', payload[4:header_size])
  dtype = _IDX_DTYPES[code]
  expected = header_size + math.prod(shape) * dtype.itemsize
  if len(payload) != expected:
    raise UserError(f'{path} is corrupt: {len(payload)} bytes, but its idx header'
                    f' (shape {shape}, {dtype.name}) needs {expected}')
  data = np.frombuffer(payload, dtype, offset=header_size).reshape(shape)
  return data.astype(dtype.newbyteorder('='))


def find_idx(directory: str, stem: str) -> str | None:
  for suffix in ('', '.gz'):
    path = os.path.join(directory, stem + suffix)
    if os.path.isfile(path):
      return path
  return None


def split_files(directory: str) -> tuple[str, str, str]:
  """(split, images file, note) of `directory`: train if present, else t10k."""
  if not directory:
    raise UserError('data.path is empty; point --config.data.path at a directory'
                    f' holding {_IDX_HINT}')
  directory = os.path.expanduser(directory)
  if not os.path.exists(directory):
    raise UserError(f'data.path={directory!r} does not exist; point'
                    f' --config.data.path at a directory holding {_IDX_HINT}')
  if not os.path.isdir(directory):
    raise UserError(f'data.path={directory!r} is not a directory; point'
                    f' --config.data.path at a directory holding {_IDX_HINT}')
  for split, note in _IDX_SPLITS:
    path = find_idx(directory, f'{split}-images-idx3-ubyte')
    if path:
      return split, path, note
  raise UserError(f'data.path={directory!r} holds no {_IDX_HINT}; point'
                  ' --config.data.path at a directory of MNIST-format idx files')


def load_images(name: str, directory: str) -> tuple[np.ndarray, str]:
  """uint8 [N, H, W, 1] images of the idx directory, and a description."""
  split, path, note = split_files(directory)
  images = read_idx(path)
  height, width, _ = DATASETS[name].example_shape
  if images.dtype != np.uint8 or images.shape[1:] != (height, width):
    raise UserError(f'{path} holds {images.dtype.name} data of shape {images.shape};'
                    f' {name} needs uint8 images of shape [N, {height}, {width}]')
  if not len(images):
    raise UserError(f'{path} holds no images; {name} needs at least one')
  logging.info('%s: reading idx file %s (%s)', name, path, note)
  description = (f'{name}: {len(images)} images {height}x{width}x1 from idx file'
                 f' {path} ({note})')
  return images[..., None], description


def load_labels(directory: str) -> np.ndarray:
  """uint8 [N] labels matching the images `load` reads from `directory`.

  The split is the one `load` picks (train if its images file exists, else
  t10k); the labels file is `<split>-labels-idx1-ubyte[.gz]`.
  """
  split, images_path, _ = split_files(directory)
  stem = f'{split}-labels-idx1-ubyte'
  path = find_idx(os.path.dirname(images_path), stem)
  if path is None:
    raise UserError(f'data.path={directory!r} has {os.path.basename(images_path)}'
                    f' but no {stem}[.gz]; add the labels file of the same split')
  labels = read_idx(path)
  if labels.dtype != np.uint8 or labels.ndim != 1:
    raise UserError(f'{path} holds {labels.dtype.name} data of shape {labels.shape};'
                    ' labels must be uint8 of shape [N]')
  return labels


def _read_idx_pair(name: str, directory: str,
                   split: str) -> tuple[np.ndarray, np.ndarray, str] | None:
  """(images, labels, images path) of `split` in `directory`, or None if no
  images file; UserError if the images have no labels file."""
  images_path = find_idx(directory, f'{split}-images-idx3-ubyte')
  if images_path is None:
    return None
  stem = f'{split}-labels-idx1-ubyte'
  labels_path = find_idx(directory, stem)
  if labels_path is None:
    raise UserError(f'data.path={directory!r} has {os.path.basename(images_path)}'
                    f' but no {stem}[.gz]; add the labels file of the same split')
  where = f'{images_path} + {os.path.basename(labels_path)}'
  images, labels = checked_labeled(name, where, read_idx(images_path),
                                    read_idx(labels_path))
  return images, labels, images_path


def load_labeled(name: str, directory: str) -> LabeledData:
  split_files(directory)  # UserError unless a directory with images files.
  directory = os.path.expanduser(directory)
  train = _read_idx_pair(name, directory, 'train')
  test = _read_idx_pair(name, directory, 't10k')
  if test is None:
    raise UserError(f'data.path={directory!r} has train-images-idx3-ubyte but no'
                    ' t10k-images-idx3-ubyte[.gz]; add the test split files'
                    ' (t10k-images and t10k-labels) to measure test accuracy')
  if train is not None:
    description = (f'{name}: {len(train[0])} train images from {train[2]} and'
                   f' {len(test[0])} test images from {test[2]} (the official'
                   ' train/test splits)')
    return LabeledData(train[0], train[1], test[0], test[1], description)
  images, labels, path = test
  num_test = round(len(images) * T10K_HELD_OUT_FRACTION)
  num_train = len(images) - num_test
  if not num_test or not num_train:
    raise UserError(f'{path} holds {len(images)} images; splitting it into'
                    ' train and held-out test needs at least 5')
  description = (f'{name}: no train split in {directory}, so {path} is split:'
                 f' its first {num_train} images train and its last {num_test}'
                 ' are held out for testing (NOT the official train/test'
                 ' splits)')
  return LabeledData(images[:num_train], labels[:num_train], images[num_train:],
                     labels[num_train:], description)
