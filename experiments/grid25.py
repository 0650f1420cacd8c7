"""Grid of 25 Gaussians at {-4,-2,0,2,4}^2, std 0.05 (PacGAN's protocol), 3x128 MLPs, batch 1024.

  python -m gan_jax.main --config=experiments/grid25.py
  python -m gan_jax.main --config=experiments/grid25.py --config.num_seeds=5 \
      --workdir=runs/grid25_goal                      # the goal, 5 seeds
  python -m gan_jax.sweep --config=experiments/grid25.py:baseline \
      --config.num_seeds=5 --workdir=runs/compare_grid25   # every loss, get_sweep()

The default meets the goal of all 25 modes with at least 90 % high-quality
samples on every one of 5 seeds: the non-saturating loss with R1 (γ = 1)
for 30,000 steps (docs/results/stabilisers.md). `:baseline` is the
setup the losses and the stabilisers are compared in
(docs/results/toy_losses.md, experiments/stabilisers.py): vanilla, no
penalty, 10,000 steps. Expect scatter plots in runs/grid25/samples/ and
the modes evaluator every 1,000 steps. A batch of 256 lost modes (19-21 of
25); 1,024 kept them.
"""

from gan_jax import configs

VARIANTS = ('goal', 'baseline')


def get_config(variant: str = 'goal'):
  """`goal` (the default) or `baseline`; see the module docstring."""
  configs.check_variant('experiments/grid25.py', variant, VARIANTS)
  c = configs.toy_config('grid25')  # tuned 3x128 MLPs, Adam 1e-3 -> 0
  c.train.batch_size = 1024  # 25 modes: 256 lost some
  if variant == 'baseline':
    c.loss.name = 'vanilla'  # the most modes of the losses alone
    return c
  # R1 keeps every mode with the cross-entropy losses
  # (docs/results/stabilisers.md); the non-saturating loss's samples are the
  # sharpest, and 30,000 steps (a slower linear decay) take them past 90 %
  # high quality.
  c.loss.name = 'non_saturating'
  c.loss.r1_weight = 1.0
  c.train.num_steps = 30_000
  return c


def get_sweep(variant: str = 'goal'):
  """Every loss of the registry (losses.LOSSES) side by side: `python -m
  gan_jax.sweep` runs one point per dict (runs/sweep_grid25/loss.name-<loss>/,
  then summary.md)."""
  del variant  # the same points on either variant
  from gan_jax import losses  # noqa: PLC0415 (only sweeps need the registry)
  return [{'loss.name': name} for name in losses.LOSSES]
