"""pytest fixtures (shared helpers are in tests/helpers.py)."""

import os

# The tests' programs are tiny and mostly compilation, which XLA without most
# of its optimisations does in about half the time; the commands the tests
# run inherit it (tests/helpers.py's command_env). Tests that run large
# programs (the Inception network, a classifier trained to accuracy) turn
# the optimisations back on with the `optimized` fixture. Set before JAX
# reads its configuration.
os.environ['JAX_DISABLE_MOST_OPTIMIZATIONS'] = 'true'

import jax  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from gan_jax import runtime  # noqa: E402
from tests.helpers import TEST_XLA_FLAGS  # noqa: E402
from tests.helpers import write_idx_images  # noqa: E402
from tests.helpers import xla_optimizations  # noqa: E402

# This process's XLA flags besides gan_jax's: the commands' (helpers.py).
os.environ['XLA_FLAGS'] = ' '.join(
    (os.environ.get('XLA_FLAGS', ''), *TEST_XLA_FLAGS)).strip()

# Before any test touches JAX: the XLA flags and the Threefry lowering the
# commands run with (cli.run calls it for them).
runtime.setup()


# The longest files, longest first (measured 2026-12-06: about 100 s to 16 s
# each on 2 busy cores). pytest-xdist hands whole files to its workers in
# collection order (--dist loadfile --no-loadscope-reorder); a long file
# handed out last would leave the other worker idle for its length.
LONGEST_FIRST = ('test_sweep_ray.py', 'test_inception.py',
                 'test_contracts_devices.py', 'test_cli.py', 'test_notebook.py',
                 'test_parallel.py', 'test_workdir_files.py',
                 'test_contracts_resume.py', 'test_contracts.py',
                 'test_train.py', 'test_contracts_data.py', 'test_stream.py',
                 'test_object_storage.py',
                 'test_evaluate.py', 'test_classifier.py', 'test_robustness.py',
                 'test_seeds.py', 'test_precision.py', 'test_dynamics.py',
                 'test_bench.py', 'test_layers.py', 'test_models.py',
                 'test_metrics.py')


def pytest_collection_modifyitems(items):
  rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
  items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable


@pytest.fixture(scope='session', autouse=True)
def compilation_cache(tmp_path_factory):
  """Identical programs (one model trained, resumed, trained again) compile
  once, in this process and in the commands tests run as subprocesses (they
  inherit the environment). Every program, however quick to compile: the
  small ones (initialisers, samplers, evaluations) recur across commands,
  and caching them too took test_cli, test_workdir_files and
  test_robustness from 174 s to 159 s (one worker, 2026-12-06)."""
  settings = {'jax_compilation_cache_dir': str(tmp_path_factory.mktemp('jax_cache')),
              'jax_persistent_cache_min_compile_time_secs': 0,
              'jax_persistent_cache_min_entry_size_bytes': 0}
  for name, value in settings.items():
    jax.config.update(name, value)
    os.environ[name.upper()] = str(value)


@pytest.fixture(scope='module')
def optimized():
  """XLA with its optimisations, for a module whose programs run long enough
  for them to pay (in this process; commands: command_env(optimized=True)).
  A module takes it with an autouse module fixture, so that its other
  module fixtures run optimised too."""
  with xla_optimizations():
    yield


@pytest.fixture
def idx_dir(tmp_path):
  """A directory with 64 random 28x28 'MNIST' training images."""
  rng = np.random.default_rng(0)
  directory = tmp_path / 'idx'
  directory.mkdir()
  write_idx_images(str(directory / 'train-images-idx3-ubyte.gz'),
                   rng.integers(0, 256, (64, 28, 28)))
  return str(directory)
