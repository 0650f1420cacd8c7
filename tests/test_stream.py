"""data.pipeline=stream and gan_jax.prepare: a folder prepared into shards,
read whole or streamed with grain, every example once an epoch, and a
streamed run of two processes that resumes bit for bit (one process:
tests/test_contracts_resume.py's DCGAN)."""

import json
import os
import shutil
import subprocess
import sys

import jax
import numpy as np
from PIL import Image
import pytest

from gan_jax import checkpoints
from gan_jax import configs
from gan_jax import data
from gan_jax import parallel
from gan_jax import prepare
from gan_jax import train
from gan_jax.errors import UserError
from tests import helpers
from tests.helpers import REPO


def digit_folder(root, count: int = 8) -> str:
  """3 x `count` random 28x28 grey PNGs in class subfolders 0-2, and a file
  with an image's name that is not one."""
  rng = np.random.default_rng(0)
  for label in range(3):
    os.makedirs(os.path.join(root, str(label)))
    for i, pixels in enumerate(rng.integers(0, 256, (count, 28, 28), np.uint8)):
      Image.fromarray(pixels).save(os.path.join(root, str(label), f'{i}.png'))
  with open(os.path.join(root, '2', 'broken.png'), 'wb') as f:
    f.write(b'not a png')
  return str(root)


def folder_config(path: str, pipeline: str = 'auto', num_steps: int = 4):
  config = helpers.tiny_image_config('')
  config.data.name, config.data.path, config.data.pipeline = 'folder', path, pipeline
  config.train.num_steps = num_steps
  config.eval.evaluators = ''
  return config


@pytest.fixture(scope='module')
def digits(tmp_path_factory):
  """(a digit folder, the same prepared with gan_jax.prepare)."""
  root = tmp_path_factory.mktemp('digits')
  folder = digit_folder(root / 'pngs')
  prepared = str(root / 'prepared')
  prepare.prepare(folder, prepared)
  return folder, prepared


def test_a_prepared_folder_holds_the_folders_images_labels_and_hashes(digits):
  folder, prepared = digits
  pngs = data.load(folder_config(folder).data)
  shards = data.load(folder_config(prepared).data)
  assert pngs.pipeline == shards.pipeline == 'device'  # auto: they fit
  np.testing.assert_array_equal(shards.arrays['images'], pngs.arrays['images'])
  np.testing.assert_array_equal(shards.labels, np.repeat([0, 1, 2], 8))
  assert shards.classes == ('0', '1', '2')
  assert data.example_shape_of(folder_config(prepared).data) == (28, 28, 1)
  # Streamed, the examples are the same images, record by record.
  streamed = data.load(folder_config(prepared, 'stream').data)
  assert streamed.pipeline == 'stream' and streamed.arrays == {}
  assert streamed.examples.count == 24
  np.testing.assert_array_equal(streamed.examples.dataset[5],
                                pngs.arrays['images'][5])
  np.testing.assert_array_equal(
      data.load(folder_config(folder, 'stream').data).examples.dataset[23],
      pngs.arrays['images'][23])
  proc = helpers.run('gan_jax.prepare', f'--verify={prepared}')
  assert proc.returncode == 0 and 'every hash matches' in proc.stdout, proc.stderr


def test_a_zip_archive_prepares_as_its_folder_does(digits, tmp_path):
  folder, prepared = digits
  archive = shutil.make_archive(str(tmp_path / 'digits'), 'zip', folder)
  proc = helpers.run('gan_jax.prepare', f'--src={archive}',
                     f'--out={tmp_path / "from_zip"}')
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert '24 images 28x28x1, 3 classes in 1 shards' in proc.stdout
  with open(os.path.join(prepared, 'manifest.json')) as f:
    expected = json.load(f)
  with open(tmp_path / 'from_zip' / 'manifest.json') as f:
    from_zip = json.load(f)
  assert from_zip['content_sha256'] == expected['content_sha256']
  assert from_zip['labels'] == expected['labels']


