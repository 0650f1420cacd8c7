"""Datasets: images (TFDS or MNIST-format idx files) and 2-D toy mixtures.

`load(config.data)` returns a `DataSource`: host arrays the trainer places on
the devices once, plus a pure `sample_one(arrays, key)` that draws one example
inside the compiled step. Batches are drawn i.i.d. with replacement (uniform
over the images, or exactly from the toy mixture), so no input pipeline runs
during training.

DATASETS maps each name to its spec (`Dataset`: example shape, valid sources,
a summary, how it is read); the valid names and sources derive from it.

TensorFlow is imported lazily, only for `data.source='tfds'`.
"""

from collections.abc import Callable
import dataclasses
import functools
import gzip
import math
import os
import socket
import struct
import types
import urllib.request
import zlib

from absl import logging
import jax
import jax.numpy as jnp
import numpy as np

from gan_jax.errors import UserError

SOURCES = ('tfds', 'idx', 'toy')

# Toy mixtures. PacGAN (Lin et al. 2018): 8 Gaussians on the unit circle with
# std 0.01, and 25 Gaussians on {-4,-2,0,2,4}^2 with std 0.05.
RING8_STD = 0.01
GRID25_STD = 0.05
# WGAN-GP toy code (Gulrajani et al. 2017, gan_toy.py): sklearn's
# make_swiss_roll(noise=0.25), coordinates (x, z), divided by 7.5.
SWISSROLL_NOISE = 0.25
SWISSROLL_SCALE = 7.5

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


@dataclasses.dataclass(frozen=True)
class DataSource:
  """A dataset as the trainer sees it.

  Attributes:
    name: dataset name, a key of DATASETS.
    kind: 'images' or 'points'.
    example_shape: shape of one example, e.g. (28, 28, 1) or (2,).
    arrays: host arrays that `sample_one` reads (put on the devices once).
    sample_one: pure, jittable, vmappable (arrays, key) -> one float32 example
      (images in [-1, 1]).
    description: one line for the log.
    modes: float32 [K, 2] mode centres of a discrete toy mixture, else None.
    mode_std: the per-coordinate std of those modes, else None.
  """
  name: str
  kind: str
  example_shape: tuple[int, ...]
  arrays: dict[str, np.ndarray]
  sample_one: Callable[[dict, jax.Array], jax.Array]
  description: str
  modes: np.ndarray | None = None
  mode_std: float | None = None


# ----------------------------------------------------------------- samplers


def scale_pixels(images):
  """uint8 pixels (numpy or jax) -> float32 in [-1, 1], the range the models
  and the classifier see."""
  return images.astype(np.float32) / 127.5 - 1.0


def _sample_image(arrays: dict, key: jax.Array) -> jax.Array:
  """A uniformly random image of arrays['images'] (uint8), scaled to [-1, 1]."""
  images = arrays['images']
  index = jax.random.randint(key, (), 0, images.shape[0])
  return scale_pixels(jax.lax.dynamic_index_in_dim(images, index, keepdims=False))


def _sample_stacked_digits(arrays: dict, key: jax.Array) -> jax.Array:
  """Three independent uniformly random digits as the channels of one image.

  Stacked MNIST (Srivastava et al. 2017, VEEGAN; Lin et al. 2018, PacGAN):
  10^3 = 1,000 modes, one per digit triple.
  """
  digits = jax.vmap(functools.partial(_sample_image, arrays))(
      jax.random.split(key, 3))  # [3, 28, 28, 1]
  return jnp.moveaxis(digits[..., 0], 0, -1)


# ----------------------------------------------------------------- toys


def _ring8_centres() -> np.ndarray:
  angles = 2 * np.pi * np.arange(8) / 8
  return np.stack([np.cos(angles), np.sin(angles)], axis=1).astype(np.float32)


def _grid25_centres() -> np.ndarray:
  values = np.array([-4.0, -2.0, 0.0, 2.0, 4.0])
  x, y = np.meshgrid(values, values, indexing='ij')
  return np.stack([x.ravel(), y.ravel()], axis=1).astype(np.float32)


