"""Each layer of the same-math DCGAN step, gan_jax against PyTorch, per pass.

  pip install torch   # optional; never a dependency of gan_jax or its tests
  python benchmarks/ops.py                 # batch 256, 7 rounds
  python benchmarks/ops.py --batch=256 --rounds=7 --calls=5

Issue 33, item 2: where does the same-math step (benchmarks/compare.py
--workload=dcgan) lose to PyTorch on a CPU? Each layer of the TensorFlow
DCGAN tutorial's networks (the `dcgan` workload: 28x28x1, batch 256, f32) is
timed alone in three passes: the forward, the input gradient and the weight
gradient, as gan_jax computes them (the project's layers, `model.
transposed_conv=subpixel`, each pass one jitted program whose other outputs
XLA drops) and as PyTorch does (`F.conv_transpose2d`, `F.conv2d` and
`F.linear` forward; `aten.convolution_backward` with one output asked for,
the kernels its autograd calls). Then the elementwise work between them
(BatchNorm and LeakyReLU, forward and backward) and Adam's update of each
player.

Both sides run in this one process, interleaved: each round times `--calls`
calls of every pass on each side in turn; the medians over rounds are
printed as a markdown table, ms per call, `torch / gan_jax` (> 1: gan_jax is
faster), and gan_jax's GFLOP/s on the layer's nominal multiply-adds (2 per
multiply-add, the same count for each pass). The last line is one JSON
object of the same figures.
"""

import argparse
import functools
import json
import statistics
import time

from gan_jax import runtime

runtime.setup()

import flax.linen as nn  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from gan_jax.models import dcgan  # noqa: E402
from gan_jax.models import layers  # noqa: E402

SLOPE = dcgan.LEAKY_SLOPE


def conv_layers(batch: int) -> list[dict]:
  """The tutorial's convolutions and dense layers: name, the gan_jax module,
  input shape (NHWC), and how PyTorch runs it."""
  def transposed(features, stride):
    return layers.transposed_conv('subpixel', features, (5, 5), stride, use_bias=False)

  def strided(features):
    return layers.strided_conv('subpixel', features, (5, 5), 2, use_bias=False)

  # (name, module, input NHWC or [B, F], torch kind, stride, padding, output_padding)
  specs = [
      ('G dense 100->7x7x256', nn.Dense(7 * 7 * 256, use_bias=False), (batch, 100),
       'linear', 1, 0, 0),
      ('G convT 7x7 256->128 s1', transposed(128, 1), (batch, 7, 7, 256), 'convT', 1, 2, 0),
      ('G convT 7->14 128->64 s2', transposed(64, 2), (batch, 7, 7, 128), 'convT', 2, 2, 1),
      ('G convT 14->28 64->1 s2', transposed(1, 2), (batch, 14, 14, 64), 'convT', 2, 2, 1),
      ('D conv 28->14 1->64 s2', strided(64), (batch, 28, 28, 1), 'conv', 2, 2, 0),
      ('D conv 14->7 64->128 s2', strided(128), (batch, 14, 14, 64), 'conv', 2, 2, 0),
      ('D dense 6272->1', nn.Dense(1, use_bias=False), (batch, 7 * 7 * 128), 'linear', 1, 0, 0),
  ]
  return [dict(zip(('name', 'module', 'shape', 'kind', 'stride', 'padding',
                    'output_padding'), spec, strict=True)) for spec in specs]


