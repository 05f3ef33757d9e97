"""The engine's imports form no circle and point only downward: an AST walk over every import in engine/
(function-level ones too, which import-linter also counts), and the layers contracts in pyproject.toml
(run by test_packaging.test_import_linter_contract_holds) for the direction."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ENGINE = REPO / "engine"

# Circles in packages another engineer owns, to be broken there; a new circle anywhere fails.
KNOWN_CIRCLES = {frozenset({"data.load", "data.mix"})}


def _modules() -> dict[str, Path]:
    out = {}
    for path in ENGINE.rglob("*.py"):
        parts = list(path.relative_to(ENGINE).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _targets(name: str, path: Path, node: ast.AST, modules: dict[str, Path]) -> list[str]:
    """The engine modules an import statement of module `name` names (relative or dpo_tutor.engine.*)."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = []
    if isinstance(node, ast.ImportFrom):
        if node.level:
            base = package[: len(package) - (node.level - 1)] if node.level > 1 else package
            stem = ".".join(base + ([node.module] if node.module else []))
        elif (node.module or "").startswith("dpo_tutor.engine"):
            stem = node.module.removeprefix("dpo_tutor.engine").lstrip(".")
        else:
            return []
        found = [f"{stem}.{alias.name}".lstrip(".") for alias in node.names] + [stem]
    elif isinstance(node, ast.Import):
        found = [a.name.removeprefix("dpo_tutor.engine").lstrip(".") for a in node.names
                 if a.name.startswith("dpo_tutor.engine")]
    out = []
    for target in found:
        while target and target not in modules and "." in target:
            target = target.rsplit(".", 1)[0]
        if target in modules and target != name and target:
            out.append(target)
    return out


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                graph[name].update(_targets(name, path, node, modules))
    # a package's __init__ is imported on the way to its modules: an arrow from a module to its own
    # package (or a package to its modules) is not an arrow between peers
    for name in graph:
        graph[name] = {t for t in graph[name] if not name.startswith(f"{t}.") and not t.startswith(f"{name}.")}
    return graph


def circles(graph: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []

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
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(component)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_walk_sees_relative_function_level_and_absolute_imports():
    graph = import_graph()
    assert "train.plan" in graph["train.run"]  # module level, relative
    assert "train.trainer" in graph["train.run"]  # inside a function (after the backend's imports)
    assert "switches" in graph["train.machine"]  # two dots up
    assert {"a", "b"} in circles({"a": {"b"}, "b": {"a"}, "c": {"a"}})


def test_no_import_circle_in_the_engine():
    found = [frozenset(c) for c in circles(import_graph())]
    new = [sorted(c) for c in found if c not in KNOWN_CIRCLES]
    assert not new, f"import circles in engine/: {new}"


def test_engine_train_has_no_upward_arrow():
    """Within engine/train: the run imports its parts, the parts never import the run, and the fast
    path, the machine's facts and the stop request import nothing above them."""
    graph = import_graph()
    layers = [
        {"train.run"},
        {"train.trainer", "train.args", "train.callback", "train.pairs", "train.artifacts"},
        {"train.plan", "train.launch"} | {m for m in graph if m.startswith("train.backends")},
        {"train.machine", "train.pairs_cache", "train.stop"} | {m for m in graph if m.startswith("train.fast")},
    ]
    rank = {m: i for i, layer in enumerate(layers) for m in layer}
    upward = [(a, b) for a in rank for b in graph[a] if b in rank and rank[b] < rank[a]]
    assert not upward, upward
