"""GAN loss variants: one small pure function per player and per variant.

All functions take discriminator *logits* (pre-sigmoid outputs, any shape) and
return a scalar: the mean over examples. Log-probabilities are computed with
`softplus`, never as `log(sigmoid(x))`, because

  log sigmoid(x)     = -softplus(-x)
  log(1 - sigmoid(x)) = -softplus(x)

are exact identities whose right-hand sides stay finite and accurate for any
finite logit, while `sigmoid` underflows to 0 (and `log` to -inf) for |x| > ~100.

Variants (selected by `config.loss.name`, see `LOSSES`):

* `vanilla`: the minimax game of Goodfellow et al. 2014, with the generator
  minimising log(1 - D(G(z))) (the "saturating" loss).
* `non_saturating`: same discriminator; the generator minimises -log D(G(z))
  (Goodfellow et al. 2014, section 3).
* `wgan_gp`: Wasserstein loss with gradient penalty (Gulrajani et al. 2017).
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


def minimax_generator_loss(fake_logits: Array) -> Array:
  """The generator's saturating loss: E[log(1 - D(G(z)))], to be minimised.

  Its gradient vanishes when D confidently rejects the fakes, which is why
  `non_saturating_generator_loss` is used in practice; it is kept to study
  exactly that.

  Args:
    fake_logits: D's logits on generated examples.

  Returns:
    The scalar loss, E[-softplus(fake_logits)] (always <= 0).

  References:
    Goodfellow et al., Generative Adversarial Nets, NeurIPS 2014, eq. (1).
  """
  return -jnp.mean(jax.nn.softplus(fake_logits))


def non_saturating_generator_loss(fake_logits: Array) -> Array:
  """The generator's non-saturating loss: E[-log D(G(z))], to be minimised.

  Args:
    fake_logits: D's logits on generated examples.

  Returns:
    The scalar loss, E[softplus(-fake_logits)] (always >= 0).

  References:
    Goodfellow et al., Generative Adversarial Nets, NeurIPS 2014, section 3.
  """
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


def wasserstein_generator_loss(fake_scores: Array) -> Array:
  """The generator's Wasserstein loss -E[D(G(z))], to be minimised.

  Args:
    fake_scores: the critic's outputs on generated examples.

  Returns:
    The scalar loss.

  References:
    Gulrajani et al., Improved Training of Wasserstein GANs, NeurIPS 2017, Alg. 1.
  """
  return -jnp.mean(fake_scores)


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


@dataclasses.dataclass(frozen=True)
class GANLoss:
  """A loss variant: the discriminator's and the generator's losses.

  Attributes:
    discriminator: (real_logits, fake_logits) -> scalar loss of D.
    generator: fake_logits -> scalar loss of G.
    gradient_penalty: whether D's loss adds `gp_weight * gradient_penalty`.
  """

  discriminator: Callable[[Array, Array], Array]
  generator: Callable[[Array], Array]
  gradient_penalty: bool = False


LOSSES: dict[str, GANLoss] = {
    'vanilla': GANLoss(minimax_discriminator_loss, minimax_generator_loss),
    'non_saturating': GANLoss(
        minimax_discriminator_loss, non_saturating_generator_loss),
    'wgan_gp': GANLoss(
        wasserstein_critic_loss, wasserstein_generator_loss,
        gradient_penalty=True),
}
