"""The session object: the session's settings, its store, and the summaries its runs leave.

Registered by ``plugin.py`` in every pytest run, so it stays light: until
collection finds a tracked item it only looks. Then ``pipeline.activate``
registers the features, ``item_runs.ItemRuns`` among them, which starts and
ends a run around each tracked item; ``mlflow`` is imported only then. Under
pytest-xdist, the summaries cross from the workers to the controller with
the items' teardown reports; the controller does the session's end.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from ..workers import is_worker

if TYPE_CHECKING:
    from ..backend.client import Backend
    from ..pipeline import SessionEnd
    from ..settings import Settings
    from .summary import RunSummary

#: Key of the summary in a serialized teardown report (xdist).
SUMMARY_FIELD = "mlexp_run"
#: The user property of a reused item's call report (``backend.tags.REUSED_FROM``).
REUSED_PROPERTY = "mlexp.reused_from"
#: The marker's arguments that declare a search (``search.declaration.SEARCH_KWARGS``).
_SEARCH_KWARGS = ("search", "trials", "objective", "sampler", "seed", "pruner", "study")


def _declares_search(markers: list[pytest.Mark]) -> bool:
    """Cheap: no search module is imported for functions that declare none."""
    return any(key in marker.kwargs for marker in markers for key in _SEARCH_KWARGS)


class MlexpSession:
    """The session's state: settings, the store, and one summary per finished run."""

    def __init__(self, config: pytest.Config, settings: Settings) -> None:
        self.config = config
        self.settings = settings
        #: One summary per finished run, as reports arrived (from every worker).
        self.results: list[RunSummary] = []
        #: What the session's end did (controller only); read by the terminal summary.
        self.end: SessionEnd | None = None
        self.is_worker = False
        self._backend: Backend | None = None
        self._order: dict[str, int] = {}
        self._summaries: weakref.WeakKeyDictionary[pytest.TestReport, RunSummary] = (
            weakref.WeakKeyDictionary()
        )
        self._restore_sigterm = False
        self._collection_failed = False
        self._preparing: threading.Thread | None = None

    # -- the tracking store ------------------------------------------------------------------

    @property
    def backend(self) -> Backend:
        """The tracking store, opened (and mlflow imported) on first use."""
        if self._preparing is not None:
            self._preparing.join()
            self._preparing = None
        if self._backend is None:
            from ..pipeline import open_backend

            self._backend = open_backend(self.settings)
        self._handle_sigterm()
        return self._backend

    def _prepare_backend(self) -> None:
        """xdist controller: import mlflow and open the store while the workers run.

        Started when the first run's summary arrives (so sessions without
        experiments never pay for it); the session's end then finds the store
        open instead of adding the import to the time after the last worker.
        A failure is left for the session's end to meet again and report.
        """
        if self._backend is not None or self._preparing is not None:
            return

        def prepare() -> None:
            from ..pipeline import open_backend

            with contextlib.suppress(Exception):
                self._backend = open_backend(self.settings)

        self._preparing = threading.Thread(target=prepare, name="mlexp-prepare", daemon=True)
        self._preparing.start()

    def _handle_sigterm(self) -> None:
        """Treat SIGTERM (a CI timeout, ``kill``) like Ctrl-C, so runs end as KILLED."""
        if self._restore_sigterm or threading.current_thread() is not threading.main_thread():
            return
        if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
            return

        def interrupt(signum: int, frame: object) -> None:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            raise KeyboardInterrupt("SIGTERM")

        signal.signal(signal.SIGTERM, interrupt)
        self._restore_sigterm = True

    def pytest_unconfigure(self) -> None:
        if self._restore_sigterm:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        self.is_worker = is_worker(session)
        if self.settings.gate.baseline_file is not None:
            from ..pipeline import check_early

            check_early(self.settings)

    # -- collection --------------------------------------------------------------------------

    def pytest_ignore_collect(self, collection_path: Path) -> bool | None:
        # Logged code (code/experiment_*.py) must not be collected from the embedded store.
        if collection_path.name != "mlruns":
            return None
        return True if collection_path == self.settings.tracking.store_artifact_dir else None

    @pytest.hookimpl(trylast=True)
    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        file_search = None
        if self.settings.params.enabled:
            from .markers import is_tracked

            if is_tracked(metafunc.definition):
                from ..params.collection import parametrize_from_file, search_from_file

                parametrize_from_file(metafunc, self.settings.params)
                file_search = search_from_file(metafunc)
        markers = list(metafunc.definition.iter_markers("mlexp"))
        if file_search is not None or _declares_search(markers):
            from ..search.collection import parametrize_search

            parametrize_search(metafunc, self.settings, file_search)
        if any("repeats" in marker.kwargs or "seeds" in marker.kwargs for marker in markers):
            from ..grids.repeats import parametrize_repeats

            parametrize_repeats(metafunc)

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> Any:
        try:
            result = yield
            from .markers import is_tracked

            tracked = [item for item in items if is_tracked(item)]
            if tracked:
                from ..pipeline import activate

                self._order = {item.nodeid: index for index, item in enumerate(items)}
                activate(self, tracked)
        except BaseException:
            # pytest still calls pytest_collection_finish: don't open the store for nothing.
            self._collection_failed = True
            raise
        return result

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        # Reach the store before the first experiment runs, so that a wrong URI
        # or a dead server stops the session at once, not after an hour of work.
        if self.config.option.collectonly or self._collection_failed or not self._order:
            return
        self.backend  # noqa: B018 - opens the store

    def collection_index(self, item: pytest.Item) -> int:
        """The item's place in collection order, the same in every xdist worker."""
        return self._order.get(item.nodeid, len(self._order))

    # -- summaries ---------------------------------------------------------------------------

    def summarize(self, report: pytest.TestReport, summary: RunSummary) -> None:
        """Attach the summary of an item's run to its teardown report."""
        self._summaries[report] = summary

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when != "teardown" or not self._summaries:
            return
        summary = self._summaries.get(report)
        if summary is not None:
            self.results.append(summary)

    # Summaries cross from xdist workers with their teardown reports.

    @pytest.hookimpl(wrapper=True)
    def pytest_report_to_serializable(self, report: Any) -> Any:
        data = yield
        if not self._summaries or not isinstance(report, pytest.TestReport):
            return data
        summary = self._summaries.get(report)
        if summary is not None and isinstance(data, dict):
            data[SUMMARY_FIELD] = summary.to_json()
        return data

    @pytest.hookimpl(wrapper=True)
    def pytest_report_from_serializable(self, data: Any) -> Any:
        report = yield
        if isinstance(data, dict) and data.get(SUMMARY_FIELD) is not None:
            from .summary import RunSummary

            if isinstance(report, pytest.TestReport):
                self._summaries[report] = RunSummary.from_json(data[SUMMARY_FIELD])
                self._prepare_backend()
        return report

    @pytest.hookimpl(tryfirst=True)
    def pytest_report_teststatus(self, report: Any) -> Any:
        # --mlexp-reuse: a reused item passed; -v says from which run (on the xdist controller too).
        if getattr(report, "when", None) != "call" or not report.passed:
            return None
        for key, value in getattr(report, "user_properties", ()):
            if key == REUSED_PROPERTY:
                return "passed", ".", (f"PASSED (reused from run {value})", {"green": True})
        return None

    # -- the session's end -------------------------------------------------------------------

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if not self.is_worker and self.results:
            from ..pipeline import finish

            self.end = finish(self, session)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.is_worker or not self.results:
            return
        from ..reports.terminal import write_summary

        write_summary(terminalreporter, self.settings, self.results, self.end)
