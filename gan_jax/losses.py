"""GAN loss variants: one small pure function per player and per variant.

All functions take discriminator *logits* (pre-sigmoid outputs, any shape) and
return a scalar: the mean over examples. Log-probabilities are computed with
`softplus`, never as `log(sigmoid(x))`, because

  log sigmoid(x)     = -softplus(-x)
  log(1 - sigmoid(x)) = -softplus(x)

are exact identities whose right-hand sides stay finite and accurate for any
finite logit, while `sigmoid` underflows to 0 (and `log` to -inf) for |x| > ~100.

Every variant is a `Loss` in the registry `LOSSES`, picked by
`config.loss.name`. Both players' losses see both logits,
`d_loss(real_logits, fake_logits)` and `g_loss(real_logits, fake_logits)`,
over the *global* batch (the training step gathers them from all devices), so
a batch mean inside a loss is the same on one device or many. The generator's
update computes D's logits on real data only when its loss reads them
(`generator_reads_real`). Penalties on D's input gradients are their own
registry, `PENALTIES`, each with its weight under `config.loss`.

Adding a loss is one entry in `LOSSES` (and its numeric test): it is then
validated, trained, swept and covered by the contract tests.
"""

from collections.abc import Callable
import dataclasses

import jax
import jax.numpy as jnp
import optax

Array = jax.Array


def minimax_discriminator_loss(real_logits: Array, fake_logits: Array) -> Array:
  """The discriminator's loss of the original GAN game.

  D maximises E[log D(x)] + E[log(1 - D(G(z)))], i.e. minimises
  E[softplus(-real_logits)] + E[softplus(fake_logits)].

  Args:
    real_logits: D's logits on real examples.
    fake_logits: D's logits on generated examples.

  Returns:
    The scalar loss (the binary cross-entropy of real=1, fake=0).

  References:
    Goodfellow et al., Generative Adversarial Nets, NeurIPS 2014, eq. (1).
  """
  return jnp.mean(jax.nn.softplus(-real_logits)) + jnp.mean(
      jax.nn.softplus(fake_logits))


def minimax_generator_loss(real_logits: Array | None, fake_logits: Array) -> Array:
  """The generator's saturating loss: E[log(1 - D(G(z)))], to be minimised.

  Its gradient vanishes when D confidently rejects the fakes, which is why
  `non_saturating_generator_loss` is used in practice; it is kept to study
  exactly that.

  Args:
    real_logits: unused.
    fake_logits: D's logits on generated examples.

  Returns:
    The scalar loss, E[-softplus(fake_logits)] (always <= 0).

  References:
    Goodfellow et al., Generative Adversarial Nets, NeurIPS 2014, eq. (1).
  """
  del real_logits
  return -jnp.mean(jax.nn.softplus(fake_logits))


def non_saturating_generator_loss(real_logits: Array | None,
                                  fake_logits: Array) -> Array:
  """The generator's non-saturating loss: E[-log D(G(z))], to be minimised.

  Args:
    real_logits: unused.
    fake_logits: D's logits on generated examples.

  Returns:
    The scalar loss, E[softplus(-fake_logits)] (always >= 0).

  References:
    Goodfellow et al., Generative Adversarial Nets, NeurIPS 2014, section 3.
  """
  del real_logits
  return jnp.mean(jax.nn.softplus(-fake_logits))


def wasserstein_critic_loss(real_scores: Array, fake_scores: Array) -> Array:
  """The critic's Wasserstein loss E[D(G(z))] - E[D(x)], without the penalty.

  Args:
    real_scores: the critic's outputs on real examples.
    fake_scores: the critic's outputs on generated examples.

  Returns:
    The scalar loss; its negation estimates the Wasserstein-1 distance.

  References:
    Arjovsky et al., Wasserstein GAN, ICML 2017;
    Gulrajani et al., Improved Training of Wasserstein GANs, NeurIPS 2017, eq. (3).
  """
  return jnp.mean(fake_scores) - jnp.mean(real_scores)


