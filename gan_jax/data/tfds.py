"""TFDS datasets (`data.source=tfds`), read whole into host memory.

TensorFlow is imported only here, only when a TFDS dataset is read, and kept
off the accelerators. Offline (no DNS for the dataset's host) a missing
prepared copy is a one-line error naming the local alternatives at once,
instead of minutes of download retries.
"""

import os
import socket
import urllib.request

from absl import logging
import numpy as np

from gan_jax.data.datasets import DATASETS
from gan_jax.data.labeled import LabeledData
from gan_jax.data.labeled import checked_labeled
from gan_jax.errors import UserError
from gan_jax.errors import one_line


def offline_reason(name: str) -> str | None:
  """Why TFDS cannot download `name` right now (DNS fails), or None."""
  host = DATASETS[name].tfds_host
  if urllib.request.getproxies():  # The proxy resolves names, not us.
    return None
  try:
    socket.getaddrinfo(host, 443)
  except OSError as e:
    return f'offline: cannot resolve {host}: {one_line(e, 120)}'
  return None


def _local_hint(name: str) -> str:
  hint = '--config.data.tfds_data_dir=DIR holding a prepared copy'
  if 'idx' in DATASETS[name].sources:
    hint = ('--config.data.source=idx --config.data.path=DIR (a directory of'
            f' MNIST-format idx files), or {hint}')
  return f'to use local data pass {hint}'


def _prepared_builder(name: str, data_dir: str | None):
  """(tfds module, a prepared builder of `name`); UserError if it cannot be."""
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '1')  # no C++ INFO banners
  # pylint: disable=g-import-not-at-top
  import tensorflow as tf
  import tensorflow_datasets as tfds
  # pylint: enable=g-import-not-at-top
  try:  # TF only reads files here: keep it off the accelerators JAX uses.
    tf.config.set_visible_devices([], 'GPU')
  except (RuntimeError, ValueError) as e:
    logging.warning('could not hide GPUs from TensorFlow: %s', e)

  data_dir = os.path.expanduser(data_dir) if data_dir else None
  builder = tfds.builder(name, data_dir=data_dir)
  if not builder.is_prepared():
    reason = offline_reason(name)
    if reason is None:
      logging.info('%s: no prepared TFDS copy in %s; downloading', name,
                   builder.data_dir)
      try:
        builder.download_and_prepare()
      except Exception as e:  # pylint: disable=broad-except
        reason = one_line(e)
        if isinstance(e, ModuleNotFoundError) and e.name:
          reason += f'; TFDS needs `pip install {e.name}`'
    if reason is not None:
      raise UserError(f'TFDS could not download/prepare {name} into'
                      f' {builder.data_dir} ({reason}); {_local_hint(name)}')
  return tfds, builder


def load_images(name: str, data_dir: str | None) -> tuple[np.ndarray, str]:
  """uint8 [N, H, W, C] images of the TFDS 'train' split, and a description."""
  tfds, builder = _prepared_builder(name, data_dir)
  dataset = builder.as_dataset(split='train').map(lambda ex: ex['image'])
  batches = list(tfds.as_numpy(dataset.batch(10_000)))
  images = np.concatenate(batches) if batches else np.zeros((0,), np.uint8)
  shape = DATASETS[name].example_shape
  if images.dtype != np.uint8 or images.shape[1:] != shape or not len(images):
    raise UserError(f'TFDS {name} in {builder.data_dir} gave {images.dtype.name}'
                    f' images of shape {images.shape}; expected uint8 [N, '
                    f'{", ".join(map(str, shape))}] with N > 0')
  description = (f'{name}: {len(images)} images {"x".join(map(str, shape))}'
                 f' from TFDS (train split, {builder.data_dir})')
  return images, description


def train_count(name: str, data_dir: str | None) -> int | None:
  """The number of images in the prepared 'train' split, from its metadata
  (nothing is read): what data.pipeline=auto weighs before loading. None
  when the metadata lacks it."""
  _, builder = _prepared_builder(name, data_dir)
  try:
    return builder.info.splits['train'].num_examples
  except KeyError:
    return None


def data_source_images(name: str, data_dir: str | None):
  """The 'train' split's images through `tfds.data_source` (ArrayRecord read
  record by record; no TensorFlow once prepared), for data.pipeline=stream:
  (a grain MapDataset of uint8 [H, W, C], its length, a description)."""
  import grain  # noqa: PLC0415
  tfds, builder = _prepared_builder(name, data_dir)
  try:
    records = tfds.data_source(name, split='train', data_dir=builder.data_dir)
  except Exception as e:  # noqa: BLE001 (e.g. prepared as TFRecord)
    raise UserError(f'TFDS {name} in {builder.data_dir} cannot be read record'
                    f' by record ({one_line(e)}); data.pipeline=stream needs it'
                    ' prepared in the ArrayRecord format (TFDS\'s'
                    ' file_format=array_record), or use data.pipeline=device'
                    ) from None
  description = (f'{name}: {len(records)} images'
                 f' {"x".join(map(str, DATASETS[name].example_shape))} from'
                 f' TFDS (train split, {builder.data_dir}), record by record')
  return grain.MapDataset.source(records).map(_image), len(records), description


def _image(example: dict) -> np.ndarray:
  return np.asarray(example['image'], np.uint8)


def load_labeled(name: str, data_dir: str | None) -> LabeledData:
  tfds, builder = _prepared_builder(name, data_dir)
  splits = {}
  for split in ('train', 'test'):
    dataset = builder.as_dataset(split=split).map(
        lambda ex: (ex['image'], ex['label']))
    batches = list(tfds.as_numpy(dataset.batch(10_000)))
    if not batches:
      raise UserError(f'TFDS {name} in {builder.data_dir} has an empty'
                      f' {split!r} split')
    images = np.concatenate([b[0] for b in batches])
    labels = np.concatenate([b[1] for b in batches])
    splits[split] = checked_labeled(
        name, f'TFDS {name} {split!r} split in {builder.data_dir}', images, labels)
  (train_images, train_labels), (test_images, test_labels) = (
      splits['train'], splits['test'])
  description = (f'{name}: {len(train_images)} train and {len(test_images)} test'
                 f' images with labels from TFDS (train and test splits,'
                 f' {builder.data_dir})')
  return LabeledData(train_images, train_labels, test_images, test_labels,
                     description)
