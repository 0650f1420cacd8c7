"""Tests of gan_jax.data: idx files, mocked TFDS, the toy mixtures, errors."""

import gzip
import os
import socket
import struct
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from gan_jax import configs
from gan_jax import data
from gan_jax.errors import UserError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REAL_MNIST = '/work/shared/data/mnist'
_CODES = {np.dtype('u1'): 0x08, np.dtype('i1'): 0x09, np.dtype('>i2'): 0x0B,
          np.dtype('>i4'): 0x0C, np.dtype('>f4'): 0x0D, np.dtype('>f8'): 0x0E}


def _config(name, source, path='', tfds_data_dir=''):
  return ml_collections.ConfigDict(
      dict(name=name, source=source, path=path, tfds_data_dir=tfds_data_dir))


def _idx_bytes(array: np.ndarray) -> bytes:
  header = struct.pack('>HBB', 0, _CODES[array.dtype], array.ndim)
  return header + struct.pack(f'>{array.ndim}I', *array.shape) + array.tobytes()


def _write(path, payload: bytes) -> str:
  path = str(path)
  with (gzip.open if path.endswith('.gz') else open)(path, 'wb') as f:
    f.write(payload)
  return path


def _images(n: int, seed: int) -> np.ndarray:
  """n distinct uint8 [28, 28] images with known pixels."""
  base = np.arange(28 * 28).reshape(28, 28)
  return np.stack([(base * (seed + 3) + 17 * i) % 256 for i in range(n)]).astype(np.uint8)


def _draw(source: data.DataSource, n: int, seed: int = 0) -> np.ndarray:
  """n examples as the trainer draws them: jit(vmap(sample_one)) on device arrays."""
  arrays = jax.tree.map(jnp.asarray, source.arrays)
  keys = jax.random.split(jax.random.key(seed), n)
  sample = jax.jit(jax.vmap(source.sample_one, in_axes=(None, 0)))
  return np.asarray(sample(arrays, keys))


# ----------------------------------------------------------------- idx


@pytest.mark.parametrize('suffix', ['', '.gz'])
def test_idx_images_exact(tmp_path, suffix):
  images = _images(3, seed=0)
  _write(tmp_path / f'train-images-idx3-ubyte{suffix}', _idx_bytes(images))
  source = data.load(_config('mnist', 'idx', str(tmp_path)))
  assert source.kind == 'images' and source.example_shape == (28, 28, 1)
  got = source.arrays['images']
  assert got.dtype == np.uint8 and got.shape == (3, 28, 28, 1)
  np.testing.assert_array_equal(got[..., 0], images)
  assert '\n' not in source.description
  assert source.description == (
      f'mnist: 3 images 28x28x1 from idx file {tmp_path}/train-images-idx3-ubyte'
      f'{suffix} (train split)')
  assert source.modes is None and source.mode_std is None


def test_idx_prefers_train_over_t10k(tmp_path):
  _write(tmp_path / 'train-images-idx3-ubyte', _idx_bytes(_images(2, seed=1)))
  _write(tmp_path / 'train-labels-idx1-ubyte', _idx_bytes(np.array([4, 2], np.uint8)))
  _write(tmp_path / 't10k-images-idx3-ubyte.gz', _idx_bytes(_images(5, seed=2)))
  _write(tmp_path / 't10k-labels-idx1-ubyte.gz', _idx_bytes(np.arange(5, dtype=np.uint8)))
  source = data.load(_config('fashion_mnist', 'idx', str(tmp_path)))
  np.testing.assert_array_equal(source.arrays['images'][..., 0], _images(2, seed=1))
  assert 'train split' in source.description
  np.testing.assert_array_equal(data.idx.load_labels(str(tmp_path)), [4, 2])