def _mixture_sampler(std: float) -> Callable[[dict, jax.Array], jax.Array]:
  """Uniform mixture of isotropic Gaussians at arrays['centers']."""

  def sample_one(arrays: dict, key: jax.Array) -> jax.Array:
    centers = arrays['centers']
    mode_key, noise_key = jax.random.split(key)
    index = jax.random.randint(mode_key, (), 0, centers.shape[0])
    noise = std * jax.random.normal(noise_key, (2,), jnp.float32)
    return centers[index] + noise

  return sample_one


def _mixture(centres: Callable[[], np.ndarray], std: float, layout: str,
             name: str) -> DataSource:
  """A uniform mixture of Gaussians of std `std` at `centres()` (its modes)."""
  points = centres()
  return DataSource(
      name=name, kind='points', example_shape=(2,), arrays={'centers': points},
      sample_one=_mixture_sampler(std),
      description=(f'{name}: {len(points)} Gaussians {layout}, std {std},'
                   ' uniform weights, sampled in the step'),
      modes=points, mode_std=std)


def _sample_swissroll(arrays: dict, key: jax.Array) -> jax.Array:
  """One point of make_swiss_roll(noise=0.25)[:, [0, 2]] / 7.5 (gan_toy.py)."""
  del arrays  # Unused.
  t_key, noise_key = jax.random.split(key)
  t = 1.5 * jnp.pi * (1 + 2 * jax.random.uniform(t_key, (), jnp.float32))
  point = jnp.stack([t * jnp.cos(t), t * jnp.sin(t)])
  point = point + SWISSROLL_NOISE * jax.random.normal(noise_key, (2,), jnp.float32)
  return point / SWISSROLL_SCALE


def _swissroll(name: str) -> DataSource:
  return DataSource(
      name=name, kind='points', example_shape=(2,), arrays={},
      sample_one=_sample_swissroll,
      description=(f'{name}: make_swiss_roll(noise={SWISSROLL_NOISE}) /'
                   f' {SWISSROLL_SCALE}, sampled in the step (WGAN-GP toy)'))


# ----------------------------------------------------------------- registry


@dataclasses.dataclass(frozen=True)
class Dataset:
  """What the code knows of one dataset: an entry of DATASETS.

  Attributes:
    example_shape: shape of one example, e.g. (28, 28, 1) or (2,).
    sources: the valid data.source values (of SOURCES).
    summary: one line for the docs: what it is, and its paper or source.
    tfds_host: where TFDS downloads it from (an unresolvable host means we are
      offline: fail at once instead of after minutes of retries), or None.
    labeled: 28x28x1 images of NUM_CLASSES classes, which `load_labeled` reads
      and the LeNet classifier trains on.
    toy: name -> the DataSource of a toy (source 'toy', no files), or None for
      images.
    read_as: the dataset whose images it reads, from the same source (None:
      its own).
    sample_one: (arrays, key) -> one example of the images read (a uniformly
      random one by default).
    sampling: how `sample_one` draws an example of `read_as`'s images, for the
      log.
  """
  example_shape: tuple[int, ...]
  sources: tuple[str, ...]
  summary: str
  tfds_host: str | None = None
  labeled: bool = False
  toy: Callable[[str], DataSource] | None = None
  read_as: str | None = None
  sample_one: Callable[[dict, jax.Array], jax.Array] = _sample_image
  sampling: str = ''


def _toy(summary: str, build: Callable[[str], DataSource]) -> Dataset:
  """The spec of a 2-D toy that `build(name)` makes."""
  return Dataset(example_shape=(2,), sources=('toy',), summary=summary, toy=build)


