"""Evaluators: sample-quality figures of a generator, picked by `config.eval.evaluators`.

EVALUATORS maps each name to its spec: how it is built, the datasets it
applies to, a summary and the figures it writes. `classifier` scores in the
feature space of the project's LeNet (gan_jax.classifier), hence the `_lenet`
in its names; `inception` in the pool3 space of the FID Inception-v3
(gan_jax.inception), the figures papers report, with N and the weights' hash
in results.json's `metrics_about` (FID is biased by N: Chong & Forsyth 2020).

`build` checks the evaluators against the data, loads what they need (the
classifier, the real reference set) and returns one function, samples ->
flat dict of figures. It runs during training every `train.eval_every` steps
and at the end (TensorBoard `eval/<name>`, `results.json` `metrics`), and in
`python -m gan_jax.evaluate`.

Each image evaluator also reports the same figures for held-out REAL data
(`real_<name>`): what a perfect generator would score with as many samples,
the floor (or ceiling) that makes a figure mean something. They are computed
once per dataset, network and sample count and cached (floors.json) in the
classifier's directory or in eval.inception_cache, beside the real Inception
statistics.
"""

from collections.abc import Callable, Sequence
import dataclasses
import hashlib
import json
import os

from absl import logging
import jax
import ml_collections
import numpy as np

from gan_jax import classifier
from gan_jax import data
from gan_jax import files
from gan_jax import inception
from gan_jax import metrics
from gan_jax import registry
from gan_jax.errors import UserError

FLOORS_FILE = 'floors.json'
SUBSET_SEED = 0  # which real images form the reference and held-out sets



@dataclasses.dataclass(frozen=True)
class Scorer:
  """A built evaluator: the figures of generated samples, and what a reader
  needs beside them (the inception evaluator's N, weights and reference set),
  which results.json records under `metrics_about`. Called as `score`."""

  score: Callable[[np.ndarray], dict[str, float]]
  about: dict = dataclasses.field(default_factory=dict)

  def __call__(self, samples: np.ndarray) -> dict[str, float]:
    return self.score(samples)


@dataclasses.dataclass(frozen=True)
class Evaluator:
  """What the code knows of one evaluator: an entry of EVALUATORS.

  Attributes:
    build: (config, data.DataSource) -> Scorer; loads what the scorer needs.
    datasets: the data.name values it applies to.
    summary: one line for the docs: what it measures, and its paper.
    figures: the names of the figures its scorer returns.
  """
  build: Callable[..., Scorer]
  datasets: tuple[str, ...]
  summary: str
  figures: tuple[str, ...]


def parse(spec: str) -> tuple[str, ...]:
  """'modes, x' -> ('modes', 'x'); '' -> ()."""
  return tuple(name.strip() for name in spec.split(',') if name.strip())


def build(names: tuple[str, ...], config, source: data.DataSource) -> Scorer:
  """One Scorer: generated samples (float32, as `gan.generate_samples`
  returns them) -> the figures of every evaluator in `names`, with the
  `about` of each.

  Raises:
    UserError: an unknown evaluator, one that does not fit `source`, or a
      missing classifier (the message says how to train it).
  """
  applies = [name for name, spec in EVALUATORS.items()
             if source.name in spec.datasets]
  for name in names:
    registry.lookup(EVALUATORS, 'eval.evaluators', name, among=applies,
                    context=f'data.name={source.name!r}')
  scorers = [EVALUATORS[name].build(config, source) for name in names]

  def score(samples: np.ndarray) -> dict[str, float]:
    scores = {}
    for scorer in scorers:
      scores.update(scorer(samples))
    return scores

  about = {}
  for scorer in scorers:
    about.update(scorer.about)
  return Scorer(score, about)


# ----------------------------------------------------------------- modes


