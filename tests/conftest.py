"""pytest fixtures (shared helpers are in tests/helpers.py)."""

import os

import jax
import numpy as np
import pytest

from gan_jax import runtime
from tests.helpers import write_idx_images

# Before any test touches JAX: the XLA flags and the Threefry lowering the
# commands run with (cli.run calls it for them).
runtime.setup()



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


@pytest.fixture
def idx_dir(tmp_path):
  """A directory with 64 random 28x28 'MNIST' training images."""
  rng = np.random.default_rng(0)
  directory = tmp_path / 'idx'
  directory.mkdir()
  write_idx_images(str(directory / 'train-images-idx3-ubyte.gz'),
                   rng.integers(0, 256, (64, 28, 28)))
  return str(directory)
