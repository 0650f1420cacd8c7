"""Sample-quality and mode-coverage metrics: pure, jitted JAX functions.

Feature-space metrics (inputs are [N, D] feature vectors, e.g. the activations
of the project's own classifier; nothing here loads Inception):

* `frechet_distance`, `frechet_distance_from_features`, `feature_statistics`:
  the Fréchet distance between Gaussians fitted to two feature sets
  (Heusel et al. 2017, "FID" when the features are Inception's).
* `kernel_inception_distance`: unbiased MMD² with a cubic polynomial kernel,
  averaged over random subsets (Bińkowski et al. 2018).
* `precision_recall`: k-NN improved precision and recall
  (Kynkäänniemi et al. 2019).
* `density_coverage`: density and coverage (Naeem et al. 2020).
* `classifier_score`: the Inception Score formula on any classifier's class
  probabilities (Salimans et al. 2016).

Mode metrics:

* `mode_coverage`: modes captured, high-quality fraction and reverse KL on a
  2-D Gaussian mixture, as in PacGAN's code (Lin et al. 2018).
* `stacked_mnist_modes`: distinct digit triples and KL to uniform on stacked
  MNIST, as in PacGAN's code (protocol of Srivastava et al. 2017).

Return convention: every function returns 0-d `jax.Array`s (call `float()` or
`int()` on them to log), never Python numbers, so each function can run under
`jax.jit` and inside other jitted code. Several values come back as a dict of
0-d arrays, except `kernel_inception_distance`, which returns (mean, std).

Numerics: inputs are promoted to at least float32 (float64 stays float64 when
x64 is enabled). Every matrix product uses `Precision.HIGHEST`, so GPUs do not
silently drop to TF32/bf16 passes; squared distances use
|x|² + |y|² - 2 x·y on features centred on the reference set's mean (distances
are translation invariant, and centring shrinks the cancellation) and are
clipped at 0. Pairwise work runs `chunk_size` rows at a time: memory grows
as a few chunk_size x N buffers, never N x M (10k x 10k x 512 features: about
335 MB of temporaries at the default chunk_size 1024, 100 MB at 256).
"""

from collections.abc import Callable
import functools
import math

import jax
import jax.numpy as jnp
from jax.scipy.special import xlogy
import numpy as np

Array = jax.Array

_HIGHEST = jax.lax.Precision.HIGHEST
DEFAULT_CHUNK_SIZE = 1024
STACKED_MNIST_MODES = 1000


# ---------------------------------------------------------------- helpers


def _as_float(x) -> Array:
  """x as an array of at least float32 precision."""
  x = jnp.asarray(x)
  return x.astype(jnp.promote_types(x.dtype, jnp.float32))


def _check_features(name: str, x: Array, min_rows: int = 1) -> None:
  if x.ndim != 2 or x.shape[0] < min_rows:
    raise ValueError(f'{name} must be [N, D] with N >= {min_rows}, got shape'
                     f' {x.shape}')


def _check_pair(a: Array, b: Array) -> None:
  if a.shape[1] != b.shape[1]:
    raise ValueError(f'feature sizes differ: {a.shape[1]} vs {b.shape[1]}')


def _sq_dists(x: Array, ys: Array, ys_sq: Array) -> Array:
  """Squared Euclidean distances from one point x [D] to ys [M, D].

  `ys_sq` holds |y|² for every row of ys. Under `_map_rows` this is batched
  into one [chunk, M] matrix product.
  """
  cross = jnp.matmul(ys, x, precision=_HIGHEST)
  return jnp.maximum(jnp.dot(x, x, precision=_HIGHEST) + ys_sq - 2 * cross, 0)


def _map_rows(fn: Callable, xs, chunk_size: int):
  """`fn` over the leading axis of `xs` (a pytree), vectorised in chunks."""
  n = jax.tree_util.tree_leaves(xs)[0].shape[0]
  return jax.lax.map(fn, xs, batch_size=max(1, min(chunk_size, n)))