def wasserstein_generator_loss(real_scores: Array | None,
                               fake_scores: Array) -> Array:
  """The generator's Wasserstein loss -E[D(G(z))], to be minimised.

  Args:
    real_scores: unused.
    fake_scores: the critic's outputs on generated examples.

  Returns:
    The scalar loss.

  References:
    Gulrajani et al., Improved Training of Wasserstein GANs, NeurIPS 2017, Alg. 1.
  """
  del real_scores
  return -jnp.mean(fake_scores)


def hinge_discriminator_loss(real_logits: Array, fake_logits: Array) -> Array:
  """The hinge loss of D: E[relu(1 - D(x))] + E[relu(1 + D(G(z)))].

  D is pushed to logits >= 1 on real and <= -1 on generated examples, and
  gets no gradient from examples beyond those margins. Its generator loss is
  `wasserstein_generator_loss`, -E[D(G(z))].

  Args:
    real_logits: D's logits on real examples.
    fake_logits: D's logits on generated examples.

  Returns:
    The scalar loss (>= 0).

  References:
    Lim & Ye, Geometric GAN, arXiv:1705.02894, 2017;
    Miyato et al., Spectral Normalization for GANs, ICLR 2018, eq. (16).
  """
  return (jnp.mean(jax.nn.relu(1.0 - real_logits))
          + jnp.mean(jax.nn.relu(1.0 + fake_logits)))


def least_squares_discriminator_loss(real_logits: Array,
                                     fake_logits: Array) -> Array:
  """LSGAN's D loss with the 0-1 coding: 1/2 E[(D(x) - 1)^2] + 1/2 E[D(G(z))^2].

  Args:
    real_logits: D's outputs on real examples (no sigmoid).
    fake_logits: D's outputs on generated examples.

  Returns:
    The scalar loss (>= 0).

  References:
    Mao et al., Least Squares Generative Adversarial Networks, ICCV 2017,
    eq. (2) with a = 0, b = 1.
  """
  return (0.5 * jnp.mean(jnp.square(real_logits - 1.0))
          + 0.5 * jnp.mean(jnp.square(fake_logits)))


def least_squares_generator_loss(real_logits: Array | None,
                                 fake_logits: Array) -> Array:
  """LSGAN's G loss with the 0-1 coding: 1/2 E[(D(G(z)) - 1)^2].

  Args:
    real_logits: unused.
    fake_logits: D's outputs on generated examples.

  Returns:
    The scalar loss (>= 0).

  References:
    Mao et al., Least Squares Generative Adversarial Networks, ICCV 2017,
    eq. (2) with c = 1.
  """
  del real_logits
  return 0.5 * jnp.mean(jnp.square(fake_logits - 1.0))


def relativistic_average_discriminator_loss(real_logits: Array,
                                            fake_logits: Array) -> Array:
  """RaSGAN's D loss: how much more real the real examples look than the
  average fake, and the fakes than the average real.

  E_x[softplus(-(D(x) - E D(G(z))))] + E_z[softplus(D(G(z)) - E D(x))], the
  means inside taken over the global batch (the training step gathers the
  logits of every device).

  Args:
    real_logits: D's logits on real examples (the global batch).
    fake_logits: D's logits on generated examples (the global batch).

  Returns:
    The scalar loss.

  References:
    Jolicoeur-Martineau, The relativistic discriminator: a key element
    missing from standard GAN, ICLR 2019, eq. (13)-(14) (RaSGAN).
  """
  real_vs_fake = real_logits - jnp.mean(fake_logits)
  fake_vs_real = fake_logits - jnp.mean(real_logits)
  return (jnp.mean(jax.nn.softplus(-real_vs_fake))
          + jnp.mean(jax.nn.softplus(fake_vs_real)))


