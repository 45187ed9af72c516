"""The floors of DESIGN.md ("Layers"): imports only point down, no import cycles, nothing at the zoo/ root.

Imports are read from the source with ``ast`` — function-level imports included, ``if TYPE_CHECKING:``
blocks excluded — so a lazy import that points up or closes a cycle is caught too.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"weightzoo": "weightzoo", "zoo": "weightzoo.zoo", "metanets": "weightzoo.metanets",
            "hyper": "weightzoo.hyper", "analysis": "weightzoo.analysis", "datasets": "weightzoo.datasets"}
ZOO = "weightzoo.zoo"
# floor -> the floors it may import (besides itself and weightzoo.errors); None: anything (facade, re-exports)
LAYERS: dict[str, set[str] | None] = {
    "weightzoo": None,
    "weightzoo.errors": set(),
    ZOO: None,
    f"{ZOO}.formats": set(),
    f"{ZOO}.arch": {f"{ZOO}.formats"},
    f"{ZOO}.store": {f"{ZOO}.formats", f"{ZOO}.arch"},
    f"{ZOO}.hub": {f"{ZOO}.store", f"{ZOO}.formats", f"{ZOO}.arch"},
    f"{ZOO}.graphs": {f"{ZOO}.arch", f"{ZOO}.formats", f"{ZOO}.store"},
    f"{ZOO}.symmetry": {f"{ZOO}.graphs", f"{ZOO}.arch", f"{ZOO}.formats", f"{ZOO}.store"},
    "weightzoo.datasets": {ZOO},
    "weightzoo.metanets": {"weightzoo.datasets", ZOO},
    "weightzoo.hyper": {"weightzoo.metanets", "weightzoo.datasets", ZOO},
    "weightzoo.analysis": {"weightzoo.hyper", "weightzoo.metanets", "weightzoo.datasets", ZOO},
}


def _modules() -> dict[str, tuple[Path, bool]]:
    out = {}
    for folder, package in PACKAGES.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT / folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            out[".".join([package, *parts])] = (path, path.name == "__init__.py")
    return out


MODULES = _modules()


def _floor(module: str) -> str:
    return max((f for f in LAYERS if module == f or module.startswith(f + ".")), key=len)


def _imports(module: str, path: Path, is_package: bool) -> list[tuple[str, int]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    typing_only = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
                   for n in ast.walk(node)}
    package = module if is_package else module.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            found += [(f"{base}.{a.name}", node.lineno) for a in node.names]  # `from pkg import sub` names a module
    resolved = []
    for target, line in found:
        while target and target not in MODULES:
            target = target.rpartition(".")[0]
        if target and target != module:
            resolved.append((target, line))
    return resolved


GRAPH = {m: _imports(m, p, pkg) for m, (p, pkg) in MODULES.items()}


def test_imports_only_point_down() -> None:
    wrong = []
    for module, targets in GRAPH.items():
        allowed = LAYERS[_floor(module)]
        for target, line in targets:
            floor = _floor(target)
            if allowed is None or floor in (_floor(module), "weightzoo.errors"):
                continue
            if not any(floor == a or floor.startswith(a + ".") for a in allowed):
                wrong.append(f"{MODULES[module][0].relative_to(ROOT)}:{line} ({_floor(module)}) imports {target} ({floor})")
    assert not wrong, "imports against DESIGN.md's layer table:\n" + "\n".join(wrong)


def _cycles() -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), ignoring a submodule's import of
    its own package ``__init__`` (a package re-exporting its submodules is not a cycle)."""
    edges = defaultdict(set)
    for module, targets in GRAPH.items():
        for target, _ in targets:
            if not (MODULES[target][1] and module.startswith(target + ".")):
                edges[module].add(target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(MODULES):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles() -> None:
    assert _cycles() == []


def test_nothing_but_init_at_the_zoo_root() -> None:
    assert sorted(p.name for p in (ROOT / "zoo").glob("*.py")) == ["__init__.py"]


@pytest.mark.parametrize("bad", ["weightzoo.zoo.store.zoo imports weightzoo.zoo.graphs", "cycle"])
def test_negative_controls(bad: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The checks do fire: an upward import and a two-module cycle are reported."""
    if bad == "cycle":
        monkeypatch.setitem(GRAPH, "weightzoo.zoo.formats.dtypes", [*GRAPH["weightzoo.zoo.formats.dtypes"],
                                                                     ("weightzoo.zoo.formats.base", 1)])
        assert any("weightzoo.zoo.formats.dtypes" in c for c in _cycles())
    else:
        monkeypatch.setitem(GRAPH, "weightzoo.zoo.store.zoo", [*GRAPH["weightzoo.zoo.store.zoo"],
                                                               ("weightzoo.zoo.graphs.parameter_graph", 1)])
        with pytest.raises(AssertionError, match="imports weightzoo.zoo.graphs.parameter_graph"):
            test_imports_only_point_down()