def _kth_smallest(values: Array, k: int) -> Array:
  """The k-th smallest entry of a vector, ties counted separately.

  Removes the minimum k - 1 times: O(k M), for the small k of these metrics
  (on CPU this is ~10x faster than `jax.lax.top_k`, which sorts).
  """
  index = jnp.arange(values.shape[-1])
  drop_min = lambda _, v: jnp.where(index == jnp.argmin(v), jnp.inf, v)
  return jnp.min(jax.lax.fori_loop(0, k - 1, drop_min, values))


def _knn_sq_radii(x: Array, k: int, chunk_size: int) -> Array:
  """Squared distance from each row of x to its k-th nearest OTHER row."""
  n = x.shape[0]
  if not 1 <= k < n:
    raise ValueError(f'k must be in [1, N - 1] = [1, {n - 1}], got {k}')
  x_sq = jnp.sum(x * x, axis=-1)

  def radius(args):
    xi, i = args
    d = jnp.where(jnp.arange(n) == i, jnp.inf, _sq_dists(xi, x, x_sq))
    return _kth_smallest(d, k)

  return _map_rows(radius, (x, jnp.arange(n)), chunk_size)


def _fraction_in_balls(points: Array, centres: Array, sq_radii: Array,
                       chunk_size: int) -> Array:
  """Fraction of points within (<=) the ball of at least one centre."""
  c_sq = jnp.sum(centres * centres, axis=-1)
  inside = _map_rows(
      lambda p: jnp.any(_sq_dists(p, centres, c_sq) <= sq_radii),
      points, chunk_size)
  return jnp.mean(inside.astype(points.dtype))


def _centred(reference: Array, *others: Array) -> list[Array]:
  shift = jnp.mean(reference, axis=0)
  return [reference - shift, *(o - shift for o in others)]


def _checked_centred_pair(real: Array, fake: Array) -> list[Array]:
  """Float feature sets of one width, both centred on the real mean."""
  real, fake = _as_float(real), _as_float(fake)
  _check_features('real', real)
  _check_features('fake', fake)
  _check_pair(real, fake)
  return _centred(real, fake)


def _kl_to_uniform(counts: Array) -> Array:
  """KL(p || uniform) with p = counts / sum(counts), in nats.

  Bins with p = 0 contribute 0 (0 log 0 = 0); no smoothing. NaN when all
  counts are 0 (p is undefined).
  """
  p = counts / jnp.sum(counts)
  return jnp.sum(xlogy(p, p * counts.shape[0]))


# ------------------------------------------------------- Fréchet distance


@jax.jit
def feature_statistics(feats: Array) -> tuple[Array, Array]:
  """Mean and covariance of a feature set, the Gaussian fit of the FID.

  Args:
    feats: [N, D] features, N >= 2.

  Returns:
    (mu [D], sigma [D, D]), sigma with the unbiased 1 / (N - 1) normalisation
    (numpy's `np.cov(feats, rowvar=False)`, as in the reference FID code).

  References:
    Heusel et al., GANs Trained by a Two Time-Scale Update Rule Converge to a
    Local Nash Equilibrium, NeurIPS 2017.
  """
  feats = _as_float(feats)
  _check_features('feats', feats, min_rows=2)
  mu = jnp.mean(feats, axis=0)
  centred = feats - mu
  sigma = jnp.matmul(centred.T, centred, precision=_HIGHEST) / (
      feats.shape[0] - 1)
  return mu, sigma


def _sqrtm_psd(sigma: Array) -> Array:
  """Symmetric square root of a PSD matrix; tiny negative eigenvalues -> 0."""
  w, v = jnp.linalg.eigh(sigma)
  return jnp.matmul(v * jnp.sqrt(jnp.maximum(w, 0)), v.T, precision=_HIGHEST)


