"""Datasets: images (TFDS, MNIST-format idx files, a folder of one's own) and
2-D toy mixtures.

`load(config.data)` returns a `DataSource`: host arrays the trainer places on
the devices once, plus a pure `sample_one(arrays, key)` that draws one example
inside the compiled step. Batches are drawn i.i.d. with replacement (uniform
over the images, or exactly from the toy mixture), so no input pipeline runs
during training.

  datasets.py  the registry DATASETS (example shape, valid sources, summary)
  source.py    DataSource, and how an image is drawn and scaled
  toys.py      the 2-D mixtures (ring8, grid25, swissroll)
  idx.py       MNIST-format idx files (data.source=idx)
  tfds.py      TFDS (data.source=tfds; TensorFlow imported only there)
  folder.py    a folder of the user's own images (data.name=folder)
  labeled.py   labeled train/test splits, for the classifier and evaluators
"""

import types

import numpy as np

from gan_jax import registry
from gan_jax.data import folder
from gan_jax.data import idx
from gan_jax.data import tfds
from gan_jax.data import toys
from gan_jax.data.datasets import DATASETS
from gan_jax.data.datasets import LABELED_NAMES
from gan_jax.data.datasets import NUM_CLASSES
from gan_jax.data.datasets import SOURCES
from gan_jax.data.datasets import Dataset
from gan_jax.data.datasets import check_source
from gan_jax.data.datasets import example_shape
from gan_jax.data.datasets import spec
from gan_jax.data.labeled import LabeledData
from gan_jax.data.source import DataSource
from gan_jax.data.source import scale_pixels

__all__ = ['DATASETS', 'LABELED_NAMES', 'NUM_CLASSES', 'SOURCES', 'DataSource',
           'Dataset', 'LabeledData', 'check_source', 'example_shape',
           'example_shape_of', 'folder', 'idx',
           'load', 'load_labeled', 'scale_pixels', 'spec', 'synthetic', 'tfds',
           'toys']


def load(data_config) -> DataSource:
  """The DataSource for `data_config` (name, source, path, tfds_data_dir).

  Raises:
    UserError: unknown name, a source not valid for it, or missing/bad data.
  """
  name, source = data_config.name, data_config.source
  check_source(name, source)
  dataset = DATASETS[name]
  if name == 'folder':
    images = folder.load(*_folder_args(data_config))
    return DataSource(name=name, kind='images',
                      example_shape=images.images.shape[1:],
                      arrays={'images': images.images},
                      sample_one=dataset.sample_one,
                      description=images.description, labels=images.labels,
                      classes=images.classes)
  if dataset.toy is not None:
    return dataset.toy(name)
  if dataset.read_as is not None:
    return _load_read_as(name, data_config)
  if source == 'idx':
    images, description = idx.load_images(name, getattr(data_config, 'path', ''))
  else:
    images, description = tfds.load_images(
        name, getattr(data_config, 'tfds_data_dir', None))
  return DataSource(name=name, kind='images', example_shape=dataset.example_shape,
                    arrays={'images': images}, sample_one=dataset.sample_one,
                    description=description)


def example_shape_of(data_config) -> tuple[int, ...]:
  """The shape of one example of `data_config`'s dataset: the registry's, or
  for a folder its files' (their headers only) or data.resolution's."""
  if data_config.name == 'folder':
    return folder.example_shape(*_folder_args(data_config))
  return example_shape(data_config.name)


def _folder_args(data_config) -> tuple[str, int, int]:
  return (getattr(data_config, 'path', ''), getattr(data_config, 'resolution', 0),
          getattr(data_config, 'channels', 0))


def synthetic(name: str, num_images: int = 1024, seed: int = 0) -> DataSource:
  """Dataset `name` with no files: random uint8 images of its shape (the same
  sampling as the real data), or the toy mixture itself. For benchmarks."""
  dataset = spec(name)
  if dataset.toy is not None:
    return dataset.toy(name)
  height, width, channels = example_shape(dataset.read_as or name)
  images = np.random.default_rng(seed).integers(
      0, 256, (num_images, height, width, channels), np.uint8)
  return DataSource(name=name, kind='images', example_shape=dataset.example_shape,
                    arrays={'images': images}, sample_one=dataset.sample_one,
                    description=f'{name}: {num_images} random images (synthetic)')


def _load_read_as(name: str, data_config) -> DataSource:
  """The images of DATASETS[name].read_as, from the same source, sampled as
  `name` (stacked_mnist: MNIST's)."""
  dataset = DATASETS[name]
  images = load(_with_name(data_config, dataset.read_as))
  return DataSource(
      name=name, kind='images', example_shape=dataset.example_shape,
      arrays=images.arrays, sample_one=dataset.sample_one,
      description=f'{name}: {dataset.sampling}, drawn from {images.description}')


def _with_name(data_config, name: str):
  """A copy of `data_config` (ConfigDict or any attribute bag) with another name."""
  fields = {field: getattr(data_config, field, None)
            for field in ('source', 'path', 'tfds_data_dir')}
  return types.SimpleNamespace(name=name, **fields)


def load_labeled(data_config) -> LabeledData:
  """Labeled train and test images of `data_config` (name, source, path, ...).

  idx: the train-* files train and the t10k-* files test; with only t10k-*,
  its first 80% train and its last 20% are held out for testing (8,000 /
  2,000 of the official 10k), which the description says. tfds: the 'train'
  and 'test' splits.

  Raises:
    UserError: a name other than LABELED_NAMES, a bad source, missing or bad
      files.
  """
  name, source = data_config.name, data_config.source
  registry.lookup(DATASETS, 'data.name', name, among=LABELED_NAMES,
                  context='labeled data (the classifier, the image evaluators)')
  check_source(name, source)
  if source == 'idx':
    return idx.load_labeled(name, getattr(data_config, 'path', ''))
  return tfds.load_labeled(name, getattr(data_config, 'tfds_data_dir', None))
