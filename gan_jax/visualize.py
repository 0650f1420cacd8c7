"""Pictures of samples: image grids and 2-D scatter plots, as uint8 arrays."""

import numpy as np
from PIL import Image
from PIL import ImageDraw


def image_grid(images_NHWC: np.ndarray, columns: int = 8, pad: int = 2) -> np.ndarray:
  """Tiles images in [-1, 1] into one uint8 [H', W', C] picture."""
  images = np.asarray(images_NHWC, np.float32)
  n, h, w, c = images.shape
  rows = -(-n // columns)
  grid = np.full((rows * (h + pad) + pad, columns * (w + pad) + pad, c), 255,
                 np.uint8)
  pixels = np.clip(np.round((images + 1.0) * 127.5), 0, 255).astype(np.uint8)
  for i in range(n):
    top, left = pad + (i // columns) * (h + pad), pad + (i % columns) * (w + pad)
    grid[top:top + h, left:left + w] = pixels[i]
  return grid


def scatter_plot(real_N2: np.ndarray, fake_N2: np.ndarray, size: int = 512,
                 modes_K2: np.ndarray | None = None) -> np.ndarray:
  """Real points (grey), generated points (red) and modes (blue), uint8 [size, size, 3].

  The view is fixed by the real data (with a margin) so that plots of one run
  compare across steps; generated points outside it are drawn on the border.
  """
  real, fake = np.asarray(real_N2, np.float64), np.asarray(fake_N2, np.float64)
  low, high = real.min(axis=0), real.max(axis=0)
  margin = 0.15 * (high - low).max() + 1e-6
  centre, half = (low + high) / 2, (high - low).max() / 2 + margin

  def to_pixels(points):
    xy = (points - centre) / (2 * half) + 0.5
    xy = np.clip(xy, 0.0, 1.0) * (size - 1)
    return np.stack([xy[:, 0], (size - 1) - xy[:, 1]], axis=1)  # y points up

  picture = Image.new('RGB', (size, size), 'white')
  draw = ImageDraw.Draw(picture)
  for points, colour, radius in ((real, (170, 170, 170), 1.5),
                                 (fake, (220, 30, 30), 1.5)):
    for x, y in to_pixels(points):
      draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=colour)
  if modes_K2 is not None:
    for x, y in to_pixels(np.asarray(modes_K2, np.float64)):
      draw.ellipse((x - 3, y - 3, x + 3, y + 3), outline=(30, 60, 220), width=2)
  return np.asarray(picture)
