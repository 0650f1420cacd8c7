"""Decode a folder (or ZIP archive) of images once, into ArrayRecord shards.

  python -m gan_jax.prepare --src=MY_IMAGES --out=MY_IMAGES.prepared \\
      [--resolution=64] [--channels=3]
  python -m gan_jax.prepare --verify=MY_IMAGES.prepared

The images are found, checked, cropped and resized as data.name=folder finds
them (gan_jax.data.folder: every PNG, JPEG, WebP or BMP file, recursive,
class subfolders as labels; files that cannot be decoded are skipped and
counted), and written as raw pixels with a manifest (gan_jax.data.prepared).
Then `--config.data.name=folder --config.data.path=OUT` trains on OUT
without decoding a file: read whole into device memory, or streamed
(data.pipeline). --verify hashes every shard against the manifest.
"""

import os

from absl import app
from absl import flags
from absl import logging

from gan_jax import cli
from gan_jax import registry
from gan_jax.data import folder
from gan_jax.data import prepared
from gan_jax.errors import UserError

FLAGS = flags.FLAGS
CHUNK = 1024  # images decoded at once (on threads) before they are written


def prepare(src: str, out: str, resolution: int = 0, channels: int = 0) -> dict:
  """Prepares `src` into `out`; returns the manifest.

  Raises:
    UserError: a bad source (as data.name=folder says), or an `out` that is a
      file or a directory holding files already.
  """
  if not src or not out:
    raise UserError('pass --src=DIR_OR_ZIP (your images) and --out=DIR (where'
                    ' the prepared dataset goes)')
  if os.path.exists(out) and (not os.path.isdir(out) or os.listdir(out)):
    raise UserError(f'--out={out} exists and is not an empty directory; name a'
                    ' new one (nothing was written)')
  if os.path.abspath(out).startswith(os.path.abspath(src) + os.sep):
    raise UserError(f'--out={out} is inside --src={src}; its shards would be'
                    ' read as images next time: put it beside it')
  found = folder.scan(src, resolution, channels)

  def examples():
    skipped = []
    for start in range(0, len(found.files), CHUNK):
      names = found.files[start:start + CHUNK]
      pixels = folder.decode_all(found.open_file, names, found.shape[2],
                                 resolution)
      for i, (name, image) in enumerate(zip(names, pixels, strict=True)):
        if isinstance(image, str):
          skipped.append((name, image))
          continue
        yield image, (None if found.labels is None
                      else int(found.labels[start + i]))
      logging.info('prepare: %d of %d images', min(start + CHUNK,
                                                   len(found.files)),
                   len(found.files))
    if skipped:
      logging.warning('%d images cannot be decoded and are skipped: %s', len(skipped),
                      ', '.join(f'{name} ({why})' for name, why in skipped[:3]))

  manifest = prepared.write(out, examples(), found.shape, found.classes,
                            source=os.path.abspath(src) + (
                                f' at {resolution}x{resolution}' if resolution
                                else ''))
  return manifest


def define_flags() -> None:
  """The command's flags, defined when it runs (not at import: `fid` defines
  a --resolution of its own)."""
  flags.DEFINE_string('src', '', 'A directory or a ZIP archive of images.')
  flags.DEFINE_string('out', '', 'The directory the shards and manifest go to'
                      ' (new, or empty).')
  flags.DEFINE_integer(
      'resolution', 0, 'Centre-crop and resize every image to NxN (Lanczos),'
      ' as data.resolution; 0 keeps their size, which must then be one.')
  flags.DEFINE_integer('channels', 0, '1 (grey) or 3 (RGB); 0 = grey when'
                       ' every image is, else RGB.')
  flags.DEFINE_string('verify', '', 'A prepared directory to check against'
                      ' its manifest, instead of preparing.')


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments {argv[1:]}; usage: python -m'
                         ' gan_jax.prepare --src=DIR_OR_ZIP --out=DIR')
  if FLAGS.verify:
    if not prepared.is_prepared(FLAGS.verify):
      raise UserError(f'--verify={FLAGS.verify} holds no {prepared.MANIFEST};'
                      ' prepare a dataset with --src= --out=')
    print(prepared.verify(FLAGS.verify))
    return
  registry.check_value('--resolution', FLAGS.resolution, registry.NON_NEGATIVE)
  registry.check_value('--channels', FLAGS.channels, (0, 1, 3))
  manifest = prepare(FLAGS.src, FLAGS.out, FLAGS.resolution, FLAGS.channels)
  shape = 'x'.join(map(str, manifest['shape']))
  classes = f', {len(manifest["classes"])} classes' if manifest['classes'] else ''
  print(f'{FLAGS.out}: {manifest["count"]} images {shape}{classes} in'
        f' {len(manifest["shards"])} shards; train on it with'
        f' --config.data.name=folder --config.data.path={FLAGS.out}')


if __name__ == '__main__':
  define_flags()
  cli.run(main)
