"""What a dataset is to the trainer: a DataSource, and how images are drawn.

Under data.pipeline=device, batches are drawn i.i.d. with replacement inside
the compiled step by `sample_one(arrays, key)`, from host arrays placed on
the devices once, so no input pipeline runs during training and a resumed
run repeats exactly. Under data.pipeline=stream the step reads the batches
that data.stream delivers instead.
"""

from collections.abc import Callable
import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np


@dataclasses.dataclass(frozen=True)
class DataSource:
  """A dataset as the trainer sees it.

  Attributes:
    name: dataset name, a key of DATASETS.
    kind: 'images' or 'points'.
    example_shape: shape of one example, e.g. (28, 28, 1) or (2,).
    arrays: host arrays that `sample_one` reads (put on the devices once).
    sample_one: pure, jittable, vmappable (arrays, key) -> one float32 example
      (images in [-1, 1]).
    description: one line for the log.
    modes: float32 [K, 2] mode centres of a discrete toy mixture, else None.
    mode_std: the per-coordinate std of those modes, else None.
    labels: int32 [N] class of each image (a folder's subfolders), else None.
    classes: the class names, in label order.
    pipeline: 'device' (arrays drawn from inside the step) or 'stream'
      (`examples` read in order by data.stream; arrays is then empty).
    pipeline_why: why that pipeline (data.stream.choose), for the log.
    examples: random access to the images (data.stream.Examples) when the
      pipeline is 'stream', else None.
  """
  name: str
  kind: str
  example_shape: tuple[int, ...]
  arrays: dict[str, np.ndarray]
  sample_one: Callable[[dict, jax.Array], jax.Array]
  description: str
  modes: np.ndarray | None = None
  mode_std: float | None = None
  labels: np.ndarray | None = None
  classes: tuple[str, ...] = ()
  pipeline: str = 'device'
  pipeline_why: str = ''
  examples: object = None


def scale_pixels(images):
  """uint8 pixels (numpy or jax) -> float32 in [-1, 1], the range the models
  and the classifier see."""
  return images.astype(np.float32) / 127.5 - 1.0


def sample_image(arrays: dict, key: jax.Array) -> jax.Array:
  """A uniformly random image of arrays['images'] (uint8), scaled to [-1, 1]."""
  images = arrays['images']
  index = jax.random.randint(key, (), 0, images.shape[0])
  return scale_pixels(jax.lax.dynamic_index_in_dim(images, index, keepdims=False))


def sample_stacked_digits(arrays: dict, key: jax.Array) -> jax.Array:
  """Three independent uniformly random digits as the channels of one image.

  Stacked MNIST (Srivastava et al. 2017, VEEGAN; Lin et al. 2018, PacGAN):
  10^3 = 1,000 modes, one per digit triple.
  """
  digits = jax.vmap(functools.partial(sample_image, arrays))(
      jax.random.split(key, 3))  # [3, 28, 28, 1]
  return jnp.moveaxis(digits[..., 0], 0, -1)
