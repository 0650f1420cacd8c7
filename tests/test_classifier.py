"""Tests of data.load_labeled and gan_jax.classifier: splits, training, save/load, CLI."""

import gzip
import json
import os
import struct
import subprocess
import sys

import jax
import ml_collections
import numpy as np
import pytest

from gan_jax import classifier
from gan_jax import data
from gan_jax.errors import UserError


@pytest.fixture(scope='module', autouse=True)
def _optimized(optimized):
  """XLA's optimisations on: here programs (a LeNet trained to 99 % accuracy) run
  long enough for them to pay."""


REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REAL_MNIST = os.path.join(os.path.dirname(REPO), 'shared', 'data', 'mnist')


def _config(path: str, name: str = 'mnist', source: str = 'idx'):
  return ml_collections.ConfigDict(
      dict(name=name, source=source, path=path, tfds_data_dir=''))


def _write_idx(path: str, array: np.ndarray) -> None:
  """uint8 `array` as an MNIST-format idx file (gzip if the name ends .gz)."""
  header = struct.pack('>HBB', 0, 0x08, array.ndim)
  payload = header + struct.pack(f'>{array.ndim}I', *array.shape) + array.tobytes()
  with (gzip.open if path.endswith('.gz') else open)(path, 'wb') as f:
    f.write(payload)