def test_idx_falls_back_to_t10k(tmp_path):
  _write(tmp_path / 't10k-images-idx3-ubyte.gz', _idx_bytes(_images(5, seed=2)))
  _write(tmp_path / 't10k-labels-idx1-ubyte', _idx_bytes(np.arange(5, dtype=np.uint8)))
  source = data.load(_config('mnist', 'idx', str(tmp_path)))
  np.testing.assert_array_equal(source.arrays['images'][..., 0], _images(5, seed=2))
  assert source.description.endswith(
      't10k-images-idx3-ubyte.gz (test split: no train file found)')
  labels = data.idx.load_labels(str(tmp_path))
  assert labels.dtype == np.uint8
  np.testing.assert_array_equal(labels, np.arange(5))


def test_idx_labels_must_match_split(tmp_path):
  _write(tmp_path / 'train-images-idx3-ubyte', _idx_bytes(_images(2, seed=1)))
  _write(tmp_path / 't10k-labels-idx1-ubyte', _idx_bytes(np.arange(5, dtype=np.uint8)))
  with pytest.raises(UserError, match=r'no train-labels-idx1-ubyte\[\.gz\]'):
    data.idx.load_labels(str(tmp_path))


def test_idx_samples_are_scaled_stored_images(tmp_path):
  images = _images(4, seed=3)
  _write(tmp_path / 'train-images-idx3-ubyte.gz', _idx_bytes(images))
  source = data.load(_config('mnist', 'idx', str(tmp_path)))
  samples = _draw(source, 64)
  assert samples.dtype == np.float32 and samples.shape == (64, 28, 28, 1)
  scaled = images[..., None].astype(np.float32) / 127.5 - 1
  # Each sample is exactly one stored image, and all four get drawn.
  matches = np.abs(samples[:, None] - scaled[None]).max(axis=(2, 3, 4)) < 1e-6
  assert (matches.sum(axis=1) == 1).all()
  assert matches.any(axis=0).all()


def test_stacked_mnist_stacks_three_independent_stored_digits(tmp_path):
  images = _images(4, seed=5)
  _write(tmp_path / 't10k-images-idx3-ubyte.gz', _idx_bytes(images))
  source = data.load(_config('stacked_mnist', 'idx', str(tmp_path)))
  assert source.example_shape == data.example_shape('stacked_mnist') == (28, 28, 3)
  assert 'stacked_mnist' in source.description and 't10k' in source.description
  samples = _draw(source, 256)
  assert samples.dtype == np.float32 and samples.shape == (256, 28, 28, 3)
  scaled = images.astype(np.float32) / 127.5 - 1  # [4, 28, 28]
  # Every channel is exactly one stored digit ...
  matches = np.abs(samples.transpose(0, 3, 1, 2)[:, :, None] - scaled[None, None])
  digit = matches.max(axis=(3, 4)).argmin(axis=2)  # [256, 3]
  assert matches.max(axis=(3, 4)).min(axis=2).max() < 1e-6
  # ... drawn independently per channel: all 4^3 = 64 triples occur.
  assert len({tuple(t) for t in digit}) == 64


@pytest.mark.parametrize('dtype, shape', [
    (np.uint8, (7,)), (np.dtype('>i4'), (2, 3)), (np.dtype('>f4'), (2, 2, 2)),
    (np.dtype('>i2'), (0, 4))])
def test_read_idx_generic(tmp_path, dtype, shape):
  array = (np.arange(int(np.prod(shape))) - 3).astype(dtype).reshape(shape)
  path = _write(tmp_path / 'x-idx.gz', _idx_bytes(array))
  got = data.idx.read_idx(path)
  assert got.shape == shape and got.dtype == np.dtype(dtype).newbyteorder('=')
  np.testing.assert_array_equal(got, array)


_GOOD = _idx_bytes(_images(2, seed=0))


