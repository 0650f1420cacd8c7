"""Programs the tests run in a process of their own, with forced CPU devices
(JAX fixes its device count when it starts), each printing its result as one
JSON line, last:

  XLA_FLAGS=--xla_force_host_platform_device_count=4 python -m tests.device_runs components
  XLA_FLAGS=--xla_force_host_platform_device_count=4 python -m tests.device_runs dcgan IDX OUT

`components` (tests/test_contracts_devices.py): one step of every model, of
every loss and of the DCGAN with every stabiliser, on 1 device and on 4.
`dcgan` (tests/test_parallel.py): the tiny DCGAN's runs on 1 and 4 devices,
of one seed and two, vmapped, under pmap, and with its gradients summed over
the devices instead of averaged (a wrong step the test must catch); each
member's state is saved as OUT/<run>_m<i>.npz.
"""

import dataclasses
import functools
import json
import sys

from gan_jax import runtime

runtime.setup()

import jax  # noqa: E402 (after runtime.setup)
import numpy as np  # noqa: E402
import optax  # noqa: E402

from gan_jax import configs  # noqa: E402
from gan_jax import data  # noqa: E402
from gan_jax import gan as gan_lib  # noqa: E402
from gan_jax import losses  # noqa: E402
from gan_jax import models  # noqa: E402
from gan_jax import parallel  # noqa: E402
from gan_jax import step as step_lib  # noqa: E402
from tests import helpers  # noqa: E402
from tests import specs  # noqa: E402


def _host(state):
  return jax.device_get(state.replace(key=jax.random.key_data(state.key)))


def _one_step_on_one_and_four_devices(config, source):
  """The fresh state, the states after one step from it on 1 device and on 4
  (initialised once: its program is not the contract's, and compiling it
  for each mesh would double the test's initialisations), and the 1-device
  step's metrics; on the host."""
  gan = gan_lib.build_gan(config, source.example_shape, source.sample_one)
  meshes = [parallel.make_mesh(jax.devices()[:n]) for n in (1, 4)]
  fresh = gan_lib.fresh_states(gan, [config.seed], meshes[0])
  impl, host = jax.random.key_impl(fresh.key), _host(fresh)
  stepped, metrics = [], []
  for mesh in meshes:  # each step donates its own copy of the fresh state
    state = parallel.replicate(host, mesh)
    state = state.replace(key=jax.random.wrap_key_data(state.key, impl=impl))
    step = parallel.shard_map_step(
        functools.partial(step_lib.train_step_seeds, gan), mesh)
    state, step_metrics = step(state, parallel.replicate(source.arrays, mesh))
    stepped.append(_host(state))
    metrics.append(jax.device_get(step_metrics))
  return host, stepped, metrics[0]


def _loss_step(fresh, state, metrics) -> dict:
  """What one step of a loss did, for tests/test_contracts_devices.py: whether
  it changed each player's parameters, whether they and the metrics are all
  finite, D's updates (Adam's count) and the metrics' names."""
  def changed(player):
    return any(not np.array_equal(a, b) for a, b in zip(
        jax.tree.leaves(getattr(fresh, player).params),
        jax.tree.leaves(getattr(state, player).params), strict=True))
  leaves = [*jax.tree.leaves((state.g.params, state.d.params)), *jax.tree.leaves(metrics)]
  return {'g_changed': changed('g'), 'd_changed': changed('d'),
          'finite': all(bool(np.all(np.isfinite(x))) for x in leaves),
          'd_updates': int(np.asarray(state.d.opt_state[0].count).ravel()[0]),
          'metrics': sorted(metrics)}


def components() -> dict[str, dict]:
  """'differences': per case, the largest difference between 1 and 4 devices of Adam's
  moments and of the collections (BatchNorm statistics), each against the
  largest value of its kind in the state: a gradient that cancels to
  round-off in one leaf (a critic's bias) must not dominate. Parameters
  follow from the moments. (One step: Adam's first update is
  ~ lr * sign(gradient), which turns round-off in a gradient near 0 into
  differences of 2 lr that later steps compound.) 'losses': per loss, with
  its own D steps and penalties, what its step did (`_loss_step`)."""
  jax.config.update('jax_disable_most_optimizations', True)
  # The DCGAN's case is its run with every stabiliser at once, and with one
  # forward of G a step (train.reuse_fake).
  cases = [('model', n, helpers.small_run(helpers.model_config(n),
                                          specs.model(n).shape))
           for n in models.MODELS if n != 'dcgan']
  stabilised = helpers.stabilised('dcgan')
  stabilised.train.reuse_fake = True
  cases += [('stabilisers', 'dcgan', helpers.small_run(
      stabilised, specs.model('dcgan').shape))]
  for name in losses.LOSSES:
    config = helpers.toy_config(name)
    config.train.d_steps = 0  # the loss's own (wgan_gp: 5)
    cases.append(('loss', name, config))
  out, steps = {}, {}
  for kind, name, config in cases:
    config = configs.resolve(config)
    source = (data.load(config.data) if config.data.source == 'toy'
              else data.synthetic(config.data.name, num_images=64))
    fresh, (one, four), metrics = _one_step_on_one_and_four_devices(config, source)
    if kind == 'loss':
      steps[name] = _loss_step(fresh, one, metrics)
    groups = {}
    for (path, a), b in zip(jax.tree_util.tree_flatten_with_path(one)[0],
                            jax.tree.leaves(four), strict=True):
      path = jax.tree_util.keystr(path)
      if a.dtype.kind == 'f' and '.params' not in path:
        group = next((g for g in ('.mu', '.nu') if g in path), 'collections')
        groups.setdefault(group, []).append((a, b))
    out[f'{kind}:{name}'] = max(
        max(float(np.max(np.abs(a - b))) for a, b in pairs)
        / (max(float(np.max(np.abs(a))) for a, _ in pairs) + 1e-12)
        for pairs in groups.values())
  return {'differences': out, 'losses': steps}


