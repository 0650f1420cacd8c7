"""Writes generator samples of a run's latest checkpoint to a .npy file.

  python -m gan_jax.sample --workdir=runs/mnist --num=2500 --out=samples.npy

float32; images NHWC in [-1, 1], 2-D toys [N, 2] in data coordinates. The
same --seed and checkpoint give the same samples. Of a run of several seeds
(`config.num_seeds`) it samples member --seed_index, the run of seed
`config.seed + seed_index`; --seed is the latent noise's, whichever the member.
A run that averages its generator (optim.g_ema_decay > 0) is sampled from
the average; --raw_generator samples G itself.
"""

import io
import os

from absl import app
from absl import flags
import numpy as np

from gan_jax import cli
from gan_jax import files
from gan_jax import gan as gan_lib
from gan_jax import parallel
from gan_jax import registry
from gan_jax import runs
from gan_jax.errors import UserError

_WORKDIR = flags.DEFINE_string('workdir', None, 'A run directory of gan_jax.main.')
_NUM = flags.DEFINE_integer('num', None, 'How many samples.')
_OUT = flags.DEFINE_string('out', None, 'Output .npy file.')
_SEED = flags.DEFINE_integer('seed', 0, 'Seed of the latent noise.')
_SEED_INDEX = flags.DEFINE_integer(
    'seed_index', 0, 'Which member of a run of several seeds (config.num_seeds),'
    ' 0 to num_seeds - 1.')
_RAW = cli.raw_generator_flag()
flags.mark_flags_as_required(['workdir', 'num', 'out'])


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {" ".join(argv[1:])}')
  registry.check_value('--num', _NUM.value, registry.POSITIVE)
  out = _OUT.value
  if not out.endswith('.npy'):
    raise UserError(f'--out={out} must name a .npy file')
  files.check_writable_file(out, '--out')
  gan, state, seed = runs.restore_member(_WORKDIR.value, _SEED_INDEX.value)
  samples = gan_lib.generate_samples(gan, state, _NUM.value, _SEED.value,
                                   raw=_RAW())
  try:
    files.makedirs(os.path.dirname(files.abspath(out)))
    buffer = io.BytesIO()
    np.save(buffer, samples)
    files.write_bytes(out, buffer.getvalue())
  except OSError as e:
    raise UserError(f'cannot write --out={out}: {e.strerror}') from None
  print(f'wrote {samples.shape[0]} samples of shape {samples.shape[1:]} to'
        f' {_OUT.value} (checkpoint step {int(parallel.fetch(state.step))},'
        f' member {_SEED_INDEX.value}: seed {seed}; generator:'
        f' {gan_lib.samples_from(gan, _RAW())})')


if __name__ == '__main__':
  cli.run(main)
