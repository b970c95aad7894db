"""Which module of tinyconv may import which: the dependency rules of the layout, checked on
the import graph that ``ast`` reads from every file of ``tinyconv/``.

Every ``import`` counts, also one inside a function (a lazy import is still a dependency,
and still a cycle). The rules are a table driven by the graph, so a new module is covered
without editing this file: a module that no group below names is a *technique* (the
lecture's methods: they return arrays and know nothing of figures, the tour or the
command line). ``test_a_bad_import_is_reported`` shows on a copy of the package that each
kind of bad import fails the check.

    kernels  <-  engine (layers, model, ...)  <-  techniques, support  <-  plots  <-  tour  <-  cli

``cli`` is a package (one module per command group); its modules import each other, and
nothing outside it imports any of them.
"""

import ast
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

import tinyconv

PACKAGE = Path(tinyconv.__file__).resolve().parent
ROOT = "tinyconv"

#: The engine: layers, the model, and what they stand on. It knows no technique, draws nothing.
ENGINE = {"layer", "layers", "conv", "pool", "model", "checks", "kernels", "workspace",
          "reference", "cpu_share"}
#: Infrastructure beside the techniques: training, files, data, the shipped model, interop.
SUPPORT = {"__init__", "__main__", "training", "optimizers", "serialize", "data", "pretrained",
           "architectures", "progress", "files", "folders", "interop"}
#: The top floors: figures, the tour, explain (your own image), the explorer, the command line.
TOP = {"plots", "tour", "tour_page", "tour_after", "explain", "explore", "cli"}
#: Modules that draw (matplotlib lives behind them).
DRAWING = {"plots", "tour", "tour_after"}


