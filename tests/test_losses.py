"""Loss values against NumPy formulas, including extreme logits."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_jax import losses

LOGITS = np.array([-1e4, -50.0, -3.0, -0.5, 0.0, 0.7, 4.0, 60.0, 1e4], np.float32)


def np_log_sigmoid(x):
  return -np.logaddexp(0.0, -np.asarray(x, np.float64))


def np_log_one_minus_sigmoid(x):
  return -np.logaddexp(0.0, np.asarray(x, np.float64))


def test_minimax_discriminator_loss_matches_numpy():
  real, fake = LOGITS, LOGITS[::-1] * 0.5
  want = -np.mean(np_log_sigmoid(real)) - np.mean(np_log_one_minus_sigmoid(fake))
  got = losses.minimax_discriminator_loss(jnp.asarray(real), jnp.asarray(fake))
  np.testing.assert_allclose(got, want, rtol=1e-6)
  assert np.isfinite(got)


def test_minimax_generator_loss_is_log_one_minus_d_and_saturates():
  want = np.mean(np_log_one_minus_sigmoid(LOGITS))
  got = losses.minimax_generator_loss(None, jnp.asarray(LOGITS))
  np.testing.assert_allclose(got, want, rtol=1e-6)
  # Saturation: when D rejects the fakes confidently the gradient vanishes.
  grad = jax.grad(losses.minimax_generator_loss, 1)(None, jnp.array([-1e4, -20.0]))
  np.testing.assert_allclose(grad, [0.0, -np.exp(-20.0) / 2], atol=1e-12)


def test_non_saturating_generator_loss_matches_numpy_and_does_not_saturate():
  want = -np.mean(np_log_sigmoid(LOGITS))
  got = losses.non_saturating_generator_loss(None, jnp.asarray(LOGITS))
  np.testing.assert_allclose(got, want, rtol=1e-6)
  grad = jax.grad(losses.non_saturating_generator_loss, 1)(
      None, jnp.array([-1e4, -20.0]))
  np.testing.assert_allclose(grad, [-0.5, -0.5], rtol=1e-6)


def test_wasserstein_losses():
  real, fake = jnp.array([1.0, 3.0]), jnp.array([-2.0, 0.0, 5.0])
  np.testing.assert_allclose(losses.wasserstein_critic_loss(real, fake), 1.0 - 2.0)
  np.testing.assert_allclose(losses.wasserstein_generator_loss(real, fake), -1.0)


@pytest.mark.parametrize('w', [[0.3, -0.4], [3.0, 4.0], [0.0, 0.0]])
def test_gradient_penalty_of_linear_critic_is_norm_minus_one_squared(w):
  w = jnp.array(w)
  rng = np.random.default_rng(0)
  real = jnp.asarray(rng.normal(size=(32, 2)), jnp.float32)
  fake = jnp.asarray(rng.normal(size=(32, 2)), jnp.float32)
  eps = jnp.asarray(rng.uniform(size=32), jnp.float32)
  critic = lambda x: x @ w  # noqa: E731
  got = losses.gradient_penalty(critic, real, fake, eps)
  np.testing.assert_allclose(got, (np.linalg.norm(w) - 1.0) ** 2, rtol=1e-5)


def test_gradient_penalty_interpolates_per_example_on_images():
  # A quadratic critic: its input gradient is x_hat itself, so the penalty
  # checks where each example's interpolate lies.
  real = jnp.ones((2, 3, 3, 1))
  fake = jnp.zeros((2, 3, 3, 1))
  eps = jnp.array([0.25, 1.0])
  critic = lambda x: 0.5 * jnp.sum(x ** 2, axis=(1, 2, 3))  # grad = x_hat  # noqa: E731
  # x_hat_i = eps_i everywhere; ||x_hat_i|| = 3 eps_i.
  want = np.mean((3 * np.array([0.25, 1.0]) - 1.0) ** 2)
  np.testing.assert_allclose(losses.gradient_penalty(critic, real, fake, eps),
                             want, rtol=1e-6)


def test_gradient_penalty_gradient_is_finite_when_input_gradient_is_zero():
  def penalty(scale):
    return losses.gradient_penalty(lambda x: scale * jnp.sum(x, axis=1),
                                   jnp.ones((4, 2)), jnp.zeros((4, 2)),
                                   jnp.full((4,), 0.5))
  assert np.isfinite(jax.grad(penalty)(0.0))


def test_the_mission_variants_and_wgan_gps_penalty_and_critic_steps():
  assert losses.LOSSES['vanilla'].g_loss is losses.minimax_generator_loss
  assert losses.LOSSES['non_saturating'].g_loss is (
      losses.non_saturating_generator_loss)
  assert losses.LOSSES['wgan_gp'].d_steps == 5
  config = {'gp_weight': 10.0}
  assert [n for n, _, _ in losses.active_penalties('wgan_gp', config)] == [
      'gradient_penalty']
  assert losses.active_penalties('non_saturating', config) == ()


def test_r1_and_r2_of_a_linear_critic_are_half_its_squared_weight_norm():
  """D(x) = <w, x> + b has the input gradient w for every example, so
  (γ/2) E‖∇D‖² is γ/2 ‖w‖², on real data (R1) and on generated data (R2)."""
  rng = np.random.default_rng(0)
  w = jnp.asarray(rng.normal(size=(4, 4, 1)), jnp.float32)  # image-shaped
  critic = lambda x: jnp.sum(x * w, axis=(1, 2, 3)) + 0.5  # noqa: E731
  real, fake = (jnp.asarray(rng.normal(size=(6, 4, 4, 1)), jnp.float32)
                for _ in 'rf')
  keys = jax.random.split(jax.random.key(0), 6)
  want = 0.5 * float(np.sum(np.asarray(w) ** 2))
  for name in ('r1', 'r2'):
    np.testing.assert_allclose(losses.PENALTIES[name].fn(critic, real, fake, keys),
                               want, rtol=1e-6)


def test_r1_reads_the_real_batch_and_r2_the_generated_one():
  """A quadratic critic ½‖x‖² has the input gradient x: each penalty is half
  the mean squared norm of its own batch's examples."""
  critic = lambda x: 0.5 * jnp.sum(x ** 2, axis=-1)  # noqa: E731
  real, fake = jnp.array([[3.0, 4.0], [1.0, 0.0]]), jnp.array([[0.0, 2.0], [0.0, 0.0]])
  keys = jax.random.split(jax.random.key(0), 2)
  r1 = losses.PENALTIES['r1'].fn(critic, real, fake, keys)
  r2 = losses.PENALTIES['r2'].fn(critic, real, fake, keys)
  np.testing.assert_allclose([r1, r2], [0.5 * (25 + 1) / 2, 0.5 * 4 / 2], rtol=1e-6)


