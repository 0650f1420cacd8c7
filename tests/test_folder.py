"""data.name=folder: training on a folder of one's own images."""

import os

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image
import pytest

from gan_jax import configs
from gan_jax import data
from gan_jax import evaluate
from gan_jax import models
from gan_jax import runs
from gan_jax import train
from gan_jax.errors import UserError
from tests import helpers
from tests.helpers import REPO


def write_images(directory, images, names, fmt='PNG'):
  os.makedirs(directory, exist_ok=True)
  for pixels, name in zip(images, names, strict=True):
    Image.fromarray(pixels).save(os.path.join(directory, name), format=fmt)


def digit_folder(root) -> str:
  """24 random 28x28 grey PNGs in class subfolders 0-2, with a text file and
  an image file that is not one beside them."""
  rng = np.random.default_rng(0)
  for label in range(3):
    write_images(os.path.join(root, str(label)),
                 rng.integers(0, 256, (8, 28, 28), np.uint8),
                 [f'{i}.png' for i in range(8)])
  with open(os.path.join(root, '2', 'broken.png'), 'wb') as f:
    f.write(b'not a png')
  with open(os.path.join(root, 'README.txt'), 'w') as f:
    f.write('digits')
  return str(root)


def mnist_on(path: str):
  """experiments/mnist.py on a folder, changed only to train two steps."""
  config = configs.load_config_module(
      os.path.join(REPO, 'experiments', 'mnist.py')).get_config()
  config.data.name, config.data.path = 'folder', path
  config.train.update(batch_size=8, num_steps=2, log_every=1, sample_every=2,
                      checkpoint_every=2)
  return config


def test_experiments_mnist_trains_on_a_folder_of_digit_pngs(tmp_path, caplog):
  folder = digit_folder(tmp_path / 'digits')
  workdir = str(tmp_path / 'run')
  results = train.train_and_evaluate(mnist_on(folder), workdir)
  assert results['status'] == 'finished' and results['final_step'] == 2
  assert '1 of 25 image files cannot be decoded' in caplog.text
  assert 'broken.png' in caplog.text
  source = data.load(mnist_on(folder).data)
  assert source.arrays['images'].shape == (24, 28, 28, 1)
  assert source.classes == ('0', '1', '2')
  np.testing.assert_array_equal(source.labels, np.repeat([0, 1, 2], 8))
  # What reads the finished run (sample, evaluate) finds its shape again.
  config, gan, _ = runs.restore_run(workdir)
  assert gan.example_shape == (28, 28, 1)
  # No evaluator applies to a folder: `evaluate` points to `fid`.
  with pytest.raises(UserError, match="none applies to data.name='folder';"
                     ' compare .* python -m gan_jax.fid REAL_IMAGES'):
    evaluate.default_evaluators(config, workdir)


def test_images_are_centre_cropped_and_resized_and_channels_follow_the_files(
    tmp_path):
  # 48x32 RGB: red side bands 8 px wide around a blue 32x32 centre.
  wide = np.zeros((32, 48, 3), np.uint8)
  wide[:, :, 0] = 255
  wide[:, 8:40] = (0, 0, 255)
  for fmt, ext in (('PNG', 'png'), ('JPEG', 'jpg'), ('BMP', 'bmp'),
                   ('WEBP', 'webp')):
    write_images(tmp_path / 'rgb', [wide], [f'wide.{ext}'], fmt)
  loaded = data.folder.load(str(tmp_path / 'rgb'), resolution=16)
  assert loaded.images.shape == (4, 16, 16, 3) and loaded.labels is None
  # Sorted: bmp, jpg, png, webp. The red bands are cropped away: the lossless
  # files are the blue centre exactly, the lossy ones nearly.
  lossless = loaded.images[[0, 2]]
  assert (lossless == np.array([0, 0, 255], np.uint8)).all()
  lossy = loaded.images[[1, 3]].astype(float)
  assert np.abs(lossy - [0, 0, 255]).mean() < 10
  grey = loaded.images[:1, :, :, :1].repeat(2, 0)
  assert data.folder.load(str(tmp_path / 'rgb'), 16, channels=1).images.shape == (
      4, 16, 16, 1)
  # Every file grey: 1 channel; one colour file among them: 3.
  write_images(tmp_path / 'grey', grey[..., 0], ['a.png', 'b.png'])
  assert data.folder.example_shape(str(tmp_path / 'grey')) == (16, 16, 1)
  write_images(tmp_path / 'grey', loaded.images[:1], ['c.png'])
  assert data.folder.example_shape(str(tmp_path / 'grey')) == (16, 16, 3)
  # data.source does not apply: the folder reads data.path.
  data.check_source('folder', 'tfds')


