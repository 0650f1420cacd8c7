"""A small MNIST classifier whose penultimate features replace Inception's.

The library: LeNet, its training, `save` and `load`. The command that trains
and saves one is `gan_jax/classifier/__main__.py`:

  python -m gan_jax.classifier --config=experiments/mnist.py
  # offline, from local MNIST-format files (here: only the 10k test split):
  python -m gan_jax.classifier --config=experiments/mnist.py \
      --config.data.source=idx --config.data.path=../shared/data/mnist

FID, KID and precision/recall need an image feature network, and Inception
cannot be downloaded here, so we train LeNet (two 5x5 convolutions, a 128-unit
feature layer, 10 logits) on the experiment's `data` section and save it to
classifiers/<data.name>. `load` gives a `Classifier`: images in [-1, 1] ->
(128-d post-ReLU features, class probabilities).

Training is a pure jitted step that draws its batch from (key, step) on the
device, with random shifts of up to SHIFT pixels, Adam and a cosine-decayed
learning rate. Defaults: 2,000 steps of 128 (4.3 epochs of the 60k MNIST
training images), Adam 1e-3. Measured offline on a shared 2-core CPU with only
t10k (trained on its first 8,000, tested on its last 2,000): 99.30% test
accuracy in 9m40s (~3-4 steps/s); --steps=800 gives 98.85% in 4m23s.
"""

import dataclasses
import functools
import json
import os
import time
from typing import Any

from absl import logging
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp

from gan_jax import data
from gan_jax import files
from gan_jax import registry
from gan_jax.errors import UserError

Array = jax.Array
PyTree = Any

IMAGE_SHAPE = (28, 28, 1)
NUM_CLASSES = data.NUM_CLASSES
FEATURE_DIM = 128
DROPOUT_RATE = 0.5  # before the logits, in training only
SHIFT = 2  # training augmentation: random shifts of up to this many pixels
EVAL_BATCH = 1000  # images per jitted call in evaluation
INFO_FILE = 'classifier.json'
PARAMS_DIR = 'params'

# Defaults of the command and of train_classifier.
DEFAULT_STEPS = 2000
DEFAULT_BATCH_SIZE = 128
DEFAULT_LR = 1e-3
DEFAULT_SEED = 0


class LeNet(nn.Module):
  """images [B, 28, 28, 1] in [-1, 1] -> (logits [B, 10], features [B, 128]).

  Conv 32 5x5, ReLU, max-pool 2; Conv 64 5x5, ReLU, max-pool 2; Dense 128,
  ReLU (the features); dropout in training; Dense 10.
  """

  dropout_rate: float = DROPOUT_RATE

  @nn.compact
  def __call__(self, x: Array, train: bool) -> tuple[Array, Array]:
    x = nn.Conv(32, (5, 5), padding='SAME')(x)
    x = nn.max_pool(nn.relu(x), (2, 2), (2, 2))
    x = nn.Conv(64, (5, 5), padding='SAME')(x)
    x = nn.max_pool(nn.relu(x), (2, 2), (2, 2))
    x = x.reshape((x.shape[0], -1))
    features = nn.relu(nn.Dense(FEATURE_DIM)(x))
    x = nn.Dropout(self.dropout_rate, deterministic=not train)(features)
    return nn.Dense(NUM_CLASSES)(x), features


def init_params(key: Array) -> PyTree:
  return LeNet().init(key, jnp.zeros((1, *IMAGE_SHAPE)), train=False)['params']


def default_directory(dataset_name: str) -> str:
  """Where the command saves the classifier of `dataset_name` by default."""
  return os.path.join('classifiers', dataset_name)


# ----------------------------------------------------------------- training


def _shifted(image: Array, key: Array) -> Array:
  """`image` [H, W, C] moved by up to SHIFT pixels each way (zero fill)."""
  height, width, _ = image.shape
  padded = jnp.pad(image, ((SHIFT, SHIFT), (SHIFT, SHIFT), (0, 0)))
  dy, dx = jax.random.randint(key, (2,), 0, 2 * SHIFT + 1)
  return jax.lax.dynamic_slice(padded, (dy, dx, 0), (height, width, image.shape[2]))