@jax.jit
def frechet_distance(mu1: Array, sigma1: Array, mu2: Array,
                     sigma2: Array) -> Array:
  """Fréchet (2-Wasserstein) distance between N(mu1, sigma1) and N(mu2, sigma2).

    d² = |mu1 - mu2|² + tr(sigma1 + sigma2 - 2 (sigma1 sigma2)^{1/2}).

  sigma1 sigma2 is not symmetric, but it is similar to the PSD matrix
  sigma1^{1/2} sigma2 sigma1^{1/2}, so tr((sigma1 sigma2)^{1/2}) is the sum of
  the square roots of that matrix's eigenvalues (from `eigh`, tiny negative
  ones clipped to 0). This avoids `scipy.linalg.sqrtm` of a non-symmetric
  matrix and its spurious imaginary parts.

  In this project the statistics come from the features of its own
  classifier, not Inception-v3: values are an "FID" in that feature space and
  are not comparable with published Inception FIDs.

  Args:
    mu1: [D] mean of the first Gaussian.
    sigma1: [D, D] covariance of the first Gaussian (symmetric PSD).
    mu2: [D] mean of the second Gaussian.
    sigma2: [D, D] covariance of the second Gaussian (symmetric PSD).

  Returns:
    The squared Fréchet distance, a 0-d array (>= 0 up to rounding).

  References:
    Heusel et al., GANs Trained by a Two Time-Scale Update Rule Converge to a
    Local Nash Equilibrium, NeurIPS 2017.
    Dowson & Landau, The Fréchet distance between multivariate normal
    distributions, J. Multivariate Analysis 1982.
  """
  mu1, sigma1, mu2, sigma2 = map(_as_float, (mu1, sigma1, mu2, sigma2))
  root1 = _sqrtm_psd(sigma1)
  inner = jnp.matmul(jnp.matmul(root1, sigma2, precision=_HIGHEST), root1,
                     precision=_HIGHEST)
  eigenvalues = jnp.linalg.eigvalsh((inner + inner.T) / 2)
  tr_covmean = jnp.sum(jnp.sqrt(jnp.maximum(eigenvalues, 0)))
  return (jnp.sum(jnp.square(mu1 - mu2)) + jnp.trace(sigma1)
          + jnp.trace(sigma2) - 2 * tr_covmean)


@jax.jit
def frechet_distance_from_features(feats1: Array, feats2: Array) -> Array:
  """`frechet_distance` between Gaussians fitted to two feature sets.

  Args:
    feats1: [N, D] features, N >= 2 (e.g. of real images).
    feats2: [M, D] features, M >= 2 (e.g. of generated images).

  Returns:
    The squared Fréchet distance of `feature_statistics` of both sets, a 0-d
    array. An "FID" in the feature space of whatever produced the features
    (here the project's classifier, not Inception-v3).

  References:
    Heusel et al., GANs Trained by a Two Time-Scale Update Rule Converge to a
    Local Nash Equilibrium, NeurIPS 2017.
  """
  feats1, feats2 = _as_float(feats1), _as_float(feats2)
  _check_features('feats1', feats1, 2)
  _check_features('feats2', feats2, 2)
  _check_pair(feats1, feats2)
  return frechet_distance(*feature_statistics(feats1),
                          *feature_statistics(feats2))


def gaussian_statistics64(feats) -> tuple[np.ndarray, np.ndarray]:
  """`feature_statistics` in float64 with NumPy, on the host: the mean and
  covariance (1 / (N - 1)) of [N, D] features, N >= 2."""
  feats = np.asarray(feats, np.float64)
  if feats.ndim != 2 or len(feats) < 2:
    raise ValueError(f'feats must be [N >= 2, D], got shape {feats.shape}')
  return feats.mean(axis=0), np.cov(feats, rowvar=False)


def gaussian_factor64(feats, sigma=None) -> tuple[np.ndarray, np.ndarray]:
  """(mu, F) of [N, D] features in float64, F' F = their covariance:
  F = the centred features / sqrt(N - 1) when N <= D (at most N rows), else
  the transposed Cholesky factor of the covariance (`sigma` if given),
  or its symmetric root when that is not positive definite."""
  import scipy.linalg  # noqa: PLC0415 (only the float64 FID needs SciPy here)
  feats = np.asarray(feats, np.float64)
  n, d = feats.shape
  mu = feats.mean(axis=0)
  if n <= d:
    return mu, (feats - mu) / np.sqrt(n - 1)
  sigma = np.cov(feats, rowvar=False) if sigma is None else sigma
  try:
    return mu, scipy.linalg.cholesky(sigma, lower=False)
  except np.linalg.LinAlgError:
    w, v = scipy.linalg.eigh(sigma)
    return mu, (v * np.sqrt(np.maximum(w, 0))) @ v.T


