"""The streaming pipeline (data.pipeline=stream): real batches read on the
host with grain while the previous step runs, for datasets that do not fit
on the devices.

The order: the examples shuffled anew every epoch by (data seed, epoch)
(grain's `MapDataset.shuffle(seed).repeat()`, a global shuffle), read in
global batches of `slots` x `train.batch_size` examples: one real batch per
D update, and one more when G's loss reads D's real logits. JAX process p of
P reads only positions p, p + P, ... of that order (grain's
`ShardByJaxProcess`), decodes them (on threads, or in `data.workers`
processes), and its part of every global batch is assembled into one global
array, sharded over the devices' batch axis, and put on the devices ahead of
the step that reads it (`PREFETCH` batches).

The members of a run of several seeds read the same batches (one order per
run, from its base seed): one pipeline whatever the number of members; their
initialisations, latents and dropout still differ.

The whole iterator state is the position in that order, `next_batch`: it is
saved with every checkpoint (the checkpoint's metadata, `state`) and a
resumed run reads on from it, so it repeats the uninterrupted run exactly,
whatever `data.workers` is.
"""

import dataclasses
import os
import queue
import threading

from absl import flags
import jax
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
import numpy as np

from gan_jax.errors import UserError

BATCHES = 'batches'  # the step's data argument under data.pipeline=stream
PREFETCH = 2  # global batches on the devices ahead of the step
PIPELINES = ('auto', 'device', 'stream')
# data.pipeline=auto streams a dataset whose decoded images exceed this.
DEVICE_BYTES = 2 * 2**30


@dataclasses.dataclass(frozen=True)
class Examples:
  """Random access to a dataset's images without decoding them all: `dataset`
  is a grain MapDataset of `count` uint8 [H, W, C] examples."""
  dataset: object
  count: int
  shape: tuple[int, int, int]


def choose(pipeline: str, count: int, shape: tuple[int, ...]
           ) -> tuple[str, str]:
  """('device' or 'stream', why) for data.pipeline=`pipeline` and a dataset
  of `count` uint8 images of `shape`, weighed decoded."""
  nbytes = count * int(np.prod(shape))
  size = f'{nbytes / 2**30:.2f} GiB decoded'
  if pipeline != 'auto':
    return pipeline, f'data.pipeline={pipeline}; {size}'
  if nbytes <= DEVICE_BYTES:
    return 'device', f'auto: {size} fit in {DEVICE_BYTES / 2**30:g} GiB'
  return 'stream', f'auto: {size} exceed {DEVICE_BYTES / 2**30:g} GiB'


def data_seed(seed: int) -> int:
  """The order's seed from the run's base seed (a 31-bit int, as grain needs)."""
  return int(np.random.SeedSequence([seed, 0x5EED]).generate_state(1)[0] >> 1)


def slots(d_steps: int, generator_reads_real: bool) -> int:
  """Real batches a step reads: one per D update, one for G's loss if it
  reads D's real logits."""
  return d_steps + int(generator_reads_real)


def batch_spec() -> P:
  from gan_jax.parallel import DATA_AXIS  # noqa: PLC0415
  return P(None, DATA_AXIS)


def abstract_batches(examples: Examples, num_slots: int, batch_size: int,
                     mesh) -> dict:
  """The step's data argument as shapes (for compiling)."""
  return {BATCHES: jax.ShapeDtypeStruct(
      (num_slots, batch_size, *examples.shape), np.uint8,
      sharding=NamedSharding(mesh, batch_spec()))}


class Stream:
  """The global batches of a run, from position `next_batch` on, put on the
  devices of `mesh` ahead of use by a background thread.

  `next()` returns the step's data argument ({BATCHES: uint8 [slots, B, H,
  W, C]}); `state()` the position after the batches returned so far (what a
  checkpoint saves). Close it when done (`with Stream(...)`)."""

  def __init__(self, examples: Examples, seed: int, num_slots: int,
               batch_size: int, mesh, workers: int = 0, next_batch: int = 0):
    import grain  # noqa: PLC0415 (only runs that stream import it)
    if not flags.FLAGS.is_parsed():  # grain reads its absl flags' defaults
      flags.FLAGS.mark_as_parsed()  # (a notebook, a test: no absl main)
    shard = grain.sharding.ShardByJaxProcess()
    if batch_size % shard.shard_count:
      raise UserError(f'train.batch_size={batch_size} does not split evenly'
                      f' across {shard.shard_count} processes')
    local = num_slots * batch_size // shard.shard_count
    order = examples.dataset.shuffle(seed=seed).repeat(None)
    mine = order[shard.shard_index::shard.shard_count][next_batch * local:]
    threads = min(16, os.cpu_count() or 1)
    reading = mine.to_iter_dataset(grain.ReadOptions(
        num_threads=threads, prefetch_buffer_size=max(threads, 2 * local)))
    reading = reading.batch(local, drop_remainder=True)
    if workers:
      reading = reading.mp_prefetch(grain.MultiprocessingOptions(
          num_workers=workers))
    self._iterator = iter(reading)
    self._shape = (num_slots, local // num_slots, *examples.shape)
    self._sharding = NamedSharding(mesh, batch_spec())
    self._next = next_batch
    self._ready = queue.Queue(PREFETCH)
    self._stop = threading.Event()
    self._thread = threading.Thread(target=self._fill, daemon=True,
                                    name='gan_jax stream')
    self._thread.start()

  def _fill(self) -> None:
    try:
      while not self._stop.is_set():
        local = np.asarray(next(self._iterator)).reshape(self._shape)
        batch = jax.make_array_from_process_local_data(self._sharding, local)
        self._put(batch)
    except BaseException as e:  # noqa: BLE001 (handed to the training loop)
      self._put(e)

  def _put(self, item) -> None:
    while not self._stop.is_set():
      try:
        self._ready.put(item, timeout=0.1)
        return
      except queue.Full:
        continue

  def next(self) -> dict:
    item = self._ready.get()
    if isinstance(item, BaseException):
      raise item
    self._next += 1
    return {BATCHES: item}

  def state(self) -> dict:
    """The position after the batches `next` returned (JSON)."""
    return {'next_batch': self._next}

  def close(self) -> None:
    self._stop.set()
    self._thread.join(timeout=10)
    close = getattr(self._iterator, 'close', None)
    if close is not None:
      close()

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.close()