def _batch(arrays: dict, key: Array, batch_size: int) -> tuple[Array, Array]:
  """A random batch (with replacement) of shifted images in [-1, 1], labels."""
  index_key, shift_key = jax.random.split(key)
  index = jax.random.randint(index_key, (batch_size,), 0,
                             arrays['images'].shape[0])
  images = jax.vmap(_shifted)(arrays['images'][index],
                              jax.random.split(shift_key, batch_size))
  return data.scale_pixels(images), arrays['labels'][index]


def train_step(optimizer: optax.GradientTransformation, batch_size: int,
               params: PyTree, opt_state: optax.OptState, arrays: dict,
               key: Array, step: Array) -> tuple[PyTree, optax.OptState, dict]:
  """One Adam update on a batch drawn from fold_in(key, step); pure."""
  batch_key, dropout_key = jax.random.split(jax.random.fold_in(key, step))
  images, labels = _batch(arrays, batch_key, batch_size)

  def loss_fn(params):
    logits, _ = LeNet().apply({'params': params}, images, train=True,
                              rngs={'dropout': dropout_key})
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
    return loss, logits

  (loss, logits), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
  updates, opt_state = optimizer.update(grads, opt_state, params)
  accuracy = (logits.argmax(-1) == labels).mean()
  return (optax.apply_updates(params, updates), opt_state,
          {'loss': loss, 'accuracy': accuracy})


def features_and_probs(params: PyTree, images: Array) -> tuple[Array, Array]:
  """Eval mode: images [B, 28, 28, 1] in [-1, 1] -> (features, probabilities)."""
  logits, features = LeNet().apply({'params': params}, images, train=False)
  return features, jax.nn.softmax(logits)


_features_and_probs = jax.jit(features_and_probs)


