"""A folder of the user's own images (`data.name=folder`, `data.path=DIR`).

Every PNG, JPEG, WebP or BMP file under DIR, in subfolders too, is one
example, in sorted path order. The example shape comes from the files (all
of one size; grey when every file is grey, else RGB), or from
`data.resolution`: each image centre-cropped to a square and resized to that
side with a Lanczos filter, as StyleGAN's dataset tool prepares FFHQ and LSUN
(Karras et al. 2019), and `data.channels` (1 grey, 3 RGB). When every image
sits in a subfolder of DIR, the subfolders are its classes (labels kept, in
sorted name order). Files that cannot be decoded are skipped, and one log
line counts and names them.
"""

import collections
from collections.abc import Callable
import concurrent.futures
import dataclasses
import os
from typing import IO
import zipfile

from absl import logging
import numpy as np
from PIL import Image
from PIL import UnidentifiedImageError

from gan_jax.errors import UserError
from gan_jax.errors import one_line

EXTENSIONS = ('.png', '.jpg', '.jpeg', '.webp', '.bmp')
GREY_MODES = ('1', 'L', 'LA', 'I', 'I;16', 'F')
UNREADABLE = (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError)


@dataclasses.dataclass(frozen=True)
class FolderImages:
  """The decoded images of a folder: uint8 [N, H, W, C], their labels
  (int32 [N], or None without class subfolders) and class names."""
  images: np.ndarray
  labels: np.ndarray | None
  classes: tuple[str, ...]
  description: str


def image_files(directory: str) -> list[str]:
  """The image files under `directory`, relative, sorted.

  Raises:
    UserError: `directory` is not given, not a directory, or holds no file
      with an image extension.
  """
  if not directory:
    raise UserError('data.name=folder needs data.path=DIR, a directory of'
                    f' images ({", ".join(EXTENSIONS)})')
  if not os.path.isdir(directory):
    raise UserError(f'data.path={directory} is not a directory; data.name=folder'
                    f' reads the images ({", ".join(EXTENSIONS)}) under it')
  files, others = list_images(directory)
  if not files:
    raise UserError(f'data.path={directory} holds no image file ({others} other'
                    f' files); data.name=folder reads {", ".join(EXTENSIONS)}')
  return files


def list_images(directory: str) -> tuple[list[str], int]:
  """The files with an image extension under `directory` (recursive, sorted,
  relative to it), and how many other files it holds (hidden ones aside)."""
  files, others = [], 0
  for root, dirs, names in os.walk(directory, followlinks=True):
    dirs.sort()
    for name in sorted(names):
      if name.lower().endswith(EXTENSIONS):
        files.append(os.path.relpath(os.path.join(root, name), directory))
      elif not name.startswith('.'):
        others += 1
  return files, others


def header(path: str) -> tuple[tuple[int, int], bool] | str:
  """(width, height), whether grey; or why the file cannot be read."""
  try:
    with Image.open(path) as image:
      return image.size, image.mode in GREY_MODES
  except UNREADABLE as e:
    return one_line(e)


def opener(source: str) -> Callable[[str], str | IO[bytes]]:
  """How to open one of `source`'s files by its relative name: a path under
  a directory, or a member of a ZIP archive (readable from several threads)."""
  if zipfile.is_zipfile(source) and not os.path.isdir(source):
    archive = zipfile.ZipFile(source)
    return archive.open
  return lambda name: os.path.join(source, name)


def zip_images(path: str) -> list[str]:
  """The members of ZIP archive `path` with an image extension, sorted."""
  with zipfile.ZipFile(path) as archive:
    return sorted(name for name in archive.namelist()
                  if name.lower().endswith(EXTENSIONS) and '__MACOSX' not in name
                  and not os.path.basename(name).startswith('.'))


def read_headers(open_file: Callable, files: list[str]) -> list:
  """`header` of each of `files` (names `open_file` opens), on threads."""
  return _map(lambda f: header(open_file(f)), files)


def decode_all(open_file: Callable, files: list[str], channels: int,
               resolution: int = 0) -> list:
  """`decode` of each of `files` (names `open_file` opens), or why it cannot
  be decoded, on threads."""
  def decoded(name):
    try:
      return decode(open_file(name), channels, resolution)
    except UNREADABLE as e:
      return one_line(e)
  return _map(decoded, files)


@dataclasses.dataclass(frozen=True)
class Scan:
  """What a folder's (or ZIP archive's) headers say, before decoding: its
  readable image files (relative, sorted), the example shape, their labels
  and class names (module docstring)."""
  source: str
  open_file: Callable[[str], str | IO[bytes]]
  files: list[str]
  shape: tuple[int, int, int]
  resolution: int
  labels: np.ndarray | None
  classes: tuple[str, ...]

  def decode(self, name: str) -> np.ndarray:
    """File `name` as uint8 [H, W, C] of `shape`.

    Raises:
      UserError: it cannot be decoded (its header could be read).
    """
    try:
      return decode(self.open_file(name), self.shape[2], self.resolution)
    except UNREADABLE as e:
      raise UserError(f'{os.path.join(self.source, name)} cannot be decoded'
                      f' ({one_line(e)}); remove it, or prepare the folder with'
                      ' python -m gan_jax.prepare (which skips it)') from None

  def describe(self, count: int | None = None) -> str:
    count = len(self.files) if count is None else count
    description = (f'folder {self.source}: {count} images'
                   f' {"x".join(map(str, self.shape))}')
    if self.resolution:
      description += (f' (centre-cropped, resized to {self.resolution}x'
                      f'{self.resolution})')
    if self.classes:
      description += f', {len(self.classes)} classes'
    return description