def _modes(config, source: data.DataSource) -> Scorer:
  """PacGAN's protocol (Lin et al. 2018): modes captured, high-quality
  fraction (within 3 std of the nearest mode), reverse KL to uniform."""
  del config  # Unused.

  def score(samples):
    scores = metrics.mode_coverage(samples, source.modes, source.mode_std)
    return {'modes': int(scores['modes']),
            'high_quality': float(scores['high_quality']),
            'reverse_kl': float(scores['reverse_kl'])}

  return Scorer(score)


# ----------------------------------------------------------------- images


def _classifier_directory(config, dataset_name: str) -> str:
  return (config.eval.get('classifier_dir', '')
          or classifier.default_directory(dataset_name))


def classifier_about(net: classifier.Classifier, directory: str) -> dict:
  """Which classifier measured a run's figures, for results.json's
  `metrics_about`: its directory, a digest of its weights (the same training
  on another CPU need not give the same ones), its held-out accuracy and the
  digits it was trained on."""
  flat = {jax.tree_util.keystr(path): np.asarray(leaf)
          for path, leaf in jax.tree_util.tree_leaves_with_path(net.params)}
  return {'directory': directory, 'weights_hash': inception.weights_hash(flat),
          **{key: net.info.get(key) for key in (
              'test_accuracy', 'train_size', 'test_size', 'description')}}


IMAGE_FIGURES = ('fid_lenet', 'kid_lenet', 'kid_lenet_std', 'precision', 'recall',
                 'density', 'coverage', 'score_lenet', 'top_class_share')


def neighbour_figures(real_feats: np.ndarray, feats: np.ndarray,
                      pr_k: int = 3, dc_k: int = 5) -> dict[str, float]:
  """Improved precision/recall (k = pr_k; Kynkäänniemi et al. 2019) and
  density/coverage (k = dc_k; Naeem et al. 2020); NaN (null in results)
  where a set has no k-th neighbour to measure with (N <= k)."""
  n = min(len(real_feats), len(feats))
  figures = {}
  for k, fn, names in ((pr_k, metrics.precision_recall, ('precision', 'recall')),
                       (dc_k, metrics.density_coverage, ('density', 'coverage'))):
    if n > k:
      figures.update({name: float(v) for name, v in fn(real_feats, feats, k=k).items()})
    else:
      figures.update(dict.fromkeys(names, float('nan')))
  return figures


def image_figures(real_feats: np.ndarray, feats: np.ndarray,
                  probs: np.ndarray) -> dict[str, float]:
  """The classifier evaluator's figures (IMAGE_FIGURES) of one feature set
  against the reference features `real_feats` (same size)."""
  kid_mean, kid_std = metrics.kernel_inception_distance(
      real_feats, feats, jax.random.key(SUBSET_SEED))
  return {
      'fid_lenet': float(metrics.frechet_distance_from_features(real_feats, feats)),
      'kid_lenet': float(kid_mean), 'kid_lenet_std': float(kid_std),
      **neighbour_figures(real_feats, feats),
      'score_lenet': float(metrics.classifier_score(probs)),
      'top_class_share': float(metrics.top_class_share(probs)),
  }


def _subset(images: np.ndarray, size: int) -> np.ndarray:
  """`size` images picked at random (fixed seed) without replacement."""
  order = np.random.default_rng(SUBSET_SEED).permutation(len(images))
  return images[np.sort(order[:size])]


@dataclasses.dataclass(frozen=True)
class _Reference:
  """Real features against which generated ones are compared."""
  feats: np.ndarray  # [n, 128], n train images
  floor: dict[str, float]  # held-out real images' figures (real_<name>)


def _cached_floor(directory: str, key: str, compute: Callable[[], dict],
                  figures: Sequence[str] = ()) -> dict:
  """compute() once per key, kept in directory/floors.json (again when the
  kept one lacks one of `figures`, a figure added since)."""
  path = os.path.join(directory, FLOORS_FILE)
  floors = files.read_json(path, instead='computing the floors again') or {}
  if key not in floors or not set(figures) <= set(floors[key]):
    floors[key] = compute()
    if jax.process_index() == 0:
      try:
        files.write_json(path, floors)
      except OSError as e:
        logging.warning('cannot keep the floors in %s (%s); they are computed'
                        ' again next time', path, e.strerror)
  return floors[key]


