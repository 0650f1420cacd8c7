"""Writes docs/reference.md from the code: config keys, registries, exit codes.

  python -m gan_jax.components          # the reference, to stdout
  python -m gan_jax.components --write  # replaces docs/reference.md

Every table is derived from the code (the config schema `configs.fields()`,
each registry of gan_jax/registry.py, `cli.EXIT_STATUSES`, the commands'
docstrings), so the names and defaults a user reads are those the code
accepts; a test checks that docs/reference.md is current.
"""

import argparse
import ast
import importlib.util
import inspect
import os
import sys

REFERENCE = os.path.join('docs', 'reference.md')

# The commands, as `python -m` runs them.
COMMANDS = ('gan_jax.main', 'gan_jax.sample', 'gan_jax.evaluate', 'gan_jax.fid',
            'gan_jax.sweep', 'gan_jax.bench', 'gan_jax.classifier',
            'gan_jax.inception', 'gan_jax.report', 'gan_jax.components')

_CHECKS = {'> 0': '> 0', '>= 0': '≥ 0', 'in [0, 1)': '[0, 1)'}


def _first_paragraph(obj) -> str:
  return ' '.join(inspect.getdoc(obj).split('\n\n')[0].split())


def _row(*cells) -> str:
  return '| ' + ' | '.join(str(cell).replace('|', '\\|') for cell in cells) + ' |'


def _table(header: tuple[str, ...], rows: list[tuple]) -> str:
  return '\n'.join([_row(*header), _row(*('---' for _ in header)),
                    *(_row(*row) for row in rows)])


def _command_summary(module: str) -> str:
  """The first line of a command's docstring, read without running it (its
  absl flags would clash with another command's)."""
  spec = importlib.util.find_spec(module)
  path = (os.path.join(os.path.dirname(spec.origin), '__main__.py')
          if spec.submodule_search_locations else spec.origin)
  with open(path) as f:
    return ast.get_docstring(ast.parse(f.read())).split('\n\n')[0].replace(
        '\n', ' ')


def _model_key(key: str, specs) -> str | None:
  """Which models a `model.` key of theirs belongs to (each says what it is
  for itself, in the models table), None for the others."""
  owners = [f'`{name}`' for name, spec in specs.items()
            if key.removeprefix('model.') in spec.fields]
  return f'a key of {", ".join(owners)}: see Models' if owners else None


def _valid(check) -> str:
  if check is None:
    return ''
  if isinstance(check, tuple):
    return ', '.join(f'`{v}`' for v in check)
  return _CHECKS[check]


def tables() -> dict[str, str]:
  """Markdown table per section of the reference."""
  # The registries import JAX: not at import time.
  from gan_jax import cli  # noqa: PLC0415
  from gan_jax import configs  # noqa: PLC0415
  from gan_jax import data  # noqa: PLC0415
  from gan_jax import evaluators  # noqa: PLC0415
  from gan_jax import losses  # noqa: PLC0415
  from gan_jax import models  # noqa: PLC0415
  from gan_jax import schedules  # noqa: PLC0415
  return {
      'config': _table(
          ('key', 'default', 'valid', 'what'),
          [(f'`{key}`', f'`{field.default!r}`', _valid(field.check),
            _model_key(key, models.MODELS) or field.doc)
           for key, field in configs.fields().items()]),
      'losses': _table(
          ('`loss.name`', 'losses', 'D steps', 'penalties'),
          [(f'`{name}`', loss.summary, loss.d_steps,
            ', '.join(f'`{p}`' for p in loss.penalties) or '-')
           for name, loss in losses.LOSSES.items()]),
      'penalties': _table(
          ('penalty', 'what', 'weight key (default)', 'applied'),
          [(f'`{name}`', p.summary, f'`loss.{p.weight_key}` ({p.default_weight})',
            'with the losses that list it' if p.with_its_loss_only
            else 'when its weight is > 0')
           for name, p in losses.PENALTIES.items()]),
      'models': _table(
          ('`model.name`', 'what', 'its keys (default): what'),
          [(f'`{name}`', spec.summary, '; '.join(
              f'`model.{k}` ({f.default!r}): {f.doc}' for k, f in spec.fields.items()))
           for name, spec in models.MODELS.items()]),
      'datasets': _table(
          ('`data.name`', 'what', 'shape', '`data.source`'),
          [(f'`{name}`', spec.summary,
            'x'.join(map(str, spec.example_shape or ())) or 'its files\'',
            ', '.join(spec.sources))
           for name, spec in data.DATASETS.items()]),
      'evaluators': _table(
          ('`eval.evaluators`', 'what', 'figures', 'data'),
          [(f'`{name}`', spec.summary, ', '.join(spec.figures),
            ', '.join(spec.datasets))
           for name, spec in evaluators.EVALUATORS.items()]),
      'schedules': _table(
          ('`optim.schedule`', 'learning rate'),
          [(f'`{name}`', _first_paragraph(fn))
           for name, fn in schedules.SCHEDULES.items()]),
      'exit codes': _table(
          ('exit status', 'meaning'), list(cli.EXIT_STATUSES)),
      'commands': _table(
          ('command', 'what'),
          [(f'`python -m {name}`', _command_summary(name)) for name in COMMANDS]),
  }


_INTRO = {
    'config': ('Every key a run reads (`gan_jax/configs.py`), overridable as'
               ' `--config.KEY=value`; a bad value stops the command with one'
               ' line naming what is valid. No check is listed for the seed,'
               ' the paths (checked when read) and the evaluators (each name'
               ' looked up, and checked against the data).'),
    'exit codes': 'Every command (`gan_jax/cli.py`).',
}


def reference() -> str:
  """The whole of docs/reference.md."""
  parts = ['# Reference', '',
           'Generated from the code by `python -m gan_jax.components --write`;'
           ' do not edit by hand. The guide is README.md; measured results are'
           ' in docs/results/.', '']
  for name, table in tables().items():
    parts += [f'## {name[0].upper()}{name[1:]}', '']
    if name in _INTRO:
      parts += [_INTRO[name], '']
    parts += [table, '']
  return '\n'.join(parts)


def main(argv: list[str]) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--write', action='store_true',
                      help=f'replace {REFERENCE} in place')
  args = parser.parse_args(argv)
  text = reference()
  if not args.write:
    print(text, end='')
    return 0
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  with open(os.path.join(root, REFERENCE), 'w') as f:
    f.write(text)
  return 0


if __name__ == '__main__':
  sys.exit(main(sys.argv[1:]))