def test_r1_and_r2_apply_to_every_loss_when_weighted():
  config = {'gp_weight': 10.0, 'r1_weight': 0.0, 'r2_weight': 0.0}
  assert losses.active_penalties('hinge', config) == ()
  config['r1_weight'] = 10.0
  assert [(n, w) for n, _, w in losses.active_penalties('hinge', config)] == [('r1', 10.0)]
  config['r2_weight'] = 0.1
  assert [n for n, _, _ in losses.active_penalties('wgan_gp', config)] == [
      'gradient_penalty', 'r1', 'r2']


def test_generator_reads_real_only_where_its_loss_does():
  assert not any(losses.generator_reads_real(loss)
                 for loss in (losses.LOSSES['vanilla'], losses.LOSSES['wgan_gp']))
  reads = losses.Loss(losses.minimax_discriminator_loss,
                      lambda real, fake: jnp.mean(fake - jnp.mean(real)), 'test')
  assert losses.generator_reads_real(reads)


def test_hinge_losses_match_numpy_and_stop_at_the_margins():
  real, fake = LOGITS, LOGITS[::-1] * 0.5
  r, f = np.float64(real), np.float64(fake)
  want_d = np.mean(np.maximum(0.0, 1.0 - r)) + np.mean(np.maximum(0.0, 1.0 + f))
  hinge = losses.LOSSES['hinge']
  np.testing.assert_allclose(hinge.d_loss(real, fake), want_d, rtol=1e-6)
  # -E D(G(z)): the mean of +-1e4 logits cancels, to float32 round-off.
  np.testing.assert_allclose(hinge.g_loss(real, fake), -np.mean(f), atol=2e-3)
  # No gradient from examples beyond the margins (real >= 1, fake <= -1).
  d_real, d_fake = jax.grad(hinge.d_loss, argnums=(0, 1))(
      jnp.array([2.0, 0.5]), jnp.array([-2.0, 0.0]))
  np.testing.assert_allclose(d_real, [0.0, -0.5])
  np.testing.assert_allclose(d_fake, [0.0, 0.5])


