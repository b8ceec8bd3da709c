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
from collections.abc import Callable, Generator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .keys import SESSION_KEY
from .runs.tracked import is_tracked, tracked_items

if TYPE_CHECKING:
    from .runs.session import MlexpSession
    from .settings import Settings

#: The file and function patterns the plugin adds to pytest's.
EXPERIMENT_FILES = "experiment_*.py"
EXPERIMENT_FUNCTIONS = "experiment_*"


def configure(
    config: pytest.Config, open_session: Callable[[pytest.Config], MlexpSession]
) -> Collection:
    """Add the experiment patterns to pytest's; register the check of where they apply and
    what collection does to tracked functions. ``open_session`` gives the session object,
    created on first use."""
    collection = Collection(
        config,
        open_session,
        files=tuple(config.getini("python_files")),
        functions=tuple(config.getini("python_functions")),
    )
    config.addinivalue_line("python_files", EXPERIMENT_FILES)
    config.addinivalue_line("python_functions", EXPERIMENT_FUNCTIONS)
    config.pluginmanager.register(collection, "mlexp-collection")
    return collection


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


class Collection(ExperimentPlaces):
    """Registered as ``mlexp-collection`` in every process: where experiments are collected,
    then what collection does to tracked functions; ``pipeline`` once tracked items are known.

    One object, and the session object and ``pipeline`` unimported until then: the plugin
    loads in every pytest run, and pytest loads each of the package's modules through its
    assertion rewriter.
    """

    def __init__(
        self,
        config: pytest.Config,
        open_session: Callable[[pytest.Config], MlexpSession],
        *,
        files: tuple[str, ...],
        functions: tuple[str, ...],
    ) -> None:
        super().__init__(config, files=files, functions=functions)
        self._open_session = open_session
        #: Collection met a search declaration (a trial was parametrized).
        self.searches = False
        #: Collection met a tracked function: modules' parametrizations are recorded from then on.
        self.tracked_functions = False

    @property
    def session(self) -> MlexpSession:
        """The session object, created on first use."""
        return self._open_session(self.config)

    @property
    def settings(self) -> Settings:
        return self.session.settings

    @pytest.hookimpl(tryfirst=True)
    def pytest_ignore_collect(self, collection_path: Path) -> bool | None:
        # Logged code (code/experiment_*.py) must not be collected from the embedded store.
        if collection_path.name == "mlruns":
            try:
                store = self.settings.tracking.store_artifact_dir
            except pytest.UsageError:
                return None  # refused when a tracked item uses it; until then, pytest's rules
            return True if collection_path == store else None
        return super().pytest_ignore_collect(collection_path)

    @pytest.hookimpl(trylast=True)
    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        # Called for every test function of every session: an untracked one costs one check.
        if not is_tracked(metafunc.definition):
            return
        self.tracked_functions = True
        try:
            settings = self.settings
        except pytest.UsageError:
            # Raised here it would be a module's collection error: pytest_collection_modifyitems
            # meets it again, outside any module, and stops the session with it (exit 4).
            return
        from .pipeline import parametrize

        if parametrize(metafunc, settings):
            self.searches = True

    @pytest.hookimpl(wrapper=True, trylast=True)
    def pytest_make_collect_report(self, collector: pytest.Collector) -> Generator[None, Any, Any]:
        # Innermost: every parametrization of a module's functions, before a node id, --lf
        # or -k leaves out some (a group judged as a whole needs all its members).
        report = yield
        if not self.tracked_functions:
            return report  # no experiment collected yet: no group to know the members of
        if report.passed and isinstance(collector, pytest.Module | pytest.Class):
            from .groups.collected import record

            record(self.config, report.result)
        return report

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> Generator[None, Any, Any]:
        try:
            result = yield
            tracked = tracked_items(items)
            if tracked:
                from .pipeline import start_tracking

                start_tracking(self.session, items, tracked, searches=self.searches)
        except BaseException:
            # pytest still calls pytest_collection_finish: don't open the store for nothing.
            if SESSION_KEY in self.config.stash:
                self.session.collection_failed = True
            raise
        return result
