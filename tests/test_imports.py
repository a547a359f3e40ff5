"""Which restorekit modules import which, read from the source with ``ast`` (imports inside functions
and ``TYPE_CHECKING`` blocks count: they run, or tie the modules together, all the same)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "restorekit"

# What a report may import: the results it renders and the plain helpers below everything else;
# and what it must not reach even through those (what measures, runs or trains models, and the CLI).
REPORT_MAY_IMPORT = ("restorekit.report", "restorekit.eval.results", "restorekit.eval.published", "restorekit.io",
                     "restorekit.errors", "restorekit.metrics")
ABOVE_REPORT = ("restorekit.inference", "restorekit.pretrained", "restorekit.models", "restorekit.eval.benchmark",
                "restorekit.eval.evaluate", "restorekit.eval.crops", "restorekit.train", "restorekit.cli")


def _root_of(path: Path) -> Path:
    """The folder holding the top-level package ``path`` is in (``src`` for ``src/restorekit/report``)."""
    path = path.resolve()
    while (path / "__init__.py").is_file():
        path = path.parent
    return path


def _module_name(file: Path, root: Path) -> str:
    parts = list(file.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_module(name: str, root: Path) -> bool:
    base = root.joinpath(*name.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def package_imports(path: str | Path) -> dict[str, set[str]]:
    """Each module under the package folder ``path`` (``src/restorekit`` or a subpackage), mapped to the
    modules of the same top-level package that it imports anywhere in its code, relative imports
    resolved. ``from X import name`` counts as importing ``X.name`` where that is a module, else ``X``."""
    path = Path(path).resolve()
    root = _root_of(path)
    top = path.relative_to(root).parts[0]
    found: dict[str, set[str]] = {}
    for file in sorted(path.rglob("*.py")):
        module = _module_name(file, root)
        package = module if file.name == "__init__.py" else module.rpartition(".")[0]
        imported: set[str] = set()
        for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"), filename=str(file))):
            if isinstance(node, ast.Import):
                imported.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    parts = package.split(".")
                    base = ".".join(parts[:len(parts) - node.level + 1] + ([node.module] if node.module else []))
                else:
                    base = node.module or ""
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    imported.add(sub if alias.name != "*" and _is_module(sub, root) else base)
        found[module] = {m for m in imported if m == top or m.startswith(top + ".")}
    return found


def _within(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def test_report_imports_nothing_above_it() -> None:
    graph = package_imports(PACKAGE)
    report = {m: imports for m, imports in graph.items() if _within(m, ("restorekit.report",))}
    assert "restorekit.report.tables" in report["restorekit.report.html"]  # the reader sees relative imports
    assert "restorekit.io.files" in report["restorekit.report.plots"]  # and those inside functions

    direct = sorted(f"{m} imports {i}" for m, imports in report.items() for i in imports
                    if not _within(i, REPORT_MAY_IMPORT))
    assert direct == [], "report/ may import only " + ", ".join(REPORT_MAY_IMPORT) + ":\n" + "\n".join(direct)

    # Nor through what it imports: importing a module runs its packages' __init__ too.
    chain: dict[str, list[str]] = {m: [m] for m in report}
    todo = list(report)
    while todo:
        module = todo.pop()
        parts = module.split(".")
        for nxt in sorted(graph.get(module, set()) | {".".join(parts[:i]) for i in range(1, len(parts))}):
            if nxt not in chain:
                chain[nxt] = chain[module] + [nxt]
                todo.append(nxt)
    indirect = sorted(" → ".join(path) for m, path in chain.items() if _within(m, ABOVE_REPORT))
    assert indirect == [], "report/ reaches modules above it:\n" + "\n".join(indirect)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in graph:
                continue
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
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_module_imports_a_module_that_imports_it() -> None:
    graph = package_imports(PACKAGE)
    assert len(graph) > 60 and "restorekit.inference.chop" in graph["restorekit.inference.restore"]
    assert _cycles(graph) == []


# Each layer and what it must never import (directly or through anything it imports): data flows one way,
# images in -> degradations -> data -> models -> losses/metrics -> inference -> eval/train -> report -> cli.
LAYERS = {
    "restorekit.io": ("restorekit.models", "restorekit.inference", "restorekit.eval", "restorekit.train",
                      "restorekit.report", "restorekit.cli"),
    "restorekit.degradations": ("restorekit.models", "restorekit.inference", "restorekit.eval", "restorekit.train",
                                "restorekit.report", "restorekit.cli"),
    "restorekit.models": ("restorekit.inference", "restorekit.eval", "restorekit.train", "restorekit.report",
                          "restorekit.cli", "restorekit.checkpoints", "restorekit.convert"),
    "restorekit.inference": ("restorekit.eval", "restorekit.train", "restorekit.report", "restorekit.cli"),
    "restorekit.eval": ("restorekit.train", "restorekit.report", "restorekit.cli"),
    "restorekit.train": ("restorekit.report", "restorekit.cli"),
}


def _reachable(graph: dict[str, set[str]], start: str) -> dict[str, str]:
    """Every module ``start`` reaches, mapped to the module it was reached from (to print the chain)."""
    seen: dict[str, str] = {}
    todo = [start]
    while todo:
        v = todo.pop()
        for w in graph.get(v, ()):
            if w not in seen and w != start:
                seen[w] = v
                todo.append(w)
    return seen


def test_layers_import_only_downwards() -> None:
    graph = package_imports(PACKAGE)
    bad = []
    for layer, forbidden in LAYERS.items():
        for module in (m for m in graph if _within(m, (layer,))):
            via = _reachable(graph, module)
            for target in via:
                if _within(target, forbidden):
                    chain, v = [target], target
                    while v in via and via[v] != module:
                        v = via[v]
                        chain.append(v)
                    bad.append(" -> ".join([module, *reversed(chain)]))
                    break
    assert bad == [], "imports that run against the flow:\n" + "\n".join(bad)