@pytest.mark.parametrize('name, payload, match', [
    ('train-images-idx3-ubyte', b'\x01\x00' + _GOOD[2:], 'not an idx file'),
    ('train-images-idx3-ubyte', b'', 'not an idx file'),
    ('train-images-idx3-ubyte', _GOOD[:2] + b'\x07' + _GOOD[3:], 'unknown idx dtype code 0x07'),
    ('train-images-idx3-ubyte', _GOOD[:-1], 'is corrupt'),
    ('train-images-idx3-ubyte', _GOOD + b'\x00', 'is corrupt'),
    ('train-images-idx3-ubyte', _GOOD[:9], 'is truncated'),
    ('train-images-idx3-ubyte.gz', b'\x1f\x8b' + b'garbage' * 10, 'cannot read idx file'),
    ('train-images-idx3-ubyte', _idx_bytes(np.zeros((2, 27, 28), np.uint8)),
     r'needs uint8 images of shape \[N, 28, 28\]'),
    ('train-images-idx3-ubyte', _idx_bytes(np.zeros((2, 28, 28), np.dtype('>i4'))),
     'holds int32 data'),
    ('train-images-idx3-ubyte', _idx_bytes(np.zeros((0, 28, 28), np.uint8)), 'holds no images'),
])
def test_idx_corrupt_files(tmp_path, name, payload, match):
  path = tmp_path / name
  path.write_bytes(payload)  # Raw bytes: a '.gz' name holds a broken gzip.
  with pytest.raises(UserError, match=match) as info:
    data.load(_config('mnist', 'idx', str(tmp_path)))
  assert '\n' not in str(info.value)


def test_idx_bad_directories(tmp_path):
  missing = str(tmp_path / 'nope')
  with pytest.raises(UserError, match=(
      rf"data.path='{missing}' does not exist; point --config.data.path at a"
      r' directory holding train-images-idx3-ubyte\[\.gz\] or'
      r' t10k-images-idx3-ubyte\[\.gz\]')):
    data.load(_config('mnist', 'idx', missing))
  with pytest.raises(UserError, match=r'holds no train-images-idx3-ubyte\[\.gz\]'):
    data.load(_config('mnist', 'idx', str(tmp_path)))
  a_file = _write(tmp_path / 'file', b'x')
  with pytest.raises(UserError, match='is not a directory'):
    data.load(_config('mnist', 'idx', a_file))
  with pytest.raises(UserError, match='data.path is empty'):
    data.load(_config('mnist', 'idx', ''))
  with pytest.raises(UserError, match='does not exist'):
    data.idx.load_labels(missing)


@pytest.mark.skipif(not os.path.isdir(REAL_MNIST), reason=f'{REAL_MNIST} absent')
def test_real_mnist_idx():
  source = data.load(_config('mnist', 'idx', REAL_MNIST))
  images = source.arrays['images']
  assert images.shape == (10000, 28, 28, 1) and images.dtype == np.uint8
  assert images.max() == 255 and images.min() == 0
  assert 'test split' in source.description
  labels = data.idx.load_labels(REAL_MNIST)
  assert labels.shape == (10000,) and set(np.unique(labels)) == set(range(10))


def test_idx_and_toys_never_import_tensorflow(tmp_path):
  _write(tmp_path / 'train-images-idx3-ubyte', _idx_bytes(_images(2, seed=0)))
  code = (
      'import sys, ml_collections\n'
      'from gan_jax import data\n'
      f'c = ml_collections.ConfigDict(dict(name="mnist", source="idx", path={str(tmp_path)!r}))\n'
      'data.load(c)\n'
      'data.load(ml_collections.ConfigDict(dict(name="ring8", source="toy")))\n'
      'bad = [m for m in sys.modules if m.split(".")[0] in ("tensorflow", "tensorflow_datasets")]\n'
      'assert not bad, bad\n')
  env = dict(os.environ, PYTHONPATH=REPO, JAX_PLATFORMS='cpu')
  result = subprocess.run([sys.executable, '-c', code], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=120)
  assert result.returncode == 0, result.stderr[-2000:]


# ----------------------------------------------------------------- TFDS