def damaged_copies(prepared: str, root) -> dict[str, str]:
  """Copies of a prepared dataset, each damaged one way: {name: directory}."""
  def copy(name):
    target = str(root / name)
    shutil.copytree(prepared, target)
    return target

  with open(os.path.join(prepared, 'manifest.json')) as f:
    manifest = json.load(f)
  shard = manifest['shards'][0]['file']
  truncated = copy('truncated')
  with open(os.path.join(truncated, shard), 'r+b') as f:
    f.truncate(os.path.getsize(os.path.join(prepared, shard)) // 2)
  missing = copy('missing')
  os.remove(os.path.join(missing, shard))
  miscounted = copy('miscounted')
  helpers.write_json(os.path.join(miscounted, 'manifest.json'),
                     {**manifest, 'count': 25})
  not_json = copy('not_json')
  with open(os.path.join(not_json, 'manifest.json'), 'w') as f:
    f.write('{')
  return {'truncated': truncated, 'missing': missing, 'miscounted': miscounted,
          'not_json': not_json}


def test_a_manifest_that_does_not_match_its_shards_is_one_line_and_writes_nothing(
    digits, tmp_path):
  _, prepared = digits
  expected = {'truncated': 'holds', 'missing': 'is missing',
              'miscounted': 'hold 24 records, but it says 25',
              'not_json': 'is not a gan_jax manifest'}
  for kind, directory in damaged_copies(prepared, tmp_path).items():
    workdir = tmp_path / f'run_{kind}'
    with pytest.raises(UserError, match=expected[kind]) as error:
      train.train_and_evaluate(folder_config(directory), str(workdir))
    assert '\n' not in str(error.value)
    assert not workdir.exists()
  proc = helpers.run('gan_jax.prepare', f'--verify={tmp_path / "truncated"}')
  helpers.assert_one_line_error(proc, 'truncated', 'prepare it again')


def test_prepare_refuses_an_output_that_is_not_new_or_inside_its_source(
    digits, tmp_path):
  folder, prepared = digits
  with pytest.raises(UserError, match='not an empty directory'):
    prepare.prepare(folder, prepared)
  with pytest.raises(UserError, match='is inside --src'):
    prepare.prepare(folder, os.path.join(folder, 'out'))
  empty = tmp_path / 'empty'
  empty.mkdir()
  with pytest.raises(UserError, match='holds no image file'):
    prepare.prepare(str(empty), str(tmp_path / 'out'))


def test_the_stream_reads_every_example_once_an_epoch_and_resumes_in_place():
  images = np.arange(10, dtype=np.uint8).reshape(10, 1, 1, 1)
  import grain  # noqa: PLC0415
  examples = data.stream.Examples(grain.MapDataset.source(images), 10, (1, 1, 1))
  mesh = parallel.make_mesh()

  def read(batches: int, start: int = 0) -> list[np.ndarray]:
    with data.stream.Stream(examples, 7, 1, 5, mesh, next_batch=start) as feed:
      return [np.asarray(feed.next()[data.stream.BATCHES]).ravel()
              for _ in range(batches)]

  batches = read(6)
  epochs = np.concatenate(batches).reshape(3, 10)
  for epoch in epochs:
    np.testing.assert_array_equal(np.sort(epoch), np.arange(10))
  assert len({tuple(epoch) for epoch in epochs}) == 3  # reshuffled each epoch
  assert not np.array_equal(epochs[0], np.arange(10))
  for a, b in zip(read(3, start=3), batches[3:], strict=True):
    np.testing.assert_array_equal(a, b)
  with data.stream.Stream(examples, 7, 2, 5, mesh) as feed:  # 2 slots
    assert feed.next()[data.stream.BATCHES].shape == (2, 5, 1, 1, 1)
    assert feed.state() == {'next_batch': 1}


def test_auto_streams_above_its_bound_and_says_so(digits, monkeypatch, tmp_path):
  folder, _ = digits
  monkeypatch.setattr(data.stream, 'DEVICE_BYTES', 24 * 28 * 28 - 1)
  source = data.load(folder_config(folder).data)
  assert source.pipeline == 'stream' and 'exceed' in source.pipeline_why
  with pytest.raises(UserError, match='data.pipeline=stream reads images one'
                     ' after another, but data.name=ring8'):
    data.load(configs.toy_config('ring8').data, pipeline='stream')


def test_two_processes_stream_and_resume_bit_for_bit(digits, tmp_path):
  """Two processes, each reading its half of every batch (with a decoding
  worker process), resumed from checkpoint 2 as after a kill. (One device
  each: with two each, a DCGAN step across processes took 8 s on XLA:CPU.)"""
  _, prepared = digits
  whole = str(tmp_path / 'whole')

  def run_two(workdir: str) -> None:
    port = helpers.free_port()
    procs = [subprocess.Popen(
        # The tutorial's recipe: one program (lazy R1 would compile two).
        [sys.executable, '-m', 'gan_jax.main', '--config=experiments/fashion_mnist.py',
         '--config.data.name=folder', f'--config.data.path={prepared}',
         '--config.data.pipeline=stream', '--config.data.workers=1',
         '--config.train.batch_size=8', '--config.eval.evaluators=',
         *helpers.TINY_TRAIN, '--config.train.sample_every=100',
         f'--workdir={workdir}',
         f'--coordinator_address=localhost:{port}', '--num_processes=2',
         f'--process_id={i}'], env=helpers.command_env(1), cwd=REPO,
        stderr=subprocess.PIPE, text=True) for i in range(2)]
    try:
      logs = [p.communicate(timeout=240)[1] for p in procs]
    finally:
      for p in procs:
        p.kill()
    for p, log in zip(procs, logs, strict=True):
      assert p.returncode == 0, log[-3000:]

  run_two(whole)
  with open(os.path.join(whole, 'results.json')) as f:
    results = json.load(f)
  assert results['processes'] == 2 and results['data_pipeline'] == 'stream'
  # The position is saved with the checkpoint: 2 steps of 1 D update each.
  saved = checkpoints.Checkpoints(os.path.join(whole, 'checkpoints')).record(2)
  assert saved['data_stream'] == {'next_batch': 2, 'examples': 24}
  resumed = str(tmp_path / 'resumed')
  shutil.copytree(whole, resumed)
  shutil.rmtree(os.path.join(resumed, 'checkpoints', '4'))
  os.remove(os.path.join(resumed, 'results.json'))
  run_two(resumed)
  for a, b in zip(jax.tree.leaves(helpers.restored_state(whole)),
                  jax.tree.leaves(helpers.restored_state(resumed)), strict=True):
    np.testing.assert_array_equal(a, b)
