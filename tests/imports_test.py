"""The package's import graph, read from the sources: no loops, and no task module imports another.

Every `import` statement counts, also those inside functions (a lazy import
hides a loop, it does not remove it). Importing a submodule runs its parent
packages' `__init__` first, which Python handles; only the module a statement
names is an edge here.
"""

import ast
import os

from absl.testing import absltest

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_PACKAGE = 'ddip_jax'


def module_names() -> dict[str, str]:
  """Dotted module name -> file, for every module of the package (packages by their __init__.py)."""
  modules = {}
  for folder, _, files in os.walk(os.path.join(_ROOT, _PACKAGE)):
    for name in files:
      if name.endswith('.py'):
        parts = os.path.relpath(os.path.join(folder, name), _ROOT)[:-3].split(os.sep)
        modules['.'.join(parts[:-1] if parts[-1] == '__init__' else parts)] = os.path.join(folder, name)
  return modules


def _resolve(name: str, modules: dict[str, str]) -> str | None:
  """The package module `name` is, or the longest package module it lies in (a name it defines)."""
  while name and name not in modules:
    name = name.rpartition('.')[0]
  return name or None


def imports(path: str, modules: dict[str, str]) -> set[str]:
  """The package modules the file at `path` imports, anywhere in it."""
  found = set()
  for node in ast.walk(ast.parse(open(path).read(), path)):
    if isinstance(node, ast.Import):
      names = [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
      # `from a.b import c`: module a.b.c if it is one, else the name c defined in a.b.
      names = [f'{node.module}.{alias.name}' for alias in node.names]
    else:
      continue
    found.update(m for m in (_resolve(n, modules) for n in names) if m)
  return found


def graph() -> dict[str, set[str]]:
  modules = module_names()
  return {name: imports(path, modules) - {name} for name, path in modules.items()}


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
  """One import loop of `edges` as [a, b, ..., a], or None."""
  state = {}  # Absent: unvisited; 1: on the current path; 2: done.
  path = []

  def visit(node):
    state[node] = 1
    path.append(node)
    for nxt in sorted(edges.get(node, ())):
      if state.get(nxt) == 1:
        return path[path.index(nxt) :] + [nxt]
      if nxt not in state:
        cycle = visit(nxt)
        if cycle:
          return cycle
    state[node] = 2
    path.pop()
    return None

  for node in sorted(edges):
    if node not in state:
      cycle = visit(node)
      if cycle:
        return cycle
  return None


# The package's layers, bottom up: a module imports only from its own layer or the ones below (README, Layout).
LAYERS = {
    'base': (
        'errors',
        'memory',
        'metrics',
        'filters',
        'blending',
        'augment',
        'problem',
        'hooks',
        'progress_report',
        'compile_cache',
        'align',
    ),
    'io': ('image_io', 'writing', 'clip_io', 'config_check', 'checkpoint_io', 'summary_picture', 'cli', 'array_inputs'),
    'core': ('models', 'losses', 'steps', 'engine'),  # Networks, losses, the step and the loop.
    'task helpers': (
        'hints',
        'grow',
        'fgbg',
        'watermark_io',
        'watermark_generators',
        'watermark_layers',
        'watermark_strokes',
        'watermark_cut',
        'watermark_tv',
        'unmixing',
        'colour_unmixing',
        'transparency_finalise',
        'video_hints',
        'video_motion',
        'haze_priors',
    ),
    'runs': ('runner', 'outputs', 'resume', 'restarts'),  # Workdirs, results written, resuming, restarts.
    'tasks': ('tasks', 'tasks.dehaze', 'tasks.segmentation', 'tasks.transparency', 'tasks.video', 'tasks.watermark'),
    'front ends': (
        'api_config',
        'api_results',
        'api',
        'cutout',
        'batch',
        'command',
        'app',
        'app_cutout',
        'app_runs',
        'app_safety',
        'app_strokes',
        'app_widgets',
        '',
    ),  # '': the package's __init__.
}


def layer_of() -> dict[str, int]:
  """Module -> its layer's rank (0: base)."""
  return {
      f'{_PACKAGE}.{name}' if name else _PACKAGE: rank for rank, names in enumerate(LAYERS.values()) for name in names
  }


class ImportsTest(absltest.TestCase):

  def test_every_module_has_a_layer(self):
    self.assertEqual(set(graph()), set(layer_of()))

  def test_imports_only_go_down_the_layers(self):
    rank, names = layer_of(), list(LAYERS)
    for module, imported in sorted(graph().items()):
      for other in sorted(imported):
        with self.subTest(module=module, imports=other):
          self.assertLessEqual(
              rank[other],
              rank[module],
              f'{module} ({names[rank[module]]}) imports {other} ({names[rank[other]]}), a layer above',
          )

  def test_find_cycle_finds_loops_and_only_loops(self):
    self.assertIsNone(find_cycle({'a': {'b', 'c'}, 'b': {'c'}, 'c': set()}))
    self.assertEqual(find_cycle({'a': {'b'}, 'b': {'c'}, 'c': {'a'}}), ['a', 'b', 'c', 'a'])

  def test_the_graph_sees_imports_of_every_form(self):
    edges = graph()
    self.assertIn('ddip_jax.errors', edges['ddip_jax.runner'])  # from ddip_jax import errors
    self.assertIn('ddip_jax.tasks.segmentation', edges['ddip_jax.tasks'])  # from ddip_jax.tasks import ...
    self.assertIn('ddip_jax.tasks', edges['ddip_jax.api'])

  def test_no_import_loops(self):
    self.assertIsNone(find_cycle(graph()))

  def test_no_task_imports_another_task(self):
    edges = graph()
    tasks = {name for name in edges if name.startswith(f'{_PACKAGE}.tasks.')}
    for task in sorted(tasks):
      with self.subTest(task=task):
        self.assertEmpty(edges[task] & (tasks | {f'{_PACKAGE}.tasks'}))


if __name__ == '__main__':
  absltest.main()