_REFERENCES = {}  # per process: (data, directory, num_samples) -> reference


def _image_reference(config, directory: str):
  """(classifier, n, _Reference) of config's labeled dataset; made once per
  process and data/classifier/sample count."""
  data_key = json.dumps({k: config.data[k] for k in (
      'name', 'source', 'path', 'tfds_data_dir')}, sort_keys=True)
  cache_key = (data_key, directory, config.eval.num_samples)
  if cache_key not in _REFERENCES:
    net = classifier.load(directory, config.data.name)
    labeled = data.load_labeled(config.data)
    n = min(config.eval.num_samples, len(labeled.train_images),
            len(labeled.test_images))
    real_feats, _ = net.features_and_probs(
        data.scale_pixels(_subset(labeled.train_images, n)))

    def floor():
      feats, probs = net.features_and_probs(
          data.scale_pixels(_subset(labeled.test_images, n)))
      return image_figures(real_feats, feats, probs)

    key = f'classifier | {labeled.description} | n={n}'
    _REFERENCES[cache_key] = (
        net, n, _Reference(real_feats, _cached_floor(directory, key, floor,
                                                     IMAGE_FIGURES)))
  return _REFERENCES[cache_key]


def _classifier(config, source: data.DataSource) -> Scorer:
  """Feature-space figures against `n` = min(eval.num_samples, train split,
  test split) real training images; the first `n` generated samples count.
  """
  directory = _classifier_directory(config, source.name)
  net, n, reference = _image_reference(config, directory)

  def score(samples):
    if len(samples) < n:
      raise UserError(f'the classifier evaluator needs {n} samples, got'
                      f' {len(samples)}; raise eval.num_samples')
    feats, probs = net.features_and_probs(samples[:n])
    return {**image_figures(reference.feats, feats, probs),
            **{f'real_{k}': v for k, v in reference.floor.items()}}

  return Scorer(score, about={'classifier': classifier_about(net, directory)})


# ----------------------------------------------------------------- inception


INCEPTION_FIGURES = ('fid', 'kid', 'kid_std', 'precision_inception',
                     'recall_inception', 'density_inception',
                     'coverage_inception', 'is', 'is_std')


def inception_figures(real_gaussian: tuple[np.ndarray, np.ndarray],
                      real_feats: np.ndarray, feats: np.ndarray,
                      logits: np.ndarray | None) -> dict[str, float]:
  """FID (float64), KID, precision/recall (k = 3), density/coverage (k = 5)
  of Inception features `feats` against the real ones, and IS (10 splits)
  when there are logits: INCEPTION_FIGURES."""
  kid_mean, kid_std = metrics.kernel_inception_distance(
      real_feats, feats, jax.random.key(SUBSET_SEED))
  figures = {
      'fid': metrics.frechet_distance64(real_gaussian,
                                        metrics.gaussian_factor64(feats)),
      'kid': float(kid_mean), 'kid_std': float(kid_std),
      **{f'{k}_inception': v
         for k, v in neighbour_figures(real_feats, feats).items()},
  }
  if logits is not None:
    figures['is'], figures['is_std'] = metrics.inception_score(logits)
  return figures


def _inception_cache(config) -> str:
  return config.eval.get('inception_cache', '') or inception.reference_directory()


