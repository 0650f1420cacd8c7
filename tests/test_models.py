"""Model output shapes and parameter counts against the papers' tables."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_jax import configs
from gan_jax import gan as gan_lib
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
  images = jax.jit(lambda v, z: g.apply(v, z, train=False))(
      g_vars, jax.random.normal(jax.random.key(1), (3, 100)))
  assert images.shape == (3, 28, 28, 1)
  assert float(jnp.max(jnp.abs(images))) <= 1.0
  # Keras' model.summary() of the tutorial: 2,305,472 trainable parameters
  # in G (plus 25,472 BatchNorm moving statistics), 212,865 in D.
  assert count(g_vars['params']) == 2_305_472
  assert count(g_vars['batch_stats']) == 25_472
  d_params = d.init(jax.random.key(2), images, train=False)['params']
  assert count(d_params) == 212_865
  assert d.apply({'params': d_params}, images, train=False).shape == (3,)


# Each MNIST DCGAN layer's kernel shape and PyTorch's fan_in for it: in·k·k
# for a convolution or dense layer, out·k·k for a transposed convolution
# (torch.nn.init._calculate_fan_in_and_fan_out on a [in, out, k, k] weight).
DCGAN_TORCH_FAN_IN = {
    ('G', 'Dense_0'): 100, ('G', 'ConvTranspose_0'): 128 * 25,
    ('G', 'ConvTranspose_1'): 64 * 25, ('G', 'ConvTranspose_2'): 1 * 25,
    ('D', 'Conv_0'): 1 * 25, ('D', 'Conv_1'): 64 * 25, ('D', 'Dense_0'): 6272}


@pytest.mark.parametrize('weight_init', ['flax', 'dcgan', 'torch'])
def test_dcgan_weight_inits_draw_each_layer_as_documented(weight_init):
  g, d = build('dcgan', (28, 28, 1), weight_init=weight_init)
  params = {
      'G': g.init(jax.random.key(0), jnp.zeros((2, 100)), train=False)['params'],
      'D': d.init(jax.random.key(1), jnp.zeros((2, 28, 28, 1)),
                  train=False)['params']}
  for (player, layer), torch_fan_in in DCGAN_TORCH_FAN_IN.items():
    kernel = np.asarray(params[player][layer]['kernel'])
    bias = params[player][layer].get('bias')
    flax_fan_in = kernel.size // kernel.shape[-1]  # kh·kw·in, LeCun's
    if weight_init == 'torch':  # U(±1/√fan_in), kernels and biases
      bound = torch_fan_in ** -0.5
      assert np.abs(kernel).max() <= bound
      expected_std = bound / np.sqrt(3)
      if bias is not None:
        assert 0 < np.abs(bias).max() <= bound
    else:  # LeCun normal (variance 1/fan_in) or N(0, 0.02²); zero biases
      expected_std = flax_fan_in ** -0.5 if weight_init == 'flax' else 0.02
      if bias is not None:
        np.testing.assert_array_equal(bias, 0)
    if kernel.size >= 1000:  # enough draws for the std to within 10 %
      np.testing.assert_allclose(kernel.std(), expected_std, rtol=0.1,
                                 err_msg=f'{weight_init} {player} {layer}')


def test_dcgan_weight_init_is_validated():
  config = configs.default_config()
  config.model.weight_init = 'xavier'
  with pytest.raises(UserError, match="model.weight_init='xavier'; valid:"
                     ' flax, dcgan, torch'):
    configs.validate(config, 1)


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


# Parameters of the layers in the papers' tables: biases everywhere, as in
# the authors' code; BatchNorm has a scale and an offset per feature.
def conv(kernel, cin, cout):
  return kernel * kernel * cin * cout + cout


def batch_norm(features):
  return 2 * features


def sngan_counts(start, image_channels, latent=128):
  """Miyato et al. 2018, Table 3: G: dense to start x start x 512 (BN over
  its features), 4x4 deconvolutions to 256, 128, 64 (BN), 3x3 conv to the
  image. D: 3x3/4x4 convolutions of 64, 64, 128, 128, 256, 256, 512, dense
  from D's 4x4x512 features."""
  features = start * start * 512
  g = conv(1, latent, features) + batch_norm(features)
  for cin, cout in ((512, 256), (256, 128), (128, 64)):
    g += conv(4, cin, cout) + batch_norm(cout)
  g += conv(3, 64, image_channels)
  d, cin = 0, image_channels
  for kernel, cout in ((3, 64), (4, 64), (3, 128), (4, 128), (3, 256), (4, 256),
                       (3, 512)):
    d, cin = d + conv(kernel, cin, cout), cout
  return g, d + conv(1, 4 * 4 * 512, 1)


