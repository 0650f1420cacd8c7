"""Data parallelism: the device mesh, replicated arrays, and the step wrappers.

A step function is written for ONE device: it draws its own slice of the
global batch (`jax.lax.axis_index(DATA_AXIS)`) and averages gradients and
batch-norm statistics over `DATA_AXIS` with collectives. The same function
then runs under `jax.jit(jax.shard_map(...))` over a mesh (the default) or
under `jax.pmap`, on one device or many, on one host or many.
"""

import os

from absl import logging
import jax
from jax.sharding import Mesh
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
import numpy as np

DATA_AXIS = 'data'


def _cluster_detected() -> bool:
  """Whether we run in a multi-process cluster jax.distributed can auto-detect."""
  hosts = os.environ.get('TPU_WORKER_HOSTNAMES', '')
  return (len([h for h in hosts.split(',') if h]) > 1
          or int(os.environ.get('SLURM_NTASKS', '1')) > 1
          or int(os.environ.get('OMPI_COMM_WORLD_SIZE', '1')) > 1)


def initialize_distributed(coordinator_address: str | None = None,
                           num_processes: int | None = None,
                           process_id: int | None = None,
                           detect: bool = False) -> None:
  """Joins a multi-process run (TPU pod, several GPU hosts, or CPU processes).

  With explicit arguments they are passed to `jax.distributed.initialize`;
  without, it is called only where it can detect the cluster itself (Cloud
  TPU pods, SLURM, Open MPI), or where the caller knows it runs on one
  (`detect`). Must run before anything else touches JAX.
  """
  if coordinator_address:
    jax.distributed.initialize(coordinator_address=coordinator_address,
                               num_processes=num_processes,
                               process_id=process_id)
  elif detect or _cluster_detected():
    jax.distributed.initialize()
  else:
    return
  logging.info('process %d of %d; %d local of %d global devices',
               jax.process_index(), jax.process_count(),
               jax.local_device_count(), jax.device_count())


def make_mesh(devices=None) -> Mesh:
  """A 1-D mesh with axis DATA_AXIS over `devices` (default: all of them)."""
  devices = jax.devices() if devices is None else devices
  return Mesh(np.asarray(devices), (DATA_AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def replicate(tree, mesh: Mesh):
  """Host arrays -> global arrays replicated on every device of `mesh`.

  Works with several processes: each one provides its (identical) copy.
  """
  sharding = replicated(mesh)

  def put(x):
    x = np.asarray(x)
    return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])

  return jax.tree.map(put, tree)


def shard_map_step(step_fn, mesh: Mesh, data_specs=None):
  """Compiles `step_fn(state, data) -> (state, metrics)` over `mesh`.

  State and metrics are replicated, data as `data_specs` says (replicated by
  default; a streamed batch is split, gan_jax.step.data_specs); the state
  argument is donated.
  `check_vma=False` gives `pmap`'s semantics: the gradient of a replicated
  parameter is this device's own, and the step averages it explicitly with
  `pmean`. (With varying-manual-axes typing on, autodiff would already sum it
  over devices, and the explicit average would then leave an N-times sum.)
  """
  mapped = jax.shard_map(step_fn, mesh=mesh, in_specs=(P(), P() if data_specs is None else data_specs),
                         out_specs=(P(), P()), check_vma=False)
  return jax.jit(mapped, donate_argnums=0)


def pmap_step(step_fn):
  """The same per-device step under `jax.pmap` (state and data stacked per device)."""
  return jax.pmap(step_fn, axis_name=DATA_AXIS, donate_argnums=0)


def fetch(tree):
  """Device -> host numpy, for replicated (or single-device) arrays."""
  return jax.tree.map(lambda x: np.asarray(x.addressable_data(0)), tree)


def replicate_for_pmap(tree, devices=None):
  """Host or device arrays -> one copy per local device along a new leading
  axis, the layout `pmap_step` takes."""
  devices = jax.local_devices() if devices is None else devices
  sharding = NamedSharding(Mesh(np.asarray(devices), (DATA_AXIS,)), P(DATA_AXIS))

  def put(x):
    return jax.device_put(jax.numpy.broadcast_to(x[None], (len(devices),) + x.shape),
                          sharding)

  return jax.tree.map(put, tree)


def unreplicate(tree):
  """The first copy of `replicate_for_pmap`'s layout."""
  return jax.tree.map(lambda x: x[0], tree)