def _digits(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
  """n distinct uint8 [28, 28] images whose first pixel is their index, labels."""
  images = np.random.default_rng(seed).integers(0, 256, (n, 28, 28), np.uint8)
  images[:, 0, 0] = np.arange(n) % 256
  return images, (np.arange(n) % 10).astype(np.uint8)


def _write_split(directory, split: str, n: int, seed: int, suffix: str = ''):
  images, labels = _digits(n, seed)
  _write_idx(str(directory / f'{split}-images-idx3-ubyte{suffix}'), images)
  _write_idx(str(directory / f'{split}-labels-idx1-ubyte{suffix}'), labels)
  return images, labels


# ----------------------------------------------------------------- load_labeled


def test_load_labeled_train_and_t10k(tmp_path):
  train_images, train_labels = _write_split(tmp_path, 'train', 12, seed=0)
  test_images, test_labels = _write_split(tmp_path, 't10k', 7, seed=1, suffix='.gz')
  labeled = data.load_labeled(_config(str(tmp_path)))
  assert labeled.train_images.dtype == np.uint8
  assert labeled.train_images.shape == (12, 28, 28, 1)
  assert labeled.train_labels.dtype == np.int32
  np.testing.assert_array_equal(labeled.train_images[..., 0], train_images)
  np.testing.assert_array_equal(labeled.train_labels, train_labels)
  np.testing.assert_array_equal(labeled.test_images[..., 0], test_images)
  np.testing.assert_array_equal(labeled.test_labels, test_labels)
  assert 'official train/test splits' in labeled.description
  assert '\n' not in labeled.description


def test_load_labeled_splits_t10k_alone(tmp_path):
  # The held-out part is the last 20% (proportional, so a small file tests the
  # rule that cuts the real 10,000 into 8,000 / 2,000).
  images, labels = _write_split(tmp_path, 't10k', 50, seed=2, suffix='.gz')
  labeled = data.load_labeled(_config(str(tmp_path), name='fashion_mnist'))
  np.testing.assert_array_equal(labeled.train_images[..., 0], images[:40])
  np.testing.assert_array_equal(labeled.train_labels, labels[:40])
  np.testing.assert_array_equal(labeled.test_images[..., 0], images[40:])
  np.testing.assert_array_equal(labeled.test_labels, labels[40:])
  assert 'first 40 images train and its last 10 are held out' in labeled.description
  assert 'NOT the official train/test splits' in labeled.description


@pytest.mark.skipif(not os.path.isdir(REAL_MNIST), reason=f'{REAL_MNIST} absent')
def test_load_labeled_real_t10k_is_8000_2000():
  labeled = data.load_labeled(_config(REAL_MNIST))
  assert labeled.train_images.shape == (8000, 28, 28, 1)
  assert labeled.test_images.shape == (2000, 28, 28, 1)
  assert set(np.unique(labeled.test_labels)) == set(range(10))


def test_load_labeled_errors(tmp_path):
  with pytest.raises(UserError, match=(
      "^data.name='cifar10' does not apply to labeled data .*; valid: mnist,"
      " fashion_mnist$")):
    data.load_labeled(_config(str(tmp_path), name='cifar10', source='tfds'))
  with pytest.raises(UserError, match="data.source='toy' does not apply to"
                     " data.name='mnist'; valid: tfds, idx"):
    data.load_labeled(_config(str(tmp_path), source='toy'))
  with pytest.raises(UserError, match='holds no train-images'):
    data.load_labeled(_config(str(tmp_path)))
  images, _ = _digits(5, seed=3)
  _write_idx(str(tmp_path / 't10k-images-idx3-ubyte'), images)
  with pytest.raises(UserError, match=r'no t10k-labels-idx1-ubyte\[\.gz\]'):
    data.load_labeled(_config(str(tmp_path)))
  _write_idx(str(tmp_path / 't10k-labels-idx1-ubyte'), np.arange(4, dtype=np.uint8))
  with pytest.raises(UserError, match='5 images but 4 labels'):
    data.load_labeled(_config(str(tmp_path)))
  _write_idx(str(tmp_path / 't10k-labels-idx1-ubyte'), np.full(5, 10, np.uint8))
  with pytest.raises(UserError, match=r'labels must be in \[0, 9\]'):
    data.load_labeled(_config(str(tmp_path)))
  train = tmp_path / 'train_only'
  train.mkdir()
  _write_split(train, 'train', 5, seed=4)
  with pytest.raises(UserError, match='no t10k-images-idx3-ubyte'):
    data.load_labeled(_config(str(train)))


def test_load_labeled_tfds_mocked(monkeypatch):
  tfds = pytest.importorskip('tensorflow_datasets')
  monkeypatch.setattr(data.tfds, 'offline_reason', lambda name: None)
  with tfds.testing.mock_data(num_examples=6):
    labeled = data.load_labeled(_config('', source='tfds'))
  for images, labels in ((labeled.train_images, labeled.train_labels),
                         (labeled.test_images, labeled.test_labels)):
    assert images.dtype == np.uint8 and images.shape == (6, 28, 28, 1)
    assert labels.dtype == np.int32 and labels.shape == (6,)
    assert labels.min() >= 0 and labels.max() <= 9
  assert 'from TFDS (train and test splits' in labeled.description


# ----------------------------------------------------------------- classifier


def test_lenet_shapes():
  params = classifier.init_params(jax.random.key(0))
  logits, feats = classifier.LeNet().apply(
      {'params': params}, np.zeros((3, 28, 28, 1), np.float32), train=False)
  assert logits.shape == (3, 10) and feats.shape == (3, classifier.FEATURE_DIM)
  assert (np.asarray(feats) >= 0).all()  # post-ReLU


@pytest.mark.skipif(not os.path.isdir(REAL_MNIST), reason=f'{REAL_MNIST} absent')
def test_trains_to_high_accuracy_on_real_mnist():
  full = data.load_labeled(_config(REAL_MNIST))
  subset = data.LabeledData(full.train_images[:2000], full.train_labels[:2000],
                            full.test_images[:1000], full.test_labels[:1000],
                            'a subset')
  _, metrics = classifier.train_classifier(subset, steps=150, batch_size=64,
                                           seed=0, lr=2e-3)
  assert metrics['train_size'] == 2000 and metrics['test_size'] == 1000
  assert metrics['test_accuracy'] >= 0.9, metrics


@pytest.fixture(scope='module')
def tiny_labeled():
  images, labels = _digits(40, seed=5)
  return data.LabeledData(images[:32, ..., None], labels[:32].astype(np.int32),
                          images[32:, ..., None], labels[32:].astype(np.int32),
                          'tiny')


def test_save_load_round_trip(tmp_path, tiny_labeled):
  params, metrics = classifier.train_classifier(tiny_labeled, steps=2,
                                                batch_size=8, seed=1, lr=1e-3)
  info = {'dataset': 'mnist', 'description': 'tiny', 'steps': 2, 'seed': 1,
          **metrics}
  directory = str(tmp_path / 'clf')
  classifier.save(directory, params, info)
  classifier.save(directory, params, info)  # overwrites
  loaded = classifier.load(directory)
  with open(os.path.join(directory, 'classifier.json')) as f:
    assert json.load(f) == loaded.info
  assert loaded.info['feature_dim'] == 128
  assert loaded.info['test_accuracy'] == metrics['test_accuracy']
  # 1001 images: two chunks, the last one padded.
  images = np.random.default_rng(0).uniform(-1, 1, (1001, 28, 28, 1)).astype(np.float32)
  feats, probs = loaded.features_and_probs(images)
  assert feats.shape == (1001, 128) and feats.dtype == np.float32
  assert probs.shape == (1001, 10) and probs.dtype == np.float32
  np.testing.assert_allclose(probs.sum(axis=1), 1, rtol=1e-5)
  want_feats, want_probs = classifier.Classifier(params, info).features_and_probs(images)
  np.testing.assert_array_equal(feats, want_feats)
  np.testing.assert_array_equal(probs, want_probs)
  one_feats, _ = loaded.features_and_probs(images[-1:])
  np.testing.assert_allclose(one_feats[0], feats[-1], rtol=1e-5, atol=1e-6)
  with pytest.raises(ValueError, match=r'images must be \[N, 28, 28, 1\]'):
    loaded.features_and_probs(images[..., 0])


def test_load_without_classifier_names_the_command(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  empty = tmp_path / 'fashion_mnist'
  empty.mkdir()
  with pytest.raises(UserError, match=(
      rf'^no trained classifier in {empty} \(no classifier.json\); train one'
      r' with: python -m gan_jax.classifier --config=experiments/fashion_mnist.py'
      rf' --out={empty}$')):
    classifier.load(str(empty))
  with pytest.raises(UserError, match=(
      r'train one with: python -m gan_jax.classifier --config=experiments/mnist.py$')):
    classifier.load(classifier.default_directory('mnist'))
  assert classifier.default_directory('mnist') == os.path.join('classifiers', 'mnist')


def test_command_end_to_end(tmp_path):
  idx = tmp_path / 'idx'
  idx.mkdir()
  _write_split(idx, 't10k', 50, seed=6, suffix='.gz')
  out = tmp_path / 'clf'
  env = dict(os.environ, PYTHONPATH=REPO, JAX_PLATFORMS='cpu')
  proc = subprocess.run(
      [sys.executable, '-m', 'gan_jax.classifier', '--config=experiments/mnist.py',
       '--config.data.source=idx', f'--config.data.path={idx}', f'--out={out}',
       '--steps=20', '--batch_size=8', '--seed=3'],
      cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert 'step 20/20' in proc.stderr
  assert 'test accuracy' in proc.stdout and str(out) in proc.stdout
  with open(out / 'classifier.json') as f:
    info = json.load(f)
  assert info['dataset'] == 'mnist' and info['steps'] == 20 and info['seed'] == 3
  assert info['feature_dim'] == 128 and info['test_size'] == 10
  assert 'NOT the official' in info['description']
  assert 0 <= info['test_accuracy'] <= 1
  assert os.path.isdir(out / 'params')
  # A user mistake is one line on stderr.
  proc = subprocess.run(
      [sys.executable, '-m', 'gan_jax.classifier', '--config=experiments/cifar10.py'],
      cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
  assert proc.returncode == 1 and 'Traceback' not in proc.stderr
  assert ("error: data.name='cifar10' does not apply to labeled data"
          in proc.stderr)
