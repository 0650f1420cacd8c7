"""Convergence you can see: the Dirac-GAN and the spectra of trained games.

  python -m gan_jax.dynamics dirac --loss=NAME [--r1_weight=G] [--r2_weight=G]
      [--gp_weight=L] [--lr=H] [--optimizer=simultaneous|alternating]
  python -m gan_jax.dynamics spectrum --workdir=RUN [--step=N] [--top_k=8] [--member=0]

**The Dirac-GAN** (Mescheder et al. 2018, "Which Training Methods for GANs do
actually Converge?", §2-3): the real data are a point mass at 0, G a point
mass at θ, D(x) = ψ·x. Built from the project's own registered losses and
penalties (not formulas typed again), its gradient vector field is
v(θ, ψ) = (−∂L_G/∂θ, −∂L_D/∂ψ), with the equilibrium θ = ψ = 0. `dirac`
prints the eigenvalues of v's Jacobian there and of one step of gradient
descent with step size h, simultaneous (both players from the same point)
or alternating (D first, then G against the new D, as gan_jax's step
does), and whether the iteration converges locally: every update
eigenvalue inside the unit circle. The losses see the logits of D on real
data, D(0) = 0 for every ψ, so near the equilibrium only their derivatives
in the fake logit f = ψθ count: with d' = ∂L_D/∂f and g' = ∂L_G/∂f at 0, and
R1 and R2 (each (γ/2)ψ² here) adding γ1 + γ2 to D's curvature,

  J = [[0, −g'], [−d', −(γ1 + γ2)]],   λ = (−γ ± sqrt(γ² + 4 g' d')) / 2,

which the tests check for every loss. Without R1/R2 the eigenvalues are
purely imaginary (g'd' < 0) and no step size converges; with them they
move into the left half-plane (Mescheder et al.'s Theorem 4.1). WGAN-GP's
penalty λ(‖∇D‖ − 1)² is not differentiable at ψ = 0; its gradient there is
taken as 0 (optax.safe_norm, as in training), so it adds nothing to J.

**Spectra of trained games** (Berard et al. 2020, "A Closer Look at the
Optimization Landscapes of GANs"): the Jacobian of a run's game vector
field at a checkpoint, on a fixed batch, is too large to form, but
Jacobian-vector products are cheap; ARPACK's Arnoldi iteration
(scipy.sparse.linalg.eigs) finds its eigenvalues of largest modulus and the
most imaginary ones. Large imaginary parts are rotation: the players
circling instead of settling.
"""

from collections.abc import Callable
import dataclasses
import functools
import json
import os

from absl import app
from absl import flags
from absl import logging
import jax
from jax.flatten_util import ravel_pytree
import jax.numpy as jnp
from jax.sharding import PartitionSpec
import numpy as np

from gan_jax import checkpoints
from gan_jax import configs
from gan_jax import data
from gan_jax import files
from gan_jax import gan as gan_lib
from gan_jax import losses
from gan_jax import parallel
from gan_jax import registry
from gan_jax import runs
from gan_jax import step as step_lib
from gan_jax.errors import UserError

Array = jax.Array
OPTIMIZERS = ('simultaneous', 'alternating')
# A spectral radius within this of 1 counts as 1 (not converging): the
# Jacobian is computed in float32.
TOLERANCE = 1e-6
WHICH = {'modulus': 'LM', 'imaginary': 'LI'}  # ARPACK's names


# ------------------------------------------------------------------ Dirac-GAN