def frechet_distance64(gaussian1, gaussian2) -> float:
  """`frechet_distance` in float64 with SciPy, on the host, of two
  (mu, F) from `gaussian_factor64`.

  tr((sigma1 sigma2)^{1/2}) = the sum of the singular values of F1 F2'
  (sigma1 sigma2 = F1' F1 F2' F2 has the nonzero eigenvalues of
  (F1 F2')(F1 F2')'). For N <= D that is an N x M matrix: milliseconds where
  an eigendecomposition of the D x D covariances takes seconds.

  Inception's 2048-d features need float64: the trace terms are hundreds of
  times the distance between two real sets, and float32 eigenvalues lose
  percents of it (51.3 instead of 52.4 for two sets of 100 MNIST digits).
  tests/test_inception.py checks this against the symmetric-root formula.
  """
  import scipy.linalg  # noqa: PLC0415
  (mu1, f1), (mu2, f2) = gaussian1, gaussian2
  tr_covmean = np.sum(scipy.linalg.svdvals(f1 @ f2.T))
  return float(np.sum(np.square(mu1 - mu2)) + np.sum(np.square(f1))
               + np.sum(np.square(f2)) - 2 * tr_covmean)


# ----------------------------------------------- kernel inception distance


def _polynomial_mmd2_unbiased(x: Array, y: Array) -> Array:
  """Unbiased MMD² of two equal-size sets, kernel k(a, b) = (a·b / d + 1)³.

  The estimator of Bińkowski et al. (and torch-fidelity's `mmd2`): the XX and
  YY means leave out the diagonal, the XY mean keeps it. It is computed on
  k - 1 = s (3 + s (3 + s)), s = a·b / d: the constant 1 cancels exactly
  between the three means, and dropping it saves float32 digits.
  """
  m, d = x.shape

  def kernel_minus_one(a, b):
    s = jnp.matmul(a, b.T, precision=_HIGHEST) / d
    return s * (3 + s * (3 + s))

  def off_diagonal_mean(k):
    return (jnp.sum(jnp.sum(k, axis=1)) - jnp.trace(k)) / (m * (m - 1))

  k_xy = kernel_minus_one(x, y)
  return (off_diagonal_mean(kernel_minus_one(x, x))
          + off_diagonal_mean(kernel_minus_one(y, y))
          - 2 * jnp.mean(jnp.sum(k_xy, axis=1)) / m)


