"""Import layering of src/psilon, read with ast (stdlib only), as ../shared/tools/check-structure.

Ranks (a module may import its own rank or lower ones)::

    nn < pathnorm, sparsity, recovery < train < estimators, datasets < bench < cli, __main__ < __init__

``psilon.nn`` imports nothing else from psilon, and the top-level modules form no import
cycle. A top-level name may be a module file (``train.py``) or a package directory
(``train/``): every file below a package counts as that name. No function in src/psilon is longer
than 80 lines.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "psilon"

RANK = {
    "nn": 0,
    "pathnorm": 1,
    "sparsity": 1,
    "recovery": 1,
    "train": 2,
    "estimators": 3,
    "datasets": 3,
    "bench": 4,
    "cli": 5,
    "__main__": 5,
    "__init__": 6,
}


def _top_level(path: Path) -> tuple[str, list[str]]:
    """``(top-level name, package parts of the file)`` for a file under src/psilon."""
    rel = path.relative_to(SRC).with_suffix("")
    return rel.parts[0], ["psilon", *rel.parts[:-1]]


def _imported_modules(node: ast.AST, package: list[str]) -> list[str]:
    """Absolute dotted names an import statement refers to (relative imports resolved)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom):
        base = package[: len(package) - node.level + 1] if node.level else []
        module = ".".join(base + ([node.module] if node.module else []))
        # ``from psilon import pathnorm`` names the submodule in the alias
        if module == "psilon":
            return [f"psilon.{alias.name}" for alias in node.names]
        return [module]
    return []


def _edges() -> list[tuple[str, str, str]]:
    """``(importer, imported, where)`` for every import of another top-level psilon module."""
    found = []
    for path in sorted(SRC.rglob("*.py")):
        me, package = _top_level(path)
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            for module in _imported_modules(node, package):
                parts = module.split(".")
                if parts[0] != "psilon" or len(parts) < 2 or parts[1] == me:
                    continue
                found.append((me, parts[1], f"{path.relative_to(SRC)}:{node.lineno}"))
    return found


EDGES = _edges()


def test_source_tree_is_found():
    assert (SRC / "nn").is_dir(), SRC
    names = {_top_level(p)[0] for p in SRC.rglob("*.py")}
    assert {"nn", "pathnorm", "__init__"} <= names


def test_nn_imports_nothing_else_from_psilon():
    bad = [f"{where} imports psilon.{them}" for me, them, where in EDGES if me == "nn"]
    assert not bad, "psilon.nn is the bottom layer:\n" + "\n".join(bad)


def test_no_upward_imports():
    bad = [
        f"{where} ({me}, rank {RANK[me]}) imports psilon.{them} (rank {RANK[them]})"
        for me, them, where in EDGES
        if me in RANK and them in RANK and RANK[them] > RANK[me]
    ]
    assert not bad, "upward imports:\n" + "\n".join(bad)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan's algorithm)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_cycles_between_top_level_modules():
    graph: dict[str, set[str]] = defaultdict(set)
    for me, them, _ in EDGES:
        graph[me].add(them)
        graph[them]  # every module is a node
    cycles = _cycles(graph)
    assert not cycles, "import cycles between top-level modules: " + "; ".join(" <-> ".join(c) for c in cycles)


@pytest.mark.parametrize(
    "source, package, expected",
    [
        ("from psilon.nn import X", ["psilon", "train"], ["psilon.nn"]),
        ("from . import layers", ["psilon", "nn"], ["psilon.nn"]),
        ("from .. import pathnorm", ["psilon", "train"], ["psilon.pathnorm"]),
        ("from ..nn.checks import check_int", ["psilon", "estimators"], ["psilon.nn.checks"]),
        ("import psilon.sparsity as S", ["psilon"], ["psilon.sparsity"]),
        ("from psilon import pathnorm, sparsity", ["psilon"], ["psilon.pathnorm", "psilon.sparsity"]),
    ],
)
def test_import_resolution(source, package, expected):
    (node,) = ast.parse(source).body
    assert _imported_modules(node, package) == expected


def test_cycle_detection():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


MAX_FUNCTION_LINES = 80


def _long_functions(path: Path) -> list[str]:
    return [
        f"{path.relative_to(SRC)}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path)))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]


def test_no_function_in_src_is_longer_than_80_lines():
    found = [hit for path in sorted(SRC.rglob("*.py")) for hit in _long_functions(path)]
    assert found == [], f"split these functions into parts: {found}"


def test_the_length_check_can_fail(tmp_path):
    body = "\n".join(f"    x{i} = {i}" for i in range(85))
    (tmp_path / "psilon").mkdir()
    probe = tmp_path / "psilon" / "probe.py"
    probe.write_text(f"def long():\n{body}\n")
    global SRC
    saved, SRC = SRC, tmp_path / "psilon"
    try:
        assert len(_long_functions(probe)) == 1
    finally:
        SRC = saved