DATASETS: dict[str, Dataset] = {
    'mnist': Dataset(
        example_shape=(28, 28, 1), sources=('tfds', 'idx'),
        summary='MNIST: 28x28 grey handwritten digits (LeCun et al. 1998)',
        tfds_host='storage.googleapis.com', labeled=True),
    'fashion_mnist': Dataset(
        example_shape=(28, 28, 1), sources=('tfds', 'idx'),
        summary='Fashion-MNIST: 28x28 grey clothing images (Xiao et al. 2017)',
        tfds_host='fashion-mnist.s3-website.eu-central-1.amazonaws.com',
        labeled=True),
    'cifar10': Dataset(
        example_shape=(32, 32, 3), sources=('tfds',),
        summary='CIFAR-10: 32x32 colour photographs (Krizhevsky 2009)',
        tfds_host='www.cs.toronto.edu'),
    'stacked_mnist': Dataset(
        example_shape=(28, 28, 3), sources=('tfds', 'idx'),
        summary=('Stacked MNIST: 3 random digits as channels, 1,000 modes'
                 ' (Srivastava et al. 2017, VEEGAN; Lin et al. 2018, PacGAN)'),
        read_as='mnist', sample_one=_sample_stacked_digits,
        sampling='3 random digits as RGB channels'),
    'ring8': _toy(
        f'8 Gaussians on the unit circle, std {RING8_STD} (Lin et al. 2018,'
        ' PacGAN)',
        functools.partial(_mixture, _ring8_centres, RING8_STD,
                          'on the unit circle')),
    'grid25': _toy(
        f'25 Gaussians on {{-4,-2,0,2,4}}^2, std {GRID25_STD} (Lin et al. 2018,'
        ' PacGAN)',
        functools.partial(_mixture, _grid25_centres, GRID25_STD,
                          'on {-4,-2,0,2,4}^2')),
    'swissroll': _toy(
        f'swiss roll, make_swiss_roll(noise={SWISSROLL_NOISE}) /'
        f' {SWISSROLL_SCALE} (Gulrajani et al. 2017, WGAN-GP toy)',
        _swissroll),
}
LABELED_NAMES = tuple(name for name, d in DATASETS.items() if d.labeled)
NUM_CLASSES = 10


def check_source(name: str, source: str) -> None:
  """UserError (one line) unless `name` is a dataset and `source` valid for it."""
  _check_name(name)
  valid = DATASETS[name].sources
  if source not in valid:
    raise UserError(f'data.source={source!r} is not valid for data.name={name!r};'
                    f' valid: {", ".join(valid)}')


def _check_name(name: str) -> None:
  if name not in DATASETS:
    raise UserError(f'data.name={name!r} is not valid; valid: {", ".join(DATASETS)}')


# ----------------------------------------------------------------- loading


def example_shape(name: str) -> tuple[int, ...]:
  """The shape of one example of dataset `name` (no data is read)."""
  _check_name(name)
  return DATASETS[name].example_shape


def load(data_config) -> DataSource:
  """The DataSource for `data_config` (name, source, path, tfds_data_dir).

  Raises:
    UserError: unknown name, a source not valid for it, or missing/bad data.
  """
  name, source = data_config.name, data_config.source
  check_source(name, source)
  spec = DATASETS[name]
  if spec.toy is not None:
    return spec.toy(name)
  if spec.read_as is not None:
    return _load_read_as(name, data_config)
  if source == 'idx':
    images, description = _load_idx_images(name, getattr(data_config, 'path', ''))
  else:
    images, description = _load_tfds_images(
        name, getattr(data_config, 'tfds_data_dir', None))
  return DataSource(name=name, kind='images', example_shape=spec.example_shape,
                    arrays={'images': images}, sample_one=spec.sample_one,
                    description=description)


def synthetic(name: str, num_images: int = 1024, seed: int = 0) -> DataSource:
  """Dataset `name` with no files: random uint8 images of its shape (the same
  sampling as the real data), or the toy mixture itself. For benchmarks."""
  _check_name(name)
  spec = DATASETS[name]
  if spec.toy is not None:
    return spec.toy(name)
  height, width, channels = DATASETS[spec.read_as or name].example_shape
  images = np.random.default_rng(seed).integers(
      0, 256, (num_images, height, width, channels), np.uint8)
  return DataSource(name=name, kind='images', example_shape=spec.example_shape,
                    arrays={'images': images}, sample_one=spec.sample_one,
                    description=f'{name}: {num_images} random images (synthetic)')


def _load_read_as(name: str, data_config) -> DataSource:
  """The images of DATASETS[name].read_as, from the same source, sampled as
  `name` (stacked_mnist: MNIST's)."""
  spec = DATASETS[name]
  images = load(_with_name(data_config, spec.read_as))
  return DataSource(
      name=name, kind='images', example_shape=spec.example_shape,
      arrays=images.arrays, sample_one=spec.sample_one,
      description=f'{name}: {spec.sampling}, drawn from {images.description}')


