"""Keep a reproduction to its logged code: refuse project modules its lineage does not hold.

``mlexp reproduce`` loads this module as a plugin (``-p
pytest_mlexp.lineage.guard``) in the pytest it starts in the rebuilt project,
with ``MLEXP_REPRODUCE_GUARD`` naming the original project's folder, the
import roots of the rebuilt project (relative paths) and a report file.

- An import that would load a module from the project's folder (a module
  installed in editable mode, say) fails with ``ModuleNotFoundError``.
- An import that nothing finds, of a module the project has under one of
  the import roots (``mylib/late.py`` for ``mylib.late``), fails the same way.

Either way the module, its file and the test importing it (empty during
collection) are written to the report, so the command can say which module
the run's lineage is missing. Packages already imported when the plugin loads
(pytest, pytest-mlexp...) and installed ones are never refused.
"""

from __future__ import annotations

import importlib.abc
import json
import os
import sys
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from pathlib import Path
from types import ModuleType

import pytest

from .code import is_project_file

#: JSON ``{"project": <folder>, "report": <file>}``, set by ``mlexp reproduce``.
GUARD_ENV = "MLEXP_REPRODUCE_GUARD"


class ProjectImportGuard(importlib.abc.MetaPathFinder):
    """First on ``sys.meta_path``: asks the other finders, and refuses the project's files."""

    def __init__(self, project: Path, roots: Sequence[str], report: Path) -> None:
        self.project = project
        self.roots = tuple(roots)
        self.report = report
        self.allowed = frozenset(name.partition(".")[0] for name in sys.modules)
        #: The test running now; empty during collection.
        self.nodeid = ""
        self._busy = False

    def pytest_runtest_logstart(self, nodeid: str) -> None:
        self.nodeid = nodeid

    def pytest_runtest_logfinish(self) -> None:
        self.nodeid = ""

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> ModuleSpec | None:
        if self._busy or fullname.partition(".")[0] in self.allowed:
            return None
        self._busy = True
        try:
            spec = _find_elsewhere(self, fullname, path, target)
        finally:
            self._busy = False
        if spec is None:
            file = self._in_project(fullname)
        else:
            origin = getattr(spec, "origin", None)
            if not isinstance(origin, str) or not os.path.isabs(origin):
                return None
            file = Path(origin).resolve()
        if file is None or not is_project_file(file, self.project):
            return None
        shown = file.relative_to(self.project).as_posix()
        entry = {"module": fullname, "path": shown, "nodeid": self.nodeid}
        with self.report.open("a", encoding="utf-8") as out:
            out.write(json.dumps(entry) + "\n")
        raise ModuleNotFoundError(
            f"mlexp reproduce: module {fullname!r} ({shown} in the project) is not in the "
            "run's lineage, so it is not loaded from the working tree",
            name=fullname,
        )

    def _in_project(self, fullname: str) -> Path | None:
        """The project's file of a module nothing else finds, under one of the import roots."""
        relative = Path(*fullname.split("."))
        for root in self.roots:
            for candidate in (relative.with_suffix(".py"), relative / "__init__.py"):
                path = self.project / root / candidate
                if path.is_file():
                    return path.resolve()
        return None


def _find_elsewhere(
    guard: ProjectImportGuard,
    fullname: str,
    path: Sequence[str] | None,
    target: ModuleType | None,
) -> ModuleSpec | None:
    for finder in sys.meta_path:
        if finder is guard:
            continue
        find = getattr(finder, "find_spec", None)
        spec = find(fullname, path, target) if find is not None else None
        if spec is not None:
            return spec  # type: ignore[no-any-return]
    return None


def refused(report: Path, nodeid: str) -> list[dict[str, str]]:
    """The modules the guard refused during collection or test ``nodeid``, once each."""
    if not report.is_file():
        return []
    seen: dict[str, dict[str, str]] = {}
    for line in report.read_text(encoding="utf-8").splitlines():
        entry = json.loads(line)
        if entry.get("nodeid", "") in ("", nodeid):
            seen.setdefault(entry["module"], entry)
    return list(seen.values())


def _install() -> None:
    text = os.environ.get(GUARD_ENV)
    if not text:
        return
    data = json.loads(text)
    guard = ProjectImportGuard(
        Path(data["project"]).resolve(), data.get("roots", ["."]), Path(data["report"])
    )
    sys.meta_path.insert(0, guard)
    _installed.append(guard)


#: The guard of this process, when installed: also a plugin (it follows the running test).
_installed: list[ProjectImportGuard] = []


def pytest_configure(config: pytest.Config) -> None:
    for guard in _installed:
        config.pluginmanager.register(guard, "mlexp-reproduce-guard")


_install()
