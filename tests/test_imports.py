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