def resnet_counts(start, image_channels, upsampling_blocks, latent=128):
  """Miyato et al. 2018, Table 4 (Gulrajani et al. 2017's blocks): G: dense
  to start x start x 256, three blocks (BN, conv 3x3, BN, conv 3x3; a 1x1
  shortcut when up-sampling), BN, 3x3 conv to the image. D: an optimized
  block (two 3x3 convs, 1x1 shortcut), a down-sampling block (the same), two
  blocks with identity shortcuts (two 3x3 convs), all 128 wide; dense 128 -> 1."""
  block = batch_norm(256) + conv(3, 256, 256) + batch_norm(256) + conv(3, 256, 256)
  g = (conv(1, latent, start * start * 256) + 3 * block
       + upsampling_blocks * conv(1, 256, 256)
       + batch_norm(256) + conv(3, 256, image_channels))
  d = (conv(3, image_channels, 128) + conv(3, 128, 128) + conv(1, image_channels, 128)
       + conv(3, 128, 128) * 2 + conv(1, 128, 128)
       + 2 * (conv(3, 128, 128) * 2) + conv(1, 128, 1))
  return g, d


def traced_counts(name, shape) -> tuple[int, int]:
  """(G, D) parameter counts of model `name` at latent 128 for examples of
  `shape`, from tracing alone, after checking the shapes it maps."""
  g, d = build(name, shape, latent_dim=128)
  z = jnp.zeros((2, 128))
  g_vars = jax.eval_shape(lambda: g.init(jax.random.key(0), z, train=False))
  images = jax.eval_shape(lambda v: g.apply(v, z, train=False), g_vars)
  assert images.shape == (2, *shape)
  d_vars = jax.eval_shape(lambda x: d.init(jax.random.key(1), x, train=False),
                          images)
  logits = jax.eval_shape(lambda v, x: d.apply(v, x, train=False), d_vars, images)
  assert logits.shape == (2,)
  return count(g_vars['params']), count(d_vars['params'])


@pytest.mark.parametrize('name,shape,expected', [
    # The papers' CIFAR-10 setting: G from 4x4, three up-sampling stages.
    ('sngan', (32, 32, 3), sngan_counts(4, 3)),
    ('resnet', (32, 32, 3), resnet_counts(4, 3, upsampling_blocks=3)),
    # MNIST: G from 7x7, two up-sampling stages (the third keeps the size).
    ('sngan', (28, 28, 1), sngan_counts(7, 1)),
    ('resnet', (28, 28, 1), resnet_counts(7, 1, upsampling_blocks=2)),
])
def test_sngan_and_resnet_match_the_papers_tables(name, shape, expected):
  assert traced_counts(name, shape) == expected
  if shape == (32, 32, 3):  # the figures the papers and mimicry quote
    assert {'sngan': (3.8e6, 2.9e6), 'resnet': (4.3e6, 1.05e6)}[name] == pytest.approx(
        expected, rel=0.02)


def test_dcgan_at_64x64_is_radfords_own_with_the_papers_parameter_counts():
  g, d = build('dcgan', (64, 64, 3))
  z = jnp.zeros((2, 100))
  g_vars = jax.eval_shape(lambda: g.init(jax.random.key(0), z, train=False))
  d_vars = jax.eval_shape(lambda: d.init(jax.random.key(1), jnp.zeros(
      (2, 64, 64, 3)), train=False))
  # The parameters of Newmu/dcgan_code's faces/train_uncond_dcgan.py (ngf =
  # ndf = 128, 5x5 kernels, no biases): G's 13 arrays; D's 11, less the
  # gains and offsets of its three batch norms, which D here leaves out.
  assert count(g_vars['params']) == (
      100 * 16384 + 2 * 16384 + 25 * (1024 * 512 + 512 * 256 + 256 * 128 + 128 * 3)
      + 2 * (512 + 256 + 128)) == 18_885_760
  assert count(d_vars['params']) == (
      25 * (3 * 128 + 128 * 256 + 256 * 512 + 512 * 1024) + 16384
      ) == 17_232_768 - 2 * (256 + 512 + 1024)
  # A narrow pair runs: images in [-1, 1], and D judges each example alone
  # (its dropout masks from each example's key).
  g = models.dcgan.Generator64(3, width=8, bn_axis_name=None)
  d = models.dcgan.Discriminator64(width=8, dropout_rate=0.5)
  z = jax.random.normal(jax.random.key(2), (4, 100))
  g_vars = g.init(jax.random.key(0), z, train=False)
  images, _ = jax.jit(lambda v, z: g.apply(v, z, train=True,
                                           mutable=['batch_stats']))(g_vars, z)
  assert images.shape == (4, 64, 64, 3) and float(jnp.max(jnp.abs(images))) <= 1
  d_vars = d.init(jax.random.key(1), images, train=False)
  keys = jax.random.split(jax.random.key(3), 4)
  judge = jax.jit(lambda x, k: d.apply(d_vars, x, train=True, example_keys_B=k))
  reversed_order = judge(images[::-1], keys[::-1])[::-1]  # other neighbours
  np.testing.assert_allclose(judge(images, keys), reversed_order, rtol=1e-5,
                             atol=1e-6)


