"""Importing gan_jax changes nothing global, and its modules import no cycle."""

import ast
import json
import os
import subprocess
import sys

from tests.helpers import REPO

PACKAGE = os.path.join(REPO, 'gan_jax')

# Imports every gan_jax module (not __main__) in a fresh process, then runs
# runtime.setup(); prints whether os.environ and JAX's CPU lowering of
# Threefry are JAX's own after each.
IMPORT_ALL = '''
import importlib, json, os, pkgutil
from absl import flags
from jax._src.interpreters import mlir
from jax.extend.random import threefry2x32_p
def lowering():
  return mlir._platform_specific_lowerings['cpu'].get(threefry2x32_p)
env, jax_lowering = dict(os.environ), lowering()  # after JAX's own imports
import gan_jax
def fail(name):
  raise ImportError(name)
names = [m.name for m in pkgutil.walk_packages(gan_jax.__path__, 'gan_jax.',
                                               onerror=fail)
         if not m.name.endswith('.__main__')]
for name in names:
  defined = set(flags.FLAGS)
  importlib.import_module(name)
  for flag in set(flags.FLAGS) - defined:  # commands' flags, e.g. two --workdir
    delattr(flags.FLAGS, flag)
imported = {'environ': os.environ == env, 'lowering': lowering() is jax_lowering}
from gan_jax import runtime
runtime.setup()
runtime.setup()
print(json.dumps({'names': names, 'imported': imported,
                  'setup': {'environ': os.environ == env,
                            'lowering': lowering() is jax_lowering},
                  'xla_flags': os.environ.get('XLA_FLAGS')}))
'''