def _apply_in_chunks(params: PyTree, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """`features_and_probs` over any number of images, EVAL_BATCH at a time (the
  last chunk padded, so one program serves every size)."""
  feats, probs = [], []
  for start in range(0, len(images), EVAL_BATCH):
    chunk = np.asarray(images[start:start + EVAL_BATCH], np.float32)
    padded = np.pad(chunk, ((0, EVAL_BATCH - len(chunk)), (0, 0), (0, 0), (0, 0)))
    f, p = _features_and_probs(params, padded)
    feats.append(np.asarray(f[:len(chunk)]))
    probs.append(np.asarray(p[:len(chunk)]))
  if not feats:
    return (np.zeros((0, FEATURE_DIM), np.float32),
            np.zeros((0, NUM_CLASSES), np.float32))
  return np.concatenate(feats), np.concatenate(probs)


def accuracy(params: PyTree, images: np.ndarray, labels: np.ndarray) -> float:
  """Fraction of uint8 `images` whose most probable class is `labels`."""
  _, probs = _apply_in_chunks(params, np.asarray(data.scale_pixels(images)))
  return float((probs.argmax(-1) == labels).mean())


def train_classifier(labeled: data.LabeledData, steps: int = DEFAULT_STEPS,
                     batch_size: int = DEFAULT_BATCH_SIZE, seed: int = DEFAULT_SEED,
                     lr: float = DEFAULT_LR,
                     log_every: int = 0) -> tuple[PyTree, dict[str, float]]:
  """Trains LeNet on `labeled`'s train split; tests it on its test split.

  Args:
    labeled: the data.
    steps: Adam updates; the learning rate decays from `lr` to 0 (cosine).
    batch_size: images per update, drawn with replacement.
    seed: parameters, batches, shifts and dropout derive from it.
    lr: the peak learning rate.
    log_every: a progress line every this many steps (0: ten lines in all).

  Returns:
    The parameters and {test_accuracy, train_size, test_size, train_seconds}.
  """
  for name, value in (('steps', steps), ('batch_size', batch_size), ('lr', lr)):
    registry.check_value(f'--{name}', value, registry.POSITIVE)
  init_key, train_key = jax.random.split(jax.random.key(seed))
  params = init_params(init_key)
  optimizer = optax.adam(optax.cosine_decay_schedule(lr, steps))
  opt_state = optimizer.init(params)
  arrays = {'images': jnp.asarray(labeled.train_images),
            'labels': jnp.asarray(labeled.train_labels)}
  step_fn = jax.jit(functools.partial(train_step, optimizer, batch_size),
                    donate_argnums=(0, 1))
  log_every = log_every or max(1, steps // 10)
  start = last_time = time.time()
  last_step = 0
  for step in range(1, steps + 1):
    params, opt_state, metrics = step_fn(params, opt_state, arrays, train_key,
                                         jnp.int32(step))
    if step % log_every == 0 or step == steps:
      metrics = jax.device_get(metrics)
      now = time.time()
      logging.info('step %d/%d | loss %.4f | batch accuracy %.3f | %.2f steps/s',
                   step, steps, metrics['loss'], metrics['accuracy'],
                   (step - last_step) / max(now - last_time, 1e-9))
      last_step, last_time = step, now
  jax.block_until_ready(params)
  train_seconds = time.time() - start
  test_accuracy = accuracy(params, labeled.test_images, labeled.test_labels)
  return params, {'test_accuracy': test_accuracy,
                  'train_size': int(len(labeled.train_labels)),
                  'test_size': int(len(labeled.test_labels)),
                  'train_seconds': train_seconds}


# ----------------------------------------------------------------- save / load


@dataclasses.dataclass(frozen=True)
class Classifier:
  """A trained LeNet: `features_and_probs` and what `info` recorded."""

  params: PyTree
  info: dict

  def features_and_probs(self, images) -> tuple[np.ndarray, np.ndarray]:
    """Images [N, 28, 28, 1] in [-1, 1] -> (float32 features [N, 128],
    float32 probabilities [N, 10]), in eval mode."""
    shape = tuple(np.shape(images))
    if len(shape) != 4 or shape[1:] != IMAGE_SHAPE:
      raise ValueError(f'images must be [N, {", ".join(map(str, IMAGE_SHAPE))}]'
                       f' in [-1, 1], got shape {shape}')
    return _apply_in_chunks(self.params, images)


def save(directory: str, params: PyTree, info: dict) -> None:
  """Writes `params` (Orbax, in directory/params) and directory/classifier.json.

  `info` should hold dataset, description, test_accuracy, steps and seed;
  feature_dim is added. An earlier classifier in `directory` is replaced.
  """
  directory = os.path.abspath(directory)
  os.makedirs(directory, exist_ok=True)
  info_path = os.path.join(directory, INFO_FILE)
  if os.path.exists(info_path):
    os.remove(info_path)  # no classifier.json until the new params are saved
  floors_path = os.path.join(directory, 'floors.json')
  if os.path.exists(floors_path):
    os.remove(floors_path)  # the evaluators' real-data figures of the old params
  checkpointer = ocp.StandardCheckpointer()
  checkpointer.save(os.path.join(directory, PARAMS_DIR), jax.device_get(params),
                    force=True)
  checkpointer.wait_until_finished()
  checkpointer.close()
  info = {**info, 'feature_dim': FEATURE_DIM, 'num_classes': NUM_CLASSES}
  files.write_json(info_path, info)


def train_command(directory: str, dataset_name: str | None = None) -> str:
  """The command that trains a classifier into `directory`."""
  name = dataset_name or os.path.basename(os.path.normpath(directory))
  name = name if name in data.LABELED_NAMES else 'mnist'
  command = f'python -m gan_jax.classifier --config=experiments/{name}.py'
  if os.path.normpath(directory) != default_directory(name):
    command += f' --out={directory}'
  return command


def load(directory: str, dataset_name: str | None = None) -> Classifier:
  """The classifier `save` wrote to `directory`.

  Raises:
    UserError: `directory` holds no classifier; the message gives the command
      that trains one (for `dataset_name`, default: the directory's name if it
      is a dataset's, else mnist).
  """
  info_path = os.path.join(directory, INFO_FILE)
  params_path = os.path.abspath(os.path.join(directory, PARAMS_DIR))
  if not os.path.isfile(info_path) or not os.path.isdir(params_path):
    raise UserError(f'no trained classifier in {directory} (no {INFO_FILE});'
                    f' train one with: {train_command(directory, dataset_name)}')
  with open(info_path) as f:
    info = json.load(f)
  abstract = jax.eval_shape(init_params, jax.random.key(0))
  checkpointer = ocp.StandardCheckpointer()
  try:
    params = checkpointer.restore(params_path, abstract)
  except (ValueError, KeyError, FileNotFoundError) as e:
    reason = ' '.join(str(e).split())[:200]
    raise UserError(f'the classifier in {directory} does not fit LeNet'
                    f' ({type(e).__name__}: {reason}); retrain it with:'
                    f' {train_command(directory, dataset_name)}') from e
  finally:
    checkpointer.close()
  return Classifier(params=params, info=info)
