"""FID, KID, precision/recall and density/coverage between two image sets,
in the FID Inception-v3's feature space (gan_jax.inception).

  python -m gan_jax.fid A B [--num=N] [--resolution=N] [--inception=PATH]
  python -m gan_jax.fid mnist:idx:../shared/data/mnist runs/mnist --num=10000
  python -m gan_jax.fid MY_PHOTOS runs/folder64 --resolution=64

A and B can each be:
- a .npy of images: [N, H, W] or [N, H, W, C], uint8 or float in [-1, 1];
- a directory of images, read as data.name=folder reads them (PNG, JPEG,
  WebP, BMP; recursive, in path order; grey when all are) but strictly, a
  file that cannot be decoded being an error; of one size, or centre-cropped
  and resized to --resolution (as data.resolution);
- a run's workdir: --num samples of its latest checkpoint (of member
  --member of a run of several seeds, drawn with that member's seed, as
  `gan_jax.evaluate` draws them; of the averaged generator where the run
  keeps one, unless --raw_generator);
- a dataset NAME:SOURCE[:PATH], e.g. `mnist:idx:DIR` (every image of DIR's
  train split, else its t10k split) or `cifar10:tfds` (the train split).

Any but a workdir may end in @START:STOP to take those images only (as
data.subset and eval.reference_subset do): `mnist:idx:DIR@5000:10000`.

--num takes the first N images of each set (all of them by default; 10,000
samples of a workdir). A dataset's features are cached in
~/.cache/gan_jax/reference/ (13 minutes for 10,000 digits on 2 CPU cores).
A is the reference for precision/recall and density/coverage (Kynkäänniemi
et al. 2019, k = 3; Naeem et al. 2020, k = 5).
Prints one JSON line with the figures, n_a, n_b and the weights' hash. FID
is biased upwards at small N (Chong & Forsyth 2020): compare figures at the
same N only.
"""

import json
import os
import re
import types

from absl import app
from absl import flags
import numpy as np

from gan_jax import cli
from gan_jax import data
from gan_jax import evaluators
from gan_jax import files
from gan_jax import inception
from gan_jax import metrics
from gan_jax import registry
from gan_jax.data import folder
from gan_jax.errors import UserError

DEFAULT_RUN_SAMPLES = 10_000

_NUM = flags.DEFINE_integer(
    'num', None, 'Images from each set: the first N (default: all;'
    f' {DEFAULT_RUN_SAMPLES} samples of a run).')
_MEMBER = flags.DEFINE_integer(
    'member', 0, 'Which member of a run of several seeds (config.num_seeds)'
    ' a workdir set samples: 0 is the run\'s seed, i its seed + i.')
_RAW = cli.raw_generator_flag()
_RESOLUTION = flags.DEFINE_integer(
    'resolution', 0, 'A directory set\'s images centre-cropped and resized to'
    ' NxN (Lanczos), as data.name=folder with data.resolution=N; 0 keeps their'
    ' size, which must then be one.')
_INCEPTION = flags.DEFINE_string(
    'inception', '', f'Converted Inception weights (default: ${inception.ENV_VAR},'
    f' else {inception.default_path()}).')


def _take(images, num: int | None, what: str):
  if num is not None and num > len(images):
    raise UserError(f'--num={num} is larger than {what}, which has'
                    f' {len(images)} images')
  return images[:num] if num is not None else images


def _read_directory(path: str, num: int | None, resolution: int = 0) -> np.ndarray:
  """The images under `path` as data.name=folder finds them (recursive, in
  path order, decoded on threads), but strictly: a file that cannot be
  decoded is an error, not skipped, since it would change the set. Grey when
  every one is grey."""
  files, _ = folder.list_images(path)
  if not files:
    raise UserError(f'{path} holds no images ({", ".join(folder.EXTENSIONS)}):'
                    ' an empty set')
  files = _take(files, num, path)
  headers = folder.read_headers(folder.opener(path), files)
  _refuse_unreadable(path, files, headers)
  channels = 1 if all(grey for _, grey in headers) else 3
  if not resolution:
    shapes = [(height, width, channels) for (width, height), _ in headers]
    for file, shape in zip(files, shapes, strict=True):
      if shape != shapes[0]:
        raise UserError(
            f'{path}: images differ in size: {os.path.join(path, files[0])} is'
            f' {shapes[0]}, {os.path.join(path, file)} is {shape}; pass'
            ' --resolution=N to centre-crop and resize them to NxN')
  images = folder.decode_all(folder.opener(path), files, channels, resolution)
  _refuse_unreadable(path, files, images)
  return np.stack(images)


