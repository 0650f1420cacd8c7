"""Every model with every stabiliser at once resumes bit-exactly (a contract of
tests/test_contracts.py, in its own file so that pytest's workers share them)."""

import os
import shutil

import jax
import numpy as np
import pytest

from gan_jax import data
from gan_jax import models
from gan_jax import train
from tests import specs
from tests.helpers import model_config
from tests.helpers import restored_state
from tests.helpers import small_run

# Every stabiliser at once: spectral norm's u and sigma, lazy R1 and R2 (the
# penalties on D updates 0 and 2, whichever run makes them), G's average
# (G's copy at update 1, averaged after it; with BatchNorm's statistics),
# PacGAN's packs of 2.
STABILISERS = {'model.spectral_norm': True, 'model.pack': 2, 'loss.r1_weight': 1.0,
               'loss.r2_weight': 0.5, 'loss.reg_every': 2,
               'optim.g_ema_decay': 0.9, 'optim.g_ema_start': 1}


def stabilised_run(name: str):
  """A small run of model `name` with every stabiliser at once."""
  config = small_run(model_config(name), specs.model(name).shape)
  for key, value in STABILISERS.items():
    section, field = key.split('.')
    config[section][field] = value
  return config


# The MLP's case resumes in a gs:// workdir: tests/test_object_storage.py.
@pytest.mark.parametrize('name', [m for m in models.MODELS if m != 'mlp'])
def test_every_model_with_every_stabiliser_resumes_bit_exactly(tmp_path, name):
  """The whole state: BatchNorm statistics, dropout keys, both Adam states,
  spectral norm's u and sigma, lazy R1/R2's host-side step count (MLP), G's
  average (without stabilisers too: tests/test_seeds.py, tests/test_cli.py),
  and the stream's position (DCGAN; two processes: tests/test_stream.py)."""
  config = stabilised_run(name)
  if models.MODELS[name].convolutional:
    # Lazy regularisation's step count is the host's, whatever the model: the
    # MLP's run covers it, and the convolutional ones compile one program
    # (penalties every step) instead of two, which halves their compilation.
    config.loss.reg_every = 1
  # The DCGAN's real batches are streamed (data.stream: its position is
  # saved with each checkpoint), the other models' drawn inside the step.
  source = data.synthetic(config.data.name, num_images=64,
                          pipeline='stream' if name == 'dcgan' else 'device')
  config.train.num_steps = 4
  train.train_and_evaluate(config, str(tmp_path / 'straight'), source)
  # As if killed after checkpoint 2: the later checkpoint and results gone.
  shutil.copytree(tmp_path / 'straight', tmp_path / 'resumed')
  shutil.rmtree(tmp_path / 'resumed' / 'checkpoints' / '4')
  os.remove(tmp_path / 'resumed' / 'results.json')
  train.train_and_evaluate(config, str(tmp_path / 'resumed'), source)
  straight = restored_state(str(tmp_path / 'straight'))
  resumed = restored_state(str(tmp_path / 'resumed'))
  for a, b in zip(jax.tree.leaves(straight), jax.tree.leaves(resumed), strict=True):
    np.testing.assert_array_equal(a, b)
