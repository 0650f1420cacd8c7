"""gan_jax.dynamics: the Dirac-GAN against its closed forms, the Arnoldi
eigenvalues against known spectra, and a trained run's game Jacobian; the
training dynamics every step logs, and the warnings drawn from them."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_jax import dynamics
from gan_jax import losses
from gan_jax import monitor
from gan_jax.errors import UserError
from tests.helpers import TINY_TOY
from tests.helpers import assert_one_line_error
from tests.helpers import read_json
from tests.helpers import run

PENALTIES = [{}, {'r1_weight': 0.75, 'r2_weight': 0.25}, {'gp_weight': 10.0}]


def closed_form(name: str, weights: dict) -> np.ndarray:
  """Mescheder et al. 2018's Jacobian of the Dirac-GAN at its equilibrium,
  from the loss's derivatives in the fake logit at 0: D's logit on the real
  point 0 is 0 for every ψ, so only d' = ∂L_D/∂f and g' = ∂L_G/∂f count, and
  R1, R2 ((γ/2)ψ²) add their weights to D's curvature. The gradient penalty
  has no derivative at ψ = 0 (taken as 0)."""
  loss = losses.LOSSES[name]
  zero = jnp.zeros(1)
  d_prime = float(jax.grad(lambda f: loss.d_loss(zero, f))(zero)[0])
  g_prime = float(jax.grad(lambda f: loss.g_loss(zero, f))(zero)[0])
  gamma = weights.get('r1_weight', 0.0) + weights.get('r2_weight', 0.0)
  return np.array([[0.0, -g_prime], [-d_prime, -gamma]])


def eigenvalues(matrix: np.ndarray) -> list[list[float]]:
  return sorted([[v.real, v.imag] for v in np.linalg.eigvals(matrix)])


@pytest.mark.parametrize('name', list(losses.LOSSES))
@pytest.mark.parametrize('weights', PENALTIES)
def test_the_dirac_gan_matches_its_closed_form(name, weights):
  """The field's Jacobian and the eigenvalues of one step of gradient descent,
  simultaneous (I + hJ) and alternating (D first, then G against the new D)."""
  h = 0.1
  jacobian = closed_form(name, weights)
  (_, b), (c, minus_gamma) = jacobian
  alternating = np.array([[1 + h * h * b * c, h * b * (1 + h * minus_gamma)],
                          [h * c, 1 + h * minus_gamma]])
  for optimizer, update in (('simultaneous', np.eye(2) + h * jacobian),
                            ('alternating', alternating)):
    result = dynamics.analyse(dynamics.DiracGAN(name, **weights), h, optimizer)
    np.testing.assert_allclose(result['jacobian'], jacobian, atol=1e-6)
    # A double eigenvalue moves by ~sqrt(float32's 1e-7): the characteristic
    # polynomial (trace, determinant) is the well-conditioned check.
    got = np.array([complex(*v) for v in result['update_eigenvalues']])
    np.testing.assert_allclose([got.sum().real, got.prod().real],
                               [np.trace(update), np.linalg.det(update)], atol=1e-6)
    np.testing.assert_allclose(result['eigenvalues'], eigenvalues(jacobian), atol=1e-3)
    np.testing.assert_allclose(result['update_eigenvalues'], eigenvalues(update),
                               atol=1e-3)
    radius = max(abs(np.linalg.eigvals(update)))
    assert result['spectral_radius'] == pytest.approx(radius, abs=1e-3)
    assert result['converges_locally'] == (radius < 1 - dynamics.TOLERANCE)


def test_r1_makes_the_minimax_game_converge_and_its_absence_makes_it_circle():
  """Mescheder et al. 2018: without a penalty the eigenvalues are ±i/2 and
  simultaneous gradient descent spirals out; with R1 (γ = 1) both are −1/2
  and the iterates go to the equilibrium."""
  plain = dynamics.analyse(dynamics.DiracGAN('vanilla'), 0.1)
  np.testing.assert_allclose(plain['eigenvalues'], [[0, -0.5], [0, 0.5]], atol=1e-6)
  assert not plain['converges_locally'] and plain['spectral_radius'] > 1
  r1 = dynamics.analyse(dynamics.DiracGAN('vanilla', r1_weight=1.0), 0.1)
  np.testing.assert_allclose(r1['eigenvalues'], [[-0.5, 0], [-0.5, 0]], atol=1e-3)
  assert r1['converges_locally']
  start = (1.0, 1.0)
  circling = dynamics.trajectory(dynamics.DiracGAN('vanilla'), start, 0.1,
                                 'simultaneous', 400)
  settling = dynamics.trajectory(dynamics.DiracGAN('vanilla', r1_weight=1.0),
                                 start, 0.1, 'simultaneous', 400)
  assert np.linalg.norm(circling[-1]) > np.linalg.norm(start)
  assert np.linalg.norm(settling[-1]) < 1e-3
  theta, psi, v_theta, v_psi = dynamics.field_grid(dynamics.DiracGAN('wgan_gp'),
                                                   num=5)
  np.testing.assert_allclose(v_theta, psi, atol=1e-6)  # θ' = ψ, ψ' = −θ
  np.testing.assert_allclose(v_psi, -theta, atol=1e-6)


def test_the_dirac_command_prints_one_json_line_and_refuses_bad_input():
  proc = run('gan_jax.dynamics', 'dirac', '--loss=hinge', '--r1_weight=2',
             '--optimizer=alternating', '--lr=0.05')
  assert proc.returncode == 0, proc.stderr[-2000:]
  result = json.loads(proc.stdout)
  assert (result['loss'], result['r1_weight'], result['optimizer']) == (
      'hinge', 2.0, 'alternating')
  assert result['converges_locally'] and len(result['update_eigenvalues']) == 2
  assert_one_line_error(run('gan_jax.dynamics', 'dirac', '--optimizer=adam'),
                        "unknown --optimizer='adam'; valid: simultaneous, alternating")
  with pytest.raises(UserError, match="unknown loss='nope'; valid: vanilla,"):
    dynamics.analyse(dynamics.DiracGAN('nope'))
  with pytest.raises(UserError, match='--lr=0.0 is invalid; it must be > 0'):
    dynamics.analyse(dynamics.DiracGAN('vanilla'), lr=0.0)


def test_arnoldi_finds_the_spectra_of_a_bilinear_and_a_quadratic_game():
  """A bilinear game min_x max_y xᵀAy: its field (−Ay, Aᵀx) has the
  eigenvalues ±iσ(A), pure rotation; a quadratic potential game −Hx those
  of −H, no rotation."""
  rng = np.random.default_rng(0)
  a = rng.normal(size=(30, 30))
  bilinear = lambda v: np.concatenate([-a @ v[30:], a.T @ v[:30]])  # noqa: E731
  found = dynamics.top_eigenvalues(bilinear, 60, top_k=4)
  sigma = np.linalg.svd(a, compute_uv=False)
  np.testing.assert_allclose(np.abs(found), np.repeat(sigma[:2], 2), rtol=1e-6)
  np.testing.assert_allclose(found.real, 0, atol=1e-6)
  imaginary = dynamics.top_eigenvalues(bilinear, 60, top_k=2, which='imaginary')
  np.testing.assert_allclose(np.abs(imaginary.imag), sigma[0], rtol=1e-6)
  h = a @ a.T + np.eye(30)
  found = dynamics.top_eigenvalues(lambda v: -h @ v, 30, top_k=3)
  np.testing.assert_allclose(found, -np.linalg.eigvalsh(h)[::-1][:3], rtol=1e-6)


def test_a_trained_run_logs_its_dynamics_and_its_spectrum_is_its_game_jacobians(
    tmp_path):
  """Every step logs both players' gradient norms and update ratios, D's mean
  logits and their gap, r_t (results.json, the log line). Of the run's
  checkpoint, the spectrum command's eigenvalues are those of the game
  Jacobian formed whole from the same Jacobian-vector products."""
  workdir = str(tmp_path / 'run')
  tiny = ['--config=experiments/ring8.py', *TINY_TOY, '--config.model.width=6',
          '--config.model.depth=1', '--config.eval.evaluators=',
          '--config.loss.r1_weight=1']
  proc = run('gan_jax.main', *tiny, f'--workdir={workdir}')
  assert proc.returncode == 0, proc.stderr[-3000:]
  results = read_json(os.path.join(workdir, 'results.json'))
  figures = results['losses']
  for name in ('g_grad_norm', 'd_grad_norm', 'g_update_ratio', 'd_update_ratio'):
    assert figures[name] > 0, name
  assert figures['d_gap'] == pytest.approx(figures['d_real'] - figures['d_fake'],
                                           abs=1e-5)
  assert -1 <= figures['r_t'] <= 1 and results['warnings'] == []
  assert 'g_grad_norm' in proc.stderr and 'r_t' in proc.stderr

  proc = run('gan_jax.dynamics', 'spectrum', f'--workdir={workdir}', '--top_k=4')
  assert proc.returncode == 0, proc.stderr[-3000:]
  result = json.loads(proc.stdout)
  assert result['step'] == 4 and len(result['top_modulus']) == 4
  assert read_json(os.path.join(workdir, 'dynamics', 'spectrum_step4_member0.json')) == result
  game = dynamics.run_game(workdir)
  dense = np.stack([game.matvec(e) for e in np.eye(game.dim)], axis=1)
  exact = sorted(np.linalg.eigvals(dense), key=abs, reverse=True)[:4]
  np.testing.assert_allclose(sorted(np.abs([complex(*v) for v in result['top_modulus']])),
                             sorted(np.abs(exact)), rtol=1e-3)
  with pytest.raises(UserError, match='--step=3 has no checkpoint .*; valid: 2, 4'):
    dynamics.run_game(workdir, step=3)


def test_warnings_say_when_a_run_diverges_or_d_wins():
  """Once per member and kind, at the step it happens."""
  watch = monitor.Monitor([0, 1])
  calm = {'g_grad_norm': 1.0, 'd_grad_norm': 2.0, 'd_gap': 0.5, 'r_t': 0.2,
          'd_fake': 0.1}
  for step in range(1, 6):
    watch.check(step * 10, [{'seed': 0, **calm}, {'seed': 1, **calm}])
  assert watch.warnings == []
  wild = {**calm, 'd_grad_norm': 500.0, 'd_gap': 12.0}
  watch.check(60, [{'seed': 0, **calm}, {'seed': 1, **wild}])
  watch.check(70, [{'seed': 0, **calm}, {'seed': 1, **wild}])
  assert [(w['step'], w['seed'], w['kind']) for w in watch.warnings] == [
      (60, 1, 'd_grad_norm'), (60, 1, 'gap')]
  # Every logit above the boundary, generated ones too: D separates nothing.
  for step in range(80, 130, 10):
    watch.check(step, [{'seed': 0, **calm, 'r_t': 1.0}, {'seed': 1, **calm}])
  assert len(watch.warnings) == 2
  # Real ones above it, generated ones below on average: D has won.
  for step in range(130, 180, 10):
    watch.check(step, [{'seed': 0, **calm, 'r_t': 1.0, 'd_fake': -0.1},
                       {'seed': 1, **calm}])
  assert watch.warnings[-1] == {'step': 170, 'seed': 0, 'kind': 'd_won', 'value': 1.0}
  # Least squares' boundary is 0.5 (losses.Loss.real_above).
  lsgan = monitor.Monitor([0], real_above=0.5)
  for step in range(10, 60, 10):
    lsgan.check(step, [{'seed': 0, **calm, 'r_t': 1.0, 'd_fake': 0.3}])
  assert [w['kind'] for w in lsgan.warnings] == ['d_won']
  critic = monitor.Monitor([0], real_above=None)
  for step in range(10, 60, 10):
    critic.check(step, [{'seed': 0, **calm, 'r_t': 1.0, 'd_fake': -5.0}])
  assert critic.warnings == []
