"""Shared fixtures: tiny configs and tiny data, so every test runs in seconds."""

import gzip
import os
import struct

import jax
import numpy as np
import pytest

from gan_jax import configs
from gan_jax import runtime

# Before any test touches JAX: the XLA flags and the Threefry lowering the
# commands run with (cli.run calls it for them).
runtime.setup()

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope='session', autouse=True)
def compilation_cache(tmp_path_factory):
  """Identical programs (one model trained, resumed, trained again) compile
  once, in this process and in the commands tests run as subprocesses (they
  inherit the environment)."""
  settings = {'jax_compilation_cache_dir': str(tmp_path_factory.mktemp('jax_cache')),
              'jax_persistent_cache_min_compile_time_secs': 0.5,
              'jax_persistent_cache_min_entry_size_bytes': 0}
  for name, value in settings.items():
    jax.config.update(name, value)
    os.environ[name.upper()] = str(value)


@pytest.fixture
def fast_compile():
  """XLA without most of its optimisations: these tiny runs are mostly
  compilation, which this halves (both runs compared compile alike)."""
  jax.config.update('jax_disable_most_optimizations', True)
  yield
  jax.config.update('jax_disable_most_optimizations', False)


def write_idx_images(path: str, images: np.ndarray) -> None:
  """Writes uint8 [N, H, W] images as an MNIST-format idx3 file (gzip if .gz)."""
  header = struct.pack('>HBB', 0, 0x08, 3) + struct.pack('>III', *images.shape)
  payload = header + images.astype(np.uint8).tobytes()
  opener = gzip.open if path.endswith('.gz') else open
  with opener(path, 'wb') as f:
    f.write(payload)


@pytest.fixture
def idx_dir(tmp_path):
  """A directory with 64 random 28x28 'MNIST' training images."""
  rng = np.random.default_rng(0)
  directory = tmp_path / 'idx'
  directory.mkdir()
  write_idx_images(str(directory / 'train-images-idx3-ubyte.gz'),
                   rng.integers(0, 256, (64, 28, 28)))
  return str(directory)


def read_events(path: str):
  """Scalars and image steps as TensorBoard's own loader reads them."""
  from tensorboard.backend.event_processing import event_file_loader  # noqa: PLC0415
  scalars, images = {}, {}
  for event in event_file_loader.EventFileLoader(path).Load():
    for value in event.summary.value:  # the loader migrates to tensor summaries
      plugin = value.metadata.plugin_data.plugin_name
      if plugin == 'scalars':
        scalars.setdefault(value.tag, []).append(
            (event.step, value.tensor.float_val[0]))
      elif plugin == 'images':
        images.setdefault(value.tag, []).append(event.step)
  return scalars, images


def restored_state(workdir: str):
  """The latest checkpoint of a run as host arrays (the key as raw key data),
  every leaf with the seed axis [num_seeds]."""
  from gan_jax import runs  # noqa: PLC0415
  _, _, state = runs.restore_run(workdir)
  return jax.device_get(state.replace(key=jax.random.key_data(state.key)))


def tiny_toy_config(loss: str = 'non_saturating', dataset: str = 'ring8'):
  """A toy run small enough to compile and train in a few seconds."""
  c = configs.toy_config(dataset)
  c.loss.name = loss
  c.model.width, c.model.depth = 32, 2
  c.train.batch_size = 16
  c.train.num_steps = 6
  c.train.log_every = 2
  c.train.sample_every = 3
  c.train.checkpoint_every = 3
  return c


def tiny_image_config(data_path: str, loss: str = 'non_saturating'):
  """The real DCGAN on tiny idx data with a small batch."""
  c = configs.default_config()
  c.data.source = 'idx'
  c.data.path = data_path
  c.loss.name = loss
  c.train.batch_size = 8
  c.train.num_steps = 4
  c.train.log_every = 2
  c.train.sample_every = 2
  c.train.checkpoint_every = 2
  return c