def test_bad_folders_are_one_line_errors_that_write_nothing(tmp_path):
  (tmp_path / 'empty').mkdir()
  (tmp_path / 'text').mkdir()
  (tmp_path / 'text' / 'a.txt').write_text('x')
  (tmp_path / 'broken').mkdir()
  (tmp_path / 'broken' / 'a.png').write_bytes(b'not a png')
  rng = np.random.default_rng(0)
  write_images(tmp_path / 'mixed', [rng.integers(0, 256, (28, 28), np.uint8),
                                    rng.integers(0, 256, (32, 32), np.uint8)],
               ['a.png', 'b.png'])
  cases = {
      '': 'data.name=folder needs data.path=DIR',
      str(tmp_path / 'missing'): 'is not a directory',
      str(tmp_path / 'empty'): 'holds no image file (0 other files)',
      str(tmp_path / 'text'): 'holds no image file (1 other files)',
      str(tmp_path / 'broken'): 'none of its 1 image files can be decoded',
      str(tmp_path / 'mixed'): 'holds images of 2 sizes (28x28 (1 files), 32x32'
                               ' (1 files)); set data.resolution=N',
  }
  for path, message in cases.items():
    workdir = tmp_path / 'run'
    with pytest.raises(UserError, match=message.replace('(', r'\(').replace(')', r'\)')):
      train.train_and_evaluate(mnist_on(path), str(workdir))
    assert not workdir.exists()
  proc = helpers.run('gan_jax.main', '--config=experiments/mnist.py',
                     '--config.data.name=folder',
                     f'--config.data.path={tmp_path / "mixed"}',
                     f'--workdir={tmp_path / "run"}')
  helpers.assert_one_line_error(proc, 'holds images of 2 sizes')
  assert not (tmp_path / 'run').exists()


def test_experiments_folder64_reads_rgb_images_of_any_size_for_its_resnets(
    tmp_path):
  """The README's own-images recipe: photos of other sizes and kinds, centre-
  cropped and resized to 64x64 RGB, for Miyato et al.'s 64x64 ResNets.
  (Training it is the contract tests' resnet training at another size: one
  step at a sixteenth of the widths compiles for 15 s, so it is not repeated
  here.)"""
  rng = np.random.default_rng(0)
  folder = tmp_path / 'photos'
  write_images(folder, rng.integers(0, 256, (4, 80, 70, 3), np.uint8),
               [f'{i}.jpg' for i in range(4)], fmt='JPEG')
  write_images(folder / 'more', rng.integers(0, 256, (4, 100, 120), np.uint8),
               [f'{i}.png' for i in range(4)])  # grey ones read as RGB
  config = configs.resolve(configs.load_config_module(
      os.path.join(REPO, 'experiments', 'folder64.py')).get_config('small'))
  config.data.path = str(folder)
  source = data.load(config.data)
  assert source.arrays['images'].shape == (8, 64, 64, 3)
  g, d = models.build(config.model, source.example_shape)
  z = jax.ShapeDtypeStruct((2, config.model.latent_dim), jnp.float32)
  g_vars = jax.eval_shape(lambda z: g.init(jax.random.key(0), z, train=False), z)
  images = jax.eval_shape(lambda v, z: g.apply(v, z, train=False), g_vars, z)
  assert images.shape == (2, 64, 64, 3)
  d_vars = jax.eval_shape(lambda x: d.init(jax.random.key(1), x, train=False),
                          images)
  assert d_vars['params']['discriminator']['DiscriminatorBlock_4']  # 5 blocks