def relativistic_average_generator_loss(real_logits: Array,
                                        fake_logits: Array) -> Array:
  """RaSGAN's G loss: D's loss with real and fake swapped, so G also lowers
  how real the real data looks relative to its samples. G's gradient flows
  through the fake logits only.

  References:
    Jolicoeur-Martineau, ICLR 2019, eq. (15) (RaSGAN).
  """
  return relativistic_average_discriminator_loss(fake_logits, real_logits)


def relativistic_pairing_discriminator_loss(real_logits: Array,
                                            fake_logits: Array) -> Array:
  """RpGAN's D loss: E_i softplus(-(D(x_i) - D(G(z_i)))), each real example
  paired with one generated example, not with the batch mean.

  Pair i is the i-th real and the i-th generated example of the global
  batch (drawn independently, so the pairing is random). Unlike RaSGAN, its
  landscape has no local minima that drop modes (Sun et al. 2020), which is
  why R3GAN builds on it with R1 and R2 (Huang et al. 2024).

  Args:
    real_logits: D's logits on real examples [B].
    fake_logits: D's logits on generated examples [B].

  Returns:
    The scalar loss.

  References:
    Jolicoeur-Martineau, The relativistic discriminator, ICLR 2019, eq. (4)
    with f = softplus(-x) (RpGAN); Huang et al., The GAN is dead; long live
    the GAN! A Modern GAN Baseline, NeurIPS 2024, eq. (2).
  """
  return jnp.mean(jax.nn.softplus(-(real_logits - fake_logits)))


def relativistic_pairing_generator_loss(real_logits: Array,
                                        fake_logits: Array) -> Array:
  """RpGAN's G loss: E_i softplus(-(D(G(z_i)) - D(x_i))), D's loss with the
  roles swapped (Huang et al. 2024, eq. 2). G's gradient flows through the
  fake logits only."""
  return relativistic_pairing_discriminator_loss(fake_logits, real_logits)


def gradient_penalty(
    critic: Callable[[Array], Array],
    real: Array,
    fake: Array,
    epsilon: Array,
) -> Array:
  """The WGAN-GP penalty E[(||grad_x D(x_hat)||_2 - 1)^2].

  x_hat = epsilon * real + (1 - epsilon) * fake, with one epsilon per example.
  The critic must treat examples independently (no batch norm, as the paper
  requires), so the gradient of the summed scores holds every example's own
  input gradient.

  Args:
    critic: maps a batch [B, ...] to scores [B].
    real: real examples, shape [B, ...].
    fake: generated examples, shape [B, ...].
    epsilon: interpolation weights in [0, 1], shape [B].

  Returns:
    The scalar penalty (not yet multiplied by its weight lambda).

  References:
    Gulrajani et al., Improved Training of Wasserstein GANs, NeurIPS 2017,
    eq. (3) and Algorithm 1.
  """
  eps = epsilon.reshape((-1,) + (1,) * (real.ndim - 1))
  interpolated = eps * real + (1.0 - eps) * fake
  grads = jax.grad(lambda x: jnp.sum(critic(x)))(interpolated)
  grads = grads.reshape(grads.shape[0], -1)
  # safe_norm: the plain norm's gradient is NaN at exactly zero gradient.
  norms = optax.safe_norm(grads, 1e-12, axis=-1)
  return jnp.mean((norms - 1.0) ** 2)


def interpolated_gradient_penalty(critic: Callable[[Array], Array], real: Array,
                                  fake: Array, example_keys: Array) -> Array:
  """`gradient_penalty` at interpolates with epsilon ~ U[0, 1] drawn from each
  example's own key (so the draw does not depend on the device count)."""
  return gradient_penalty(critic, real, fake,
                          jax.vmap(jax.random.uniform)(example_keys))


