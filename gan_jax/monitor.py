"""Divergence and collapse warnings from the training dynamics the step logs.

At every log step the loop hands the members' logged figures (gan_jax.step
computes them inside the compiled step: gradient norms, update-to-parameter
ratios, D's mean logits and their gap, r_t) to `Monitor.check`, which says in
one log line, once per member and kind, when

- `grad_norm`: a player's gradient norm runs away: above GRAD_RUNAWAY times
  its median over the first EARLY logged values;
- `gap`: D's gap between its mean logit on real and on generated data runs
  away: above GAP_RUNAWAY times that median (and above GAP_FLOOR logits),
  D separating the two ever more surely;
- `d_won`: r_t = E[sign D(x)] on real data stays at or above R_T_WON for
  R_T_STEPS log steps in a row while D's mean logit on generated data is on
  the fake side of its boundary: D calls every real example real and the
  generated ones fake, Karras et al. 2020's sign of a discriminator that has
  won (or overfits). r_t alone is not: a D whose logits are all just above
  the boundary (the hinge loss's, real or generated alike) has r_t = 1 and
  separates nothing. Only for losses whose logits have a boundary between
  real and fake (losses.Loss.real_above): not a critic's or a relativistic
  D's.

The warnings go to results.json (`warnings`: step, seed, kind, value). They
are heuristics to look closer, not verdicts: a run may recover.
"""

import dataclasses

from absl import logging
import numpy as np

EARLY = 5  # logged values that set a figure's baseline
GRAD_RUNAWAY = 100.0
GAP_RUNAWAY = 10.0
GAP_FLOOR = 5.0
R_T_WON = 0.99
R_T_STEPS = 5


@dataclasses.dataclass
class _Member:
  early: dict[str, list[float]] = dataclasses.field(default_factory=dict)
  won_since: int | None = None
  won_count: int = 0
  said: set[str] = dataclasses.field(default_factory=set)


class Monitor:
  """The warnings of one run's members (`seeds`), checked at log steps."""

  def __init__(self, seeds: list[int], real_above: float | None = 0.0):
    self._members = {seed: _Member() for seed in seeds}
    # The loss's boundary between real and fake logits; None: no boundary,
    # so r_t says nothing about D having won (module docstring).
    self._real_above = real_above
    self.warnings: list[dict] = []

  def _baseline(self, member: _Member, name: str, value: float) -> float | None:
    """The median of the first EARLY values of `name` (None until then)."""
    early = member.early.setdefault(name, [])
    if len(early) < EARLY:
      early.append(value)
      return None
    return float(np.median(early))

  def _warn(self, seed: int, member: _Member, step: int, kind: str,
            value: float, message: str) -> None:
    if kind in member.said:
      return
    member.said.add(kind)
    whose = f' in seed {seed}' if len(self._members) > 1 else ''
    logging.warning('step %d: %s%s', step, message, whose)
    self.warnings.append({'step': step, 'seed': seed, 'kind': kind,
                          'value': float(value)})

  def check(self, step: int, per_seed: list[dict]) -> None:
    """Checks the members' figures logged at `step` (aggregate.per_seed)."""
    for figures in per_seed:
      seed = figures['seed']
      member = self._members[seed]
      for player in ('g', 'd'):
        value = figures.get(f'{player}_grad_norm')
        if value is None or not np.isfinite(value):
          continue
        base = self._baseline(member, f'{player}_grad_norm', value)
        if base and value > GRAD_RUNAWAY * base:
          self._warn(seed, member, step, f'{player}_grad_norm', value,
                     f'{player.upper()}\'s gradient norm ran away: {value:.3g},'
                     f' {value / base:.0f}x its early median {base:.3g}')
      gap = figures.get('d_gap')
      if gap is not None and np.isfinite(gap):
        base = self._baseline(member, 'd_gap', abs(gap))
        if base is not None and abs(gap) > max(GAP_RUNAWAY * base, GAP_FLOOR):
          self._warn(seed, member, step, 'gap', gap,
                     f'D\'s gap between its mean logit on real and on generated'
                     f' data ran away: {gap:.3g}, its early median {base:.3g}')
      r_t, fake = figures.get('r_t'), figures.get('d_fake')
      if r_t is not None and fake is not None and self._real_above is not None:
        if r_t >= R_T_WON and fake < self._real_above:
          member.won_since = step if member.won_count == 0 else member.won_since
          member.won_count += 1
        else:
          member.won_count = 0
        if member.won_count >= R_T_STEPS:
          self._warn(seed, member, step, 'd_won', r_t,
                     f'D has won: r_t = E[sign D(x)] on real data has been >='
                     f' {R_T_WON} and its mean logit on generated data'
                     f' below {self._real_above:g} since step {member.won_since}')
