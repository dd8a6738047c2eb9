"""The import graph of ``structjac`` has no cycle, function-level imports included.

Every module's source is parsed and every ``import`` / ``from ... import`` statement at
any depth (module level, inside functions, classes, ``if`` and ``try`` blocks) becomes an
edge to the module it names.  ``from package import name`` is an edge to
``package.name`` when that is a module of the package, else to ``package``.  Importing a
submodule runs its parent packages' ``__init__`` first, but that is not an edge of the
importing module: a package's ``__init__`` is a node of its own, with the edges its own
imports give it.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import structjac

ROOT = Path(structjac.__file__).resolve().parent
PACKAGE = "structjac"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


MODULES = _modules()


def _resolve(name: str, path: Path, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for _ in range(node.level - 1):
        package = package.rpartition(".")[0]
    return f"{package}.{node.module}" if node.module else package


def _edges(name: str, path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(name, path, node)
            targets = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base
                for alias in node.names
            ]
        else:
            continue
        for target in targets:
            # ``import structjac.a.b`` names the deepest module of ours it reaches.
            while target and target not in MODULES:
                target = target.rpartition(".")[0]
            if target and target != name and target.split(".")[0] == PACKAGE:
                found.add(target)
    return found


GRAPH = {name: _edges(name, path) for name, path in MODULES.items()}


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    WHITE, GREY, BLACK = 0, 1, 2
    colour = dict.fromkeys(graph, WHITE)
    stack: list[str] = []

    def visit(node):
        colour[node] = GREY
        stack.append(node)
        for succ in sorted(graph[node]):
            if colour[succ] == GREY:
                return stack[stack.index(succ) :] + [succ]
            if colour[succ] == WHITE:
                cycle = visit(succ)
                if cycle:
                    return cycle
        stack.pop()
        colour[node] = BLACK
        return None

    for node in sorted(graph):
        if colour[node] == WHITE:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_graph_sees_the_package():
    # The walk must reach the modules whose cycle this file guards against.
    assert {"structjac.algebra", "structjac.structures.base", "structjac._registry"} <= set(GRAPH)
    assert "structjac.structures" in GRAPH["structjac.algebra"] or any(
        t.startswith("structjac.structures") for t in GRAPH["structjac.algebra"]
    )


def test_cycle_finder_finds_a_cycle():
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b"}, "b": set()}) is None


def test_function_level_imports_are_edges():
    source = "def f():\n    from .. import algebra\n"
    tree = ast.parse(source)
    node = next(n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom))
    assert (
        _resolve("structjac.structures.base", ROOT / "structures" / "base.py", node) == "structjac"
    )


def test_no_import_cycle():
    cycle = _find_cycle(GRAPH)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


@pytest.mark.parametrize(
    "name", sorted(n for n in MODULES if n.startswith("structjac.structures")), ids=str
)
def test_structures_never_import_algebra(name):
    assert "structjac.algebra" not in GRAPH[name]
    assert "structjac.chain" not in GRAPH[name]


def test_jacobian_is_abstract():
    from structjac.structures import Jacobian

    with pytest.raises(TypeError, match="abstract"):
        Jacobian((2, 2), np.float64)
    assert {"_to_dense", "to_sparse", "diagonal", "_matmat", "_scale", "_transpose"} <= set(
        Jacobian.__abstractmethods__
    )


@pytest.mark.parametrize(
    "first",
    ["structjac.structures.kronecker", "structjac.structures.blockcolumn", "structjac._registry"],
)
def test_any_module_imported_first_works(first):
    # Each module imported first, in a fresh interpreter: the rules are there when used.
    code = (
        f"import importlib; importlib.import_module({first!r})\n"
        "import numpy as np, structjac as sj\n"
        "D = sj.Diagonal(np.arange(1.0, 4.0)); R = sj.BlockRow(1, np.ones(3), 3)\n"
        "P = D @ R\n"
        "assert type(P).__name__ == 'BlockRow', type(P)\n"
        "assert np.allclose(P.to_dense(), D.to_dense() @ R.to_dense())\n"
        "assert type(R.T).__name__ == 'BlockColumn'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT.parent)