def input_gradient_penalty(critic: Callable[[Array], Array], x: Array) -> Array:
  """½ E‖∇_x D(x)‖²: half the mean squared norm of each example's input gradient.

  As in `gradient_penalty`, the critic treats examples independently, so the
  gradient of the summed scores holds every example's own input gradient.

  References:
    Mescheder et al., Which Training Methods for GANs do actually Converge?,
    ICML 2018, eqs. (9) and (10) (R1 and R2, there with the weight γ/2).
  """
  grads = jax.grad(lambda x: jnp.sum(critic(x)))(x)
  return 0.5 * jnp.mean(jnp.sum(grads.reshape(grads.shape[0], -1) ** 2, axis=-1))


def r1_penalty(critic: Callable[[Array], Array], real: Array, fake: Array,
               example_keys: Array) -> Array:
  """R1: `input_gradient_penalty` on real data (Mescheder et al. 2018, eq. 9)."""
  del fake, example_keys
  return input_gradient_penalty(critic, real)


def r2_penalty(critic: Callable[[Array], Array], real: Array, fake: Array,
               example_keys: Array) -> Array:
  """R2: `input_gradient_penalty` on generated data (Mescheder et al. 2018,
  eq. 10)."""
  del real, example_keys
  return input_gradient_penalty(critic, fake)


@dataclasses.dataclass(frozen=True)
class Loss:
  """A loss variant: both players' losses and its defaults.

  Attributes:
    d_loss: (real_logits, fake_logits) -> D's scalar loss.
    g_loss: (real_logits, fake_logits) -> G's scalar loss. Its real logits are
      None unless it reads them (`generator_reads_real`).
    summary: one line for docs/reference.md: both losses and the paper.
    d_steps: D updates per G update when `train.d_steps` is 0.
    penalties: PENALTIES entries this loss always adds to D's loss.
    real_above: the logit above which D calls an example real (r_t, the
      share of real examples it so calls, is measured against it), or None
      when its logits have no such boundary: a critic's (WGAN) or a
      relativistic D's, whose logits count only against each other.
  """

  d_loss: Callable[[Array, Array], Array]
  g_loss: Callable[[Array | None, Array], Array]
  summary: str
  d_steps: int = 1
  penalties: tuple[str, ...] = ()
  real_above: float | None = 0.0


@dataclasses.dataclass(frozen=True)
class Penalty:
  """A penalty on D, added to its loss as `weight * fn(...)`.

  Attributes:
    fn: (critic, real, fake, example_keys) -> scalar, where `critic` maps a
      batch to D's logits [B] in training mode and `example_keys` holds one
      PRNG key per example of this device's batch.
    weight_key: the key under `config.loss` that holds its weight.
    default_weight: that key's default.
    metric: the name its value is logged under.
    summary: one line for docs/reference.md: the formula and the paper.
    with_its_loss_only: applied only with the losses that list it (WGAN-GP's
      penalty belongs to `wgan_gp`); otherwise whenever its weight is > 0.
  """

  fn: Callable[[Callable[[Array], Array], Array, Array, Array], Array]
  weight_key: str
  default_weight: float
  metric: str
  summary: str
  with_its_loss_only: bool = False