def test_least_squares_losses_match_numpy():
  real, fake = LOGITS, LOGITS[::-1] * 0.5
  r, f = np.float64(real), np.float64(fake)
  lsgan = losses.LOSSES['least_squares']
  np.testing.assert_allclose(lsgan.d_loss(real, fake),
                             0.5 * np.mean((r - 1) ** 2) + 0.5 * np.mean(f ** 2),
                             rtol=1e-6)
  np.testing.assert_allclose(lsgan.g_loss(real, fake),
                             0.5 * np.mean((f - 1) ** 2), rtol=1e-6)
  # The gradient pulls D(x) to 1, D(G(z)) to 0, and G's D(G(z)) to 1.
  x = jnp.array([3.0, -1.0])
  np.testing.assert_allclose(jax.grad(lsgan.d_loss, argnums=(0, 1))(x, x),
                             [(x - 1) / 2, x / 2])
  np.testing.assert_allclose(jax.grad(lsgan.g_loss, argnums=1)(x, x), (x - 1) / 2)


def np_rasgan(real, fake):
  """RaSGAN's D loss in float64; G's is the same with the arguments swapped."""
  real, fake = np.float64(real), np.float64(fake)
  return (np.mean(np.logaddexp(0.0, -(real - np.mean(fake))))
          + np.mean(np.logaddexp(0.0, fake - np.mean(real))))


def test_relativistic_average_losses_match_numpy():
  real, fake = LOGITS, LOGITS[::-1] * 0.5 + 1.0
  rasgan = losses.LOSSES['relativistic']
  np.testing.assert_allclose(rasgan.d_loss(real, fake), np_rasgan(real, fake),
                             rtol=1e-5)
  np.testing.assert_allclose(rasgan.g_loss(real, fake), np_rasgan(fake, real),
                             rtol=1e-5)
  # G's loss reads the real logits, so the step computes them for it.
  assert losses.generator_reads_real(rasgan)


def test_relativistic_batch_means_are_the_batchs_not_its_parts():
  """The loss of a batch is not the mean of its halves' losses: the step must
  hand it the global batch's logits (the contract tests check 1 vs 4
  devices)."""
  real = jnp.array([3.0, 2.5, 3.5, 3.0, -1.0, -0.5, -1.5, -1.0])
  fake = -real
  d_loss = losses.LOSSES['relativistic'].d_loss
  halves = np.mean([d_loss(real[:4], fake[:4]), d_loss(real[4:], fake[4:])])
  np.testing.assert_allclose(d_loss(real, fake), np_rasgan(real, fake), rtol=1e-6)
  assert abs(float(d_loss(real, fake)) - halves) > 0.1


def test_relativistic_pairing_losses_match_numpy_per_pair():
  """RpGAN pairs the i-th real logit with the i-th fake one (not with a
  batch mean): permuting one side changes the loss."""
  real, fake = LOGITS, LOGITS[::-1] * 0.5 + 1.0
  rpgan = losses.LOSSES['rpgan']
  want_d = np.mean(np.logaddexp(0.0, -(np.float64(real) - np.float64(fake))))
  want_g = np.mean(np.logaddexp(0.0, -(np.float64(fake) - np.float64(real))))
  np.testing.assert_allclose(rpgan.d_loss(real, fake), want_d, rtol=1e-6)
  np.testing.assert_allclose(rpgan.g_loss(real, fake), want_g, rtol=1e-6)
  assert losses.generator_reads_real(rpgan)
  shuffled = jnp.roll(jnp.asarray(fake), 1)
  assert abs(float(rpgan.d_loss(real, shuffled)) - float(rpgan.d_loss(real, fake))) > 1
  # At D(x) = D(G(z)) both players' losses are log 2, and D's gradient pulls
  # the real logit up exactly as much as the fake one down.
  np.testing.assert_allclose(rpgan.d_loss(jnp.zeros(4), jnp.zeros(4)), np.log(2))
  g_real, g_fake = jax.grad(rpgan.d_loss, (0, 1))(jnp.zeros(4), jnp.zeros(4))
  np.testing.assert_allclose(g_real, -g_fake)
  np.testing.assert_allclose(g_real, -0.125)
