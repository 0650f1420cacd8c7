"""The input protocol of Inception-space metrics (clean-fid's; Parmar et al. 2022).

1. images in [-1, 1] are quantised to uint8, round((x + 1) * 127.5) clipped to
   [0, 255] (round half to even); uint8 images are taken as they are;
2. a grey channel is repeated to RGB;
3. each channel is resized to 299x299 as a float32 image with PIL's bicubic
   filter and clipped to [0, 255]. PIL's resize is separable and linear, so
   `resize` applies it as two matrices read off PIL itself (`resize_matrix`),
   inside the compiled function; tests/test_inception.py checks that it
   equals `resize_with_pil` (clean-fid's own loop) on real digits;
4. the network gets (x - 128) / 128, as NVIDIA's network does internally
   (gan_jax.inception.network).
"""

import functools

import jax.numpy as jnp
import numpy as np

from gan_jax.errors import UserError
from gan_jax.inception.network import HIGHEST
from gan_jax.inception.network import SIZE


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
  out = jnp.einsum('ih,nhwc,jw->nijc', rows, pixels, cols, precision=HIGHEST)
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
