"""The package's layers, read from its imports (under TYPE_CHECKING and in functions too).

From the bottom: settings/ backend/ and the small shared modules; the kernel
(runs/, keys.py); the features; reports/ and cli/; pipeline.py and plugin.py
compose them. A lower layer never imports a higher one.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "pytest_mlexp"
FEATURES = (
    "artifacts",
    "autolog",
    "cluster",
    "gate",
    "grids",
    "groups",
    "lineage",
    "models",
    "params",
    "reuse",
    "search",
    "spool",
    "system_metrics",
)
ABOVE_FEATURES = ("reports", "cli", "pipeline", "plugin")
#: The small shared modules beside settings/ and backend/.
BOTTOM_MODULES = (
    "directions.py",
    "redaction.py",
    "workers.py",
    "warning_types.py",
    "process_state.py",
)


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(source: str, name: str, is_package: bool = False) -> set[str]:
    """The ``pytest_mlexp`` modules (or packages) module ``name`` imports, anywhere in it."""
    package = name if is_package else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                anchor = parts[: len(parts) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return {m for m in found if m.startswith("pytest_mlexp.")}


def imports_of(path: Path) -> set[str]:
    source = path.read_text(encoding="utf-8")
    return imported(source, module_name(path), path.name == "__init__.py")


def top(module: str) -> str:
    """``pytest_mlexp.gate.rules`` -> ``gate``."""
    return module.split(".")[1]


def offending(paths: list[Path], forbidden: tuple[str, ...]) -> list[str]:
    return sorted(
        f"{module_name(path)} imports {module}"
        for path in paths
        for module in imports_of(path)
        if top(module) in forbidden
    )


def test_the_kernel_imports_no_feature() -> None:
    kernel = [*sorted((PACKAGE / "runs").glob("*.py")), PACKAGE / "keys.py"]
    assert offending(kernel, (*FEATURES, *ABOVE_FEATURES)) == []


def test_settings_import_no_feature_and_no_kernel() -> None:
    settings = sorted((PACKAGE / "settings").glob("*.py"))
    assert offending(settings, ("runs", "keys", *FEATURES, *ABOVE_FEATURES)) == []


def test_the_bottom_layer_imports_no_kernel_and_no_feature() -> None:
    bottom = [
        *sorted((PACKAGE / "backend").glob("*.py")),
        *(PACKAGE / name for name in BOTTOM_MODULES),
    ]
    assert offending(bottom, ("runs", "keys", *FEATURES, *ABOVE_FEATURES)) == []


def feature_files() -> dict[str, list[Path]]:
    """Each feature (a folder, or a module beside them) -> its files."""
    found = {}
    for feature in FEATURES:
        folder = PACKAGE / feature
        found[feature] = (
            sorted(folder.glob("*.py")) if folder.is_dir() else [folder.with_suffix(".py")]
        )
    return found


def test_features_import_nothing_above_them() -> None:
    files = [path for paths in feature_files().values() for path in paths]
    assert offending(files, ABOVE_FEATURES) == []


def feature_arrows() -> dict[str, dict[str, list[str]]]:
    """Feature -> the other features it imports -> which of its modules import which."""
    arrows: dict[str, dict[str, list[str]]] = {}
    for feature, paths in feature_files().items():
        for path in paths:
            for module in imports_of(path):
                if top(module) in FEATURES and top(module) != feature:
                    arrows.setdefault(feature, {}).setdefault(top(module), []).append(
                        f"{module_name(path)} imports {module}"
                    )
    return arrows


def circles(arrows: dict[str, dict[str, list[str]]]) -> list[list[str]]:
    """The groups of features that import each other, directly or through others (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(arrows.get(node, {})):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(arrows):
        if node not in index:
            visit(node)
    return found


def test_no_feature_imports_another_that_imports_it_back() -> None:
    arrows = feature_arrows()
    found = circles(arrows)
    detail = [
        line
        for group in found
        for source in group
        for target, lines in sorted(arrows.get(source, {}).items())
        if target in group
        for line in lines
    ]
    assert found == [], "\n".join(detail)


def test_the_circle_check_sees_a_circle() -> None:
    arrows = {"gate": {"search": ["a"]}, "search": {"grids": ["b"]}, "grids": {"gate": ["c"]}}
    assert circles(arrows) == [["gate", "grids", "search"]]
    assert circles({"gate": {"search": ["a"]}}) == []


@pytest.mark.parametrize(
    "source",
    [
        "from ..gate.rules import Rules\n",
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..gate import rules\n",
        "def f():\n    import pytest_mlexp.gate.rules\n",
    ],
    ids=["module level", "TYPE_CHECKING", "in a function"],
)
def test_the_check_sees_every_kind_of_import(source: str) -> None:
    modules = imported(source, "pytest_mlexp.runs.item_runs")
    assert "gate" in {top(module) for module in modules}
