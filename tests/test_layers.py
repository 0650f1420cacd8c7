"""SubPixelConvTranspose is nn.ConvTranspose(padding='SAME'), and
SubPixelGradConv is nn.Conv(padding='SAME'): parameters, outputs and
gradients (second order too for the convolution), for the DCGAN's layers and
for other shapes; and example_dropout is dropout with one key per example."""

import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_jax import configs
from gan_jax import models
from gan_jax.models import dcgan
from gan_jax.models import layers
from tests import specs


def assert_close(actual, expected, rtol=1e-5):
  """Equal up to float32 rounding: the largest difference, relative to the
  largest magnitude of `expected`, which must be non-trivial."""
  actual, expected = np.asarray(actual), np.asarray(expected)
  assert actual.shape == expected.shape and actual.dtype == expected.dtype
  scale = np.max(np.abs(expected))
  assert scale > 0, 'all zeros: the comparison would prove nothing'
  error = np.max(np.abs(actual - expected))
  assert error <= rtol * scale, f'max |difference| {error} > {rtol} * {scale}'


def pair(features, kernel_size, strides, use_bias):
  """The reference and the rewrite with the same settings."""
  return (nn.ConvTranspose(features, kernel_size, strides, padding='SAME',
                           use_bias=use_bias),
          layers.SubPixelConvTranspose(features, kernel_size, strides,
                                       use_bias=use_bias))


# (batch, height, width, in, out, kernel, strides, use_bias)
CASES = [
    # The DCGAN generator's three layers (MNIST), as the generator uses them.
    (2, 7, 7, 256, 128, (5, 5), (1, 1), False),
    (2, 7, 7, 128, 64, (5, 5), (2, 2), False),
    (2, 14, 14, 64, 1, (5, 5), (2, 2), False),
    # Odd and even kernels, strides 1 to 3, with and without bias, on a
    # non-square input.
    *[(2, 5, 6, 3, 4, (k, k), (s, s), (k + s) % 2 == 0)
      for k in (3, 4, 5) for s in (1, 2, 3)],
    # Non-square strides and kernels.
    (2, 5, 6, 3, 4, (5, 5), (2, 1), True),
    (2, 5, 6, 3, 4, (3, 4), (1, 3), False),
    (1, 4, 3, 2, 3, (4, 5), (3, 2), True),
    # Kernels no larger than the stride: some output phases use no tap.
    (2, 4, 4, 3, 2, (1, 1), (2, 2), True),
    (2, 4, 4, 3, 2, (2, 3), (3, 3), False),
    (2, 4, 4, 3, 2, (2, 2), (2, 2), True),
]


@pytest.mark.parametrize('batch,height,width,cin,cout,kernel,strides,use_bias',
                         CASES)
def test_outputs_and_gradients_equal_flax_conv_transpose(
    batch, height, width, cin, cout, kernel, strides, use_bias):
  ref, sub = pair(cout, kernel, strides, use_bias)
  rng = np.random.default_rng(0)
  x = rng.standard_normal((batch, height, width, cin), np.float32)
  # The same parameter tree (names, shapes, dtypes).
  ref_shapes = jax.eval_shape(ref.init, jax.random.key(0), x)
  assert jax.eval_shape(sub.init, jax.random.key(0), x) == ref_shapes
  assert set(ref_shapes['params']) == ({'kernel', 'bias'} if use_bias
                                       else {'kernel'})
  # A random kernel and bias of unit scale (the initial bias is all zeros).
  params = jax.tree.map(lambda s: rng.standard_normal(s.shape, np.float32),
                        ref_shapes)
  out_shape = (batch, height * strides[0], width * strides[1], cout)
  cotangent = rng.standard_normal(out_shape, np.float32)

  def outputs_and_gradients(params, x, cotangent):
    # Gradients of a random projection of the outputs w.r.t. the parameters
    # and the input.
    def one(layer):
      y, vjp = jax.vjp(layer.apply, params, x)
      return y, vjp(cotangent)
    return one(ref), one(sub)

  # One program for both layers: one compilation per case. (Arguments, not
  # constants, which XLA would fold at compile time.)
  with jax.default_matmul_precision('float32'):  # no TF32 on GPUs
    (y_ref, (ref_dp, ref_dx)), (y_sub, (sub_dp, sub_dx)) = jax.jit(
        outputs_and_gradients)(params, x, cotangent)
  assert y_ref.shape == out_shape
  assert_close(y_sub, y_ref)
  assert_close(sub_dx, ref_dx)
  for name in ref_dp['params']:
    assert_close(sub_dp['params'][name], ref_dp['params'][name])