def _inception_reference(config, weights: inception.Weights):
  """(n, what the reference is, real (mu, F), real features, floor) of
  config's dataset: `n` = min(eval.num_samples, train split, test split)
  training images are the reference, and as many test images give the
  floor; with eval.reference_subset, n of those images are the reference
  and n of the images the run trains on give the floor. Computed once per
  dataset, sample count and weights hash, then cached on disk
  (eval.inception_cache) and in the process."""
  held_out = data.parse_subset(config.eval.get('reference_subset', ''),
                               'eval.reference_subset')
  if held_out is not None:  # the floor: the images trained on
    reference, other, description = _held_out_sets(config, held_out)
  else:  # the floor: as many test images
    labeled = data.load_labeled(config.data)
    reference, other = labeled.train_images, labeled.test_images
    description = labeled.description
  n = min(config.eval.num_samples, len(reference), len(other))
  about = (f'{n} {description}' if held_out is not None
           else f'{n} training images of {description}')
  key = f'inception {weights.hash} | {description} | n={n}'
  if key in _REFERENCES:
    return _REFERENCES[key]
  directory = _inception_cache(config)
  path = os.path.join(directory, hashlib.sha256(key.encode()).hexdigest()[:16]
                      + '.npz')
  cached = files.read_npz(path, ('feats', 'mu', 'sigma'),
                          instead='computing the real features again')
  if cached is not None:
    feats, mu, sigma = cached['feats'], cached['mu'], cached['sigma']
  else:
    feats, _ = inception.features(weights, _subset(reference, n))
    mu, sigma = metrics.gaussian_statistics64(feats)
    if jax.process_index() == 0:
      files.cache_npz(path, {'feats': feats, 'mu': mu, 'sigma': sigma,
                             'key': np.asarray(key)})

  gaussian = metrics.gaussian_factor64(feats, sigma)

  def floor():
    other_feats, logits = inception.features(weights, _subset(other, n))
    return inception_figures(gaussian, feats, other_feats, logits)

  _REFERENCES[key] = (n, about, gaussian, feats,
                      _cached_floor(directory, key, floor))
  return _REFERENCES[key]


def _held_out_sets(config, held_out: slice) -> tuple[np.ndarray, np.ndarray, str]:
  """(the reference: images `held_out` of the data, data.subset aside; the
  images the run trains on; a description) for eval.reference_subset.

  Raises:
    UserError: the two overlap (a generator that memorised its training
      images would then score near the floor of identical sets).
  """
  whole = ml_collections.ConfigDict(config.data.to_dict())
  whole.subset = ''
  everything = data.load(whole, pipeline='device')
  count = len(everything.arrays['images'])
  reference = data.take_subset(count, held_out, everything.description,
                               'eval.reference_subset')
  trained = data.take_subset(count, data.parse_subset(
      config.data.get('subset', '')), everything.description)
  if set(reference) & set(trained):
    subset = config.data.get('subset', '') or "'' (all)"
    raise UserError(
        f'eval.reference_subset={config.eval.reference_subset} overlaps the'
        f' images the run trains on (data.subset={subset}); hold out images'
        f' it does not train on, e.g. data.subset=0:{count // 2} and'
        f' eval.reference_subset={count // 2}:')
  images = everything.arrays['images']
  return (images[reference.start:reference.stop],
          images[trained.start:trained.stop],
          f'images {reference.start}:{reference.stop} of {everything.description},'
          f' against the {len(trained)} trained on')


def _inception(config, source: data.DataSource) -> Scorer:
  """Inception-space figures (gan_jax.inception) against `n` real training
  images; the first `n` generated samples count. The Scorer's `about` records N,
  the weights' hash and the reference set."""
  del source  # The data config names the real images.
  weights = inception.load(config.eval.get('inception', ''))
  n, reference, gaussian, feats, floor = _inception_reference(config, weights)

  def score(samples):
    if len(samples) < n:
      raise UserError(f'the inception evaluator needs {n} samples, got'
                      f' {len(samples)}; raise eval.num_samples')
    fake, logits = inception.features(weights, samples[:n])
    return {**inception_figures(gaussian, feats, fake, logits),
            **{f'real_{k}': v for k, v in floor.items()}}

  return Scorer(score, about={'inception': {
      'n': n, 'weights_hash': weights.hash, 'weights': weights.source,
      'reference': reference}})


# ----------------------------------------------------------------- stacked