def group(module):
    """The part of the package a module belongs to: ``tinyconv.plots.maxact`` -> ``plots``,
    ``tinyconv.layers`` -> ``layers``, ``tinyconv`` -> ``__init__``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def floor(module):
    """``engine``, ``support``, ``top`` or (for any other module) ``technique``."""
    g = group(module)
    if g in ENGINE:
        return "engine"
    if g in SUPPORT:
        return "support"
    if g in TOP:
        return "top"
    return "technique"


# --------------------------------------------------------------------------- the graph


@dataclass(frozen=True)
class Import:
    """``module`` imports ``target`` (a dotted name) at line ``line``."""

    module: str
    target: str
    line: int


def module_names(root):
    """``{dotted name: path}`` of every ``.py`` file under the package folder ``root``."""
    names = {}
    for path in sorted(root.rglob("*.py")):
        parts = [ROOT, *path.relative_to(root).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names[".".join(parts)] = path
    return names


def imports_of(module, path, known):
    """Every import in ``path`` (module ``module``), at any depth of the syntax tree."""
    is_package = path.name == "__init__.py"
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [Import(module, alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                # `from .x import y` in tinyconv.a -> tinyconv.x; in a package, from itself
                base = module.split(".")
                base = base[:len(base) - node.level + (1 if is_package else 0)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            for alias in node.names:
                sub = f"{target}.{alias.name}"   # `from . import plots` names a module
                found.append(Import(module, sub if sub in known else target, node.lineno))
    return found


def import_graph(root=PACKAGE):
    """All imports of the package in folder ``root``: a list of :class:`Import`."""
    known = module_names(root)
    return [imp for module, path in known.items() for imp in imports_of(module, path, known)]


def internal(target):
    return target == ROOT or target.startswith(ROOT + ".")


def top_name(target):
    return target.split(".")[0]


# --------------------------------------------------------------------------- the rules


@dataclass(frozen=True)
class Rule:
    """``applies(module)``: which importers the rule is about; ``forbids(target)``: what they
    may not import."""

    text: str
    applies: object
    forbids: object


ALLOWED_IN_KERNELS = {"numpy", "numba"}

RULES = [
    Rule("kernels imports only numpy, numba and the standard library",
         lambda m: group(m) == "kernels",
         lambda t: not (internal(t) and group(t) == "kernels")      # its own modules
         and top_name(t) not in ALLOWED_IN_KERNELS | sys.stdlib_module_names),
    Rule("the engine imports only the engine (no technique, no support module, no top floor)",
         lambda m: floor(m) == "engine",
         lambda t: internal(t) and (t == ROOT or floor(t) != "engine")),
    Rule("the engine draws nothing",
         lambda m: floor(m) == "engine",
         lambda t: top_name(t) == "matplotlib"),
    Rule("techniques and support modules import no plots, tour, explore or cli",
         lambda m: floor(m) in ("technique", "support") and group(m) != "__main__",
         lambda t: internal(t) and floor(t) == "top"),
    Rule("nothing imports cli (only python -m tinyconv runs it)",
         lambda m: group(m) not in ("__main__", "cli"),
         lambda t: internal(t) and group(t) == "cli"),
    Rule("argparse only in cli (argument parsing is the command layer's job)",
         lambda m: group(m) != "cli",
         lambda t: top_name(t) == "argparse"),
    Rule("torch (and captum) only in interop",
         lambda m: group(m) != "interop",
         lambda t: top_name(t) in ("torch", "captum")),
    Rule("matplotlib only in plots (the tour draws through plots)",
         lambda m: group(m) != "plots",
         lambda t: top_name(t) == "matplotlib"),
]


def violations(graph):
    """``[(rule text, Import), ...]`` for every import a rule forbids."""
    return [(rule.text, imp) for rule in RULES for imp in graph
            if rule.applies(imp.module) and rule.forbids(imp.target)]


def cycles(graph):
    """Import cycles among tinyconv's modules, each as ``[a, b, ..., a]``.

    The package itself (``tinyconv/__init__.py``, which re-exports everything) is left out
    as a target: a module importing ``tinyconv.x`` runs it first, but nothing imports it by
    name, and counting it would close a trivial loop through every module."""
    edges = {}
    for imp in graph:
        if internal(imp.target) and imp.target != ROOT and imp.module != ROOT:
            edges.setdefault(imp.module, set()).add(imp.target)
    found, state = [], {}

    def visit(node, path):
        state[node] = "open"
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == "open":
                found.append(path[path.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    return found


def report(found):
    return "\n".join(f"{imp.module} line {imp.line} imports {imp.target}: breaks '{text}'"
                     for text, imp in found)


# --------------------------------------------------------------------------- the tests


def test_the_graph_sees_every_module_and_lazy_imports():
    graph = import_graph()
    modules = set(module_names(PACKAGE))
    assert {"tinyconv.layers", "tinyconv.model", "tinyconv.kernels", "tinyconv.cli"} <= modules
    # the layer base loads kernels inside a function, only when a layer first needs it
    assert any(i.module == "tinyconv.layer" and i.target == "tinyconv.kernels" for i in graph)
    # interop imports torch lazily too; the rule that allows it there must see it
    assert any(group(i.module) == "interop" and top_name(i.target) == "torch" for i in graph)
    assert floor("tinyconv.some_new_method") == "technique"


def test_the_package_keeps_its_dependency_rules():
    found = violations(import_graph())
    assert not found, "\n" + report(found)


def test_the_package_has_no_import_cycles():
    found = cycles(import_graph())
    assert not found, "\n".join(" -> ".join(c) for c in found)


@pytest.fixture()
def copy_of_package(tmp_path):
    root = tmp_path / "tinyconv"
    shutil.copytree(PACKAGE, root, ignore=shutil.ignore_patterns("__pycache__", "data"))
    return root


def add_lazy_import(path, statement):
    """Append a function whose body makes ``statement``: a lazy import, as bad as any."""
    with open(path, "a", encoding="utf-8") as f:
        f.write(f"\n\ndef _injected():\n    {statement}\n")


def test_a_bad_import_is_reported(copy_of_package):
    """The negative control: each injected import breaks the rule meant to catch it."""
    assert not violations(import_graph(copy_of_package))
    assert not cycles(import_graph(copy_of_package))
    injected = {
        "kernels/conv.py": ("from ..checks import check_int",
                       "kernels imports only numpy, numba and the standard library"),
        "layers.py": ("from .projection import project",
                      "the engine imports only the engine (no technique, no support module, "
                      "no top floor)"),
        "model.py": ("import matplotlib.pyplot", "the engine draws nothing"),
        "a_new_method.py": ("from . import plots",
                            "techniques and support modules import no plots, tour, explore "
                            "or cli"),
        "tour.py": ("from .cli import main", "nothing imports cli (only python -m tinyconv "
                                             "runs it)"),
        "training.py": ("import torch", "torch (and captum) only in interop"),
        "serialize.py": ("import argparse", "argparse only in cli (argument parsing is the "
                                            "command layer's job)"),
    }
    for name, (statement, _) in injected.items():
        add_lazy_import(copy_of_package / name, statement)
    found = violations(import_graph(copy_of_package))
    for name, (_, rule) in injected.items():
        module = "tinyconv." + Path(name).with_suffix("").as_posix().replace("/", ".")
        assert any(text == rule and imp.module == module for text, imp in found), \
            f"{name}: {rule!r} not reported in\n{report(found)}"


def test_a_lazy_import_cycle_is_reported(copy_of_package):
    # model -> training -> architectures -> model, closed by an import inside a function
    add_lazy_import(copy_of_package / "model.py", "from .training import fit")
    found = cycles(import_graph(copy_of_package))
    assert any(c[0] == c[-1] and "tinyconv.model" in c and "tinyconv.training" in c
               for c in found), found