@pytest.mark.parametrize('cin,cout,kernel,strides,use_bias', [
    (256, 128, (5, 5), (1, 1), False),  # the DCGAN generator's first one
    (3, 4, (3, 4), (2, 1), True),
])
def test_the_same_key_initialises_the_same_parameters(cin, cout, kernel, strides,
                                                      use_bias):
  ref, sub = pair(cout, kernel, strides, use_bias)
  x = jnp.zeros((1, 3, 3, cin))
  ref_vars, sub_vars = jax.jit(lambda key: (ref.init(key, x), sub.init(key, x)))(
      jax.random.key(1))
  assert jax.tree.structure(ref_vars) == jax.tree.structure(sub_vars)
  for a, b in zip(jax.tree.leaves(ref_vars), jax.tree.leaves(sub_vars),
                  strict=True):
    np.testing.assert_array_equal(a, b)
  assert np.std(ref_vars['params']['kernel']) > 0


def test_int_strides_broadcast_as_in_flax():
  rng = np.random.default_rng(0)
  x = rng.standard_normal((1, 3, 4, 2), np.float32)
  params = {'params': {'kernel': rng.standard_normal((3, 3, 2, 3), np.float32),
                       'bias': rng.standard_normal((3,), np.float32)}}
  ref = nn.ConvTranspose(3, (3, 3), 2, padding='SAME')
  sub = layers.SubPixelConvTranspose(3, (3, 3), 2)
  with jax.default_matmul_precision('float32'):
    assert_close(sub.apply(params, x), ref.apply(params, x))


@pytest.mark.parametrize('kernel_size,strides,shape', [
    (5, 2, (2, 7, 7, 4)),  # an int kernel_size is 1-D in nn.ConvTranspose
    ((5, 5, 5), (2, 2, 2), (2, 4, 4, 4, 3)),
    ((5, 5), (2, 2), (7, 7, 4)),  # no batch axis
])
def test_other_than_2d_batched_is_a_clear_error(kernel_size, strides, shape):
  layer = layers.SubPixelConvTranspose(3, kernel_size, strides)
  with pytest.raises(ValueError, match='2-D only.*nn.ConvTranspose'):
    layer.init(jax.random.key(0), jnp.zeros(shape))


def test_phase_taps_by_hand():
  # k=5, s=2: SAME pads 3 on the low side, so output 2i + a sums
  # w[t] x[i + d] over (a + t - 3) = 2d: phase 0 takes taps 1, 3 at offsets
  # -1, 0; phase 1 taps 0, 2, 4 at -1, 0, 1 (5: the zero tap).
  taps, d_min, d_max = layers.phase_taps(5, 2)
  assert (d_min, d_max) == (-1, 1)
  np.testing.assert_array_equal(taps, [[1, 3, 5], [0, 2, 4]])
  # Stride 1: one phase, the whole kernel at offsets -2..2.
  taps, d_min, d_max = layers.phase_taps(5, 1)
  assert (d_min, d_max) == (-2, 2)
  np.testing.assert_array_equal(taps, [[0, 1, 2, 3, 4]])
  # k=4, s=2: pad 2; phase 0 taps 0, 2 at offsets -1, 0; phase 1 taps 1, 3
  # at 0, 1.
  taps, d_min, d_max = layers.phase_taps(4, 2)
  assert (d_min, d_max) == (-1, 1)
  np.testing.assert_array_equal(taps, [[0, 2, 4], [4, 1, 3]])
  # k=1, s=2: output 2i is w[0] x[i]; output 2i + 1 is zero.
  taps, d_min, d_max = layers.phase_taps(1, 2)
  assert (d_min, d_max) == (0, 0)
  np.testing.assert_array_equal(taps, [[0], [1]])