@pytest.mark.parametrize('name, shape, num', [
    ('mnist', (28, 28, 1), 7), ('cifar10', (32, 32, 3), 5)])
@pytest.mark.parametrize('tfds_data_dir', ['', None])
def test_tfds_mocked(monkeypatch, name, shape, num, tfds_data_dir):
  tfds = pytest.importorskip('tensorflow_datasets')
  # mock_data makes download_and_prepare a no-op but not is_prepared(): skip
  # the offline check, which would (rightly) fail on a machine without network.
  monkeypatch.setattr(data.tfds, 'offline_reason', lambda name: None)
  with tfds.testing.mock_data(num_examples=num):
    source = data.load(_config(name, 'tfds', tfds_data_dir=tfds_data_dir))
  images = source.arrays['images']
  assert images.dtype == np.uint8 and images.shape == (num, *shape)
  assert source.kind == 'images' and source.example_shape == shape
  assert source.description.startswith(f'{name}: {num} images {"x".join(map(str, shape))}'
                                       ' from TFDS (train split')
  samples = _draw(source, 16)
  assert samples.dtype == np.float32 and samples.shape == (16, *shape)
  assert samples.min() >= -1 and samples.max() <= 1
  scaled = images.astype(np.float32) / 127.5 - 1
  for sample in samples:
    assert np.abs(scaled - sample).max(axis=(1, 2, 3)).min() < 1e-6


def test_tfds_streams_record_by_record_through_its_data_source(monkeypatch):
  tfds = pytest.importorskip('tensorflow_datasets')
  monkeypatch.setattr(data.tfds, 'offline_reason', lambda name: None)
  with tfds.testing.mock_data(num_examples=6):
    streamed = data.load(_config('mnist', 'tfds'), pipeline='stream')
    # (mock_data makes up other images for each reader: no equality to check)
    examples = [streamed.examples.dataset[i] for i in range(6)]
  assert streamed.pipeline == 'stream' and streamed.examples.count == 6
  assert 'record by record' in streamed.description
  # auto weighs the split by its metadata before reading it: 10 million
  # digits (7.3 GiB) stream, though mock_data's 6 would fit. (mock_data
  # leaves the metadata empty, so the count is given here.)
  monkeypatch.setattr(data.tfds, 'train_count', lambda name, data_dir: 10**7)
  with tfds.testing.mock_data(num_examples=6):
    assert data.load(_config('mnist', 'tfds')).pipeline == 'stream'
  assert {(x.dtype.name, x.shape) for x in examples} == {('uint8', (28, 28, 1))}


def test_tfds_download_error_is_one_line(monkeypatch, tmp_path):
  tfds = pytest.importorskip('tensorflow_datasets')
  monkeypatch.setattr(data.tfds, 'offline_reason', lambda name: None)

  def fail(self, *args, **kwargs):
    raise ConnectionError('Max retries exceeded\nwith url ' + 'x' * 1000)

  monkeypatch.setattr(tfds.core.DatasetBuilder, 'download_and_prepare', fail)
  with pytest.raises(UserError, match=(
      r'^TFDS could not download/prepare fashion_mnist into .* \(ConnectionError:'
      r' Max retries exceeded with url x+\.\.\.\); to use local data pass'
      r' --config.data.source=idx --config.data.path=DIR \(a directory of'
      r' MNIST-format idx files\), or --config.data.tfds_data_dir=DIR holding a'
      r' prepared copy$')) as info:
    data.load(_config('fashion_mnist', 'tfds', tfds_data_dir=str(tmp_path)))
  assert '\n' not in str(info.value) and len(str(info.value)) < 600


def _resolves(host: str) -> bool:
  try:
    socket.getaddrinfo(host, 443)
  except OSError:
    return False
  return True


