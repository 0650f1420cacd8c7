"""A TensorBoard event-file writer (and reader) that does not import TensorFlow.

TensorBoard's own writer pulls in TensorFlow (seconds of start-up and a second
framework competing for accelerators). Event files are just TFRecords of
`Event` protos, so this writes them directly with TensorBoard's protos, and
`read_events` reads them back the same way.
"""

from collections.abc import Iterator
import io
import os
import socket
import struct
import time

import numpy as np
from PIL import Image
from tensorboard.compat.proto import event_pb2
from tensorboard.compat.proto import summary_pb2


def _make_crc32c_table() -> list[int]:
  table = []
  for byte in range(256):
    crc = byte
    for _ in range(8):
      crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    table.append(crc)
  return table


_CRC32C_TABLE = _make_crc32c_table()


def crc32c(data: bytes) -> int:
  """CRC-32C (Castagnoli), the checksum TFRecord files use."""
  crc = 0xFFFFFFFF
  for byte in data:
    crc = _CRC32C_TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
  return crc ^ 0xFFFFFFFF


def _masked_crc(data: bytes) -> int:
  crc = crc32c(data)
  return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def to_pil(image_HWC: np.ndarray) -> Image.Image:
  """uint8 [H, W, C] (C = 1, 3 or 4) -> a PIL image (grey when C = 1)."""
  return Image.fromarray(image_HWC[..., 0] if image_HWC.shape[-1] == 1
                         else image_HWC)


def encode_png(image_HWC: np.ndarray) -> bytes:
  buffer = io.BytesIO()
  to_pil(image_HWC).save(buffer, format='PNG')
  return buffer.getvalue()


class SummaryWriter:
  """Writes scalars and images to `<logdir>/events.out.tfevents.*`."""

  def __init__(self, logdir: str):
    os.makedirs(logdir, exist_ok=True)
    name = f'events.out.tfevents.{int(time.time())}.{socket.gethostname()}.{os.getpid()}'
    self.path = os.path.join(logdir, name)
    self._file = open(self.path, 'ab')  # noqa: SIM115 (closed in close())
    self._write_event(event_pb2.Event(wall_time=time.time(),
                                      file_version='brain.Event:2'))

  def _write_event(self, event: event_pb2.Event) -> None:
    record = event.SerializeToString()
    header = struct.pack('<Q', len(record))
    self._file.write(header + struct.pack('<I', _masked_crc(header)) + record
                     + struct.pack('<I', _masked_crc(record)))

  def _write_values(self, step: int, values: list[summary_pb2.Summary.Value]):
    self._write_event(event_pb2.Event(
        wall_time=time.time(), step=int(step),
        summary=summary_pb2.Summary(value=values)))

  def scalars(self, step: int, scalars: dict[str, float]) -> None:
    self._write_values(step, [
        summary_pb2.Summary.Value(tag=tag, simple_value=float(value))
        for tag, value in scalars.items()])

  def image(self, step: int, tag: str, image_HWC: np.ndarray) -> None:
    height, width, channels = image_HWC.shape
    self._write_values(step, [summary_pb2.Summary.Value(
        tag=tag, image=summary_pb2.Summary.Image(
            height=height, width=width, colorspace=channels,
            encoded_image_string=encode_png(image_HWC)))])

  def flush(self) -> None:
    self._file.flush()

  def close(self) -> None:
    self._file.close()


def read_events(path: str) -> Iterator[event_pb2.Event]:
  """The events of one event file, in order. Checksums are not verified; a
  record cut short (a file still being written) ends the file."""
  with open(path, 'rb') as f:
    while True:
      header = f.read(12)  # length (uint64) and its masked CRC
      if len(header) < 12:
        return
      length, = struct.unpack('<Q', header[:8])
      record = f.read(length)
      if len(record) < length or len(f.read(4)) < 4:
        return
      yield event_pb2.Event.FromString(record)
