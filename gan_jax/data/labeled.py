"""Labeled images (MNIST, Fashion-MNIST), split into train and test: what the
LeNet classifier trains on and the image evaluators compare against."""

import dataclasses

import numpy as np

from gan_jax.data.datasets import DATASETS
from gan_jax.data.datasets import NUM_CLASSES
from gan_jax.errors import UserError

# With only the t10k files, the last T10K_HELD_OUT_FRACTION of them are held
# out for testing and the rest train (10,000 images: 8,000 / 2,000).
T10K_HELD_OUT_FRACTION = 0.2


@dataclasses.dataclass(frozen=True)
class LabeledData:
  """Images with class labels, split into train and test.

  Attributes:
    train_images: uint8 [N, 28, 28, 1].
    train_labels: int32 [N], in [0, NUM_CLASSES).
    test_images: uint8 [M, 28, 28, 1].
    test_labels: int32 [M].
    description: one line for the log: where the splits come from.
  """
  train_images: np.ndarray
  train_labels: np.ndarray
  test_images: np.ndarray
  test_labels: np.ndarray
  description: str


def checked_labeled(name: str, where: str, images: np.ndarray,
                     labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """uint8 [N, 28, 28, 1] images and int32 [N] labels; UserError if bad."""
  shape = DATASETS[name].example_shape
  if images.ndim == 3:
    images = images[..., None]
  if images.dtype != np.uint8 or images.shape[1:] != shape or not len(images):
    raise UserError(f'{where} holds {images.dtype.name} images of shape'
                    f' {images.shape}; {name} needs uint8 [N, '
                    f'{", ".join(map(str, shape))}] with N > 0')
  if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
    raise UserError(f'{where} holds {labels.dtype.name} labels of shape'
                    f' {labels.shape}; labels must be integers of shape [N]')
  if len(labels) != len(images):
    raise UserError(f'{where} holds {len(images)} images but {len(labels)}'
                    ' labels; they must match one to one')
  if labels.min() < 0 or labels.max() >= NUM_CLASSES:
    raise UserError(f'{where} holds labels in [{labels.min()}, {labels.max()}];'
                    f' {name} labels must be in [0, {NUM_CLASSES - 1}]')
  return images, labels.astype(np.int32)