@pytest.mark.skipif(_resolves('storage.googleapis.com'), reason='online: would download')
def test_tfds_offline_fails_fast_with_one_line(tmp_path):
  pytest.importorskip('tensorflow_datasets')
  start = time.time()
  with pytest.raises(UserError) as info:
    data.load(_config('mnist', 'tfds', tfds_data_dir=str(tmp_path)))
  message = str(info.value)
  assert time.time() - start < 30  # TF import included; no minutes of retries.
  assert '\n' not in message
  assert message.startswith('TFDS could not download/prepare mnist')
  assert '--config.data.source=idx --config.data.path=DIR' in message
  assert '--config.data.tfds_data_dir=DIR holding a prepared copy' in message
  with pytest.raises(UserError, match='tfds_data_dir=DIR') as info:
    data.load(_config('cifar10', 'tfds', tfds_data_dir=str(tmp_path)))
  assert 'source=idx' not in str(info.value)


# ----------------------------------------------------------------- toys


@pytest.mark.parametrize('name, num_modes, std', [('ring8', 8, 0.01), ('grid25', 25, 0.05)])
def test_gaussian_mixtures(name, num_modes, std):
  source = data.load(_config(name, 'toy'))
  assert source.kind == 'points' and source.example_shape == (2,)
  assert source.mode_std == std and source.modes.shape == (num_modes, 2)
  assert source.modes.dtype == np.float32
  if name == 'ring8':
    np.testing.assert_allclose(np.linalg.norm(source.modes, axis=1), 1, atol=1e-6)
    angles = np.sort(np.mod(np.arctan2(source.modes[:, 1], source.modes[:, 0]), 2 * np.pi))
    np.testing.assert_allclose(angles, 2 * np.pi * np.arange(8) / 8, atol=1e-6)
  else:
    grid = {(x, y) for x in (-4, -2, 0, 2, 4) for y in (-4, -2, 0, 2, 4)}
    assert {tuple(p) for p in source.modes.tolist()} == grid

  n = 20_000
  points = _draw(source, n)
  assert points.dtype == np.float32 and points.shape == (n, 2)
  dist = np.linalg.norm(points[:, None] - source.modes[None], axis=2)
  nearest = dist.argmin(axis=1)
  assert dist.min(axis=1).max() < 5 * std
  freq = np.bincount(nearest, minlength=num_modes) / n
  tol = 0.02 if num_modes == 8 else 0.01
  np.testing.assert_allclose(freq, 1 / num_modes, atol=tol)
  for k in range(num_modes):
    offsets = points[nearest == k] - source.modes[k]
    np.testing.assert_allclose(offsets.std(axis=0), std, rtol=0.15)
    np.testing.assert_allclose(offsets.mean(axis=0), 0, atol=0.2 * std)


def test_swissroll():
  source = data.load(_config('swissroll', 'toy'))
  assert source.kind == 'points' and source.example_shape == (2,)
  assert source.modes is None and source.mode_std is None and source.arrays == {}
  n = 20_000
  points = _draw(source, n, seed=1)
  assert points.dtype == np.float32 and points.shape == (n, 2)
  # The same formula in numpy: t = 1.5 pi (1 + 2u), (t cos t, t sin t) + N(0, .25^2), / 7.5.
  rng = np.random.default_rng(0)
  t = 1.5 * np.pi * (1 + 2 * rng.uniform(size=n))
  ref = (np.stack([t * np.cos(t), t * np.sin(t)], 1) + 0.25 * rng.normal(size=(n, 2))) / 7.5
  radius, ref_radius = np.linalg.norm(points, axis=1), np.linalg.norm(ref, axis=1)
  np.testing.assert_allclose(radius.mean(), ref_radius.mean(), rtol=0.05)
  np.testing.assert_allclose(np.quantile(radius, [0.05, 0.5, 0.95]),
                             np.quantile(ref_radius, [0.05, 0.5, 0.95]), rtol=0.05)
  np.testing.assert_allclose(points.mean(axis=0), ref.mean(axis=0), atol=0.05)
  # Noise-free radii lie in [1.5 pi, 4.5 pi] / 7.5 = [0.63, 1.88].
  assert np.mean((radius > 0.6) & (radius < 1.9)) > 0.99
  assert radius.min() > 0.4 and radius.max() < 2.1
  # On the spiral: the angle is t mod 2 pi where t ~ 7.5 |p|.
  diff = np.angle(np.exp(1j * (np.arctan2(points[:, 1], points[:, 0]) - 7.5 * radius)))
  assert np.median(np.abs(diff)) < 0.3