@dataclasses.dataclass(frozen=True)
class DiracGAN:
  """The Dirac-GAN of a registered loss with penalties on D: R1, R2 and
  WGAN-GP's gradient penalty, each with its weight (0: off)."""

  loss: str
  r1_weight: float = 0.0
  r2_weight: float = 0.0
  gp_weight: float = 0.0

  def losses(self, theta: Array, psi: Array) -> tuple[Array, Array]:
    """(L_D, L_G) at G's point mass `theta` and D's slope `psi` (scalars)."""
    loss = registry.lookup(losses.LOSSES, 'loss', self.loss)
    real, fake = jnp.zeros((1, 1)), jnp.reshape(theta, (1, 1))
    critic = lambda x: psi * x[:, 0]  # noqa: E731 (D(x) = psi x, per example)
    real_logits, fake_logits = critic(real), critic(fake)
    d_loss = loss.d_loss(real_logits, fake_logits)
    keys = jax.random.split(jax.random.key(0), 1)
    for name, weight in (('r1', self.r1_weight), ('r2', self.r2_weight),
                         ('gradient_penalty', self.gp_weight)):
      if weight:
        d_loss = d_loss + weight * losses.PENALTIES[name].fn(critic, real, fake,
                                                             keys)
    return d_loss, loss.g_loss(real_logits, fake_logits)

  def field(self, point: Array) -> Array:
    """v(θ, ψ) = (−∂L_G/∂θ, −∂L_D/∂ψ) at point = [θ, ψ]."""
    theta, psi = point[0], point[1]
    g_grad = jax.grad(lambda t: self.losses(t, psi)[1])(theta)
    d_grad = jax.grad(lambda p: self.losses(theta, p)[0])(psi)
    return -jnp.stack([g_grad, d_grad])

  def step(self, point: Array, lr: float, optimizer: str) -> Array:
    """One step of gradient descent with step size `lr`: both players from
    `point` (simultaneous), or D first and G against the new D
    (alternating, as gan_jax.step trains)."""
    if optimizer == 'simultaneous':
      return point + lr * self.field(point)
    psi = point[1] + lr * self.field(point)[1]
    moved = jnp.stack([point[0], psi])
    return jnp.stack([point[0] + lr * self.field(moved)[0], psi])


def _pairs(values: np.ndarray) -> list[list[float]]:
  """Complex eigenvalues as [re, im], sorted by real part then imaginary."""
  ordered = sorted(np.asarray(values, np.complex128), key=lambda v: (v.real, v.imag))
  return [[float(v.real) + 0.0, float(v.imag) + 0.0] for v in ordered]  # no -0


def analyse(game: DiracGAN, lr: float = 0.1,
            optimizer: str = 'simultaneous') -> dict:
  """The Jacobian of the vector field at the equilibrium, its eigenvalues, the
  eigenvalues of one step of `optimizer` with step size `lr`, their largest
  modulus and whether the iteration converges locally (< 1 − TOLERANCE)."""
  registry.check_value('--optimizer', optimizer, OPTIMIZERS)
  registry.check_value('--lr', lr, registry.POSITIVE)
  with jax.default_device(jax.devices('cpu')[0]):
    origin = jnp.zeros(2, jnp.float32)
    jacobian = np.asarray(jax.jacfwd(game.field)(origin), np.float64)
    update = np.asarray(jax.jacfwd(functools.partial(
        game.step, lr=lr, optimizer=optimizer))(origin), np.float64)
  radius = float(np.max(np.abs(np.linalg.eigvals(update))))
  return {'loss': game.loss, 'r1_weight': game.r1_weight,
          'r2_weight': game.r2_weight, 'gp_weight': game.gp_weight,
          'lr': lr, 'optimizer': optimizer,
          'jacobian': jacobian.tolist(),
          'eigenvalues': _pairs(np.linalg.eigvals(jacobian)),
          'update_eigenvalues': _pairs(np.linalg.eigvals(update)),
          'spectral_radius': radius, 'converges_locally': radius < 1 - TOLERANCE}


def trajectory(game: DiracGAN, start: tuple[float, float], lr: float,
               optimizer: str, steps: int) -> np.ndarray:
  """[steps + 1, 2]: (θ, ψ) along `steps` steps of `optimizer` from `start`."""
  step = jax.jit(functools.partial(game.step, lr=lr, optimizer=optimizer))
  points = [jnp.asarray(start, jnp.float32)]
  for _ in range(steps):
    points.append(step(points[-1]))
  return np.asarray(jnp.stack(points))


