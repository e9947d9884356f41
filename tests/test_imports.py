"""The floors fit: the import graph of ``src/eyepurify`` (every import statement, the lazy ones
inside functions included; ``if TYPE_CHECKING:`` blocks left out) has no cycle, no module
imports another's private name, and benchmarks never import the trainers."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "src" / "eyepurify"


def _modules() -> dict[str, Path]:
    out = {}
    for p in ROOT.rglob("*.py"):
        parts = p.relative_to(ROOT.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = p
    return out


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skip: set[int] = set()
    for n in ast.walk(tree):
        if isinstance(n, ast.If) and "TYPE_CHECKING" in ast.unparse(n.test):
            skip.update(id(c) for c in ast.walk(n))
    return skip


def import_graph() -> tuple[dict[str, set[str]], list[str]]:
    """({module: modules it imports}, ["a imports b._name", ...]) over eyepurify's own modules."""
    mods = _modules()
    graph: dict[str, set[str]] = {m: set() for m in mods}
    private = []
    for m, path in mods.items():
        tree = ast.parse(path.read_text())
        skip = _type_checking_nodes(tree)
        for n in ast.walk(tree):
            if id(n) in skip or not isinstance(n, ast.Import | ast.ImportFrom):
                continue
            if isinstance(n, ast.Import):
                pairs = [(a.name, None) for a in n.names]
            else:
                base = n.module or ""
                if n.level:
                    pkg = m.split(".") if path.name == "__init__.py" else m.split(".")[:-1]
                    base = ".".join(pkg[: len(pkg) - n.level + 1] + ([base] if base else []))
                pairs = [(base, a.name) for a in n.names]
            for base, name in pairs:
                if not base.startswith("eyepurify"):
                    continue
                target = f"{base}.{name}" if name and f"{base}.{name}" in mods else base
                while target not in mods and "." in target:
                    target = target.rsplit(".", 1)[0]
                if target != m:
                    graph[m].add(target)
                    if name and name.startswith("_") and not name.startswith("__"):
                        private.append(f"{m} imports {base}.{name}")
    return graph, private


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycle() -> None:
    graph, _ = import_graph()
    assert "eyepurify.engines.local" in graph and graph["eyepurify.engines.run"]
    assert cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_private_name_is_imported_across_modules() -> None:
    assert import_graph()[1] == []


def test_benchmarks_never_import_the_trainers_nor_each_others_privates() -> None:
    graph, _ = import_graph()
    bench = {m: deps for m, deps in graph.items() if m.startswith("eyepurify.bench")}
    assert bench and not [(m, d) for m, deps in bench.items() for d in deps if d.startswith("eyepurify.train")]


def test_the_ray_engine_and_the_local_engine_do_not_import_each_other() -> None:
    graph, _ = import_graph()
    assert "eyepurify.engines.local" not in graph["eyepurify.engines.ray_engine"]
    assert "eyepurify.engines.ray_engine" not in graph["eyepurify.engines.local"]
