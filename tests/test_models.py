"""Model output shapes and parameter counts (the tutorial's architecture)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_jax import configs
from gan_jax import models
from gan_jax.errors import UserError


def count(params) -> int:
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(params))


def build(name, shape, **overrides):
  model_config = configs.default_config().model
  model_config.name = name
  model_config.update(overrides)
  return models.build(model_config, shape)


def test_dcgan_mnist_matches_the_tutorial_parameter_counts():
  g, d = build('dcgan', (28, 28, 1))
  z = jnp.zeros((3, 100))
  g_vars = g.init(jax.random.key(0), z, train=False)
  images = g.apply(g_vars, jax.random.normal(jax.random.key(1), (3, 100)),
                   train=False)
  assert images.shape == (3, 28, 28, 1)
  assert float(jnp.max(jnp.abs(images))) <= 1.0
  # Keras' model.summary() of the tutorial: 2,305,472 trainable parameters
  # in G (plus 25,472 BatchNorm moving statistics), 212,865 in D.
  assert count(g_vars['params']) == 2_305_472
  assert count(g_vars['batch_stats']) == 25_472
  d_params = d.init(jax.random.key(2), images, train=False)['params']
  assert count(d_params) == 212_865
  assert d.apply({'params': d_params}, images, train=False).shape == (3,)


def test_dcgan_follows_the_data_shape_for_cifar10():
  g, d = build('dcgan', (32, 32, 3))
  g_vars = g.init(jax.random.key(0), jnp.zeros((2, 100)), train=False)
  images = g.apply(g_vars, jnp.ones((2, 100)), train=False)
  assert images.shape == (2, 32, 32, 3)
  d_vars = d.init(jax.random.key(1), images, train=False)
  assert d.apply(d_vars, images, train=False).shape == (2,)


def test_dcgan_discriminator_dropout_is_active_only_in_training():
  _, d = build('dcgan', (28, 28, 1))
  x = jnp.ones((2, 28, 28, 1))
  params = d.init(jax.random.key(0), x, train=False)
  a = d.apply(params, x, train=True,
              example_keys_B=jax.random.split(jax.random.key(1), 2))
  b = d.apply(params, x, train=True,
              example_keys_B=jax.random.split(jax.random.key(2), 2))
  assert not np.allclose(a, b)
  np.testing.assert_array_equal(d.apply(params, x, train=False),
                                d.apply(params, x, train=False))
  with pytest.raises(ValueError, match='needs example_keys_B'):
    d.apply(params, x, train=True)


def test_dcgan_discriminator_gives_each_example_its_own_masks():
  """A batch's logits are each example's logits on its own with its key: the
  same numbers however a batch is split (across devices, or real and fake)."""
  _, d = build('dcgan', (28, 28, 1))
  x = jax.random.normal(jax.random.key(0), (4, 28, 28, 1))
  params = d.init(jax.random.key(1), x, train=False)
  keys = jax.random.split(jax.random.key(2), 4)
  batch = d.apply(params, x, train=True, example_keys_B=keys)
  alone = [d.apply(params, x[i:i + 1], train=True, example_keys_B=keys[i:i + 1])
           for i in range(4)]
  np.testing.assert_allclose(batch, np.concatenate(alone), rtol=1e-5, atol=1e-6)
  # Swapping two examples' keys swaps their masks, hence changes the logits.
  swapped = d.apply(params, x, train=True, example_keys_B=keys[jnp.array([1, 0, 2, 3])])
  assert not np.allclose(batch[:2], swapped[:2])


def test_mlp_shapes_and_parameter_counts():
  g, d = build('mlp', (2,), width=512, depth=3, latent_dim=2)
  g_params = g.init(jax.random.key(0), jnp.zeros((5, 2)), train=False)
  points = g.apply(g_params, jnp.ones((5, 2)), train=False)
  assert points.shape == (5, 2)
  # 2->512, 512->512, 512->512, 512->2 (weights + biases); D ends in 512->1.
  assert count(g_params) == (2 * 512 + 512) + 2 * (512 * 512 + 512) + (512 * 2 + 2)
  d_params = d.init(jax.random.key(1), points, train=False)
  assert count(d_params) == (2 * 512 + 512) + 2 * (512 * 512 + 512) + (512 + 1)
  assert d.apply(d_params, points, train=False).shape == (5,)


@pytest.mark.parametrize('name,shape,message', [
    ('resnet', (28, 28, 1), 'valid: dcgan, mlp'),
    ('dcgan', (2,), 'divisible by 4'),
    ('mlp', (28, 28, 1), 'flat examples'),
])
def test_bad_model_choices_raise_user_errors(name, shape, message):
  with pytest.raises(UserError, match=message):
    build(name, shape)


def test_a_bad_transposed_conv_is_a_user_error_not_flax_silently():
  with pytest.raises(UserError, match="model.transposed_conv='Flax'.*valid: subpixel, flax"):
    build('dcgan', (28, 28, 1), transposed_conv='Flax')