def nominal_flops(spec: dict, kernel: np.ndarray) -> float:
  """2 x the layer's multiply-adds: per input position, every kernel tap to
  every output channel for a transposed convolution; per output position
  for a convolution; in x out per example for a dense layer."""
  batch = spec['shape'][0]
  if spec['kind'] == 'linear':
    return 2.0 * batch * kernel.size
  kh, kw, cin, cout = kernel.shape
  h, w = spec['shape'][1:3]
  if spec['kind'] == 'conv':
    h, w = -(-h // spec['stride']), -(-w // spec['stride'])
  return 2.0 * batch * h * w * kh * kw * cin * cout


def jax_passes(spec: dict, rng: np.random.Generator):
  """{pass: (jitted function, its arguments)} for one layer, and its kernel."""
  module = spec['module']
  x = jnp.asarray(rng.standard_normal(spec['shape'], np.float32))
  params = module.init(jax.random.key(0), x)['params']
  y = module.apply({'params': params}, x)
  dy = jnp.asarray(rng.standard_normal(y.shape, np.float32))
  apply = lambda p, x: module.apply({'params': p}, x)  # noqa: E731
  passes = {
      'forward': (jax.jit(apply), (params, x)),
      'input grad': (jax.jit(lambda p, x, dy: jax.vjp(functools.partial(apply, p), x)[1](dy)[0]),
                     (params, x, dy)),
      'weight grad': (jax.jit(lambda p, x, dy: jax.vjp(lambda p: apply(p, x), p)[1](dy)[0]),
                      (params, x, dy)),
  }
  return passes, np.asarray(params['kernel'])


def torch_passes(spec: dict, kernel: np.ndarray, rng: np.random.Generator):
  """The same layer's three passes in PyTorch (NCHW), the kernels autograd calls."""
  batch, *rest = spec['shape']
  if spec['kind'] == 'linear':
    x = torch.from_numpy(rng.standard_normal(spec['shape'], np.float32))
    w = torch.from_numpy(np.ascontiguousarray(kernel.T))  # [out, in]
    dy = torch.from_numpy(rng.standard_normal((batch, w.shape[0]), np.float32))
    return {'forward': lambda: F.linear(x, w),
            'input grad': lambda: dy @ w,
            'weight grad': lambda: dy.t() @ x}
  h, w_, cin = rest
  x = torch.from_numpy(rng.standard_normal((batch, cin, h, w_), np.float32))
  transposed = spec['kind'] == 'convT'
  # PyTorch's layouts: conv [out, in, kh, kw]; transposed conv [in, out, kh, kw].
  weight = torch.from_numpy(np.ascontiguousarray(
      kernel.transpose(2, 3, 0, 1) if transposed else kernel.transpose(3, 2, 0, 1)))
  stride, padding, output_padding = spec['stride'], spec['padding'], spec['output_padding']
  if transposed:
    forward = lambda: F.conv_transpose2d(x, weight, None, stride, padding, output_padding)  # noqa: E731
  else:
    forward = lambda: F.conv2d(x, weight, None, stride, padding)  # noqa: E731
  dy = torch.from_numpy(rng.standard_normal(tuple(forward().shape), np.float32))

  def backward(mask):
    return lambda: torch.ops.aten.convolution_backward(
        dy, x, weight, None, [stride] * 2, [padding] * 2, [1, 1], transposed,
        [output_padding] * 2, 1, mask)
  return {'forward': forward, 'input grad': backward([True, False, False]),
          'weight grad': backward([False, True, False])}


def elementwise_passes(batch: int, rng: np.random.Generator):
  """BatchNorm (training: batch statistics) and LeakyReLU on G's first
  convolution's output [B, 7, 7, 128], forward and backward, both sides."""
  shape = (batch, 7, 7, 128)
  x = jnp.asarray(rng.standard_normal(shape, np.float32))
  dy = jnp.asarray(rng.standard_normal(shape, np.float32))
  gamma, beta = jnp.ones(128), jnp.zeros(128)

  def bn_lrelu(x, gamma, beta):
    mean = x.mean((0, 1, 2))
    var = jnp.mean(jnp.square(x - mean), (0, 1, 2))
    return nn.leaky_relu((x - mean) * jax.lax.rsqrt(var + 1e-3) * gamma + beta, SLOPE)

  jax_side = {
      'BN+LReLU forward': (jax.jit(bn_lrelu), (x, gamma, beta)),
      'BN+LReLU backward': (jax.jit(lambda x, g, b, dy: jax.vjp(bn_lrelu, x, g, b)[1](dy)),
                            (x, gamma, beta, dy)),
  }
  tx = torch.from_numpy(np.asarray(x).transpose(0, 3, 1, 2).copy()).requires_grad_()
  tdy = torch.from_numpy(np.asarray(dy).transpose(0, 3, 1, 2).copy())
  tg, tb = torch.ones(128, requires_grad=True), torch.zeros(128, requires_grad=True)

  def torch_forward():
    with torch.no_grad():
      return F.leaky_relu(F.batch_norm(tx, None, None, tg, tb, True, 0.01, 1e-3), SLOPE)

  def torch_backward():
    with torch.enable_grad():
      y = F.leaky_relu(F.batch_norm(tx, None, None, tg, tb, True, 0.01, 1e-3), SLOPE)
      return torch.autograd.grad(y, (tx, tg, tb), tdy)
  return jax_side, {'BN+LReLU forward': torch_forward, 'BN+LReLU backward': torch_backward}


def adam_passes(sizes: dict[str, int], rng: np.random.Generator):
  """Adam's update (2e-4, β1 0.5) of a player's parameters, as one flat
  vector on each side (optax.adam jitted; torch.optim.Adam's default,
  foreach, step)."""
  jax_side, torch_side = {}, {}
  for player, size in sizes.items():
    params = jnp.asarray(rng.standard_normal(size, np.float32))
    grads = jnp.asarray(rng.standard_normal(size, np.float32))
    optimizer = optax.adam(2e-4, b1=0.5)
    state = optimizer.init(params)

    def update(params, state, grads, optimizer=optimizer):
      updates, state = optimizer.update(grads, state, params)
      return optax.apply_updates(params, updates), state
    jax_side[f'Adam {player}'] = (jax.jit(update), (params, state, grads))
    tparam = torch.nn.Parameter(torch.from_numpy(np.asarray(params).copy()))
    tparam.grad = torch.from_numpy(np.asarray(grads).copy())
    torch_side[f'Adam {player}'] = torch.optim.Adam([tparam], lr=2e-4, betas=(0.5, 0.999)).step
  return jax_side, torch_side


def time_calls(fn, calls: int, block) -> float:
  """ms per call of `calls` calls, after which `block` waits for the last."""
  start = time.perf_counter()
  for _ in range(calls):
    out = fn()
  block(out)
  return (time.perf_counter() - start) / calls * 1e3


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--batch', type=int, default=256)
  parser.add_argument('--rounds', type=int, default=7)
  parser.add_argument('--calls', type=int, default=5, help='calls per pass per round')
  args = parser.parse_args()
  rng = np.random.default_rng(0)
  torch.manual_seed(0)
  jax_side, torch_side, flops = {}, {}, {}
  for spec in conv_layers(args.batch):
    passes, kernel = jax_passes(spec, rng)
    for name, fn in torch_passes(spec, kernel, rng).items():
      key = f'{spec["name"]}: {name}'
      jax_side[key], torch_side[key] = passes[name], fn
      flops[key] = nominal_flops(spec, kernel)
  for extra in (elementwise_passes(args.batch, rng),
                adam_passes({'G': 2_305_472, 'D': 212_865}, rng)):  # the tutorial's counts
    jax_side.update(extra[0])
    torch_side.update(extra[1])

  def jax_call(key):
    fn, fn_args = jax_side[key]
    return lambda: fn(*fn_args)

  jax_block = jax.block_until_ready
  torch_block = lambda out: out  # noqa: E731 (eager: done when it returns)
  times = {key: ([], []) for key in jax_side}
  with torch.no_grad():
    for key in jax_side:  # compile and warm up
      time_calls(jax_call(key), 2, jax_block)
      time_calls(torch_side[key], 2, torch_block)
    for _ in range(args.rounds):
      for key in jax_side:
        times[key][0].append(time_calls(jax_call(key), args.calls, jax_block))
        times[key][1].append(time_calls(torch_side[key], args.calls, torch_block))

  rows = {}
  print(f'batch {args.batch}, {args.rounds} rounds x {args.calls} calls;'
        f' jax {jax.__version__} on {jax.devices()[0].platform},'
        f' torch {torch.__version__} with {torch.get_num_threads()} threads\n')
  print('| layer: pass | gan_jax ms | PyTorch ms | torch / gan_jax | gan_jax GFLOP/s | PyTorch GFLOP/s |')
  print('| --- | --- | --- | --- | --- | --- |')
  for key, (jax_ms, torch_ms) in times.items():
    j, t = statistics.median(jax_ms), statistics.median(torch_ms)
    rows[key] = {'gan_jax_ms': round(j, 3), 'torch_ms': round(t, 3), 'ratio': round(t / j, 3)}
    rates = ['', '']
    if key in flops:
      rates = [f'{flops[key] / ms / 1e6:.0f}' for ms in (j, t)]
      rows[key]['gan_jax_gflops'], rows[key]['torch_gflops'] = (float(r) for r in rates)
    print(f'| {key} | {j:.2f} | {t:.2f} | {t / j:.2f}x | {rates[0]} | {rates[1]} |')
  print(json.dumps(rows))


if __name__ == '__main__':
  main()
