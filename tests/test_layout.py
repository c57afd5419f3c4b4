"""The package layout's rules (docs/ARCHITECTURE.md, "Where code goes"), checked on the source tree: no import
circle between ltjax modules (counting imports inside functions too), a leaf errors module, one user-facing base
class for every error ltjax defines, and no tools or family code left at the package's top level."""

import ast
import os

import pytest

import ltjax
from ltjax import errors

ROOT = os.path.dirname(ltjax.__file__)


def _modules():
  mods = {}
  for dirpath, _, files in os.walk(ROOT):
    for f in files:
      if f.endswith(".py"):
        path = os.path.join(dirpath, f)
        name = "ltjax." + os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
        mods[name[:-len(".__init__")] if name.endswith(".__init__") else name] = path
  return mods


def _resolve(name, mods):
  while name and name not in mods:
    name = name.rpartition(".")[0]
  return name or None


def import_graph(mods):
  """module → the ltjax modules it imports anywhere in its file (function-local imports included). `from pkg import
  sub` counts as importing the submodule, not the package; a package importing its own submodules is not an edge
  back, since Python runs the package's __init__ first in either order."""
  graph = {}
  for name, path in mods.items():
    deps = set()
    for node in ast.walk(ast.parse(open(path).read())):
      targets = []
      if isinstance(node, ast.Import):
        targets = [a.name for a in node.names]
      elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
        subs = [f"{node.module}.{a.name}" for a in node.names]
        targets = [t for t in subs if t in mods] + ([node.module] if any(t not in mods for t in subs) else [])
      for t in targets:
        r = _resolve(t, mods) if t.startswith("ltjax") else None
        if r and r != name:
          deps.add(r)
    graph[name] = deps
  return graph


def cycles(graph):
  """Strongly connected components with more than one module (Tarjan)."""
  index, low, on, stack, out, counter = {}, {}, set(), [], [], [0]

  def visit(v):
    index[v] = low[v] = counter[0]
    counter[0] += 1
    stack.append(v)
    on.add(v)
    for w in graph.get(v, ()):
      if w not in index:
        visit(w)
        low[v] = min(low[v], low[w])
      elif w in on:
        low[v] = min(low[v], index[w])
    if low[v] == index[v]:
      comp = []
      while True:
        w = stack.pop()
        on.discard(w)
        comp.append(w)
        if w == v:
          break
      if len(comp) > 1:
        out.append(sorted(comp))

  for v in sorted(graph):
    if v not in index:
      visit(v)
  return out


def test_cycle_finder_finds_a_planted_circle():
  g = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
  assert cycles(g) == [["a", "b", "c"]]
  assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_circle_between_ltjax_modules():
  mods = _modules()
  assert "ltjax.train.loop" in mods and "ltjax.methods.sbcl.method" in mods
  assert cycles(import_graph(mods)) == []


def test_errors_is_a_leaf_and_every_error_has_the_one_base():
  mods = _modules()
  assert import_graph(mods)["ltjax.errors"] == set()
  defined = []
  for name, path in mods.items():
    for node in ast.parse(open(path).read()).body:
      if isinstance(node, ast.ClassDef) and any(
          getattr(b, "id", getattr(b, "attr", "")).endswith(("Error", "Exception")) for b in node.bases):
        defined.append((name, node.name))
  assert defined and all(mod == "ltjax.errors" for mod, _ in defined), defined
  for _, cls in defined:
    assert issubclass(getattr(errors, cls), errors.LtjaxError), cls


@pytest.mark.parametrize("old", ["moco", "sbcl", "sbcl_queue", "partial_labels", "inspect", "report", "pseudolabel",
                                 "rotation_eval", "moco_checkpoint"])
def test_no_family_or_tool_module_at_the_top_level(old):
  assert not os.path.exists(os.path.join(ROOT, f"{old}.py"))