def test_depth_to_space_interleaves_the_phases():
  # Channel (a_h * sw + a_w) * C + c of input pixel (i, j) goes to output
  # pixel (sh * i + a_h, sw * j + a_w), channel c.
  sh, sw, c = 2, 3, 2
  x = jnp.arange(1 * 2 * 2 * sh * sw * c).reshape(1, 2, 2, sh * sw * c)
  y = layers.depth_to_space(x, (sh, sw))
  assert y.shape == (1, 4, 6, c)
  for i, j, a_h, a_w, ch in np.ndindex(2, 2, sh, sw, c):
    assert y[0, sh * i + a_h, sw * j + a_w, ch] == x[0, i, j, (a_h * sw + a_w) * c + ch]


# Every model with the model.transposed_conv choice.
TRANSPOSING_MODELS = [name for name, spec in models.MODELS.items()
                      if 'transposed_conv' in spec.fields]


def build_both(name):
  """Model `name` (at its test shape and widths) with either kind of layer:
  ((G, D) subpixel, (G, D) flax)."""
  spec = specs.model(name)
  built = []
  for kind in ('subpixel', 'flax'):
    model_config = configs.default_config().model
    model_config.update(name=name, transposed_conv=kind, **spec.fields)
    built.append(models.build(model_config, spec.shape))
  return built


def test_the_dcgan_is_among_the_models_with_either_layer():
  assert {'dcgan', 'sngan'} <= set(TRANSPOSING_MODELS)
  (g, d), _ = build_both('dcgan')
  assert isinstance(g, dcgan.Generator) and isinstance(d, dcgan.Discriminator)


@pytest.mark.parametrize('name', TRANSPOSING_MODELS)
def test_every_generator_is_the_same_function_with_either_layer(name):
  (sub, _), (ref, _) = build_both(name)
  assert sub.transposed_conv == 'subpixel' and ref.transposed_conv == 'flax'
  z = jax.random.normal(jax.random.key(0), (4, 100))
  # The same variables (names, shapes, values) from the same key, so a
  # checkpoint of either loads into the other.
  sub_vars, ref_vars = jax.jit(lambda key, z: (
      sub.init(key, z, train=False), ref.init(key, z, train=False)))(
          jax.random.key(1), z)
  assert jax.tree.structure(sub_vars) == jax.tree.structure(ref_vars)
  for a, b in zip(jax.tree.leaves(sub_vars), jax.tree.leaves(ref_vars),
                  strict=True):
    np.testing.assert_array_equal(a, b)

  # Inference mode, and training mode (batch statistics, without the
  # cross-device axis) with the updated running averages.
  def apply(model, variables, z):
    infer = model.apply(variables, z, train=False)
    trained, updates = model.clone(bn_axis_name=None).apply(
        variables, z, train=True, mutable=['batch_stats'])
    return infer, trained, updates

  with jax.default_matmul_precision('float32'):
    outputs = jax.jit(lambda v, z: (apply(sub, v, z), apply(ref, v, z)))(
        ref_vars, z)
  for a, b in zip(*map(jax.tree.leaves, outputs), strict=True):
    assert_close(a, b)