@functools.partial(jax.jit, static_argnames=('num_subsets', 'subset_size'))
def kernel_inception_distance(feats1: Array, feats2: Array, key: Array,
                              num_subsets: int = 100,
                              subset_size: int | None = None
                              ) -> tuple[Array, Array]:
  """Kernel "Inception" distance: unbiased polynomial-kernel MMD² on subsets.

  For each of `num_subsets` subsets, draws `subset_size` rows of each set
  without replacement (independently per set) and computes the unbiased MMD²
  with k(x, y) = (x·y / D + 1)³. torch-fidelity's defaults are 100 subsets
  of 1000 rows (Bińkowski et al.'s code: 50).

  The subset size follows N, the smaller set's rows: min(1000, N // 2) (at
  least 2), torch-fidelity's 1000 from N = 2000 on, and below it half the
  set, so that two subsets of a set differ and their spread says something.
  A subset as large as both whole sets (subset_size >= N, or N < 4) is the
  same every time: the mean is the whole-set MMD² and the std is NaN, not a
  spread.

  Args:
    feats1: [N, D] features (e.g. of real images).
    feats2: [M, D] features (e.g. of generated images).
    key: PRNG key for the subsets.
    num_subsets: how many random subsets to average over.
    subset_size: rows per subset and set (default: the rule above); capped
      at the smaller set, must end up >= 2.

  Returns:
    (mean, std) over subsets, 0-d arrays; std with ddof=0 (numpy's default,
    as torch-fidelity reports it), NaN when the subsets cannot differ. The
    mean is unbiased, so it can be slightly negative when both sets come
    from one distribution.

  References:
    Bińkowski, Sutherland, Arbel & Gretton, Demystifying MMD GANs, ICLR 2018
    (KID; the unbiased MMD² estimator); code: torch-fidelity's
    metric_kid.py, adapted from github.com/mbinkowski/MMD-GAN.
  """
  feats1, feats2 = _as_float(feats1), _as_float(feats2)
  _check_features('feats1', feats1)
  _check_features('feats2', feats2)
  _check_pair(feats1, feats2)
  n1, n2 = feats1.shape[0], feats2.shape[0]
  if subset_size is None:
    subset_size = max(2, min(1000, min(n1, n2) // 2))
  size = min(subset_size, n1, n2)
  if size < 2:
    raise ValueError(f'KID needs subsets of >= 2 rows, got {size}')

  def one_subset(subset_key):
    key1, key2 = jax.random.split(subset_key)
    x = feats1[jax.random.choice(key1, n1, (size,), replace=False)]
    y = feats2[jax.random.choice(key2, n2, (size,), replace=False)]
    return _polynomial_mmd2_unbiased(x, y)

  mmds = jax.lax.map(one_subset, jax.random.split(key, num_subsets))
  spread = jnp.std(mmds) if size < max(n1, n2) else jnp.float32(jnp.nan)
  return jnp.mean(mmds), spread


# --------------------------------------------- k-NN manifold metrics


@functools.partial(jax.jit, static_argnames=('k', 'chunk_size'))
def precision_recall(real: Array, fake: Array, k: int = 3,
                     chunk_size: int = DEFAULT_CHUNK_SIZE) -> dict[str, Array]:
  """Improved precision and recall of k-NN hypersphere manifolds.

  Each real point gets a ball whose radius is the distance to its k-th
  nearest neighbour among the OTHER real points (the reference code takes the
  (k+1)-th smallest distance including the zero self-distance: the same).
  Precision is the fraction of fake points inside at least one real ball;
  recall is the fraction of real points inside at least one fake ball (radii
  from the fake set). "Inside" is |x - c| <= r, as in the reference code.

  Args:
    real: [N, D] real features, N > k.
    fake: [M, D] generated features, M > k.
    k: neighbourhood size (the paper's default is 3).
    chunk_size: rows of pairwise distances computed at once.

  Returns:
    {'precision': ..., 'recall': ...}, 0-d arrays in [0, 1].

  References:
    Kynkäänniemi, Karras, Laine, Lehtinen & Aila, Improved Precision and
    Recall Metric for Assessing Generative Models, NeurIPS 2019; code:
    github.com/kynkaat/improved-precision-and-recall-metric.
  """
  real, fake = _checked_centred_pair(real, fake)
  real_r2 = _knn_sq_radii(real, k, chunk_size)
  fake_r2 = _knn_sq_radii(fake, k, chunk_size)
  return {
      'precision': _fraction_in_balls(fake, real, real_r2, chunk_size),
      'recall': _fraction_in_balls(real, fake, fake_r2, chunk_size),
  }


@functools.partial(jax.jit, static_argnames=('k', 'chunk_size'))
def density_coverage(real: Array, fake: Array, k: int = 5,
                     chunk_size: int = DEFAULT_CHUNK_SIZE) -> dict[str, Array]:
  """Density and coverage of the real k-NN balls.

  With B_i the ball around real_i of radius NND_k(real_i), the distance to
  its k-th nearest neighbour among the OTHER real points (prdc's
  `compute_nearest_neighbour_distances` takes the (k+1)-th smallest distance
  of a row that includes the zero self-distance: the same),

    density  = 1 / (k M) sum_j sum_i 1[fake_j in B_i],
    coverage = 1 / N sum_i 1[exists j: fake_j in B_i].

  "In" is strict, |x - c| < r, as in prdc. Density is not capped at 1.

  Args:
    real: [N, D] real features, N > k.
    fake: [M, D] generated features.
    k: neighbourhood size (the paper's default is 5).
    chunk_size: rows of pairwise distances computed at once.

  Returns:
    {'density': ..., 'coverage': ...}, 0-d arrays (density >= 0, coverage in
    [0, 1]).

  References:
    Naeem, Oh, Uh, Choi & Yoo, Reliable Fidelity and Diversity Metrics for
    Generative Models, ICML 2020; code:
    github.com/clovaai/generative-evaluation-prdc (prdc/prdc.py).
  """
  real, fake = _checked_centred_pair(real, fake)
  real_r2 = _knn_sq_radii(real, k, chunk_size)
  real_sq = jnp.sum(real * real, axis=-1)
  fake_sq = jnp.sum(fake * fake, axis=-1)
  balls_per_fake = _map_rows(
      lambda f: jnp.sum(_sq_dists(f, real, real_sq) < real_r2), fake,
      chunk_size)
  covered = _map_rows(
      lambda args: jnp.min(_sq_dists(args[0], fake, fake_sq)) < args[1],
      (real, real_r2), chunk_size)
  return {
      'density': jnp.sum(balls_per_fake).astype(real.dtype) / (
          k * fake.shape[0]),
      'coverage': jnp.mean(covered.astype(real.dtype)),
  }


# ------------------------------------------------------- classifier score


@jax.jit
def classifier_score(probs: Array) -> Array:
  """The Inception Score formula on a classifier's class probabilities.

    score = exp(E_x KL(p(y|x) || p(y))),  p(y) = E_x p(y|x),

  over all N rows at once (the original reports mean and std over 10 splits;
  split the rows yourself for that). Terms with p(y|x) = 0 are 0
  (`xlogy`), and p(y) >= p(y|x) / N > 0 wherever p(y|x) > 0, so no log(0).
  Rows are renormalised to sum to 1.

  Args:
    probs: [N, C] class probabilities (softmax outputs, not logits).

  Returns:
    The score, a 0-d array in [1, C].

  References:
    Salimans, Goodfellow, Zaremba, Cheung, Radford & Chen, Improved Techniques
    for Training GANs, NeurIPS 2016, section 4.
  """
  probs = _as_float(probs)
  _check_features('probs', probs)
  probs = probs / jnp.sum(probs, axis=-1, keepdims=True)
  marginal = jnp.mean(probs, axis=0)
  kl = jnp.sum(xlogy(probs, probs) - xlogy(probs, marginal), axis=-1)
  return jnp.exp(jnp.mean(kl))


def top_class_share(probs: Array) -> Array:
  """The largest share of the N rows that one class wins (argmax): 1/C for
  samples spread evenly over C classes, 1 for a generator stuck on one.

  Args:
    probs: [N, C] class probabilities (or logits: only the argmax counts).
  """
  probs = _as_float(probs)
  _check_features('probs', probs)
  counts = jnp.bincount(jnp.argmax(probs, axis=-1), length=probs.shape[-1])
  return jnp.max(counts) / probs.shape[0]


def inception_score(logits, splits: int = 10) -> tuple[float, float]:
  """Inception Score (Salimans et al. 2016): `classifier_score` of the
  softmax of the 1008 logits in each of `splits` consecutive, equal parts
  of the N rows (the remainder dropped, as the original code does); the
  mean and std (ddof=0) over the parts.

  Fewer parts when N < 2 x `splits`: each holds at least 2 rows (one row's
  score is always 1). With one part (N < 4) the std is NaN, not a spread."""
  logits = np.asarray(logits, np.float32)
  splits = max(1, min(splits, len(logits) // 2))
  size = len(logits) // splits
  if size < 1:
    raise ValueError(f'{len(logits)} rows cannot make an Inception Score')
  probs = jax.nn.softmax(jnp.asarray(logits[:size * splits]), axis=-1)
  scores = np.asarray([classifier_score(part)
                       for part in jnp.split(probs, splits)], np.float64)
  return float(scores.mean()), float(scores.std()) if splits > 1 else math.nan


# ------------------------------------------------------------ mode metrics


@functools.partial(jax.jit, static_argnames=('chunk_size',))
def mode_coverage(samples: Array, modes: Array, std: float | Array,
                  threshold: float = 3.0,
                  chunk_size: int = DEFAULT_CHUNK_SIZE) -> dict[str, Array]:
  """Mode metrics of a Gaussian mixture with isotropic modes, PacGAN's way.

  Each sample is assigned to its nearest mode; it is high quality when its
  distance to that mode is < threshold * std (PacGAN's `MetricLogger` uses
  the Mahalanobis distance sqrt(sum (x - mu)² / var) for both steps; with one
  isotropic std for all modes that is the Euclidean distance / std, measured
  in the whole plane, not per coordinate).
  From the per-mode counts of high-quality samples:

  * modes: how many modes have at least one high-quality sample;
  * high_quality: high-quality samples / all samples, in [0, 1];
  * reverse_kl: KL(p || uniform) = sum_k p_k log(K p_k), p the normalised
    histogram of high-quality samples over modes, natural log, bins with
    p_k = 0 skipped (0 log 0 = 0), no epsilon or smoothing, exactly
    `JSD().KLD(p, q)` of the PacGAN code. NaN when there is no high-quality
    sample (p = 0 / 0, as in that code).

  PacGAN's MetricLogger logs the mode count, the high-quality fraction and
  JSD(p, uniform) of this same histogram, but no KL; the reverse KL here is
  the KLD of the repository's stacked-MNIST `log_metrics` applied to that
  histogram, in the direction KL(generated || target).

  Args:
    samples: [N, 2] generated points (any dimension works).
    modes: [K, 2] mode centres.
    std: the per-coordinate standard deviation of every mode (scalar).
    threshold: high-quality radius in units of std (PacGAN: 3).
    chunk_size: samples processed at once.

  Returns:
    {'modes': int32, 'high_quality': float, 'reverse_kl': float}, 0-d arrays.

  References:
    Lin, Khetan, Fanti & Oh, PacGAN: The power of two samples in generative
    adversarial networks, NeurIPS 2018; code:
    github.com/fjxmlzn/PacGAN, synthetic_data_experiments/PacGAN/pacgan/
    extensions.py (MetricLogger).
  """
  samples, modes = _as_float(samples), _as_float(modes)
  _check_features('samples', samples)
  _check_features('modes', modes)
  _check_pair(samples, modes)
  sq_dists = _map_rows(lambda x: jnp.sum(jnp.square(modes - x), axis=-1),
                       samples, chunk_size)
  nearest = jnp.argmin(sq_dists, axis=-1)
  good = jnp.min(sq_dists, axis=-1) < jnp.square(threshold * std)
  counts = jax.ops.segment_sum(good.astype(samples.dtype), nearest,
                               num_segments=modes.shape[0])
  return {
      'modes': jnp.count_nonzero(counts).astype(jnp.int32),
      'high_quality': jnp.mean(good.astype(samples.dtype)),
      'reverse_kl': _kl_to_uniform(counts),
  }


@jax.jit
def stacked_mnist_modes(digits: Array) -> dict[str, Array]:
  """Mode count and KL to uniform of classified stacked-MNIST samples.

  Each sample's three channels are classified into a digit triple, one of
  1,000 modes. As in PacGAN's `log_metrics`: modes is the number of distinct
  triples seen, and kl = KL(p || uniform over 1,000) = sum_t p_t log(1000 p_t)
  with p the normalised histogram of triples, natural log, unseen triples
  skipped (0 log 0 = 0), no smoothing. Every sample counts (no quality
  filter). The protocol classifies 26,000 samples (PacGAN's configs,
  following VEEGAN).

  Args:
    digits: [N, 3] integer digits in 0..9 (e.g. a classifier's argmax), one
      row per sample, channels in order (so (1, 2, 3) and (3, 2, 1) are
      different modes). The range is not checked (values are traced).

  Returns:
    {'modes': int32 in [0, 1000], 'kl': float in [0, log 1000]}, 0-d arrays.

  References:
    Lin, Khetan, Fanti & Oh, PacGAN, NeurIPS 2018; code:
    github.com/fjxmlzn/PacGAN, stacked_MNIST_experiments/*/model.py
    (`log_metrics`).
    Srivastava, Valkov, Russell, Gutmann & Sutton, VEEGAN, NeurIPS 2017.
    Metz, Poole, Pfau & Sohl-Dickstein, Unrolled GANs, ICLR 2017 (the
    dataset).
  """
  digits = jnp.asarray(digits).astype(jnp.int32)
  if digits.ndim != 2 or digits.shape[1] != 3:
    raise ValueError(f'digits must be [N, 3], got shape {digits.shape}')
  triples = digits[:, 0] * 100 + digits[:, 1] * 10 + digits[:, 2]
  counts = jnp.bincount(triples, length=STACKED_MNIST_MODES)
  return {
      'modes': jnp.count_nonzero(counts).astype(jnp.int32),
      'kl': _kl_to_uniform(counts.astype(jnp.float32)),
  }
