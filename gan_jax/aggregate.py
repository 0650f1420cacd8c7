"""The figures of several seeds of one config (`config.num_seeds`) and their summary.

A figure (a loss, an evaluator's score) has one value per seed. results.json
keeps each figure's mean over seeds under the old name (`losses`, `metrics`:
for one seed, just its value), every seed's figures (`<name>_per_seed`, a list
of dicts with the seed number under 'seed') and their spread
(`<name>_summary`: mean, standard deviation and a 95% confidence interval of
the mean). TensorBoard gets the mean under the old tag and, for several seeds,
`seed_<i>/<tag>` for member i.
"""

import math

import numpy as np

Figures = dict[str, float]


def _t_975(dof: int) -> float:
  """Student's t 97.5% quantile; scipy is imported here, not by every
  command (it takes a second, and one-seed runs never need it)."""
  import scipy.stats  # noqa: PLC0415
  return float(scipy.stats.t.ppf(0.975, dof))


def per_seed(figures: dict[str, np.ndarray], seeds: list[int]) -> list[dict]:
  """{name: values [K]} -> one dict per seed: {'seed': seed, name: value, ...}."""
  return [{'seed': seed, **{k: float(np.asarray(v)[i]) for k, v in figures.items()}}
          for i, seed in enumerate(seeds)]


def summarize(per_seed: list[dict]) -> dict[str, dict]:
  """Each figure's mean, sample standard deviation (ddof=1) and Student-t 95%
  interval of the mean (mean ± t_{0.975, n-1} std / sqrt(n)) over its `n`
  non-NaN values; the 'seed' entry is skipped.

  One value: std 0 and the interval [mean, mean]. No value (every seed NaN,
  e.g. a reverse KL with no high-quality sample): NaN throughout.
  """
  names = [k for k in per_seed[0] if k != 'seed'] if per_seed else []
  summary = {}
  for name in names:
    values = np.asarray([figures[name] for figures in per_seed], np.float64)
    values = values[~np.isnan(values)]
    n = len(values)
    if n == 0:
      mean = std = half = math.nan
    else:
      mean = float(np.mean(values))
      std = float(np.std(values, ddof=1)) if n > 1 else 0.0
      half = (_t_975(n - 1) * std / math.sqrt(n) if n > 1 else 0.0)
    summary[name] = {'mean': mean, 'std': std, 'ci95': [mean - half, mean + half],
                     'n': n}
  return summary


def results(name: str, per_seed: list[dict]) -> dict:
  """results.json's `name` (mean over seeds), `<name>_per_seed` and `<name>_summary`."""
  summary = summarize(per_seed)
  return {name: {k: s['mean'] for k, s in summary.items()},
          f'{name}_per_seed': per_seed, f'{name}_summary': summary}


def scalars(per_seed: list[dict], prefix: str = '') -> Figures:
  """TensorBoard scalars: `<prefix><name>` the mean over seeds and, for
  several seeds, `seed_<i>/<prefix><name>` member i's value."""
  out = {prefix + k: s['mean'] for k, s in summarize(per_seed).items()}
  if len(per_seed) > 1:
    for i, figures in enumerate(per_seed):
      out.update({f'seed_{i}/{prefix}{k}': v for k, v in figures.items()
                  if k != 'seed'})
  return out


def describe(per_seed: list[dict], spec: str = '.4f') -> str:
  """'name mean ...' for a log line; for several seeds 'name mean (min..max)'.
  NaNs are left out and counted."""
  parts = []
  for name, s in sorted(summarize(per_seed).items()):
    text = f'{name} {s["mean"]:{spec}}'
    values = [f[name] for f in per_seed if not math.isnan(f[name])]
    if len(per_seed) > 1 and values:
      text += f' ({min(values):{spec}}..{max(values):{spec}})'
    if len(per_seed) > 1 and len(values) < len(per_seed):
      text += f' [NaN in {len(per_seed) - len(values)} of {len(per_seed)}]'
    parts.append(text)
  return ' '.join(parts)
