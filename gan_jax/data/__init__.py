"""Datasets: images (TFDS, MNIST-format idx files, a folder of one's own) and
2-D toy mixtures.

`load(config.data)` returns a `DataSource`. Under data.pipeline=device (what
`auto` picks for a dataset that fits in stream.DEVICE_BYTES): host arrays the
trainer places on the devices once, plus a pure `sample_one(arrays, key)` that
draws one example inside the compiled step, i.i.d. with replacement (uniform
over the images, or exactly from the toy mixture), so no input pipeline runs
during training. Under data.pipeline=stream: random access to the images,
which stream.py reads batch by batch, shuffled per epoch, with grain.

  datasets.py  the registry DATASETS (example shape, valid sources, summary)
  source.py    DataSource, and how an image is drawn and scaled
  toys.py      the 2-D mixtures (ring8, grid25, swissroll)
  idx.py       MNIST-format idx files (data.source=idx)
  tfds.py      TFDS (data.source=tfds; TensorFlow imported only there)
  folder.py    a folder of the user's own images (data.name=folder)
  prepared.py  a folder prepared into ArrayRecord shards (gan_jax.prepare)
  stream.py    the streaming pipeline (data.pipeline=stream)
  labeled.py   labeled train/test splits, for the classifier and evaluators
"""

import re
import types

import numpy as np

from gan_jax import registry
from gan_jax.data import folder
from gan_jax.data import idx
from gan_jax.data import prepared
from gan_jax.data import stream
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
from gan_jax.errors import UserError

__all__ = ['DATASETS', 'LABELED_NAMES', 'NUM_CLASSES', 'SOURCES', 'DataSource',
           'Dataset', 'LabeledData', 'check_source', 'example_shape',
           'example_shape_of', 'folder', 'idx',
           'load', 'load_labeled', 'prepared', 'scale_pixels', 'spec', 'stream',
           'synthetic', 'tfds', 'toys']


def load(data_config, pipeline: str | None = None) -> DataSource:
  """The DataSource for `data_config` (name, source, path, tfds_data_dir,
  pipeline; `pipeline` overrides data.pipeline).

  Raises:
    UserError: unknown name, a source not valid for it, missing/bad data, or
      data.pipeline=stream for data drawn otherwise than one image at a time.
  """
  name, source = data_config.name, data_config.source
  check_source(name, source)
  pipeline = pipeline or getattr(data_config, 'pipeline', '') or 'auto'
  subset = parse_subset(getattr(data_config, 'subset', '') or '')
  dataset = DATASETS[name]
  if subset is not None and dataset.toy is not None:
    raise UserError(f'data.subset={data_config.subset} takes images of a'
                    f' dataset; data.name={name} is drawn from its mixture:'
                    " leave data.subset ''")
  if pipeline == 'stream' and (dataset.toy is not None
                               or dataset.read_as is not None):
    drawn = (dataset.sampling if dataset.read_as is not None
             else 'exactly from its mixture')
    raise UserError(f'data.pipeline=stream reads images one after another, but'
                    f' data.name={name} draws each example {drawn}; use'
                    ' data.pipeline=device (or auto)')
  if name == 'folder':
    return _load_folder(data_config, pipeline, subset)
  if dataset.toy is not None:
    return dataset.toy(name)
  if dataset.read_as is not None:
    return _load_read_as(name, data_config)
  why = f'data.pipeline={pipeline}'
  if source == 'tfds' and pipeline == 'auto':  # weighed before it is read
    count = tfds.train_count(name, getattr(data_config, 'tfds_data_dir', None))
    if count is not None:
      chosen, weighed = stream.choose('auto', count, dataset.example_shape)
      if chosen == 'stream':  # else decided again once read, as before
        pipeline, why = chosen, weighed
  if source == 'tfds' and pipeline == 'stream':
    records, count, description = tfds.data_source_images(
        name, getattr(data_config, 'tfds_data_dir', None))
    return _streamed(name, stream.Examples(records, count, dataset.example_shape),
                     description, why, subset=subset)
  if source == 'idx':
    images, description = idx.load_images(name, getattr(data_config, 'path', ''))
  else:
    images, description = tfds.load_images(
        name, getattr(data_config, 'tfds_data_dir', None))
  return _from_images(name, images, description, pipeline, subset=subset)


def parse_subset(text: str, key: str = 'data.subset') -> slice | None:
  """'START:STOP' (either may be left out) -> that slice of a dataset's
  images; '' -> None (all of them).

  Raises:
    UserError: not of that form, or an empty range.
  """
  if not text:
    return None
  match = re.fullmatch(r'(\d*):(\d*)', text.strip())
  if not match:
    raise UserError(f"{key}={text!r} is not START:STOP (e.g. 0:5000, or 5000:"
                    " for the rest); '' = every image")
  start, stop = (int(g) if g else None for g in match.groups())
  if start is not None and stop is not None and stop <= start:
    raise UserError(f'{key}={text} is empty: STOP must be above START')
  return slice(start, stop)


def take_subset(count: int, subset: slice | None, what: str,
                key: str = 'data.subset') -> range:
  """The indices of `subset` among `count` images of `what`.

  Raises:
    UserError: the subset reaches beyond the images.
  """
  if subset is None:
    return range(count)
  if (subset.stop or 0) > count or (subset.start or 0) >= count:
    given = f'{subset.start or ""}:{subset.stop or ""}'
    raise UserError(f'{key}{"" if key.endswith("@") else "="}{given} reaches'
                    f' beyond the {count} images of {what}')
  return range(count)[subset]


def _describe_subset(description: str, indices: range, count: int) -> str:
  if len(indices) == count:
    return description
  return (f'{description}; images {indices.start}:{indices.stop} of them'
          f' ({len(indices)}, data.subset)')


