"""Contract tests of the dataset and evaluator registries.

Parametrised over data.DATASETS and evaluators.EVALUATORS, so that a new
entry is covered here without editing this file: its spec is consistent, its
examples have the declared shape and range from every local source, and an
evaluator scores exactly the figures it declares on every dataset it applies
to (and refuses the others in one line).
"""

import re
import struct

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from gan_jax import configs
from gan_jax import data
from gan_jax import evaluators
from gan_jax.errors import UserError
from tests.helpers import write_idx_images

NUM_EXAMPLES = 8
NUM_SCORED = 20  # eval.num_samples of the evaluator tests
LENET_SHAPE = (28, 28, 1)
# Datasets of a fixed example shape and sources of their own; a folder's
# files decide its shape (tests/test_folder.py).
FIXED = [name for name, spec in data.DATASETS.items()
         if spec.example_shape is not None]


def _data_config(name: str, source: str, path: str = '') -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(
      dict(name=name, source=source, path=path, tfds_data_dir=''))


def _stored_shape(name: str) -> tuple[int, ...]:
  """The shape of one image as read from files (stacked_mnist: MNIST's)."""
  spec = data.DATASETS[name]
  return data.DATASETS[spec.read_as or name].example_shape


def _draw(source: data.DataSource, n: int = NUM_EXAMPLES) -> np.ndarray:
  """n examples as the trainer draws them: vmap(sample_one) on device arrays."""
  arrays = jax.tree.map(jnp.asarray, source.arrays)
  keys = jax.random.split(jax.random.key(0), n)
  return np.asarray(jax.vmap(source.sample_one, (None, 0))(arrays, keys))


def _check_examples(name: str, source: data.DataSource) -> None:
  spec = data.DATASETS[name]
  examples = _draw(source)
  assert source.name == name and source.example_shape == spec.example_shape
  assert examples.shape == (NUM_EXAMPLES, *spec.example_shape)
  assert examples.dtype == np.float32
  assert np.isfinite(examples).all()
  if spec.toy is None:
    assert source.kind == 'images'
    assert examples.min() >= -1 and examples.max() <= 1
  else:
    assert source.kind == 'points'


def _write_labeled_idx(directory, shape: tuple[int, ...], seed: int = 0) -> str:
  """Random uint8 images of `shape` [H, W, 1] with labels in [0, 10): 64
  train and 48 t10k, as MNIST-format idx files."""
  rng = np.random.default_rng(seed)
  for split, n in (('train', 64), ('t10k', 48)):
    write_idx_images(str(directory / f'{split}-images-idx3-ubyte'),
                     rng.integers(0, 256, (n, *shape[:2])))
    labels = (np.arange(n) % data.NUM_CLASSES).astype(np.uint8)
    (directory / f'{split}-labels-idx1-ubyte').write_bytes(
        struct.pack('>HBBI', 0, 0x08, 1, n) + labels.tobytes())
  return str(directory)


# ----------------------------------------------------------------- datasets


@pytest.mark.parametrize('name', data.DATASETS)
def test_dataset_spec_is_consistent(name):
  spec = data.DATASETS[name]
  assert spec.sources and set(spec.sources) <= set(data.SOURCES)
  assert (spec.toy is not None) == (spec.sources == ('toy',))
  assert spec.summary and '\n' not in spec.summary
  if spec.example_shape is None:
    assert spec.sources == (name,)  # it reads data.path, whatever data.source
    with pytest.raises(UserError, match='its files decide it'):
      data.example_shape(name)
    return
  assert data.example_shape(name) == spec.example_shape
  if spec.read_as is not None:
    assert spec.read_as in data.DATASETS and spec.sampling
    assert set(spec.sources) <= set(data.DATASETS[spec.read_as].sources)
  elif 'tfds' in spec.sources:
    assert spec.tfds_host, 'TFDS datasets name their download host'
  if spec.labeled:
    assert spec.example_shape == LENET_SHAPE and name in data.LABELED_NAMES


@pytest.mark.parametrize('name', FIXED)
def test_synthetic_examples_have_the_spec_shape_and_range(name):
  _check_examples(name, data.synthetic(name, num_images=16))


@pytest.mark.parametrize('name', FIXED)
def test_file_free_sources_load(name):
  for source in data.DATASETS[name].sources:
    if source not in ('tfds', 'idx'):
      _check_examples(name, data.load(_data_config(name, source)))


@pytest.mark.parametrize(
    'name', [n for n, d in data.DATASETS.items() if 'idx' in d.sources])
def test_idx_source_loads(name, tmp_path):
  path = _write_labeled_idx(tmp_path, _stored_shape(name))
  _check_examples(name, data.load(_data_config(name, 'idx', path)))
  if data.DATASETS[name].labeled:
    labeled = data.load_labeled(_data_config(name, 'idx', path))
    assert labeled.train_images.shape == (64, *LENET_SHAPE)
    assert labeled.test_labels.shape == (48,)


@pytest.mark.parametrize(
    'name', [n for n, d in data.DATASETS.items() if 'tfds' in d.sources])
