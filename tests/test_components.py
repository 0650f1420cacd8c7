"""The registries and the config schema: docs/reference.md derived from them,
config keys from specs."""

import os

import ml_collections
import pytest

from gan_jax import components
from gan_jax import configs
from gan_jax import registry
from gan_jax.errors import UserError
from tests.helpers import REPO

# Keys validated otherwise (the evaluators, each looked up by name) or
# free-form: the seed and paths.
# Keys checked otherwise (names looked up, START:STOP parsed) or not at all.
UNCHECKED = {'seed', 'data.path', 'data.tfds_data_dir', 'data.subset',
             'eval.evaluators', 'eval.reference_subset', 'eval.classifier_dir',
             'eval.inception', 'eval.inception_cache'}


def test_the_reference_is_the_code():
  with open(os.path.join(REPO, 'docs', 'reference.md')) as f:
    written = f.read()
  assert written == components.reference(), (
      'docs/reference.md is behind the code; run: python -m gan_jax.components'
      ' --write')
  for section in ('Config', 'Losses', 'Penalties', 'Models', 'Datasets',
                  'Evaluators', 'Schedules', 'Exit codes', 'Commands'):
    assert f'\n## {section}\n' in written, section


def _leaf_keys(config: ml_collections.ConfigDict, prefix: str = '') -> set[str]:
  keys = set()
  for key, value in config.items():
    if isinstance(value, ml_collections.ConfigDict):
      keys |= _leaf_keys(value, f'{prefix}{key}.')
    else:
      keys.add(f'{prefix}{key}')
  return keys


def test_every_config_key_is_validated():
  keys = _leaf_keys(configs.default_config())
  assert keys - set(configs.checks()) == UNCHECKED
  assert set(configs.checks()) <= keys


@pytest.mark.parametrize('key, value, message', [
    ('model.dropout', 1.0, 'model.dropout=1.0 is invalid; it must be in [0, 1)'),
    ('model.width', 0, 'model.width=0 is invalid; it must be > 0'),
    ('loss.gp_weight', -1.0, 'loss.gp_weight=-1.0 is invalid; it must be >= 0'),
    ('model.transposed_conv', 'fft',
     "unknown model.transposed_conv='fft'; valid: subpixel, flax"),
    ('optim.schedule', 'step', "unknown optim.schedule='step'; valid: constant,"),
    ('loss.r1_weight', -0.5, 'loss.r1_weight=-0.5 is invalid; it must be >= 0'),
    ('loss.reg_every', 0, 'loss.reg_every=0 is invalid; it must be > 0'),
    ('model.spectral_norm', None, 'unknown model.spectral_norm=None; valid: False, True'),
    ('optim.g_ema_decay', 1.0, 'optim.g_ema_decay=1.0 is invalid; it must be in [0, 1)'),
    ('optim.g_ema_start', -1, 'optim.g_ema_start=-1 is invalid; it must be >= 0'),
    ('model.pack', 0, 'model.pack=0 is invalid; it must be > 0'),
    ('model.pack', 3, 'model.pack=3 does not divide the batch per device .64'),
])
def test_component_keys_are_validated_from_their_specs(key, value, message):
  config = configs.default_config()
  section, name = key.split('.')
  config[section][name] = value
  with pytest.raises(UserError, match=message.replace('[', r'\[').replace(')', r'\)')):
    configs.validate(config, 1)


def test_lookup_names_the_valid_entries():
  with pytest.raises(UserError, match="unknown loss.name='x'; valid: a, b"):
    registry.lookup({'a': 1, 'b': 2}, 'loss.name', 'x')


def test_two_specs_may_not_give_one_key_two_defaults():
  class Spec:
    def __init__(self, **fields):
      self.fields = {k: registry.Field(v, registry.POSITIVE) for k, v in fields.items()}
  assert registry.merged_fields('model', {'a': Spec(width=1), 'b': Spec(width=1)})
  with pytest.raises(ValueError, match='model.width is declared twice'):
    registry.merged_fields('model', {'a': Spec(width=1), 'b': Spec(width=2)})
