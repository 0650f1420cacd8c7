"""Prints the tables of every registry, as the README shows them.

  python -m gan_jax.components          # markdown tables, to stdout
  python -m gan_jax.components --write  # replaces README.md's tables

Each table is derived from its registry (gan_jax/registry.py), between the
README's `<!-- registry: NAME -->` and `<!-- /registry -->` markers, so the
names a user reads are the names the code accepts.
"""

import argparse
import inspect
import os
import re
import sys


def _first_paragraph(function) -> str:
  return ' '.join(inspect.getdoc(function).split('\n\n')[0].split())


def _row(*cells) -> str:
  return '| ' + ' | '.join(str(cell).replace('|', '\\|') for cell in cells) + ' |'


def _table(header: tuple[str, ...], rows: list[tuple]) -> str:
  return '\n'.join([_row(*header), _row(*('---' for _ in header)),
                    *(_row(*row) for row in rows)])


def tables() -> dict[str, str]:
  """Markdown table per registry name."""
  from gan_jax import data  # noqa: PLC0415 (imports JAX; not at import time)
  from gan_jax import evaluators  # noqa: PLC0415
  from gan_jax import losses  # noqa: PLC0415
  from gan_jax import models  # noqa: PLC0415
  from gan_jax import schedules  # noqa: PLC0415
  return {
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
          [(f'`{name}`', spec.summary, 'x'.join(map(str, spec.example_shape)),
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
  }


_BLOCK = re.compile(r'(<!-- registry: (\w+) -->\n).*?(<!-- /registry -->)',
                    re.DOTALL)


def with_tables(readme: str, generated: dict[str, str]) -> str:
  """`readme` with each marked block replaced by its registry's table."""
  return _BLOCK.sub(lambda m: f'{m.group(1)}{generated[m.group(2)]}\n{m.group(3)}',
                    readme)


def main(argv: list[str]) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--write', action='store_true',
                      help="replace README.md's marked tables in place")
  args = parser.parse_args(argv)
  generated = tables()
  if not args.write:
    for name, table in generated.items():
      print(f'## {name}\n\n{table}\n')
    return 0
  path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(
      __file__))), 'README.md')
  with open(path) as f:
    readme = f.read()
  with open(path, 'w') as f:
    f.write(with_tables(readme, generated))
  return 0


if __name__ == '__main__':
  sys.exit(main(sys.argv[1:]))