# mimicry's SNGAN networks at each image size (torch_mimicry/nets/sngan/
# sngan_32, _48, _64, _128, after sngan_projection): their parameter counts,
# sum(p.numel() for p in net.parameters()) of its PyTorch modules, z of 128.
MIMICRY_SNGAN_COUNTS = {32: (4_276_739, 1_053_825), 48: (4_878_083, 10_141_441),
                        64: (12_220_675, 10_141_441), 128: (32_150_787, 29_017_857)}


@pytest.mark.parametrize('side', MIMICRY_SNGAN_COUNTS)
def test_resnet_at_each_papers_image_size_matches_mimicrys_networks(side):
  assert traced_counts('resnet', (side, side, 3)) == MIMICRY_SNGAN_COUNTS[side]


def kernel_shapes(name, shape, **overrides) -> dict[str, tuple]:
  """{'G/layer' or 'D/layer': kernel shape} of a model built with `overrides`,
  from tracing alone."""
  g, d = build(name, shape, **overrides)
  z = jnp.zeros((2, 100))
  g_vars = jax.eval_shape(lambda: g.init(jax.random.key(0), z, train=False))
  d_vars = jax.eval_shape(lambda: d.init(jax.random.key(1), jnp.zeros((2, *shape)),
                                         train=False))
  return {f'{player}/{layer}': leaves['kernel'].shape
          for player, variables in (('G', g_vars), ('D', d_vars))
          for layer, leaves in variables['params'].items() if 'kernel' in leaves}


def test_dcgan_channels_scale_each_players_layers():
  """A discriminator a quarter of the generator's width at each resolution
  (PacGAN's Table 3 setting, after Metz et al. 2017): model.d_channels=32."""
  assert kernel_shapes('dcgan', (28, 28, 3), d_channels=32) == {
      'G/Dense_0': (100, 7 * 7 * 256), 'G/ConvTranspose_0': (5, 5, 256, 128),
      'G/ConvTranspose_1': (5, 5, 128, 64), 'G/ConvTranspose_2': (5, 5, 64, 3),
      'D/Conv_0': (5, 5, 3, 16), 'D/Conv_1': (5, 5, 16, 32), 'D/Dense_0': (7 * 7 * 32, 1)}
  narrow = kernel_shapes('dcgan', (28, 28, 1), g_channels=64)
  assert [narrow[f'G/{layer}'] for layer in ('Dense_0', 'ConvTranspose_0', 'ConvTranspose_1')
          ] == [(100, 7 * 7 * 64), (5, 5, 64, 32), (5, 5, 32, 16)]
  assert narrow['D/Conv_1'] == (5, 5, 64, 128)  # the tutorial's D
  radford = kernel_shapes('dcgan', (64, 64, 3), g_channels=64, d_channels=256)
  assert radford['G/Dense_0'] == (100, 4 * 4 * 64) and radford['G/ConvTranspose_2'] == (
      5, 5, 16, 8)
  assert radford['D/Conv_0'] == (5, 5, 3, 32) and radford['D/Conv_3'] == (5, 5, 128, 256)
  with pytest.raises(UserError, match='model.g_channels=30 must be a multiple of 4'):
    build('dcgan', (28, 28, 1), g_channels=30)
  with pytest.raises(UserError, match='model.d_channels=12 must be a multiple of 8'):
    build('dcgan', (64, 64, 3), d_channels=12)