def _with_name(data_config, name: str):
  """A copy of `data_config` (ConfigDict or any attribute bag) with another name."""
  fields = {field: getattr(data_config, field, None)
            for field in ('source', 'path', 'tfds_data_dir')}
  return types.SimpleNamespace(name=name, **fields)


# ----------------------------------------------------------------- idx files


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
    raise UserError(f'cannot read idx file {path}: {_one_line(e)}') from e
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


def _find_idx(directory: str, stem: str) -> str | None:
  for suffix in ('', '.gz'):
    path = os.path.join(directory, stem + suffix)
    if os.path.isfile(path):
      return path
  return None


def _idx_split(directory: str) -> tuple[str, str, str]:
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
    path = _find_idx(directory, f'{split}-images-idx3-ubyte')
    if path:
      return split, path, note
  raise UserError(f'data.path={directory!r} holds no {_IDX_HINT}; point'
                  ' --config.data.path at a directory of MNIST-format idx files')


def _load_idx_images(name: str, directory: str) -> tuple[np.ndarray, str]:
  """uint8 [N, H, W, 1] images of the idx directory, and a description."""
  split, path, note = _idx_split(directory)
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


def load_idx_labels(directory: str) -> np.ndarray:
  """uint8 [N] labels matching the images `load` reads from `directory`.

  The split is the one `load` picks (train if its images file exists, else
  t10k); the labels file is `<split>-labels-idx1-ubyte[.gz]`.
  """
  split, images_path, _ = _idx_split(directory)
  stem = f'{split}-labels-idx1-ubyte'
  path = _find_idx(os.path.dirname(images_path), stem)
  if path is None:
    raise UserError(f'data.path={directory!r} has {os.path.basename(images_path)}'
                    f' but no {stem}[.gz]; add the labels file of the same split')
  labels = read_idx(path)
  if labels.dtype != np.uint8 or labels.ndim != 1:
    raise UserError(f'{path} holds {labels.dtype.name} data of shape {labels.shape};'
                    ' labels must be uint8 of shape [N]')
  return labels


# ----------------------------------------------------------------- TFDS


def _one_line(error: BaseException, limit: int = 200) -> str:
  """`Type: message` of an exception, on one line and at most ~limit chars."""
  text = ' '.join(f'{type(error).__name__}: {error}'.split())
  return text if len(text) <= limit else text[:limit - 3] + '...'


def _tfds_offline_reason(name: str) -> str | None:
  """Why TFDS cannot download `name` right now (DNS fails), or None."""
  host = DATASETS[name].tfds_host
  if urllib.request.getproxies():  # The proxy resolves names, not us.
    return None
  try:
    socket.getaddrinfo(host, 443)
  except OSError as e:
    return f'offline: cannot resolve {host}: {_one_line(e, 120)}'
  return None


def _tfds_local_hint(name: str) -> str:
  hint = '--config.data.tfds_data_dir=DIR holding a prepared copy'
  if 'idx' in DATASETS[name].sources:
    hint = ('--config.data.source=idx --config.data.path=DIR (a directory of'
            f' MNIST-format idx files), or {hint}')
  return f'to use local data pass {hint}'


def _prepared_tfds_builder(name: str, data_dir: str | None):
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
    reason = _tfds_offline_reason(name)
    if reason is None:
      logging.info('%s: no prepared TFDS copy in %s; downloading', name,
                   builder.data_dir)
      try:
        builder.download_and_prepare()
      except Exception as e:  # pylint: disable=broad-except
        reason = _one_line(e)
        if isinstance(e, ModuleNotFoundError) and e.name:
          reason += f'; TFDS needs `pip install {e.name}`'
    if reason is not None:
      raise UserError(f'TFDS could not download/prepare {name} into'
                      f' {builder.data_dir} ({reason}); {_tfds_local_hint(name)}')
  return tfds, builder


