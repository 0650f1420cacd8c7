"""The registry of datasets: DATASETS, from a name to what the code knows of it.

The valid names, sources and example shapes derive from it (config
validation, docs/reference.md, the contract tests).
"""

from collections.abc import Callable
import dataclasses
import functools

import jax

from gan_jax import registry
from gan_jax.data import toys
from gan_jax.data.source import DataSource
from gan_jax.data.source import sample_image
from gan_jax.data.source import sample_stacked_digits
from gan_jax.errors import UserError

SOURCES = ('tfds', 'idx', 'toy', 'folder')  # data.source
NUM_CLASSES = 10  # of a labeled dataset


@dataclasses.dataclass(frozen=True)
class Dataset:
  """What the code knows of one dataset: an entry of DATASETS.

  Attributes:
    example_shape: shape of one example, e.g. (28, 28, 1) or (2,); None when
      its files decide it (folder: `example_shape_of`).
    sources: the valid data.source values (of SOURCES).
    summary: one line for the docs: what it is, and its paper or source.
    tfds_host: where TFDS downloads it from (an unresolvable host means we are
      offline: fail at once instead of after minutes of retries), or None.
    labeled: 28x28x1 images of NUM_CLASSES classes, which `load_labeled` reads
      and the LeNet classifier trains on.
    toy: name -> the DataSource of a toy (source 'toy', no files), or None for
      images.
    read_as: the dataset whose images it reads, from the same source (None:
      its own).
    sample_one: (arrays, key) -> one example of the images read (a uniformly
      random one by default).
    sampling: how `sample_one` draws an example of `read_as`'s images, for the
      log.
  """
  example_shape: tuple[int, ...] | None
  sources: tuple[str, ...]
  summary: str
  tfds_host: str | None = None
  labeled: bool = False
  toy: Callable[[str], DataSource] | None = None
  read_as: str | None = None
  sample_one: Callable[[dict, jax.Array], jax.Array] = sample_image
  sampling: str = ''


def _toy(summary: str, build: Callable[[str], DataSource]) -> Dataset:
  """The spec of a 2-D toy that `build(name)` makes."""
  return Dataset(example_shape=(2,), sources=('toy',), summary=summary, toy=build)


DATASETS: dict[str, Dataset] = {
    'mnist': Dataset(
        example_shape=(28, 28, 1), sources=('tfds', 'idx'),
        summary='MNIST: 28x28 grey handwritten digits (LeCun et al. 1998)',
        tfds_host='storage.googleapis.com', labeled=True),
    'fashion_mnist': Dataset(
        example_shape=(28, 28, 1), sources=('tfds', 'idx'),
        summary='Fashion-MNIST: 28x28 grey clothing images (Xiao et al. 2017)',
        tfds_host='fashion-mnist.s3-website.eu-central-1.amazonaws.com',
        labeled=True),
    'cifar10': Dataset(
        example_shape=(32, 32, 3), sources=('tfds',),
        summary='CIFAR-10: 32x32 colour photographs (Krizhevsky 2009)',
        tfds_host='www.cs.toronto.edu'),
    'stacked_mnist': Dataset(
        example_shape=(28, 28, 3), sources=('tfds', 'idx'),
        summary=('Stacked MNIST: 3 random digits as channels, 1,000 modes'
                 ' (Srivastava et al. 2017, VEEGAN; Lin et al. 2018, PacGAN)'),
        read_as='mnist', sample_one=sample_stacked_digits,
        sampling='3 random digits as RGB channels'),
    'folder': Dataset(
        example_shape=None, sources=('folder',),
        summary=('your own images: every PNG, JPEG, WebP or BMP under'
                 ' data.path (subfolders: classes), at their size or'
                 ' centre-cropped and resized to data.resolution')),
    'ring8': _toy(
        f'8 Gaussians on the unit circle, std {toys.RING8_STD} (Lin et al. 2018,'
        ' PacGAN)',
        functools.partial(toys.mixture, toys.ring8_centres, toys.RING8_STD,
                          'on the unit circle')),
    'grid25': _toy(
        f'25 Gaussians on {{-4,-2,0,2,4}}^2, std {toys.GRID25_STD} (Lin et al.'
        ' 2018, PacGAN)',
        functools.partial(toys.mixture, toys.grid25_centres, toys.GRID25_STD,
                          'on {-4,-2,0,2,4}^2')),
    'swissroll': _toy(
        f'swiss roll, make_swiss_roll(noise={toys.SWISSROLL_NOISE}) /'
        f' {toys.SWISSROLL_SCALE} (Gulrajani et al. 2017, WGAN-GP toy)',
        toys.swissroll),
}
LABELED_NAMES = tuple(name for name, d in DATASETS.items() if d.labeled)


def spec(name: str) -> Dataset:
  """DATASETS[name], or the registry's one-line UserError."""
  return registry.lookup(DATASETS, 'data.name', name)


def check_source(name: str, source: str) -> None:
  """UserError (one line) unless `name` is a dataset and `source` valid for
  it. A dataset with a source of its own (folder) reads data.path whatever
  data.source says."""
  dataset = spec(name)
  if dataset.sources == (name,):
    return
  registry.lookup(dict.fromkeys(SOURCES), 'data.source', source,
                  among=dataset.sources, context=f'data.name={name!r}')


def example_shape(name: str) -> tuple[int, ...]:
  """The shape of one example of dataset `name` (no data is read); a
  UserError for a dataset whose files decide it (`example_shape_of`)."""
  shape = spec(name).example_shape
  if shape is None:
    raise UserError(f'data.name={name!r} has no fixed example shape: its files'
                    ' decide it')
  return shape