def stacked_digits(net: classifier.Classifier, images: np.ndarray) -> np.ndarray:
  """[N, 28, 28, 3] images in [-1, 1] -> [N, 3] digits, one per channel."""
  channels = np.moveaxis(np.asarray(images, np.float32), -1, 1)  # [N, 3, 28, 28]
  _, probs = net.features_and_probs(channels.reshape(-1, 28, 28, 1))
  return probs.argmax(-1).reshape(-1, 3)


def _triples(net, images) -> dict[str, float]:
  scores = metrics.stacked_mnist_modes(stacked_digits(net, images))
  return {'modes': int(scores['modes']), 'reverse_kl': float(scores['kl'])}


def _stacked_floor(source: data.DataSource, directory: str, num_samples: int):
  """(classifier, floor figures) of `num_samples` real stacked digits."""
  net = classifier.load(directory, 'mnist')

  def floor():
    keys = jax.random.split(jax.random.key(SUBSET_SEED), num_samples)
    real = jax.jit(jax.vmap(source.sample_one, (None, 0)))(source.arrays, keys)
    return _triples(net, np.asarray(real))

  key = f'stacked_mnist | {source.description} | n={num_samples}'
  return net, _cached_floor(directory, key, floor)


def _stacked_mnist(config, source: data.DataSource) -> Scorer:
  """VEEGAN/PacGAN's Stacked MNIST protocol (26,000 samples in their
  papers: set eval.num_samples): each channel classified by the MNIST
  classifier; distinct digit triples (modes, of 1,000) and
  KL(triple histogram || uniform)."""
  directory = _classifier_directory(config, 'mnist')
  net, floor = _stacked_floor(source, directory, config.eval.num_samples)

  def score(samples):
    return {**_triples(net, samples),
            **{f'real_{k}': v for k, v in floor.items()}}

  return Scorer(score, about={'stacked_mnist': classifier_about(net, directory)})


# ----------------------------------------------------------------- registry


def _mixtures() -> tuple[str, ...]:
  """The toys with discrete modes, which PacGAN's protocol counts."""
  return tuple(name for name, d in data.DATASETS.items()
               if d.toy is not None and d.toy(name).modes is not None)


EVALUATORS: dict[str, Evaluator] = {
    'modes': Evaluator(
        build=_modes, datasets=_mixtures(),
        summary=('modes captured, high-quality fraction (within 3 std of a'
                 ' mode) and reverse KL to uniform (Lin et al. 2018, PacGAN)'),
        figures=('modes', 'high_quality', 'reverse_kl')),
    'classifier': Evaluator(
        build=_classifier, datasets=data.LABELED_NAMES,
        summary=('"FID" (Heusel et al. 2017), KID (Bińkowski et al. 2018),'
                 ' precision/recall (Kynkäänniemi et al. 2019),'
                 ' density/coverage (Naeem et al. 2020) and the Inception-Score'
                 ' analogue (Salimans et al. 2016) in LeNet feature space'),
        figures=(*IMAGE_FIGURES, *(f'real_{name}' for name in IMAGE_FIGURES))),
    'inception': Evaluator(
        build=_inception, datasets=data.LABELED_NAMES,
        summary=('FID (Heusel et al. 2017), KID (Bińkowski et al. 2018),'
                 ' precision/recall (k = 3; Kynkäänniemi et al. 2019),'
                 ' density/coverage (k = 5; Naeem et al. 2020) and, with'
                 ' logits, the Inception Score (Salimans et al. 2016) in the'
                 ' pool3 space of the FID Inception-v3 (gan_jax.inception)'),
        figures=(*INCEPTION_FIGURES, *(f'real_{k}' for k in INCEPTION_FIGURES))),
    'stacked_mnist': Evaluator(
        build=_stacked_mnist, datasets=('stacked_mnist',),
        summary=('each channel classified by the MNIST LeNet: digit triples'
                 ' captured (of 1,000) and reverse KL to uniform'
                 ' (Srivastava et al. 2017, VEEGAN; Lin et al. 2018, PacGAN)'),
        figures=('modes', 'reverse_kl', 'real_modes', 'real_reverse_kl')),
}
