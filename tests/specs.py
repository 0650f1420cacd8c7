"""What the tests know of each registered model beyond its spec in
gan_jax/models: an example shape it fits, its parameter counts there with its
fields' defaults and latent_dim 100 (the paper's, checked by a contract
test), and narrower field values that keep the contract tests fast.

A new model adds its entry here, as a new loss adds its NumPy test; the
contract tests name this file when an entry is missing.
"""

import dataclasses
from typing import Any


@dataclasses.dataclass(frozen=True)
class ModelTest:
  shape: tuple[int, ...]  # an example shape the model fits
  param_counts: tuple[int, int]  # (G, D) at `shape`, the fields' defaults
  fields: dict[str, Any] = dataclasses.field(default_factory=dict)  # narrower


MODELS: dict[str, ModelTest] = {
    'dcgan': ModelTest((28, 28, 1), (2_305_472, 212_865)),
    'mlp': ModelTest((2,), (578_050, 527_361)),
    'sngan': ModelTest((32, 32, 3), (3_599_363, 2_935_873),
                       {'g_channels': 16, 'd_channels': 16}),
    'resnet': ModelTest((32, 32, 3), (4_162_051, 1_053_825),
                        {'g_channels': 16, 'd_channels': 16}),
}


def model(name: str) -> ModelTest:
  """MODELS[name]; an AssertionError naming this file when it has none."""
  if name not in MODELS:
    raise AssertionError(
        f'model {name!r} has no entry in tests/specs.py: give it an example'
        ' shape it fits, its (G, D) parameter counts there, and narrower'
        ' fields for the contract tests')
  return MODELS[name]