def test_tfds_source_loads_mocked(name, monkeypatch):
  tfds = pytest.importorskip('tensorflow_datasets')
  # mock_data skips the download but not is_prepared(): skip the offline check.
  monkeypatch.setattr(data.tfds, 'offline_reason', lambda name: None)
  with tfds.testing.mock_data(num_examples=4):
    source = data.load(_data_config(name, 'tfds'))
  assert source.arrays['images'].shape == (4, *_stored_shape(name))
  _check_examples(name, source)


@pytest.mark.parametrize('name', FIXED)
def test_invalid_source_is_refused_in_one_line(name):
  valid = ', '.join(data.DATASETS[name].sources)
  with pytest.raises(UserError, match=re.escape(
      f"unknown data.source='disk'; valid: {', '.join(data.SOURCES)}")):
    data.check_source(name, 'disk')
  other = next(s for s in data.SOURCES if s not in data.DATASETS[name].sources)
  with pytest.raises(UserError, match=re.escape(
      f"data.source='{other}' does not apply to data.name='{name}'; valid:"
      f' {valid}')):
    data.check_source(name, other)
  with pytest.raises(UserError, match=re.escape(
      f"unknown data.name='svhn'; valid: {', '.join(data.DATASETS)}")):
    data.check_source('svhn', data.DATASETS[name].sources[0])


# ----------------------------------------------------------------- evaluators


@pytest.fixture(scope='session')
def lenet_dir(tmp_path_factory):
  """A LeNet trained for a few steps on random labeled images."""
  from gan_jax import classifier  # noqa: PLC0415
  path = _write_labeled_idx(tmp_path_factory.mktemp('labeled'), LENET_SHAPE)
  labeled = data.load_labeled(_data_config('mnist', 'idx', path))
  params, info = classifier.train_classifier(labeled, steps=3, batch_size=16)
  directory = str(tmp_path_factory.mktemp('lenet'))
  classifier.save(directory, params, {'dataset': 'mnist', **info})
  return directory


@pytest.fixture(scope='session')
def inception_weights(tmp_path_factory):
  """Randomly initialised Inception-v3 weights with logits, in the converted
  format: the evaluator's contract needs no reference weights (the network
  against them: tests/test_inception.py)."""
  from gan_jax import files  # noqa: PLC0415
  from gan_jax import inception  # noqa: PLC0415
  rng = np.random.default_rng(0)
  arrays = {}
  for name, shape in inception.weights._expected_shapes(with_logits=True).items():  # noqa: SLF001
    fan_in = np.prod(shape[:-1]) if len(shape) > 1 else 1
    value = rng.normal(0, fan_in ** -0.5, shape) if len(shape) > 1 else np.ones(shape)
    arrays[name] = (np.zeros(shape) if name.endswith(('beta', 'mean', 'bias'))
                    else value).astype(np.float32)
  path = str(tmp_path_factory.mktemp('inception') / 'random.npz')
  files.write_npz(path, arrays)
  return path


def _eval_config(dataset: str, directory) -> ml_collections.ConfigDict:
  """A config reading `dataset` locally: its toy, or idx files in `directory`."""
  sources = data.DATASETS[dataset].sources
  if 'toy' in sources:
    data_config = _data_config(dataset, 'toy')
  elif 'idx' in sources:
    data_config = _data_config(
        dataset, 'idx', _write_labeled_idx(directory, _stored_shape(dataset)))
  else:
    pytest.skip(f'{dataset} has no local source')
  config = configs.default_config()
  config.data = data_config
  config.eval.num_samples = NUM_SCORED
  return config


@pytest.mark.parametrize('name, dataset', [
    (name, dataset) for name, spec in evaluators.EVALUATORS.items()
    for dataset in spec.datasets])
def test_evaluator_scores_exactly_its_figures(name, dataset, tmp_path, lenet_dir,
                                             inception_weights):
  spec = evaluators.EVALUATORS[name]
  assert dataset in data.DATASETS
  config = _eval_config(dataset, tmp_path)
  config.eval.classifier_dir = lenet_dir
  config.eval.inception = inception_weights
  config.eval.inception_cache = str(tmp_path / 'inception_cache')
  source = data.load(config.data)
  scores = evaluators.build((name,), config, source)(_draw(source, NUM_SCORED))
  assert set(scores) == set(spec.figures)
  assert all(np.isfinite(value) for value in scores.values()), scores


@pytest.mark.parametrize('name', evaluators.EVALUATORS)
def test_evaluator_spec_and_refusals(name):
  spec = evaluators.EVALUATORS[name]
  assert spec.summary and '\n' not in spec.summary
  assert spec.figures and len(set(spec.figures)) == len(spec.figures)
  other = next(n for n in data.DATASETS if n not in spec.datasets)
  config = configs.default_config()
  applies = [n for n, e in evaluators.EVALUATORS.items() if other in e.datasets]
  with pytest.raises(UserError, match=re.escape(
      f"eval.evaluators='{name}' does not apply to data.name='{other}'; valid:"
      f' {", ".join(applies) or "none"}')):
    evaluators.build((name,), config, data.synthetic(other, num_images=4))
  with pytest.raises(UserError, match=re.escape(
      f"unknown eval.evaluators='nope'; valid:"
      f' {", ".join(evaluators.EVALUATORS)}')):
    evaluators.build(('nope', name), config, data.synthetic(other, num_images=4))