# SubPixelGradConv is nn.Conv(padding='SAME') with the input gradient
# computed sub-pixel: (batch, height, width, in, out, kernel, strides, use_bias)
CONV_CASES = [
    # The DCGAN discriminator's two layers (MNIST).
    (2, 28, 28, 1, 64, (5, 5), (2, 2), True),
    (2, 14, 14, 64, 128, (5, 5), (2, 2), True),
    # Odd and even kernels, strides 1 to 3, sizes the stride does not divide.
    *[(2, 7, 6, 3, 4, (k, k), (s, s), (k + s) % 2 == 0)
      for k in (3, 4, 5) for s in (1, 2, 3)],
    (2, 9, 8, 3, 4, (5, 3), (2, 1), True),
    (1, 5, 7, 2, 3, (4, 5), (3, 2), False),
    # Kernels no larger than the stride.
    (2, 6, 5, 3, 2, (1, 1), (2, 2), True),
    (2, 7, 7, 3, 2, (2, 2), (3, 3), False),
]


def assert_same_conv(sub: nn.Module, ref: nn.Module, x: np.ndarray) -> None:
  """`sub` and `ref` have the same parameters, outputs, gradients and the
  second-order gradient of a gradient penalty, on `x`."""
  rng = np.random.default_rng(0)
  ref_shapes = jax.eval_shape(ref.init, jax.random.key(0), x)
  assert jax.eval_shape(sub.init, jax.random.key(0), x) == ref_shapes
  params = jax.tree.map(lambda s: rng.standard_normal(s.shape, np.float32),
                        ref_shapes)
  out_shape = jax.eval_shape(ref.apply, params, x).shape
  cotangent = rng.standard_normal(out_shape, np.float32)

  def first_and_second_order(params, x, cotangent):
    def one(layer):
      y, vjp = jax.vjp(layer.apply, params, x)

      # A gradient penalty's path: the parameters' gradient of a function
      # of the input gradient (WGAN-GP differentiates D twice).
      def penalty(params):
        grad_x = jax.grad(lambda x: jnp.vdot(layer.apply(params, x),
                                             cotangent))(x)
        return jnp.sum(grad_x ** 2)
      return y, vjp(cotangent), jax.grad(penalty)(params)
    return one(ref), one(sub)

  with jax.default_matmul_precision('float32'):
    ((y_ref, (ref_dp, ref_dx), ref_gp),
     (y_sub, (sub_dp, sub_dx), sub_gp)) = jax.jit(first_and_second_order)(
         params, x, cotangent)
  assert_close(y_sub, y_ref)
  assert_close(sub_dx, ref_dx)
  for name in ref_dp['params']:
    assert_close(sub_dp['params'][name], ref_dp['params'][name])
  assert_close(sub_gp['params']['kernel'], ref_gp['params']['kernel'])


@pytest.mark.parametrize('batch,height,width,cin,cout,kernel,strides,use_bias',
                         CONV_CASES)
def test_subpixel_grad_conv_equals_flax_conv(batch, height, width, cin, cout,
                                             kernel, strides, use_bias):
  x = np.random.default_rng(1).standard_normal((batch, height, width, cin),
                                               np.float32)
  assert_same_conv(
      layers.SubPixelGradConv(cout, kernel, strides, use_bias=use_bias),
      nn.Conv(cout, kernel, strides, padding='SAME', use_bias=use_bias), x)


@pytest.mark.parametrize('kernel', [(1, 1), (3, 3), (4, 4), (5, 3)])
def test_conv_equals_flax_conv_at_stride_1(kernel):
  x = np.random.default_rng(1).standard_normal((2, 7, 6, 3), np.float32)
  assert_same_conv(layers.Conv(4, kernel), nn.Conv(4, kernel, padding='SAME'), x)


