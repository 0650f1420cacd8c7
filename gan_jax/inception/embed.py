"""Inception features of image sets through the whole input protocol, and
their cache for real sets (10,000 digits take 13 minutes on 2 CPU cores)."""

from collections.abc import Iterator
import functools
import hashlib
import os

import jax
import numpy as np

from gan_jax import files
from gan_jax import progress
from gan_jax.inception.network import InceptionV3
from gan_jax.inception.protocol import check_images
from gan_jax.inception.protocol import quantize
from gan_jax.inception.protocol import resize
from gan_jax.inception.weights import Weights
from gan_jax.inception.weights import reference_directory


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
  One batch is computed while the host waits for the one before: a signal
  (Ctrl-C) is handled between batches, not after the whole set, and the
  progress is logged every few seconds.
  """
  images = check_images(images)
  embed = _embed_fn(weights.with_logits)
  batch_size = min(batch_size, len(images))
  meter = progress.Progress('Inception features', len(images))
  done, in_flight = [], None

  def finish(outputs, count):
    p, lg = outputs
    done.append((np.asarray(p)[:count], None if lg is None else np.asarray(lg)[:count]))
    meter.done(count)

  for start, stop in _batches(len(images), batch_size):
    batch = quantize(images[start:stop])
    if len(batch) < batch_size:
      pad = np.zeros((batch_size - len(batch), *batch.shape[1:]), batch.dtype)
      batch = np.concatenate([batch, pad])
    outputs = embed(weights.params, batch)
    if in_flight is not None:
      finish(*in_flight)
    in_flight = outputs, stop - start
  finish(*in_flight)
  pool3 = np.concatenate([p for p, _ in done])
  if not weights.with_logits:
    return pool3, None
  return pool3, np.concatenate([lg for _, lg in done])


def cached_features(weights: Weights, images, directory: str = '') -> np.ndarray:
  """`features(...)[0]` of `images`, kept in `directory` (default
  reference_directory()) under a hash of the images and the weights: a real
  set scored again (10,000 digits take 13 minutes on 2 CPU cores) is read
  back instead."""
  images = check_images(images)
  digest = hashlib.sha256(f'{images.shape}{images.dtype.str}'.encode())
  digest.update(np.ascontiguousarray(images).tobytes())
  path = os.path.join(directory or reference_directory(),
                      f'features-{digest.hexdigest()[:16]}-{weights.hash}.npz')
  cached = files.read_npz(path, ('pool3',), instead='computing the features again')
  if cached is not None:
    return cached['pool3']
  pool3, _ = features(weights, images)
  if jax.process_index() == 0:
    files.cache_npz(path, {'pool3': pool3})
  return pool3