def test_resnet_widths_must_halve_as_often_as_its_table_does():
  build('resnet', (64, 64, 3), g_channels=32, d_channels=32)  # 2 channels
  with pytest.raises(UserError, match='model.d_channels=40 must be a multiple'
                     ' of 16'):
    build('resnet', (64, 64, 3), d_channels=40)


@pytest.mark.parametrize('name,shape,message', [
    ('stylegan', (28, 28, 1), 'valid: dcgan, mlp, sngan, resnet'),
    ('dcgan', (2,), 'divisible by 4'),
    ('sngan', (30, 30, 3), 'divisible by 4'),
    ('resnet', (2,), 'model.name=resnet needs images'),
    ('mlp', (28, 28, 1), 'flat examples'),
])
def test_bad_model_choices_raise_user_errors(name, shape, message):
  with pytest.raises(UserError, match=message):
    build(name, shape)


def test_sngan_channels_that_do_not_halve_three_times_are_a_user_error():
  with pytest.raises(UserError, match='model.d_channels=100 must be a multiple of 8'):
    build('sngan', (32, 32, 3), d_channels=100)


def test_a_bad_transposed_conv_is_a_user_error_not_flax_silently():
  with pytest.raises(UserError, match="model.transposed_conv='Flax'.*valid: subpixel, flax"):
    build('dcgan', (28, 28, 1), transposed_conv='Flax')


def test_cifar10_sngan_recipe_loads_mocked_cifar10_and_the_papers_models(monkeypatch):
  """experiments/cifar10_sngan.py as it loads: mimicry's recipe, TFDS's mock
  CIFAR-10, and the ResNet pair of Table 4 at latent 128. (That every model
  trains and resumes with spectral norm on synthetic 32x32 images:
  tests/test_contracts_resume.py.)"""
  tfds = pytest.importorskip('tensorflow_datasets')
  from gan_jax import analysis  # noqa: PLC0415
  from gan_jax import data  # noqa: PLC0415
  config = analysis.experiment_config('experiments/cifar10_sngan.py')
  assert (config.model.name, config.loss.name, config.model.spectral_norm,
          config.train.d_steps, config.optim.schedule, config.train.batch_size,
          config.train.num_steps, config.optim.b1, config.optim.b2) == (
              'resnet', 'hinge', True, 5, 'linear', 64, 100_000, 0.0, 0.9)
  monkeypatch.setattr(data.tfds, 'offline_reason', lambda name: None)
  with tfds.testing.mock_data(num_examples=4):
    source = data.load(config.data)
  assert source.example_shape == (32, 32, 3)
  g, d = models.build(config.model, source.example_shape)
  assert isinstance(d, models.SpectrallyNormalised)
  z = jnp.zeros((2, config.model.latent_dim))
  g_vars = jax.eval_shape(lambda: g.init(jax.random.key(0), z, train=False))
  images = jax.ShapeDtypeStruct((2, 32, 32, 3), jnp.float32)
  d_vars = jax.eval_shape(lambda x: d.init(jax.random.key(1), x, train=False), images)
  assert (count(g_vars['params']), count(d_vars['params'])) == resnet_counts(
      4, 3, upsampling_blocks=3)


def test_pack_joins_consecutive_examples_on_the_last_axis():
  """PacGAN's packs (Lin et al. 2018): m examples side by side in the
  channels of an image, in the coordinates of a point."""
  images = jax.random.normal(jax.random.key(0), (6, 4, 4, 3))
  packed = models.pack(images, 3)
  assert packed.shape == (2, 4, 4, 9) == (2, *models.packed_shape((4, 4, 3), 3))
  for p, i in itertools.product(range(2), range(3)):
    np.testing.assert_array_equal(packed[p, ..., 3 * i:3 * i + 3], images[3 * p + i])
  points = jnp.arange(8.0).reshape(4, 2)
  np.testing.assert_array_equal(models.pack(points, 2), [[0, 1, 2, 3], [4, 5, 6, 7]])
  assert models.pack(points, 1) is points


def test_a_packed_run_gives_its_discriminator_whole_packs():
  config = configs.toy_config('grid25')
  config.model.width, config.model.pack = 8, 4
  gan = gan_lib.build_gan(config, (2,))
  state = gan_lib.init_state(gan, jax.random.key(0))
  first_kernel = state.d.params['Dense_0']['kernel']
  assert first_kernel.shape == (4 * 2, 8)  # 4 points of 2 coordinates each
