"""gan_jax.summary_writer: event files TensorBoard reads, written without
TensorFlow."""

import io
import os
import subprocess
import sys

import numpy as np
from PIL import Image
import pytest
from tensorboard.backend.event_processing import event_accumulator
from tensorboard.backend.event_processing import event_file_loader
from tensorboard.backend.event_processing import plugin_event_accumulator

from gan_jax import files
from gan_jax import summary_writer
from tests.helpers import REPO

GREY = np.arange(6 * 5, dtype=np.uint8).reshape(6, 5, 1) * 8
RGB = np.random.default_rng(0).integers(0, 256, (4, 7, 3), dtype=np.uint8)


@pytest.fixture
def logdir(tmp_path):
  """Two steps of scalars and two images, written and closed."""
  writer = summary_writer.SummaryWriter(str(tmp_path))
  writer.scalars(1, {'g_loss': 0.5, 'eval/modes': np.float32(8)})
  writer.image(1, 'samples', GREY)
  writer.scalars(2, {'g_loss': -1.25, 'eval/modes': 7})
  writer.image(2, 'samples', RGB)
  writer.close()
  return str(tmp_path)


def event_file(logdir) -> str:
  (name,) = os.listdir(logdir)
  assert name.startswith('events.out.tfevents.')
  return os.path.join(logdir, name)


def test_tensorboards_loader_reads_the_scalars_and_the_png_images(logdir):
  scalars, images = {}, {}
  for event in event_file_loader.EventFileLoader(event_file(logdir)).Load():
    for value in event.summary.value:  # migrated to tensor summaries
      plugin = value.metadata.plugin_data.plugin_name
      if plugin == 'scalars':
        scalars[event.step, value.tag] = value.tensor.float_val[0]
      elif plugin == 'images':
        images[event.step, value.tag] = list(value.tensor.string_val)
  assert scalars == {(1, 'g_loss'): 0.5, (1, 'eval/modes'): 8.0,
                     (2, 'g_loss'): -1.25, (2, 'eval/modes'): 7.0}
  assert images == {
      (1, 'samples'): [b'5', b'6', summary_writer.encode_png(GREY)],
      (2, 'samples'): [b'7', b'4', summary_writer.encode_png(RGB)]}
  grey_png, rgb_png = images[1, 'samples'][2], images[2, 'samples'][2]
  np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(grey_png))),
                                GREY[..., 0])
  np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(rgb_png))), RGB)


def test_read_events_reads_what_tensorboards_raw_loader_reads(logdir):
  path = event_file(logdir)
  ours = list(summary_writer.read_events(path))
  assert ours == list(event_file_loader.LegacyEventFileLoader(path).Load())
  assert ours[0].file_version == 'brain.Event:2'
  assert [e.step for e in ours] == [0, 1, 1, 2, 2]


def test_tensorboards_accumulators_list_the_tags(logdir):
  accumulator = event_accumulator.EventAccumulator(logdir).Reload()
  tags = accumulator.Tags()
  assert sorted(tags['scalars']) == ['eval/modes', 'g_loss']
  assert tags['images'] == ['samples']
  assert [(s.step, s.value) for s in accumulator.Scalars('g_loss')] == [
      (1, 0.5), (2, -1.25)]
  assert [(i.step, i.width, i.height) for i in accumulator.Images('samples')] == [
      (1, 5, 6), (2, 7, 4)]

  plugins = plugin_event_accumulator.EventAccumulator(logdir)  # the UI's
  plugins.Reload()
  assert sorted(plugins.PluginTagToContent('scalars')) == ['eval/modes', 'g_loss']
  assert list(plugins.PluginTagToContent('images')) == ['samples']


def test_a_cut_or_corrupt_record_ends_the_file(logdir):
  path = event_file(logdir)
  with open(path, 'rb') as f:
    content = f.read()
  with open(path, 'wb') as f:
    f.write(content[:-3])  # the last record is being written
  assert [e.step for e in summary_writer.read_events(path)] == [0, 1, 1, 2]
  with open(path, 'wb') as f:
    f.write(content[:-1] + bytes([content[-1] ^ 1]))  # its checksum is wrong
  assert [e.step for e in summary_writer.read_events(path)] == [0, 1, 1, 2]


def test_writers_get_their_own_files_and_flush_makes_events_visible(tmp_path):
  first = summary_writer.SummaryWriter(str(tmp_path))
  second = summary_writer.SummaryWriter(str(tmp_path))
  assert first.path != second.path
  first.scalars(3, {'loss': 1.0})
  first.flush()
  assert [e.step for e in summary_writer.read_events(first.path)] == [0, 3]
  first.close()
  second.close()


def test_writing_and_reading_import_no_tensorflow_and_leave_no_thread(tmp_path):
  """TensorBoard's EventFileWriter would: it imports TensorFlow whenever it
  is installed, and writes from a thread."""
  script = f"""if True:
    import sys, threading
    import numpy as np
    from gan_jax import summary_writer
    writer = summary_writer.SummaryWriter({str(tmp_path)!r})
    writer.scalars(1, {{'loss': 1.0}})
    writer.image(1, 'samples', np.zeros((2, 2, 3), np.uint8))
    writer.flush()
    threads = threading.active_count()
    writer.close()
    steps = [e.step for e in summary_writer.read_events(writer.path)]
    print('tensorflow' in sys.modules, threads, steps)
  """
  result = subprocess.run([sys.executable, '-c', script], cwd=REPO, check=True,
                          capture_output=True, text=True)
  assert result.stdout.split('\n')[-2] == 'False 1 [0, 1, 1]'


def test_in_object_storage_a_long_log_goes_on_in_new_objects(monkeypatch):
  """Each upload to object storage carries the whole object, so past
  ROLL_BYTES the writer starts a new one: no object outgrows it by more than
  an event, and the objects, read in name order, hold every event in order."""
  monkeypatch.setattr(summary_writer.SummaryWriter, 'ROLL_BYTES', 1000)
  logdir = f'memory://summary_writer_{os.getpid()}/logs'
  writer = summary_writer.SummaryWriter(logdir)
  for step in range(1, 501):
    writer.scalars(step, {'loss': float(step)})
  writer.close()
  paths = files.glob(f'{logdir}/events.out.tfevents.*')
  assert len(paths) >= 10  # past 9 the names must still sort in order
  assert max(len(files.read_bytes(path)) for path in paths) < 1000 + 100
  events = [event for path in paths for event in summary_writer.read_events(path)]
  assert [e.step for e in events if e.summary.value] == list(range(1, 501))
  assert all(next(summary_writer.read_events(path)).file_version == 'brain.Event:2'
             for path in paths)
