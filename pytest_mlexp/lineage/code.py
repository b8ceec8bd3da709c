"""Which project files a run needs: the experiment module and what it imports, transitively."""

from __future__ import annotations

import ast
import functools
import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

import pytest


def item_code_files(config: pytest.Config, item: pytest.Item, rootdir: Path) -> list[Path]:
    """The files under ``rootdir`` a run of ``item`` needs: its module, the conftests that
    apply to it, and the project modules they import (transitively), sorted."""
    path = item.path.resolve()
    files = {path}
    for plugin in config.pluginmanager.get_plugins():
        file = getattr(plugin, "__file__", None)
        if not isinstance(plugin, ModuleType) or not file:
            continue
        conftest = Path(file).resolve()
        if conftest.name == "conftest.py" and conftest.parent in path.parents:
            files.add(conftest)
            # A fixture's helpers are the run's code as much as the module's own imports.
            files.update(project_imports(plugin, rootdir))
    module = getattr(item, "module", None)
    if isinstance(module, ModuleType):
        files.update(project_imports(module, rootdir))
    return sorted(f for f in files if is_under(f, rootdir))


def project_imports(module: ModuleType, rootdir: Path) -> set[Path]:
    """Files under ``rootdir`` (outside any virtualenv) that ``module`` imports, transitively.

    Only modules already imported (in ``sys.modules``) count: what the
    experiment actually ran with, never a module it merely mentions.
    """
    found: set[Path] = set()
    pending = [module]
    seen = {module.__name__}
    # The packages holding the module itself (their __init__.py run first).
    for name in _with_parents(module.__name__)[:-1]:
        package = sys.modules.get(name)
        file = _module_file(package) if package is not None else None
        if file is not None and is_project_file(file, rootdir):
            found.add(file)
    while pending:
        current = pending.pop()
        for name in _imported_names(current.__name__, _module_file(current), current.__package__):
            imported = sys.modules.get(name)
            if imported is None or name in seen:
                continue
            seen.add(name)
            file = _module_file(imported)
            if file is None or not is_project_file(file, rootdir):
                continue
            found.add(file)
            pending.append(imported)
    return found


@functools.cache
def _imported_names(name: str, file: Path | None, package: str | None) -> frozenset[str]:
    """Names of the modules (and their parent packages) a module's source imports."""
    if file is None or file.suffix != ".py":
        return frozenset()
    try:
        tree = ast.parse(file.read_bytes(), filename=str(file))
    except (OSError, SyntaxError, ValueError):
        return frozenset()
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                names.update(_with_parents(alias.name))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                try:
                    base = importlib.util.resolve_name("." * node.level + base, package or "")
                except (ImportError, ValueError):
                    continue
            if not base:
                continue
            names.update(_with_parents(base))
            # ``from pkg import sub`` may import the submodule ``pkg.sub``.
            names.update(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")
    return frozenset(names)


def _with_parents(dotted: str) -> list[str]:
    """``a.b.c`` -> ``a``, ``a.b``, ``a.b.c``: importing a module imports its packages."""
    pieces = dotted.split(".")
    return [".".join(pieces[: i + 1]) for i in range(len(pieces))]


def _module_file(module: ModuleType) -> Path | None:
    file = getattr(module, "__file__", None)
    return Path(file).resolve() if isinstance(file, str) else None


@functools.cache
def _environment_dirs() -> tuple[Path, ...]:
    prefixes = {sys.prefix, sys.base_prefix, sys.exec_prefix}
    return tuple(Path(p).resolve() for p in prefixes)


def is_project_file(path: Path, rootdir: Path) -> bool:
    """Under ``rootdir``, and not in a virtualenv or an installed package."""
    if not is_under(path, rootdir):
        return False
    if any(part in ("site-packages", "dist-packages") for part in path.parts):
        return False
    return not any(is_under(path, env) for env in _environment_dirs())


def is_under(path: Path, directory: Path) -> bool:
    return path == directory or directory in path.parents


#: Written at the top of a local artifact root inside the project.
ARTIFACT_ROOT_GUARD = "conftest.py"
_GUARD_TEXT = '''"""Written by pytest-mlexp: this folder holds MLflow's artifacts, not tests.

The copies of logged code (``<run>/artifacts/code/...``) are never collected,
whether pytest runs with pytest-mlexp or without it.
"""

collect_ignore_glob = ["*"]
'''


def guard_artifact_root(root: Path, rootdir: Path) -> None:
    """Keep pytest out of the artifact root ``root`` when it is inside the project.

    Logged code copies (``test_*.py``, ``conftest.py``) would otherwise be test
    modules of the project for a pytest run without the plugin: "import file
    mismatch", or a second copy of every test. A ``conftest.py`` ignoring all
    the folder holds is pytest's own way to say so.
    """
    if not is_under(root, rootdir.resolve()):
        return
    guard = root / ARTIFACT_ROOT_GUARD
    if guard.exists():
        return
    root.mkdir(parents=True, exist_ok=True)
    partial = root / f".{ARTIFACT_ROOT_GUARD}.{os.getpid()}"
    partial.write_text(_GUARD_TEXT, encoding="utf-8")
    os.replace(partial, guard)
