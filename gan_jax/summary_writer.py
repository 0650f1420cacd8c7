"""TensorBoard event files written and read without TensorFlow.

Importing TensorFlow costs seconds of start-up and brings a second framework
that grabs accelerators. TensorBoard's `EventFileWriter` and `EventFileLoader`
import it whenever it is installed (TFDS needs it here), through the lazy
`tensorboard.compat.tf`, so this uses the TensorFlow-free parts they are built
on: `RecordWriter` frames the records, synchronously with no thread, and the
`tensorflow_stub` record reader reads them back, checksums verified. The
`Event` and `Summary` protos are TensorBoard's.
"""

from collections.abc import Iterator
import io
import itertools
import os
import socket
import time

import numpy as np
from PIL import Image
from tensorboard.compat.proto import event_pb2
from tensorboard.compat.proto import summary_pb2
from tensorboard.compat.tensorflow_stub import errors
from tensorboard.compat.tensorflow_stub import pywrap_tensorflow
from tensorboard.summary.writer import record_writer

from gan_jax import files

_writer_ids = itertools.count()


def to_pil(image_HWC: np.ndarray) -> Image.Image:
  """uint8 [H, W, C] (C = 1, 3 or 4) -> a PIL image (grey when C = 1)."""
  return Image.fromarray(image_HWC[..., 0] if image_HWC.shape[-1] == 1
                         else image_HWC)


def encode_png(image_HWC: np.ndarray) -> bytes:
  buffer = io.BytesIO()
  to_pil(image_HWC).save(buffer, format='PNG')
  return buffer.getvalue()


def _file_name() -> str:
  """`EventFileWriter`'s naming: time, host, process, writer in the process,
  the last zero-padded so that a process's files sort in the order it opened
  them (TensorBoard reads a directory's files in name order)."""
  return (f'events.out.tfevents.{int(time.time()):010d}.{socket.gethostname()}'
          f'.{os.getpid()}.{next(_writer_ids):06d}')


class _ObjectFile(io.BytesIO):
  """The event file in object storage, where nothing can be appended to: the
  records are kept in memory and the whole object is written again at a
  flush (as TensorFlow's GCS file system does), at most every UPLOAD_EVERY_S
  seconds (GCS takes about one write a second per object, and each upload
  carries the whole file) and at close."""

  UPLOAD_EVERY_S = 30.0

  def __init__(self, path: str):
    super().__init__()
    self._path = path
    self._uploaded = None  # time of the last upload

  def flush(self, force: bool = False) -> None:
    now = time.monotonic()
    if (force or self._uploaded is None
        or now - self._uploaded >= self.UPLOAD_EVERY_S):
      files.write_bytes(self._path, self.getvalue())
      self._uploaded = now

  def close(self) -> None:
    self.flush(force=True)
    super().close()


class SummaryWriter:
  """Writes scalars and images to `<logdir>/events.out.tfevents.*`.

  Writes go to a buffered file in the calling thread: `flush` makes them
  visible to TensorBoard, `close` flushes and closes. In object storage each
  upload carries the whole object (_ObjectFile), so a long run would upload
  O(steps²) bytes: past ROLL_BYTES the writer closes the object and goes on
  in a new one, which TensorBoard and `gan_jax.analysis` read after it, as
  they read a resumed run's files.
  """

  ROLL_BYTES = 4 * 2**20

  def __init__(self, logdir: str):
    files.makedirs(logdir)
    self._logdir = logdir
    self._open()

  def _open(self) -> None:
    self.path = os.path.join(self._logdir, _file_name())
    self._out = (_ObjectFile(self.path) if files.is_remote(self.path)
                 else open(self.path, 'ab'))  # noqa: SIM115 (closed in close())
    self._records = record_writer.RecordWriter(self._out)
    self._write(event_pb2.Event(
        file_version='brain.Event:2',
        source_metadata=event_pb2.SourceMetadata(writer=__name__)))

  def _write(self, event: event_pb2.Event, step: int = 0) -> None:
    event.wall_time, event.step = time.time(), int(step)
    with files.naming(self.path):
      self._records.write(event.SerializeToString())
    if isinstance(self._out, _ObjectFile) and self._out.tell() >= self.ROLL_BYTES:
      self.close()
      self._open()

  def _write_values(self, step: int, values: list[summary_pb2.Summary.Value]):
    self._write(event_pb2.Event(summary=summary_pb2.Summary(value=values)), step)

  def scalars(self, step: int, scalars: dict[str, float]) -> None:
    self._write_values(step, [
        summary_pb2.Summary.Value(tag=tag, simple_value=float(value))
        for tag, value in scalars.items()])

  def image(self, step: int, tag: str, image_HWC: np.ndarray) -> None:
    """A uint8 [H, W, C] image (C = 1, 3 or 4), stored as PNG."""
    height, width, channels = image_HWC.shape
    self._write_values(step, [summary_pb2.Summary.Value(
        tag=tag, image=summary_pb2.Summary.Image(
            height=height, width=width, colorspace=channels,
            encoded_image_string=encode_png(image_HWC)))])

  def flush(self) -> None:
    with files.naming(self.path):
      self._records.flush()

  def close(self) -> None:
    with files.naming(self.path):
      self._records.close()


def read_events(path: str) -> Iterator[event_pb2.Event]:
  """The events of one event file, in order, as written (no migration to
  tensor summaries). A record cut short (a file still being written) or
  failing its checksum ends the file."""
  if files.is_remote(path):  # the record reader reads local files only
    import tempfile  # noqa: PLC0415
    with files.open_file(path, 'rb') as f, tempfile.NamedTemporaryFile() as copy:
      copy.write(f.read())
      copy.flush()
      yield from read_events(copy.name)
    return
  reader = pywrap_tensorflow.PyRecordReader_New(path)
  while True:
    try:
      reader.GetNext()
    except (errors.OutOfRangeError, errors.DataLossError):
      return
    yield event_pb2.Event.FromString(reader.record())