def test_importing_gan_jax_changes_nothing_global_until_runtime_setup():
  env = {k: v for k, v in os.environ.items() if k != 'XLA_FLAGS'}
  proc = subprocess.run([sys.executable, '-c', IMPORT_ALL], cwd=REPO, env=env,
                        capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  result = json.loads(proc.stdout.splitlines()[-1])
  assert {'gan_jax.cli', 'gan_jax.classifier', 'gan_jax.models.dcgan',
          'gan_jax.main', 'gan_jax.train'} <= set(result['names'])
  assert result['imported'] == {'environ': True, 'lowering': True}
  assert result['setup'] == {'environ': False, 'lowering': False}
  from gan_jax import xla_flags  # noqa: PLC0415
  if xla_flags._jaxlib_version() in xla_flags.KNOWN_JAXLIB:
    assert result['xla_flags'] == ' '.join(xla_flags.CPU_FLAGS)  # added once
  assert 'after JAX started' not in proc.stderr  # setup() came before JAX started


def test_runtime_setup_after_jax_started_says_so_once():
  env = {k: v for k, v in os.environ.items() if k != 'XLA_FLAGS'}
  code = ('import jax\njax.devices()\nfrom gan_jax import runtime\n'
          'runtime.setup()\nruntime.setup()\n')
  proc = subprocess.run([sys.executable, '-c', code], cwd=REPO, env=env,
                        capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  from gan_jax import xla_flags  # noqa: PLC0415
  if xla_flags._jaxlib_version() in xla_flags.KNOWN_JAXLIB:
    warnings = [line for line in proc.stderr.splitlines()
                if 'after JAX started its backends' in line]
    assert len(warnings) == 1, proc.stderr


# ----------------------------------------------------------------- import graph


def _module_name(path: str, root: str, package: str) -> str:
  parts = os.path.relpath(path, root)[:-len('.py')].split(os.sep)
  if parts[-1] == '__init__':
    parts = parts[:-1]
  return '.'.join([package, *parts])


def _is_main_guard(node: ast.stmt) -> bool:
  """`if __name__ == '__main__':` or `if TYPE_CHECKING:`: not run on import."""
  if not isinstance(node, ast.If):
    return False
  test = ast.unparse(node.test).replace('"', "'")
  return test in ("__name__ == '__main__'", 'TYPE_CHECKING', 'typing.TYPE_CHECKING')


def _import_time_nodes(body: list[ast.stmt]):
  """The import statements run when a module with `body` is imported: at
  module level, in class bodies, under if/try/with; not in functions."""
  for node in body:
    if isinstance(node, (ast.Import, ast.ImportFrom)):
      yield node
    elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
      continue
    elif _is_main_guard(node):
      yield from _import_time_nodes(node.orelse)
    else:
      for field in ('body', 'orelse', 'finalbody', 'handlers'):
        children = getattr(node, field, None) or []
        yield from _import_time_nodes([c for c in children if isinstance(c, ast.AST)])


def _imported(node: ast.stmt, module: str, is_package: bool,
              modules: set[str]) -> set[str]:
  """The modules an import statement in `module` runs."""
  if isinstance(node, ast.Import):
    return {alias.name for alias in node.names}
  if node.level:  # relative: from . import x, from .x import y
    base = module.split('.') if is_package else module.split('.')[:-1]
    base = base[:len(base) - node.level + 1]
    source = '.'.join(base + ([node.module] if node.module else []))
  else:
    source = node.module
  names = {f'{source}.{alias.name}' for alias in node.names}
  return {source} | (names & modules)


def import_graph(root: str, package: str) -> dict[str, set[str]]:
  """{module: the package's modules it imports at import time} for the package
  `package` whose directory is `root`, from the source alone."""
  sources = {}
  for directory, _, names in os.walk(root):
    for name in names:
      if name.endswith('.py'):
        path = os.path.join(directory, name)
        sources[_module_name(path, root, package)] = path
  modules = set(sources)
  graph = {}
  for module, path in sources.items():
    with open(path) as f:
      tree = ast.parse(f.read(), path)
    is_package = path.endswith('__init__.py')
    edges = set()
    for node in _import_time_nodes(tree.body):
      for target in _imported(node, module, is_package, modules):
        parts = target.split('.')
        # Importing a.b.c runs a.b first (unless `module` is inside a.b).
        for i in range(2, len(parts) + 1):
          name = '.'.join(parts[:i])
          if name in modules and not (module + '.').startswith(name + '.'):
            edges.add(name)
    graph[module] = edges - {module}
  return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
  """A cycle of `graph` as [a, b, ..., a], or None."""
  state = {}  # module -> 'open' (on the path) or 'done'
  path = []

  def visit(module):
    state[module] = 'open'
    path.append(module)
    for target in sorted(graph.get(module, ())):
      if state.get(target) == 'open':
        return path[path.index(target):] + [target]
      if target not in state:
        cycle = visit(target)
        if cycle:
          return cycle
    path.pop()
    state[module] = 'done'
    return None

  for module in sorted(graph):
    if module not in state:
      cycle = visit(module)
      if cycle:
        return cycle
  return None


def test_gan_jax_modules_import_no_cycle():
  graph = import_graph(PACKAGE, 'gan_jax')
  assert {'gan_jax.errors', 'gan_jax.runtime'} <= graph['gan_jax.cli']
  assert 'gan_jax.data' in graph['gan_jax.classifier']
  assert 'gan_jax.cli' in graph['gan_jax.classifier.__main__']
  # configs is a leaf: no component module at import time.
  assert graph['gan_jax.configs'] <= {'gan_jax', 'gan_jax.errors', 'gan_jax.registry'}
  cycle = find_cycle(graph)
  assert cycle is None, 'import cycle: ' + ' -> '.join(cycle)


def _closure(graph: dict[str, set[str]], module: str) -> set[str]:
  """Every module importing `module` runs, itself included."""
  seen, todo = set(), [module]
  while todo:
    name = todo.pop()
    if name not in seen:
      seen.add(name)
      todo.extend(graph.get(name, ()))
  return seen


def test_the_commands_that_read_runs_do_not_import_the_training_loop():
  graph = import_graph(PACKAGE, 'gan_jax')
  for command in ('gan_jax.sample', 'gan_jax.evaluate', 'gan_jax.fid',
                  'gan_jax.analysis'):
    imported = _closure(graph, command)
    assert 'gan_jax.runs' in imported or command == 'gan_jax.fid', command
    assert 'gan_jax.train' not in imported, command
    assert 'gan_jax.step' not in imported, command


def test_the_cycle_finder_finds_cycles_and_only_import_time_ones(tmp_path):
  root = tmp_path / 'pkg'
  (root / 'sub').mkdir(parents=True)
  files = {
      '__init__.py': '',
      'a.py': 'from pkg import b\n',
      'b.py': ('import os\n\ndef f():\n  from pkg import a\n\n'
               "if __name__ == '__main__':\n  from pkg import a\n"),
      'c.py': 'from pkg.sub import d\n',
      'sub/__init__.py': '',
      'sub/d.py': 'try:\n  from ..c import x\nexcept ImportError:\n  pass\n',
  }
  for name, text in files.items():
    (root / name).write_text(text)
  graph = import_graph(str(root), 'pkg')
  assert graph['pkg.b'] == set()
  assert graph['pkg.c'] == {'pkg.sub', 'pkg.sub.d'}
  assert find_cycle(graph) == ['pkg.c', 'pkg.sub.d', 'pkg.c']
  (root / 'sub' / 'd.py').write_text('')
  assert find_cycle(import_graph(str(root), 'pkg')) is None
  (root / 'b.py').write_text('class B:\n  import pkg.a\n')
  assert find_cycle(import_graph(str(root), 'pkg')) == ['pkg.a', 'pkg.b', 'pkg.a']