def test_toys_are_deterministic_per_key():
  source = data.load(_config('grid25', 'toy'))
  sample = jax.jit(jax.vmap(source.sample_one, in_axes=(None, 0)))
  arrays = jax.tree.map(jnp.asarray, source.arrays)
  draw = lambda seed: np.asarray(sample(arrays, jax.random.split(jax.random.key(seed), 100)))
  np.testing.assert_array_equal(draw(5), draw(5))
  assert not np.array_equal(draw(5), draw(6))
  # Raw uint32 keys work too.
  raw = jax.random.split(jax.random.PRNGKey(5), 100)
  assert np.asarray(sample(arrays, raw)).shape == (100, 2)


# ----------------------------------------------------------------- config errors


def test_unknown_name():
  with pytest.raises(UserError, match=(
      "unknown data.name='svhn'; valid: mnist, fashion_mnist, cifar10,"
      ' stacked_mnist, folder, ring8, grid25, swissroll')):
    data.load(_config('svhn', 'tfds'))
  with pytest.raises(UserError, match="data.name='svhn'"):
    data.example_shape('svhn')


@pytest.mark.parametrize('name, source, valid', [
    ('mnist', 'toy', 'tfds, idx'), ('cifar10', 'idx', 'tfds'),
    ('ring8', 'tfds', 'toy')])
def test_invalid_source(name, source, valid):
  with pytest.raises(UserError, match=(
      f"^data.source='{source}' does not apply to data.name='{name}'; valid:"
      f' {valid}$')):
    data.load(_config(name, source))
  with pytest.raises(UserError, match=(
      "^unknown data.source='disk'; valid: tfds, idx, toy, folder$")):
    data.load(_config(name, 'disk'))


def test_constants_and_example_shape():
  assert data.SOURCES == ('tfds', 'idx', 'toy', 'folder')
  # The datasets the experiments and evaluators name (a new one may join).
  assert {'mnist', 'fashion_mnist', 'cifar10', 'stacked_mnist', 'ring8',
          'grid25', 'swissroll'} <= set(data.DATASETS)
  assert data.LABELED_NAMES == tuple(n for n, d in data.DATASETS.items() if d.labeled)
  assert {'mnist', 'fashion_mnist'} <= set(data.LABELED_NAMES)
  assert data.example_shape('mnist') == (28, 28, 1)
  assert data.example_shape('cifar10') == (32, 32, 3)
  assert data.example_shape('swissroll') == (2,)


# ----------------------------------------------------------------- subsets


def test_data_subset_trains_on_those_images_only(idx_dir):
  config = _config('mnist', 'idx', idx_dir)
  every = data.load(config).arrays['images']
  config.subset = '10:20'
  held = data.load(config)
  np.testing.assert_array_equal(held.arrays['images'], every[10:20])
  assert held.description.endswith('images 10:20 of them (10, data.subset)')
  config.subset = '60:'
  streamed = data.load(config, pipeline='stream')
  assert streamed.examples.count == 4
  np.testing.assert_array_equal(streamed.examples.dataset[0], every[60])
  for subset, message in (('abc', 'is not START:STOP'), ('5:3', 'is empty'),
                          ('0:65', 'reaches beyond the 64 images')):
    config.subset = subset
    with pytest.raises(UserError, match=f'data.subset=.*{message}'):
      data.load(config)
  toy = configs.toy_config('ring8')
  toy.data.subset = '0:10'
  with pytest.raises(UserError, match='is drawn from its mixture'):
    data.load(toy.data)
