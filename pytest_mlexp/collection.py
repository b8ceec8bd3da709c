"""Experiments are collected where the user put them.

``experiment_*.py`` files and ``experiment_*`` functions are collected in the
experiment folders (``mlexp_experiment_paths``, default ``experiments/`` in the
rootdir) and in any file named on the command line (``pytest path/to/x.py``,
``pytest x.py::experiment_a``). Elsewhere pytest collects what it would
without the plugin: a script named ``experiment_*.py`` is never imported, a
test module's helper ``def experiment_config()`` is no item. A name the
project's own ``python_files`` / ``python_functions`` patterns match is left to
pytest, wherever it is.
"""

from __future__ import annotations

import fnmatch
import os
from pathlib import Path
from typing import Any

import pytest

#: The file and function patterns the plugin adds to pytest's.
EXPERIMENT_FILES = "experiment_*.py"
EXPERIMENT_FUNCTIONS = "experiment_*"


def configure(config: pytest.Config) -> None:
    """Add the experiment patterns to pytest's, and the check of where they apply."""
    places = ExperimentPlaces(
        config,
        files=tuple(config.getini("python_files")),
        functions=tuple(config.getini("python_functions")),
    )
    config.addinivalue_line("python_files", EXPERIMENT_FILES)
    config.addinivalue_line("python_functions", EXPERIMENT_FUNCTIONS)
    config.pluginmanager.register(places, "mlexp-collection")


class ExperimentPlaces:
    """Vetoes the experiment patterns outside the experiment folders and the named files."""

    def __init__(
        self, config: pytest.Config, *, files: tuple[str, ...], functions: tuple[str, ...]
    ) -> None:
        self.config = config
        #: The project's own patterns, without the plugin's.
        self.files = files
        self.functions = functions
        self._folders: tuple[Path, ...] | None = None
        self._session: pytest.Session | None = None

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        self._session = session

    @pytest.hookimpl(tryfirst=True)
    def pytest_ignore_collect(self, collection_path: Path) -> bool | None:
        name = collection_path.name
        # Called for every path pytest meets: the cheap test first.
        if not (name.startswith("experiment_") and name.endswith(".py")):
            return None
        if collection_path.is_dir():
            return None
        if any(fnmatch.fnmatch(name, pattern) for pattern in self.files):
            return None
        return None if self.holds(collection_path) else True

    @pytest.hookimpl(tryfirst=True)
    def pytest_pycollect_makeitem(self, collector: Any, name: str, obj: object) -> list[Any] | None:
        # Called for every name of every collected module: the cheap test first.
        if not name.startswith("experiment_"):
            return None
        if any(name.startswith(p) or fnmatch.fnmatch(name, p) for p in self.functions):
            return None
        return None if self.holds(Path(collector.path)) else []

    def holds(self, path: Path) -> bool:
        """Whether ``path`` is in an experiment folder or was named on the command line."""
        if self._session is not None and self._session.isinitpath(path):
            return True
        if self._folders is None:
            from .settings.collection import resolve_experiment_paths

            self._folders = resolve_experiment_paths(self.config)
        absolute = Path(os.path.abspath(path))
        return any(folder == absolute or folder in absolute.parents for folder in self._folders)