def _summing_gradients(optimizer, params, opt_state, grads):
  """step._apply_gradients with the devices' gradients summed, not averaged."""
  grads = jax.lax.psum(grads, parallel.DATA_AXIS)
  updates, opt_state = optimizer.update(grads, opt_state, params)
  sizes = {'grad_norm': optax.tree.norm(grads),
           'update_ratio': optax.tree.norm(updates) / optax.tree.norm(params)}
  return optax.apply_updates(params, updates), opt_state, sizes


def dcgan(idx_dir: str, out_dir: str) -> dict[str, dict[str, float]]:
  """Trains the tiny DCGAN (batch norm across devices, per-example dropout):
  seed 0 for 3 steps on 1 device and on 4; seeds 0 and 1 for 1 step alone on
  1 device, and as one run of two seeds on 4 -- with the members one after
  another ('loop', what 'auto' picks for the DCGAN on the CPU) and vmapped
  -- and under pmap; and seed 0 for 1 step on 4 devices with its gradients
  summed. Saves each member's state; returns each member's metrics."""
  assert jax.device_count() == 4
  # Mostly compilation, which this halves; 1 and 4 devices sum in different
  # orders either way.
  jax.config.update('jax_disable_most_optimizations', True)
  config = configs.resolve(helpers.tiny_image_config(idx_dir))
  source = data.load(config.data)
  gan = gan_lib.build_gan(config, source.example_shape, source.sample_one)
  assert gan.seed_batching == 'loop', gan.seed_batching  # 'auto' on the CPU
  init = functools.partial(gan_lib.init_states, gan)
  out = {}

  def save(name, state, metrics):
    state = _host(state)
    for i in range(len(state.step)):
      member = gan_lib.member(state, i)
      np.savez(f'{out_dir}/{name}_m{i}.npz', **{
          jax.tree_util.keystr(p): np.asarray(x)
          for p, x in jax.tree_util.tree_flatten_with_path(member)[0]})
      out[f'{name}_m{i}'] = {k: float(v[i]) for k, v in metrics.items()}

  def shard_map_runs(devices, runs, gan=gan):
    mesh = parallel.make_mesh(devices)
    arrays = parallel.replicate(source.arrays, mesh)
    step = parallel.shard_map_step(
        functools.partial(step_lib.train_step_seeds, gan), mesh)
    for name, (seeds, steps) in runs.items():
      state = jax.jit(init, out_shardings=parallel.replicated(mesh))(
          np.asarray(seeds, np.int32))
      for _ in range(steps):
        state, metrics = step(state, arrays)
      save(name, state, metrics)

  shard_map_runs(jax.devices()[:1], {'one': ([0], 3), 'seed0_step1': ([0], 1),
                                     'seed1_step1': ([1], 1)})
  shard_map_runs(jax.devices(), {'four': ([0], 3), 'four_two_seeds': ([0, 1], 1)})
  shard_map_runs(jax.devices(), {'four_two_seeds_vmap': ([0, 1], 1)},
                 dataclasses.replace(gan, seed_batching='vmap'))
  state = parallel.replicate_for_pmap(jax.jit(init)(np.asarray([0, 1], np.int32)))
  state, metrics = parallel.pmap_step(
      functools.partial(step_lib.train_step_seeds, gan))(
          state, parallel.replicate_for_pmap(source.arrays))
  save('pmap', parallel.unreplicate(state), parallel.unreplicate(metrics))
  step_lib._apply_gradients = _summing_gradients  # noqa: SLF001 (a wrong step)
  shard_map_runs(jax.devices(), {'four_summed': ([0], 1)})
  return out


if __name__ == '__main__':
  program, *args = sys.argv[1:]
  print(json.dumps({'components': components, 'dcgan': dcgan}[program](*args)))
