"""Metrics against closed forms, float64 NumPy/SciPy references and hand-made sets."""

import itertools
import math

import jax
import numpy as np
import pytest
import scipy.linalg

from gan_jax import metrics


@pytest.fixture(scope='module', autouse=True)
def _optimized(optimized):
  """XLA's optimisations on: here programs (the metrics on thousands of points) run
  long enough for them to pay."""


def random_spd(d: int, rng: np.random.Generator) -> np.ndarray:
  a = rng.normal(size=(d, d))
  return a @ a.T / d + 0.1 * np.eye(d)


def fid_reference(mu1, sigma1, mu2, sigma2) -> float:
  """The usual float64 FID formula, with scipy's general matrix square root."""
  covmean = scipy.linalg.sqrtm(sigma1 @ sigma2).real
  return float(np.sum((mu1 - mu2) ** 2) + np.trace(sigma1) + np.trace(sigma2)
               - 2 * np.trace(covmean))


# ----------------------------------------------------------------- FID


def test_feature_statistics_match_numpy():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(300, 5)) @ rng.normal(size=(5, 5)) + 3.0
  mu, sigma = metrics.feature_statistics(x.astype(np.float32))
  np.testing.assert_allclose(mu, x.mean(0), rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(sigma, np.cov(x, rowvar=False), rtol=1e-4, atol=1e-5)


def test_frechet_distance_of_a_set_with_itself_is_zero():
  rng = np.random.default_rng(1)
  x = (rng.normal(size=(2000, 16)) @ rng.normal(size=(16, 16)) + 5.0).astype(
      np.float32)
  fid = metrics.frechet_distance_from_features(x, x)
  scale = np.trace(np.cov(x, rowvar=False))
  assert abs(float(fid)) < 1e-3 * scale


def test_frechet_distance_commuting_covariances_closed_form():
  # Diagonal covariances commute: tr((S1 S2)^1/2) = sum_i sqrt(a_i b_i), so
  # FID = |mu1 - mu2|² + sum_i (sqrt(a_i) - sqrt(b_i))².
  mu1, mu2 = np.array([0.0, 1.0, -2.0, 0.5]), np.array([1.0, 1.0, 0.0, -0.5])
  a, b = np.array([1.0, 4.0, 0.25, 9.0]), np.array([4.0, 1.0, 0.25, 1.0])
  want = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
  assert want == pytest.approx((1 + 0 + 4 + 1) + (1 + 1 + 0 + 4))
  got = metrics.frechet_distance(mu1, np.diag(a), mu2, np.diag(b))
  np.testing.assert_allclose(got, want, rtol=1e-5)


def test_frechet_distance_non_commuting_covariances_match_scipy_sqrtm():
  rng = np.random.default_rng(2)
  d = 6
  sigma1, sigma2 = random_spd(d, rng), random_spd(d, rng)
  assert not np.allclose(sigma1 @ sigma2, sigma2 @ sigma1, atol=1e-3)
  mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
  want = fid_reference(mu1, sigma1, mu2, sigma2)
  got = metrics.frechet_distance(mu1, sigma1, mu2, sigma2)
  np.testing.assert_allclose(got, want, rtol=1e-4)
  # Symmetric in its two arguments, and zero against itself.
  np.testing.assert_allclose(metrics.frechet_distance(mu2, sigma2, mu1, sigma1),
                             want, rtol=1e-4)
  assert abs(float(metrics.frechet_distance(mu1, sigma1, mu1, sigma1))) < 1e-4


@pytest.mark.parametrize('commuting', [True, False])
def test_frechet_distance_from_samples_approaches_population_value(commuting):
  rng = np.random.default_rng(3)
  d, n = 3, 20000
  if commuting:
    sigma1, sigma2 = np.diag([1.0, 2.0, 0.5]), np.diag([0.5, 1.0, 2.0])
  else:
    sigma1, sigma2 = random_spd(d, rng), random_spd(d, rng)
  mu1, mu2 = np.zeros(d), np.array([1.0, -1.0, 0.5])
  x1 = rng.multivariate_normal(mu1, sigma1, size=n).astype(np.float32)
  x2 = rng.multivariate_normal(mu2, sigma2, size=n).astype(np.float32)
  want = fid_reference(mu1, sigma1, mu2, sigma2)
  got = metrics.frechet_distance_from_features(x1, x2)
  np.testing.assert_allclose(got, want, rtol=0.05)
  # And exactly the population formula applied to the sample statistics.
  sample_stats = [x1.mean(0), np.cov(x1.astype(np.float64), rowvar=False),
                  x2.mean(0), np.cov(x2.astype(np.float64), rowvar=False)]
  np.testing.assert_allclose(got, fid_reference(*sample_stats), rtol=1e-4)


# ----------------------------------------------------------------- KID


def mmd2_unbiased_reference(x, y) -> float:
  """Bińkowski et al.'s estimator, term by term, in float64."""
  x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
  m, d = x.shape
  kxx, kyy, kxy = ((a @ b.T / d + 1) ** 3 for a, b in ((x, x), (y, y), (x, y)))
  return float((kxx.sum() - np.trace(kxx)) / (m * (m - 1))
               + (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
               - 2 * kxy.sum() / m ** 2)


def test_kid_matches_numpy_unbiased_estimator():
  rng = np.random.default_rng(4)
  # A subset as large as both sets is a permutation of each, and the estimator
  # does not depend on row order: every subset gives the full-set value, and
  # there is no spread to report.
  x = rng.normal(size=(60, 8)).astype(np.float32)
  y = (rng.normal(size=(60, 8)) * 1.5 + 0.3).astype(np.float32)
  mean, std = metrics.kernel_inception_distance(
      x, y, jax.random.key(0), num_subsets=3, subset_size=1000)  # capped at 60
  np.testing.assert_allclose(mean, mmd2_unbiased_reference(x, y), rtol=1e-4)
  assert np.isnan(std)


@pytest.mark.parametrize('n, size', [(3000, 1000), (2000, 1000), (1000, 500),
                                     (60, 30), (5, 2)])
def test_kid_subsets_follow_n_so_that_their_spread_is_one(n, size):
  """min(1000, N // 2) rows a subset: two subsets of a set differ (a std of
  distinct subsets, not of one set reshuffled); at N = 2 and 3, too few."""
  rng = np.random.default_rng(6)
  x = rng.normal(size=(n, 4)).astype(np.float32)
  y = rng.normal(size=(n + 7, 4)).astype(np.float32)
  mean, std = metrics.kernel_inception_distance(x, y, jax.random.key(2),
                                                num_subsets=4)
  one = metrics.kernel_inception_distance(x, y, jax.random.key(2), num_subsets=4,
                                          subset_size=size)
  np.testing.assert_allclose((mean, std), one, rtol=1e-6)
  assert np.isfinite(std) and float(std) > 0
  _, std = metrics.kernel_inception_distance(x[:2], y[:2], jax.random.key(2))
  assert np.isnan(std)


def test_inception_score_splits_follow_n():
  rng = np.random.default_rng(7)
  logits = rng.normal(size=(12, 1008)).astype(np.float32) * 3
  mean, std = metrics.inception_score(logits)  # 6 splits of 2 rows
  parts = [float(metrics.classifier_score(jax.nn.softmax(p, axis=-1)))
           for p in np.split(logits, 6)]
  np.testing.assert_allclose((mean, std), (np.mean(parts), np.std(parts)), rtol=1e-5)
  mean, std = metrics.inception_score(logits[:3])  # one part: no spread
  assert mean > 1 and np.isnan(std)


def test_kid_is_near_zero_for_one_distribution_and_positive_for_a_shift():
  rng = np.random.default_rng(5)
  d, n = 16, 1000
  x = rng.normal(size=(n, d)).astype(np.float32)
  same = rng.normal(size=(n, d)).astype(np.float32)
  shifted = same + np.float32(0.5)
  kwargs = dict(key=jax.random.key(1), num_subsets=20, subset_size=500)
  kid_same, _ = metrics.kernel_inception_distance(x, same, **kwargs)
  kid_shift, std_shift = metrics.kernel_inception_distance(x, shifted, **kwargs)
  assert float(kid_shift) > 10 * float(std_shift) > 0
  assert abs(float(kid_same)) < 0.02 * float(kid_shift)


# ---------------------------------------------- precision/recall, density/coverage


def prdc_reference(real, fake, k):
  """Brute-force float64 port of the two reference implementations.

  Radii: the (k+1)-th smallest distance of each row, self-distance included
  (both repositories). Precision/recall use <= (Kynkäänniemi et al.'s code);
  density/coverage use < (clovaai/generative-evaluation-prdc).
  """
  real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
  dist = lambda a, b: np.linalg.norm(a[:, None] - b[None], axis=-1)
  real_r = np.sort(dist(real, real), axis=1)[:, k]
  fake_r = np.sort(dist(fake, fake), axis=1)[:, k]
  d_rf = dist(real, fake)
  return {
      'precision': (d_rf <= real_r[:, None]).any(axis=0).mean(),
      'recall': (d_rf <= fake_r[None, :]).any(axis=1).mean(),
      'density': (d_rf < real_r[:, None]).sum(axis=0).mean() / k,
      'coverage': (d_rf.min(axis=1) < real_r).mean(),
  }


def prdc(real, fake, k, **kwargs):
  real, fake = np.asarray(real, np.float32), np.asarray(fake, np.float32)
  return {**metrics.precision_recall(real, fake, k=k, **kwargs),
          **metrics.density_coverage(real, fake, k=k, **kwargs)}


# A Golomb ruler: all pairwise distances differ, so no neighbour ties.
GOLOMB = np.array([[x, 0.0] for x in (0, 1, 4, 10, 12, 17)])


@pytest.mark.parametrize('k', [1, 2, 5])
def test_identical_sets_are_perfect(k):
  # Each fake point sits on a real one (distance 0 < radius): precision,
  # recall and coverage are 1. Density: real_i's ball strictly contains itself
  # and its k - 1 nearer neighbours (its k-th lies on the boundary), so the
  # double sum is k N and density = k N / (k N) = 1.
  got = prdc(GOLOMB, GOLOMB, k)
  for name in ('precision', 'recall', 'density', 'coverage'):
    assert float(got[name]) == pytest.approx(1.0), name


def test_far_away_fake_set_scores_zero():
  got = prdc(GOLOMB, GOLOMB + 1000.0, k=2)
  for name in ('precision', 'recall', 'density', 'coverage'):
    assert float(got[name]) == 0.0, name


UNIT_SQUARE = np.array([[0, 0], [1, 0], [0, 1], [1, 1]], np.float64)


def test_fake_set_on_half_of_the_real_clusters():
  # Real: two unit squares 100 apart. Fake: the points of the first square.
  # In a unit square each point has two neighbours at 1 and one at sqrt(2):
  # k = 2 gives radius 1, k = 3 gives radius sqrt(2), for real and fake sets.
  real = np.concatenate([UNIT_SQUARE, UNIT_SQUARE + [100.0, 0.0]])
  fake = UNIT_SQUARE
  # Precision: every fake point coincides with a real one -> 1.
  # Recall: the 4 real points of square 1 lie on fake points, square 2 is
  # 99+ away from any fake ball -> 4 / 8. Coverage: same 4 / 8.
  # Density, k = 2: a fake point is strictly inside only the ball of the real
  # point it sits on (its neighbours are at exactly the radius 1) -> 4 hits /
  # (2 * 4) = 0.5. k = 3: it is inside that ball and those of its two
  # neighbours at 1 < sqrt(2) -> 12 / (3 * 4) = 1.
  for k, density in ((2, 0.5), (3, 1.0)):
    got = prdc(real, fake, k)
    assert float(got['precision']) == 1.0
    assert float(got['recall']) == 0.5
    assert float(got['coverage']) == 0.5
    assert float(got['density']) == pytest.approx(density)


def test_ball_boundaries_follow_the_reference_codes():
  # Real: a unit square (k = 2: radii 1). Fake: 4 points of a unit square
  # shifted by (1, 0), so fake (1, 0) and (1, 1) sit on real points, and fake
  # (2, 0), (2, 1) are at distance exactly 1 from real (1, 0), (1, 1).
  real, fake = UNIT_SQUARE, UNIT_SQUARE + [1.0, 0.0]
  got = prdc(real, fake, k=2)
  # Precision (<=): all 4 fake points are within radius 1 of a real point.
  assert float(got['precision']) == 1.0
  # Recall (<=, fake radii 1): real (1, *) sit on fakes, real (0, *) are at 1.
  assert float(got['recall']) == 1.0
  # Density (<): only the two coincident pairs count -> 2 / (2 * 4).
  assert float(got['density']) == pytest.approx(0.25)
  # Coverage (<): real (1, *) have a fake at distance 0; real (0, *) only at 1.
  assert float(got['coverage']) == 0.5


def test_prdc_match_bruteforce_reference_with_uneven_chunks():
  rng = np.random.default_rng(6)
  real = rng.normal(size=(50, 4)) + 10.0
  fake = rng.normal(size=(37, 4)) * 1.3 + 10.5
  real32, fake32 = real.astype(np.float32), fake.astype(np.float32)
  # 50 = 3 * 16 + 2 and 37 = 2 * 16 + 5 rows: full chunks and remainders.
  got = {**metrics.precision_recall(real32, fake32, chunk_size=16),    # k = 3
         **metrics.density_coverage(real32, fake32, chunk_size=16)}    # k = 5
  want = {**{n: v for n, v in prdc_reference(real, fake, 3).items()
             if n in ('precision', 'recall')},
          **{n: v for n, v in prdc_reference(real, fake, 5).items()
             if n in ('density', 'coverage')}}
  for name, value in want.items():
    np.testing.assert_allclose(got[name], value, rtol=1e-6, err_msg=name)


def test_k_must_leave_a_neighbour():
  with pytest.raises(ValueError, match='k must be'):
    metrics.precision_recall(GOLOMB, GOLOMB, k=6)


# ----------------------------------------------------------- classifier score


def test_classifier_score_extremes():
  rng = np.random.default_rng(7)
  c = 10
  confident_uniform = np.eye(c)[np.arange(5 * c) % c]
  np.testing.assert_allclose(metrics.classifier_score(confident_uniform), c,
                             rtol=1e-6)
  identical = np.tile(rng.dirichlet(np.ones(c)), (40, 1))
  np.testing.assert_allclose(metrics.classifier_score(identical), 1.0, rtol=1e-6)


def test_top_class_share_is_the_most_frequent_argmax_share():
  probs = np.eye(10)[[3, 3, 3, 1, 2, 3, 0, 9]] * 0.9 + 0.01  # 4 of 8 are 3s
  np.testing.assert_allclose(metrics.top_class_share(probs), 0.5)
  np.testing.assert_allclose(metrics.top_class_share(np.eye(10)[np.arange(50) % 10]), 0.1)


def test_classifier_score_matches_numpy():
  rng = np.random.default_rng(8)
  probs = rng.dirichlet(np.full(7, 0.3), size=200)
  probs[:5] = np.eye(7)[:5]  # exact zeros: no log(0)
  marginal = probs.mean(0)
  with np.errstate(divide='ignore', invalid='ignore'):
    terms = np.where(probs > 0, probs * np.log(probs / marginal), 0.0)
  want = np.exp(terms.sum(1).mean())
  got = metrics.classifier_score(probs.astype(np.float32))
  assert np.isfinite(float(got))
  np.testing.assert_allclose(got, want, rtol=1e-5)


# --------------------------------------------------------------- mode metrics


RING8 = np.array([[math.cos(2 * math.pi * i / 8), math.sin(2 * math.pi * i / 8)]
                  for i in range(8)])
RING8_STD = 0.01


def pacgan_metric_logger(samples, means, std):
  """PacGAN's MetricLogger loop (fjxmlzn/PacGAN, pacgan/extensions.py), float64.

  Nearest mode by Mahalanobis distance, high quality if < 3, then
  JSD().KLD(p, uniform) of the high-quality histogram.
  """
  counts = np.zeros(len(means))
  for x in samples:
    dis = [math.sqrt(np.sum((x - mu) ** 2 / std ** 2)) for mu in means]
    j = int(np.argmin(dis))
    if dis[j] < 3:
      counts[j] += 1
  p = counts / counts.sum()
  q = 1.0 / len(means)
  kl = sum(pi * math.log(pi / q) for pi in p if pi != 0)
  return len(np.nonzero(counts)[0]), counts.sum() / len(samples), kl


def test_all_modes_hit_exactly():
  got = metrics.mode_coverage(np.repeat(RING8, 3, axis=0), RING8, RING8_STD)
  assert int(got['modes']) == 8
  assert float(got['high_quality']) == 1.0
  assert abs(float(got['reverse_kl'])) < 1e-6


def test_all_samples_on_one_mode():
  rng = np.random.default_rng(9)
  samples = RING8[2] + rng.uniform(-0.5, 0.5, size=(50, 2)) * RING8_STD
  got = metrics.mode_coverage(samples, RING8, RING8_STD)
  assert int(got['modes']) == 1
  assert float(got['high_quality']) == 1.0
  np.testing.assert_allclose(got['reverse_kl'], math.log(8), rtol=1e-6)


def test_samples_beyond_three_std_are_low_quality_and_capture_nothing():
  s = RING8_STD
  samples = np.array([
      RING8[0], RING8[0],          # on mode 0
      RING8[1] + [2.9 * s, 0.0],   # 2.9 std from mode 1: high quality
      RING8[2] + [0.0, 3.5 * s],   # 3.5 std from mode 2: not
      RING8[3] + [2.5 * s, 2.5 * s],  # 3.54 std from mode 3 in the plane: not
      [0.0, 0.0],                  # between modes: not
  ])
  got = metrics.mode_coverage(samples, RING8, s)
  assert int(got['modes']) == 2
  np.testing.assert_allclose(got['high_quality'], 3 / 6, rtol=1e-6)
  # p = (2/3, 1/3, 0, ...): KL = 2/3 log(8 * 2/3) + 1/3 log(8 * 1/3).
  want = 2 / 3 * math.log(16 / 3) + 1 / 3 * math.log(8 / 3)
  np.testing.assert_allclose(got['reverse_kl'], want, rtol=1e-5)


def test_no_high_quality_sample_gives_nan_kl():
  got = metrics.mode_coverage(np.zeros((4, 2)), RING8, RING8_STD)
  assert int(got['modes']) == 0 and float(got['high_quality']) == 0.0
  assert math.isnan(float(got['reverse_kl']))


def test_mode_coverage_matches_pacgan_code_on_grid25():
  rng = np.random.default_rng(10)
  grid = np.array(list(itertools.product(range(-4, 5, 2), repeat=2)), np.float64)
  std = 0.05
  # A partly collapsed generator: 10 of 25 modes, unequal weights, wide noise.
  weights = rng.uniform(0.2, 1.0, size=10)
  centres = grid[rng.choice(10, size=300, p=weights / weights.sum())]
  samples = centres + rng.normal(size=(300, 2)) * std * rng.uniform(0.5, 2.5, (300, 1))
  modes, hq, kl = pacgan_metric_logger(samples, grid, std)
  got = metrics.mode_coverage(samples.astype(np.float32), grid, std, chunk_size=64)
  assert int(got['modes']) == modes
  np.testing.assert_allclose(got['high_quality'], hq, rtol=1e-6)
  np.testing.assert_allclose(got['reverse_kl'], kl, rtol=1e-5)


# -------------------------------------------------------------- stacked MNIST


def test_stacked_mnist_every_triple_once():
  digits = np.array(list(itertools.product(range(10), repeat=3)))
  got = metrics.stacked_mnist_modes(digits)
  assert int(got['modes']) == 1000
  assert abs(float(got['kl'])) < 1e-5


def test_stacked_mnist_hand_made():
  got = metrics.stacked_mnist_modes(np.array([[7, 7, 7]] * 5))
  assert int(got['modes']) == 1
  np.testing.assert_allclose(got['kl'], math.log(1000), rtol=1e-6)
  # (1, 2, 3) three times, (3, 2, 1) once: channel order matters, 2 modes,
  # p = (3/4, 1/4): KL = 3/4 log(750) + 1/4 log(250).
  got = metrics.stacked_mnist_modes(np.array([[1, 2, 3]] * 3 + [[3, 2, 1]]))
  assert int(got['modes']) == 2
  want = 0.75 * math.log(750) + 0.25 * math.log(250)
  np.testing.assert_allclose(got['kl'], want, rtol=1e-6)