def _refuse_unreadable(path: str, files: list[str], results: list) -> None:
  """UserError naming the first file whose result is why it cannot be read."""
  for file, result in zip(files, results, strict=True):
    if isinstance(result, str):
      raise UserError(f'cannot read the image {os.path.join(path, file)}: {result}')


def _read_npy(path: str, num: int | None) -> np.ndarray:
  try:
    images = np.load(path, mmap_mode='r', allow_pickle=False)
  except (OSError, ValueError) as e:
    raise UserError(f'cannot read {path} as a .npy array: {e}') from e
  return np.asarray(_take(images, num, path))


def _sample_run(workdir: str, num: int | None, member: int,
                raw: bool = False) -> np.ndarray:
  from gan_jax import gan as gan_lib  # noqa: PLC0415 (only workdirs need these)
  from gan_jax import runs  # noqa: PLC0415
  gan, state, seed = runs.restore_member(workdir, member, flag='--member')
  return gan_lib.generate_samples(gan, state, num or DEFAULT_RUN_SAMPLES, seed,
                                  raw=raw)


def _read_dataset(spec: str, num: int | None) -> np.ndarray:
  name, source, *path = spec.split(':', 2)
  if name not in data.DATASETS or data.DATASETS[name].toy is not None:
    images = [n for n, d in data.DATASETS.items() if d.toy is None]
    raise UserError(f'{spec}: no image dataset {name!r}; valid: {", ".join(images)}')
  config = types.SimpleNamespace(
      name=name, source=source, path=path[0] if path and source == 'idx' else '',
      tfds_data_dir=path[0] if path and source == 'tfds' else None)
  if data.DATASETS[name].read_as is not None:
    raise UserError(f'{spec}: {name} is sampled from'
                    f' {data.DATASETS[name].read_as}, not a fixed set of images;'
                    ' save samples to a .npy and pass that')
  return _take(data.load(config, pipeline='device').arrays['images'], num, spec)


def is_dataset(spec: str) -> bool:
  """Whether `spec` names a dataset (NAME:SOURCE[:PATH][@START:STOP]), not a
  path."""
  spec = SUBSET.sub('', spec)
  return not files.is_remote(spec) and not os.path.exists(spec) and ':' in spec


SUBSET = re.compile(r'@(\d*:\d*)$')  # SET@START:STOP


def read_set(spec: str, num: int | None, member: int = 0,
             raw: bool = False, resolution: int = 0) -> np.ndarray:
  """The images that `spec` names (see the module docstring); with a suffix
  @START:STOP, those of them (e.g. mnist:idx:DIR@5000:10000, the half of
  the test digits a run of data.subset=0:5000 did not train on).

  Raises:
    UserError: a spec that is none of the four, an empty or unreadable set,
      a subset beyond it, --num larger than the set.
  """
  subset = SUBSET.search(spec)
  if subset is None:
    return _read_whole_set(spec, num, member, raw, resolution)
  spec = spec[:subset.start()]
  if is_run(spec):
    raise UserError(f'{spec}@{subset[1]}: a run\'s samples take --num, not'
                    ' a subset')
  images = _read_whole_set(spec, None, member, raw, resolution)
  indices = data.take_subset(len(images), data.parse_subset(subset[1], f'{spec}@'),
                             spec, f'{spec}@')
  return _take(images[indices.start:indices.stop], num, f'{spec}@{subset[1]}')