def scan(directory: str, resolution: int = 0, channels: int = 0) -> Scan:
  """The readable images of `directory` (or a ZIP archive) by their headers.

  Raises:
    UserError: no directory, no readable image, or several sizes without
      `resolution`.
  """
  if zipfile.is_zipfile(directory) and not os.path.isdir(directory):
    files = zip_images(directory)
    if not files:
      raise UserError(f'{directory} holds no image file'
                      f' ({", ".join(EXTENSIONS)})')
  else:
    files = image_files(directory)
  open_file = opener(directory)
  readable, sizes, greys = _scan(directory, open_file, files)
  shape = _shape(directory, sizes, greys, resolution, channels)
  labels, classes = _labels(readable)
  return Scan(directory, open_file, readable, shape, resolution, labels, classes)


def _scan(directory: str, open_file: Callable, files: list[str]
          ) -> tuple[list[str], dict, dict]:
  """The readable files, their sizes {(w, h): count}, greyness {bool: count};
  unreadable ones logged in one line."""
  headers = read_headers(open_file, files)
  readable = [f for f, h in zip(files, headers, strict=True) if not isinstance(h, str)]
  bad = [(f, h) for f, h in zip(files, headers, strict=True) if isinstance(h, str)]
  _report_unreadable(directory, bad, len(files))
  if not readable:
    raise UserError(f'data.path={directory}: none of its {len(files)} image files'
                    f' can be decoded (e.g. {bad[0][0]}: {bad[0][1]})')
  good = [h for h in headers if not isinstance(h, str)]
  return (readable, collections.Counter(size for size, _ in good),
          collections.Counter(grey for _, grey in good))


def _report_unreadable(directory: str, bad: list[tuple[str, str]], total: int):
  if bad:
    logging.warning('data.path=%s: %d of %d image files cannot be decoded and'
                    ' are skipped: %s%s', directory, len(bad), total,
                    ', '.join(f'{f} ({why})' for f, why in bad[:3]),
                    ', ...' if len(bad) > 3 else '')


def example_shape(directory: str, resolution: int = 0, channels: int = 0
                  ) -> tuple[int, int, int]:
  """The shape of one example of the folder (reads only the files' headers).

  Raises:
    UserError: no readable image, or images of several sizes and no
      `resolution`.
  """
  if resolution and channels:
    return resolution, resolution, channels
  _, sizes, greys = _scan(directory, opener(directory), image_files(directory))
  return _shape(directory, sizes, greys, resolution, channels)


def _shape(directory, sizes, greys, resolution, channels):
  channels = channels or (1 if set(greys) == {True} else 3)
  if resolution:
    return resolution, resolution, channels
  if len(sizes) > 1:
    listed = ', '.join(f'{w}x{h} ({n} files)' for (w, h), n in sizes.most_common(3))
    raise UserError(f'data.path={directory} holds images of {len(sizes)} sizes'
                    f' ({listed}{", ..." if len(sizes) > 3 else ""}); set'
                    ' data.resolution=N to centre-crop and resize them to NxN')
  (width, height), = sizes
  return height, width, channels


def decode(path: str, channels: int, resolution: int = 0) -> np.ndarray:
  """One image as uint8 [H, W, channels]: centre-cropped to a square and
  resized to `resolution` (Lanczos) when it is given (StyleGAN's
  dataset_tool.py, `center-crop`)."""
  with Image.open(path) as image:
    image = image.convert('L' if channels == 1 else 'RGB')
    if resolution:
      width, height = image.size
      side = min(width, height)
      left, top = (width - side) // 2, (height - side) // 2
      image = image.crop((left, top, left + side, top + side))
      if side != resolution:
        image = image.resize((resolution, resolution), Image.Resampling.LANCZOS)
    pixels = np.asarray(image, np.uint8)
  return pixels[..., None] if channels == 1 else pixels


def load(directory: str, resolution: int = 0, channels: int = 0) -> FolderImages:
  """Every image under `directory`, decoded (module docstring).

  Raises:
    UserError: no directory, no readable image, or several sizes without
      `resolution`.
  """
  return decode_scanned(scan(directory, resolution, channels))


def decode_scanned(found: Scan) -> FolderImages:
  """Every image `found` lists, decoded; those that cannot be are skipped
  and counted in one log line."""
  pixels = decode_all(found.open_file, found.files, found.shape[2],
                      found.resolution)
  bad = [(f, p) for f, p in zip(found.files, pixels, strict=True)
         if isinstance(p, str)]
  _report_unreadable(found.source, bad, len(found.files))
  kept = [f for f, p in zip(found.files, pixels, strict=True)
          if not isinstance(p, str)]
  if not kept:
    raise UserError(f'data.path={found.source}: none of its {len(found.files)}'
                    ' image files can be decoded')
  images = np.stack([p for p in pixels if not isinstance(p, str)])
  labels, classes = _labels(kept)
  return FolderImages(images, labels, classes, found.describe(len(kept)))


def _labels(files: list[str]) -> tuple[np.ndarray | None, tuple[str, ...]]:
  """Each file's class, its first subfolder, when every file has one."""
  parts = [f.split(os.sep) for f in files]
  if any(len(p) < 2 for p in parts):
    return None, ()
  classes = tuple(sorted({p[0] for p in parts}))
  index = {name: i for i, name in enumerate(classes)}
  return np.array([index[p[0]] for p in parts], np.int32), classes


def _map(fn, items: list) -> list:
  """fn over items on threads (Pillow decodes without the GIL)."""
  with concurrent.futures.ThreadPoolExecutor(os.cpu_count() or 1) as pool:
    return list(pool.map(fn, items))