LOSSES: dict[str, Loss] = {
    'vanilla': Loss(
        minimax_discriminator_loss, minimax_generator_loss,
        'D: −E log D(x) − E log(1 − D(G(z))); G: E log(1 − D(G(z))), the'
        ' saturating minimax game (Goodfellow et al. 2014, eq. 1)'),
    'non_saturating': Loss(
        minimax_discriminator_loss, non_saturating_generator_loss,
        'D: as vanilla; G: −E log D(G(z)) (Goodfellow et al. 2014, §3)'),
    # Gulrajani et al. 2017, Algorithm 1: n_critic = 5.
    'wgan_gp': Loss(
        wasserstein_critic_loss, wasserstein_generator_loss,
        'D: E D(G(z)) − E D(x) + λ E(‖∇D(x̂)‖₂ − 1)²; G: −E D(G(z))'
        ' (Gulrajani et al. 2017)',
        d_steps=5, penalties=('gradient_penalty',), real_above=None),
    'hinge': Loss(
        hinge_discriminator_loss, wasserstein_generator_loss,
        'D: E relu(1 − D(x)) + E relu(1 + D(G(z))); G: −E D(G(z))'
        ' (Lim & Ye 2017; Miyato et al. 2018)'),
    'least_squares': Loss(
        least_squares_discriminator_loss, least_squares_generator_loss,
        'D: ½E(D(x) − 1)² + ½E D(G(z))²; G: ½E(D(G(z)) − 1)², the 0-1 coding'
        ' of LSGAN (Mao et al. 2017)', real_above=0.5),
    'relativistic': Loss(
        relativistic_average_discriminator_loss,
        relativistic_average_generator_loss,
        'D: E softplus(−(D(x) − E D(G(z)))) + E softplus(D(G(z)) − E D(x));'
        ' G: the same with real and fake swapped; RaSGAN'
        ' (Jolicoeur-Martineau 2019)', real_above=None),
    'rpgan': Loss(
        relativistic_pairing_discriminator_loss,
        relativistic_pairing_generator_loss,
        'D: E softplus(−(D(x_i) − D(G(z_i)))) over pairs of a real and a'
        ' generated example; G: the same with real and fake swapped; RpGAN'
        ' (Jolicoeur-Martineau 2019), the loss of R3GAN (Huang et al. 2024)',
        real_above=None),
}

PENALTIES: dict[str, Penalty] = {
    # Gulrajani et al. 2017: lambda = 10.
    'gradient_penalty': Penalty(
        interpolated_gradient_penalty, 'gp_weight', 10.0, 'gp',
        'E(‖∇D(x̂)‖₂ − 1)² at x̂ = εx + (1 − ε)G(z), ε ~ U[0, 1]'
        ' (Gulrajani et al. 2017)', with_its_loss_only=True),
    # Weights are γ: Mescheder et al. 2018 used γ = 10 on CelebA-HQ and
    # LSUN; StyleGAN2 uses 10 at 1024² down to 0.01-1 for small images.
    'r1': Penalty(
        r1_penalty, 'r1_weight', 0.0, 'r1',
        '(γ/2) E‖∇D(x)‖² on real data, R1 (Mescheder et al. 2018)'),
    'r2': Penalty(
        r2_penalty, 'r2_weight', 0.0, 'r2',
        '(γ/2) E‖∇D(G(z))‖² on generated data, R2 (Mescheder et al. 2018)'),
}


# Append only. Each penalty draws its randomness (WGAN-GP's ε, D's dropout in
# its critic) from two keys of the D update, picked by its index here
# (step.penalty_keys), so its numbers do not depend on where it stands in
# PENALTIES or on which others are active; a new penalty takes the next index.
PENALTY_KEY_INDEX: dict[str, int] = {'gradient_penalty': 0, 'r1': 1, 'r2': 2}


def active_penalties(loss_name: str, loss_config) -> tuple[tuple[str, Penalty, float], ...]:
  """(name, penalty, weight) of each penalty the run adds to D's loss:
  those its loss lists, and the others whose weight in `loss_config` is > 0."""
  listed = LOSSES[loss_name].penalties
  active = []
  for name, penalty in PENALTIES.items():
    weight = float(loss_config.get(penalty.weight_key, penalty.default_weight))
    if name in listed or (not penalty.with_its_loss_only and weight > 0):
      active.append((name, penalty, weight))
  return tuple(active)


def generator_reads_real(loss: Loss) -> bool:
  """Whether `loss.g_loss` reads its real logits (traced once, abstractly)."""
  jaxpr = jax.make_jaxpr(loss.g_loss)(jnp.zeros(2), jnp.zeros(2)).jaxpr
  real = jaxpr.invars[0]
  return (any(real in eqn.invars for eqn in jaxpr.eqns)
          or any(real is out for out in jaxpr.outvars))