def _load_tfds_images(name: str, data_dir: str | None) -> tuple[np.ndarray, str]:
  """uint8 [N, H, W, C] images of the TFDS 'train' split, and a description."""
  tfds, builder = _prepared_tfds_builder(name, data_dir)
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


# ----------------------------------------------------------------- labeled

# With only the t10k files, the last T10K_HELD_OUT_FRACTION of them are held
# out for testing and the rest train (10,000 images: 8,000 / 2,000).
T10K_HELD_OUT_FRACTION = 0.2


@dataclasses.dataclass(frozen=True)
class LabeledData:
  """Images with class labels, split into train and test.

  Attributes:
    train_images: uint8 [N, 28, 28, 1].
    train_labels: int32 [N], in [0, NUM_CLASSES).
    test_images: uint8 [M, 28, 28, 1].
    test_labels: int32 [M].
    description: one line for the log: where the splits come from.
  """
  train_images: np.ndarray
  train_labels: np.ndarray
  test_images: np.ndarray
  test_labels: np.ndarray
  description: str


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
  if name not in LABELED_NAMES:
    raise UserError(f'data.name={name!r} has no labeled loader; valid:'
                    f' {", ".join(LABELED_NAMES)}')
  check_source(name, source)
  if source == 'idx':
    return _load_labeled_idx(name, getattr(data_config, 'path', ''))
  return _load_labeled_tfds(name, getattr(data_config, 'tfds_data_dir', None))


def _checked_labeled(name: str, where: str, images: np.ndarray,
                     labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """uint8 [N, 28, 28, 1] images and int32 [N] labels; UserError if bad."""
  shape = DATASETS[name].example_shape
  if images.ndim == 3:
    images = images[..., None]
  if images.dtype != np.uint8 or images.shape[1:] != shape or not len(images):
    raise UserError(f'{where} holds {images.dtype.name} images of shape'
                    f' {images.shape}; {name} needs uint8 [N, '
                    f'{", ".join(map(str, shape))}] with N > 0')
  if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
    raise UserError(f'{where} holds {labels.dtype.name} labels of shape'
                    f' {labels.shape}; labels must be integers of shape [N]')
  if len(labels) != len(images):
    raise UserError(f'{where} holds {len(images)} images but {len(labels)}'
                    ' labels; they must match one to one')
  if labels.min() < 0 or labels.max() >= NUM_CLASSES:
    raise UserError(f'{where} holds labels in [{labels.min()}, {labels.max()}];'
                    f' {name} labels must be in [0, {NUM_CLASSES - 1}]')
  return images, labels.astype(np.int32)


def _read_idx_pair(name: str, directory: str,
                   split: str) -> tuple[np.ndarray, np.ndarray, str] | None:
  """(images, labels, images path) of `split` in `directory`, or None if no
  images file; UserError if the images have no labels file."""
  images_path = _find_idx(directory, f'{split}-images-idx3-ubyte')
  if images_path is None:
    return None
  stem = f'{split}-labels-idx1-ubyte'
  labels_path = _find_idx(directory, stem)
  if labels_path is None:
    raise UserError(f'data.path={directory!r} has {os.path.basename(images_path)}'
                    f' but no {stem}[.gz]; add the labels file of the same split')
  where = f'{images_path} + {os.path.basename(labels_path)}'
  images, labels = _checked_labeled(name, where, read_idx(images_path),
                                    read_idx(labels_path))
  return images, labels, images_path


def _load_labeled_idx(name: str, directory: str) -> LabeledData:
  _idx_split(directory)  # UserError unless a directory with images files.
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


def _load_labeled_tfds(name: str, data_dir: str | None) -> LabeledData:
  tfds, builder = _prepared_tfds_builder(name, data_dir)
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
    splits[split] = _checked_labeled(
        name, f'TFDS {name} {split!r} split in {builder.data_dir}', images, labels)
  (train_images, train_labels), (test_images, test_labels) = (
      splits['train'], splits['test'])
  description = (f'{name}: {len(train_images)} train and {len(test_images)} test'
                 f' images with labels from TFDS (train and test splits,'
                 f' {builder.data_dir})')
  return LabeledData(train_images, train_labels, test_images, test_labels,
                     description)