def _read_whole_set(spec: str, num: int | None, member: int, raw: bool,
                    resolution: int) -> np.ndarray:
  if is_run(spec):  # a workdir, local or in a bucket
    return _sample_run(spec, num, member, raw)
  if os.path.isdir(spec):
    return _read_directory(spec, num, resolution)
  if os.path.isfile(spec):
    if not spec.endswith('.npy'):
      raise UserError(f'{spec} is a file but not a .npy of images')
    return _read_npy(spec, num)
  if is_dataset(spec):
    return _read_dataset(spec, num)
  raise UserError(f'{spec} does not exist; pass a .npy of images, a directory'
                  ' of images, a run\'s workdir or a dataset'
                  ' NAME:SOURCE[:PATH] (e.g. mnist:idx:DIR)')


def compare(a: np.ndarray, b: np.ndarray, weights: inception.Weights,
            what: tuple[str, str] = ('A', 'B'),
            cached: tuple[bool, bool] = (False, False)) -> dict:
  """The figures of set `b` against reference set `a` (images as
  inception.check_images takes them); the features of a set marked in
  `cached` are kept in inception.reference_directory()."""
  a = inception.check_images(a, what[0])
  b = inception.check_images(b, what[1])
  if a.shape[1:3] != b.shape[1:3]:
    raise UserError(f'the sets differ in image size: {what[0]} is'
                    f' {a.shape[1]}x{a.shape[2]}, {what[1]} is'
                    f' {b.shape[1]}x{b.shape[2]}')
  for name, images in zip(what, (a, b), strict=True):
    if len(images) < 2:
      raise UserError(f'{name} has {len(images)} image; FID needs at least 2')
  feats_a, feats_b = (
      inception.cached_features(weights, images) if cache
      else inception.features(weights, images)[0]
      for images, cache in zip((a, b), cached, strict=True))
  figures = evaluators.inception_figures(
      metrics.gaussian_factor64(feats_a), feats_a, feats_b, logits=None)
  return {
      **{k.removesuffix('_inception'): v for k, v in figures.items()},
      'n_a': len(a), 'n_b': len(b), 'weights_hash': weights.hash,
  }


def main(argv: list[str]) -> None:
  if len(argv) != 3:
    raise app.UsageError('usage: python -m gan_jax.fid A B [--num=N]'
                         ' [--inception=PATH]')
  num = _NUM.value
  if num is not None and num < 2:
    raise UserError(f'--num={num} is invalid; FID needs at least 2 images a set')
  weights = inception.load(_INCEPTION.value)
  registry.check_value('--resolution', _RESOLUTION.value, registry.NON_NEGATIVE)
  sets = [read_set(spec, num, _MEMBER.value, _RAW(), _RESOLUTION.value)
          for spec in argv[1:]]
  datasets = tuple(is_dataset(spec) for spec in argv[1:])
  figures = compare(*sets, weights, what=tuple(argv[1:]), cached=datasets)
  # Which generator each run's samples came from ('ema' or 'raw').
  runs = {spec: samples_from(spec, _RAW()) for spec in argv[1:] if is_run(spec)}
  # Strict JSON: a spread that does not exist (kid_std at tiny N) is null.
  print(json.dumps(files.strict(
      {**figures, **({'samples_from': runs} if runs else {})})))


def is_run(spec: str) -> bool:
  """Whether `spec` is a run's workdir (config.json, or checkpoints whose
  config it is read from)."""
  return files.isdir(spec) and any(
      files.exists(os.path.join(spec, name))
      for name in ('config.json', 'checkpoints'))


def samples_from(workdir: str, raw: bool) -> str:
  """'ema' when the run in `workdir` averages G and not `raw`, else 'raw'."""
  from gan_jax import runs  # noqa: PLC0415 (only workdirs need it)
  decay = runs.load_run_config(workdir).optim.get('g_ema_decay', 0.0)
  return 'ema' if decay > 0 and not raw else 'raw'


if __name__ == '__main__':
  cli.run(main)