def field_grid(game: DiracGAN, extent: float = 1.5, num: int = 21
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
  """(θ, ψ, v_θ, v_ψ) on a num x num grid over [−extent, extent]²: the
  vector field to draw."""
  axis = np.linspace(-extent, extent, num, dtype=np.float32)
  theta, psi = np.meshgrid(axis, axis)
  points = jnp.stack([theta.ravel(), psi.ravel()], axis=1)
  v = np.asarray(jax.jit(jax.vmap(game.field))(points))
  return theta, psi, v[:, 0].reshape(theta.shape), v[:, 1].reshape(theta.shape)


PENALTY_COLUMNS = {'none': {}, 'R1': {'r1_weight': 1.0}, 'R2': {'r2_weight': 1.0},
                   'GP': {'gp_weight': 1.0}}


def dirac_table(lr: float = 0.1) -> str:
  """Markdown: every loss x {none, R1, R2, GP} (weight 1) x {simultaneous,
  alternating}: the field's eigenvalues and each optimiser's spectral
  radius (converges locally when < 1)."""
  header = ['loss', 'penalty', 'eigenvalues of J',
            *(f'{o} ρ (h = {lr:g})' for o in OPTIMIZERS)]
  lines = ['| ' + ' | '.join(header) + ' |', '|' + ' --- |' * len(header)]
  for name in losses.LOSSES:
    for column, weights in PENALTY_COLUMNS.items():
      game = DiracGAN(name, **weights)
      cells = [name, column]
      for optimizer in OPTIMIZERS:
        result = analyse(game, lr, optimizer)
        if optimizer == OPTIMIZERS[0]:
          cells.append(', '.join(_complex(re, im) for re, im in result['eigenvalues']))
        mark = 'converges' if result['converges_locally'] else 'does not'
        cells.append(f'{result["spectral_radius"]:.4f} ({mark})')
      lines.append('| ' + ' | '.join(cells) + ' |')
  return '\n'.join(lines) + '\n'


def _complex(re: float, im: float) -> str:
  re, im = round(re, 4) + 0.0, round(im, 4) + 0.0  # no -0
  if not im:
    return f'{re:g}'
  return f'{re:g} {"+" if im > 0 else "−"} {abs(im):g}i'


# ------------------------------------------------------------------ spectra


def top_eigenvalues(matvec: Callable[[np.ndarray], np.ndarray], dim: int,
                    top_k: int = 8, which: str = 'modulus',
                    seed: int = 0) -> np.ndarray:
  """The `top_k` eigenvalues of the linear map `matvec` on R^dim (a
  Jacobian-vector product) of largest modulus ('modulus') or imaginary part
  ('imaginary'), by ARPACK's implicitly restarted Arnoldi iteration; sorted
  by that criterion, largest first. Small maps (dim <= top_k + 2) are
  formed and solved densely."""
  registry.check_value('which', which, tuple(WHICH))
  if dim <= top_k + 2:
    dense = np.stack([matvec(e) for e in np.eye(dim)], axis=1)
    values = np.linalg.eigvals(dense)
  else:
    from scipy.sparse import linalg as sparse_linalg  # noqa: PLC0415
    operator = sparse_linalg.LinearOperator(
        (dim, dim), matvec=lambda v: np.asarray(matvec(np.asarray(v, np.float64)),
                                                np.float64),
        dtype=np.float64)
    start = np.random.default_rng(seed).normal(size=dim)
    values = sparse_linalg.eigs(operator, k=top_k, which=WHICH[which], v0=start,
                                return_eigenvectors=False,
                                ncv=min(dim, max(2 * top_k + 1, 20)))
  key = np.abs if which == 'modulus' else lambda v: np.abs(np.imag(v))
  return np.asarray(sorted(values, key=key, reverse=True)[:top_k])


@dataclasses.dataclass(frozen=True)
class Game:
  """A run's game at one checkpoint, flattened: `matvec(v)` is the game
  Jacobian (of step.game_field, on one fixed batch) times v, in R^dim."""

  matvec: Callable[[np.ndarray], np.ndarray]
  dim: int
  step: int
  batch_size: int


def run_game(workdir: str, step: int | None = None, member: int = 0) -> Game:
  """The game of member `member` of the run in `workdir` at checkpoint
  `step` (default: the latest), on one device.

  Raises:
    UserError: no such run, checkpoint or member.
  """
  config = runs.load_run_config(workdir)
  source = data.load(config.data, pipeline='device')
  gan = gan_lib.build_gan(config, source.example_shape, source.sample_one)
  ckpts = checkpoints.Checkpoints(os.path.join(workdir, 'checkpoints'))
  steps = ckpts.steps()
  if not steps:
    raise UserError(f'--workdir={workdir} has no checkpoint yet; train first')
  step = steps[0] if step is None else step
  if step not in steps:
    raise UserError(f'--step={step} has no checkpoint in {ckpts.directory};'
                    f' valid: {", ".join(map(str, sorted(steps)))}')
  seeds = configs.seeds(config)
  if not 0 <= member < len(seeds):
    raise UserError(f'--member={member} is out of range: the run in {workdir}'
                    f' has num_seeds={len(seeds)}; valid: 0 to {len(seeds) - 1}')
  mesh = parallel.make_mesh(jax.devices()[:1])
  state = gan_lib.member(runs.restore(gan, ckpts, mesh, len(seeds), step), member)
  ckpts.close()
  point, unravel = ravel_pytree((state.g.params, state.d.params))

  def jvp(one, arrays, vector):
    field = step_lib.game_field(gan, one, arrays,
                                jax.random.fold_in(one.key, one.step))
    flat = lambda x: ravel_pytree(field(*unravel(x)))[0]  # noqa: E731
    return jax.jvp(flat, (point,), (vector,))[1]

  spec = PartitionSpec()
  mapped = jax.jit(jax.shard_map(jvp, mesh=mesh, in_specs=(spec, spec, spec),
                                 out_specs=spec, check_vma=False))
  arrays = parallel.replicate(source.arrays, mesh)
  replicated = parallel.replicated(mesh)
  return Game(
      matvec=lambda v: np.asarray(mapped(state, arrays, jax.device_put(
          np.asarray(v, np.float32), replicated)), np.float64),
      dim=int(point.size), step=step, batch_size=gan.batch_size)


def spectrum(game: Game, top_k: int = 8) -> dict:
  """The game Jacobian's `top_k` eigenvalues of largest modulus and the
  `top_k` most imaginary ones, as [re, im] pairs."""
  top_k = min(top_k, max(1, game.dim - 2))
  return {
      'step': game.step, 'dim': game.dim, 'batch_size': game.batch_size,
      'top_modulus': [[float(v.real), float(v.imag)] for v in top_eigenvalues(
          game.matvec, game.dim, top_k, 'modulus')],
      'top_imaginary': [[float(v.real), float(v.imag)] for v in top_eigenvalues(
          game.matvec, game.dim, top_k, 'imaginary')],
  }


# ------------------------------------------------------------------ command


def main(argv: list[str]) -> None:
  if len(argv) != 2 or argv[1] not in ('dirac', 'spectrum'):
    raise app.UsageError('usage: python -m gan_jax.dynamics dirac --loss=NAME'
                         ' ... | spectrum --workdir=RUN ...')
  f = flags.FLAGS
  if argv[1] == 'dirac':
    registry.lookup(losses.LOSSES, '--loss', f.loss)
    for name in ('r1_weight', 'r2_weight', 'gp_weight'):
      registry.check_value(f'--{name}', f[name].value, registry.NON_NEGATIVE)
    result = analyse(DiracGAN(f.loss, f.r1_weight, f.r2_weight, f.gp_weight),
                     f.lr, f.optimizer)
    print(json.dumps(result))
    return
  if not f.workdir:
    raise app.UsageError('spectrum needs --workdir=RUN')
  registry.check_value('--top_k', f.top_k, registry.POSITIVE)
  game = run_game(f.workdir, f.step, f.member)
  logging.info('game Jacobian of %s at step %d: %d parameters, batch %d;'
               ' Arnoldi iteration for %d eigenvalues', f.workdir, game.step,
               game.dim, game.batch_size, f.top_k)
  result = {'workdir': f.workdir, 'member': f.member, **spectrum(game, f.top_k)}
  print(json.dumps(result))
  path = os.path.join(f.workdir, 'dynamics',
                      f'spectrum_step{game.step}_member{f.member}.json')
  try:
    files.makedirs(os.path.dirname(path))
    files.write_json(path, result)
  except OSError as e:
    logging.warning('cannot save the spectrum in %s (%s); it is printed above',
                    path, e.strerror)


def _define_flags() -> None:
  """The command's flags, defined only when it runs (another command's
  --workdir may share a process with this module)."""
  flags.DEFINE_string('loss', 'non_saturating', 'dirac: the registered loss.')
  flags.DEFINE_float('r1_weight', 0.0, 'dirac: R1\'s weight γ.')
  flags.DEFINE_float('r2_weight', 0.0, 'dirac: R2\'s weight γ.')
  flags.DEFINE_float('gp_weight', 0.0, 'dirac: the gradient penalty\'s λ.')
  flags.DEFINE_float('lr', 0.1, 'dirac: the step size h of gradient descent.')
  flags.DEFINE_string('optimizer', 'simultaneous',
                      f'dirac: {" or ".join(OPTIMIZERS)} updates.')
  flags.DEFINE_string('workdir', None, 'spectrum: a run directory of gan_jax.main.')
  flags.DEFINE_integer('step', None, 'spectrum: the checkpoint (default: the latest).')
  flags.DEFINE_integer('top_k', 8, 'spectrum: how many eigenvalues of each kind.')
  flags.DEFINE_integer('member', 0, 'spectrum: the member of a run of several seeds.')


if __name__ == '__main__':
  from gan_jax import cli  # noqa: PLC0415
  _define_flags()
  cli.run(main)