@pytest.mark.parametrize('name', TRANSPOSING_MODELS)
def test_every_discriminator_is_the_same_function_with_either_layer(name):
  (_, sub), (_, ref) = build_both(name)
  assert sub.transposed_conv == 'subpixel' and ref.transposed_conv == 'flax'
  x = jax.random.normal(jax.random.key(0),
                        (4, *specs.model(name).shape))
  sub_vars, ref_vars = jax.jit(lambda key: (
      sub.init(key, x, train=False), ref.init(key, x, train=False)))(
          jax.random.key(1))
  assert jax.tree.structure(sub_vars) == jax.tree.structure(ref_vars)
  for a, b in zip(jax.tree.leaves(sub_vars), jax.tree.leaves(ref_vars),
                  strict=True):
    np.testing.assert_array_equal(a, b)

  # Training mode (dropout with the same keys), logits and the gradients with
  # respect to the parameters and the images.
  keys = jax.random.split(jax.random.key(2), 4)
  def logits_and_grads(model, variables, x):
    def f(variables, x):
      return jnp.sum(model.apply(variables, x, train=True,
                                 example_keys_B=keys) ** 2)
    return f(variables, x), jax.grad(f, argnums=(0, 1))(variables, x)

  with jax.default_matmul_precision('float32'):
    outputs = jax.jit(lambda v, x: (logits_and_grads(sub, v, x),
                                    logits_and_grads(ref, v, x)))(ref_vars, x)
  for a, b in zip(*map(jax.tree.leaves, outputs), strict=True):
    assert_close(a, b)


def test_example_dropout_keeps_the_expected_share_and_scales_it():
  x = jnp.ones((8, 16, 16, 32))
  keys = jax.random.split(jax.random.key(0), 8)
  y = np.asarray(layers.example_dropout(x, keys, 0.3, layer=0))
  assert set(np.unique(y)) == {0.0, np.float32(1 / 0.7)}
  kept = np.mean(y > 0)  # 65,536 units: std of the share is about 0.002
  assert abs(kept - 0.7) < 0.01


def test_example_dropout_masks_depend_on_the_example_key_and_layer_only():
  x = jax.random.normal(jax.random.key(0), (4, 6, 6, 3))
  keys = jax.random.split(jax.random.key(1), 4)
  batch = layers.example_dropout(x, keys, 0.5, layer=0)
  for i in range(4):  # each example alone, with its key: the same mask
    np.testing.assert_array_equal(
        batch[i:i + 1], layers.example_dropout(x[i:i + 1], keys[i:i + 1], 0.5, 0))
  assert not np.array_equal(batch[0] != 0, batch[1] != 0)  # keys differ
  other_layer = layers.example_dropout(x, keys, 0.5, layer=1)
  assert not np.array_equal(batch != 0, other_layer != 0)


def loop_conv_layouts(layer: nn.Module, x: jax.Array) -> set[str]:
  """The layouts (dim_labels) of every convolution XLA compiles for the
  input and parameter gradients of `layer`, taken in a while loop over two
  members' parameters (as train.seed_batching='loop' runs seeds)."""
  params = jax.vmap(lambda key: layer.init(key, x))(
      jax.random.split(jax.random.key(0), 2))

  def grads(params):
    return jax.grad(lambda p, x: jnp.sum(layer.apply(p, x) ** 2),
                    argnums=(0, 1))(params, x)
  text = jax.jit(lambda ps: jax.lax.map(grads, ps)).lower(
      params).compile().as_text()
  return set(re.findall(r'convolution\(.*dim_labels=([^,]+),', text))


STANDARD_LAYOUT = {'b01f_01io->b01f'}  # NHWC, HWIO -> NHWC


def test_gradients_in_a_loop_are_convolutions_in_the_standard_layout():
  """XLA:CPU runs a convolution in any other layout on a slow generic path:
  JAX's own gradient rules, in a loop over seeds, made the DCGAN step 60x
  slower (benchmarks/README.md). The project's layers write their gradients
  in the standard layout; nn.Conv's are not (the check can fail)."""
  x = jnp.ones((2, 14, 14, 4))
  assert loop_conv_layouts(layers.SubPixelGradConv(8, (5, 5), 2), x) \
      == STANDARD_LAYOUT
  assert loop_conv_layouts(layers.SubPixelConvTranspose(8, (5, 5), 2), x) \
      == STANDARD_LAYOUT
  assert loop_conv_layouts(layers.Conv(8, (3, 3)), x) == STANDARD_LAYOUT
  assert loop_conv_layouts(nn.Conv(8, (5, 5), 2), x) != STANDARD_LAYOUT
