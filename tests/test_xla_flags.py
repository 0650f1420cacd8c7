"""The XLA:CPU flags runtime.setup() sets before JAX starts."""

import os
import subprocess
import sys

import pytest

from gan_jax import xla_flags

FLAG = xla_flags.CPU_FLAGS[0]
NAME = FLAG.split('=')[0]


def test_flags_are_added_for_a_known_jaxlib():
  assert xla_flags.with_cpu_flags('', (0, 10)) == FLAG
  assert xla_flags.with_cpu_flags('--xla_foo=1', (0, 10)) == f'--xla_foo=1 {FLAG}'


def test_a_flag_the_user_set_wins():
  mine = f'{NAME}=+eltwise'
  assert xla_flags.with_cpu_flags(mine, (0, 10)) == mine


def test_unknown_jaxlib_gets_no_flag():
  """An XLA without the flag would abort on it."""
  assert xla_flags.with_cpu_flags('--xla_foo=1', (0, 99)) == '--xla_foo=1'
  assert xla_flags.with_cpu_flags('', None) == ''


@pytest.mark.skipif(not xla_flags.jaxlib_is_known(),
                    reason='flag not set for this jaxlib')
def test_runtime_setup_takes_convolutions_off_ynnpack():
  """Compiled in a fresh process: the convolution is no YNNPACK fusion."""
  code = ('{}import jax, jax.numpy as jnp\n'
          'conv = lambda x, k: jax.lax.conv_general_dilated(x, k, (1, 1), "SAME",'
          ' dimension_numbers=("NHWC", "HWIO", "NHWC"))\n'
          'hlo = jax.jit(conv).lower(jnp.ones((2, 7, 7, 64)),'
          ' jnp.ones((5, 5, 64, 32))).compile().as_text()\n'
          'print("ynn" in hlo)\n')
  env = {k: v for k, v in os.environ.items() if k != 'XLA_FLAGS'}

  def uses_ynnpack(prelude: str) -> str:
    return subprocess.run([sys.executable, '-c', code.format(prelude)],
                          capture_output=True, text=True, env=env,
                          check=True).stdout.strip()

  assert uses_ynnpack('') == 'True'  # jaxlib's default, without gan_jax
  assert uses_ynnpack('import gan_jax\n') == 'True'  # importing changes nothing
  assert uses_ynnpack('from gan_jax import runtime\nruntime.setup()\n') == 'False'
