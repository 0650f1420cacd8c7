"""XLA:CPU flags gan_jax sets before JAX starts (through `runtime.setup()`).

jaxlib 0.10 hands convolutions to YNNPACK by default. On this project's CPU
benchmark (benchmarks/README.md) that path made the DCGAN step about 1.4x
slower than XLA's other convolution path, mostly through the kernel
gradients of the generator's 5x5 convolutions. `CPU_FLAGS` turns it off for
convolutions only; matrix products keep YNNPACK. The flag is read by the CPU
backend alone, and only from jaxlib versions known to have it (an unknown
flag in XLA_FLAGS aborts the process). A flag the user already set in
XLA_FLAGS wins.
"""

import importlib.metadata
import os

CPU_FLAGS = ('--xla_cpu_experimental_ynn_fusion_type=-individual_convolution',)
# jaxlib (major, minor) versions whose XLA has every flag of CPU_FLAGS.
KNOWN_JAXLIB = ((0, 10),)


def _jaxlib_version() -> tuple[int, int] | None:
  try:
    major, minor = importlib.metadata.version('jaxlib').split('.')[:2]
    return int(major), int(minor)
  except (importlib.metadata.PackageNotFoundError, ValueError):
    return None


def jaxlib_is_known() -> bool:
  """Whether the installed jaxlib is one of KNOWN_JAXLIB."""
  return _jaxlib_version() in KNOWN_JAXLIB


def with_cpu_flags(xla_flags: str, jaxlib_version: tuple[int, int] | None
                   ) -> str:
  """`xla_flags` plus each of CPU_FLAGS whose name it does not set already,
  for a known jaxlib version; unchanged otherwise."""
  if jaxlib_version not in KNOWN_JAXLIB:
    return xla_flags
  for flag in CPU_FLAGS:
    name = flag.split('=', 1)[0]
    if name not in xla_flags:
      xla_flags = f'{xla_flags} {flag}'.strip()
  return xla_flags


def set_cpu_flags() -> list[str]:
  """Adds CPU_FLAGS to the XLA_FLAGS environment variable (effective if JAX's
  backends have not started yet); returns the flags it added."""
  before = os.environ.get('XLA_FLAGS', '')
  after = with_cpu_flags(before, _jaxlib_version())
  if after != before:
    os.environ['XLA_FLAGS'] = after
  return after[len(before):].split()  # with_cpu_flags only appends