def _from_images(name: str, images: np.ndarray, description: str,
                 pipeline: str, labels=None, classes=(),
                 subset: slice | None = None) -> DataSource:
  """DataSource of decoded `images` (their `subset`), held on the devices
  or streamed from host memory, as `pipeline` picks."""
  count = len(images)
  indices = take_subset(count, subset, description.split(':')[0])
  images = images[indices.start:indices.stop]
  labels = None if labels is None else labels[indices.start:indices.stop]
  description = _describe_subset(description, indices, count)
  chosen, why = stream.choose(pipeline, len(images), images.shape[1:])
  if chosen == 'stream':
    import grain  # noqa: PLC0415
    return _streamed(name, stream.Examples(
        grain.MapDataset.source(images), len(images), images.shape[1:]),
        description, why, labels, classes)
  return DataSource(name=name, kind='images', example_shape=images.shape[1:],
                    arrays={'images': images},
                    sample_one=DATASETS[name].sample_one,
                    description=description, labels=labels, classes=classes,
                    pipeline='device', pipeline_why=why)


def _streamed(name: str, examples: stream.Examples, description: str,
              why: str, labels=None, classes=(),
              subset: slice | None = None) -> DataSource:
  """DataSource streaming `examples` (their `subset`)."""
  count = examples.count
  indices = take_subset(count, subset, description.split(':')[0])
  if len(indices) != count:
    examples = stream.Examples(examples.dataset[indices.start:indices.stop],
                               len(indices), examples.shape)
    labels = None if labels is None else labels[indices.start:indices.stop]
    description = _describe_subset(description, indices, count)
  return DataSource(name=name, kind='images', example_shape=examples.shape,
                    arrays={}, sample_one=DATASETS[name].sample_one,
                    description=description, labels=labels, classes=classes,
                    pipeline='stream', pipeline_why=why, examples=examples)


def _load_folder(data_config, pipeline: str, subset: slice | None
                 ) -> DataSource:
  """data.name=folder: a prepared dataset (its manifest), else image files,
  decoded whole (device) or as the stream reads them."""
  path, resolution, channels = _folder_args(data_config)
  if prepared.is_prepared(path):
    ready = _prepared(path, resolution, channels)
    description = (f'prepared {path}: {ready.count} images'
                   f' {"x".join(map(str, ready.shape))} (from {ready.source})')
    chosen, why = stream.choose(pipeline, ready.count, ready.shape)
    if chosen == 'device':
      return _from_images('folder', ready.load_all(), description, chosen,
                          ready.labels, ready.classes, subset)
    import grain  # noqa: PLC0415
    records = grain.MapDataset.source(ready.records()).map(ready.decode_record)
    return _streamed('folder', stream.Examples(records, ready.count, ready.shape),
                     description, why, ready.labels, ready.classes, subset)
  found = folder.scan(path, resolution, channels)
  chosen, why = stream.choose(pipeline, len(found.files), found.shape)
  if chosen == 'device':
    images = folder.decode_scanned(found)
    return _from_images('folder', images.images, images.description, chosen,
                        images.labels, images.classes, subset)
  import grain  # noqa: PLC0415
  files = grain.MapDataset.source(found.files).map(found.decode)
  return _streamed('folder', stream.Examples(files, len(found.files), found.shape),
                   found.describe(), why, found.labels, found.classes, subset)


def _prepared(path: str, resolution: int, channels: int) -> prepared.Prepared:
  """The prepared dataset in `path`; UserError if data.resolution or
  data.channels ask for another shape than it was prepared at."""
  ready = prepared.read(path)
  height, width, depth = ready.shape
  if (resolution and (height, width) != (resolution, resolution)) or (
      channels and depth != channels):
    raise UserError(f'data.path={path} was prepared at {height}x{width}x{depth},'
                    f' not data.resolution={resolution}, data.channels='
                    f'{channels}; leave them 0, or prepare it again with'
                    ' python -m gan_jax.prepare --resolution= --channels=')
  return ready


def example_shape_of(data_config) -> tuple[int, ...]:
  """The shape of one example of `data_config`'s dataset: the registry's, or
  for a folder its files' (their headers only) or data.resolution's."""
  if data_config.name == 'folder':
    path, resolution, channels = _folder_args(data_config)
    if prepared.is_prepared(path):
      return _prepared(path, resolution, channels).shape
    return folder.example_shape(path, resolution, channels)
  return example_shape(data_config.name)


def _folder_args(data_config) -> tuple[str, int, int]:
  return (getattr(data_config, 'path', ''), getattr(data_config, 'resolution', 0),
          getattr(data_config, 'channels', 0))


def synthetic(name: str, num_images: int = 1024, seed: int = 0,
              pipeline: str = 'device') -> DataSource:
  """Dataset `name` with no files: random uint8 images of its shape (the same
  sampling as the real data, held on the devices or streamed as `pipeline`
  says), or the toy mixture itself. For benchmarks and tests."""
  dataset = spec(name)
  if dataset.toy is not None:
    return dataset.toy(name)
  height, width, channels = example_shape(dataset.read_as or name)
  images = np.random.default_rng(seed).integers(
      0, 256, (num_images, height, width, channels), np.uint8)
  description = f'{name}: {num_images} random images (synthetic)'
  if dataset.read_as is None:
    return _from_images(name, images, description, pipeline)
  return DataSource(name=name, kind='images', example_shape=dataset.example_shape,
                    arrays={'images': images}, sample_one=dataset.sample_one,
                    description=description)


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
            for field in ('source', 'path', 'tfds_data_dir', 'subset')}
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
