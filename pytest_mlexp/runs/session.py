"""The session object: the session's settings, its store, and the summaries its runs leave.

Created and registered by ``plugin.py`` when collection finds a tracked item (on an
xdist or cluster controller, at configure), so a session without experiments never
loads this module. What acts on the items is
composed elsewhere: ``pipeline`` registers the features once collection
found tracked items (``item_runs.ItemRuns`` among them, which starts and ends
a run around each tracked item; ``mlflow`` is imported only then), and the
controller's session-end work. A session's workers (pytest-xdist's, a Ray
cluster's) send each run's summary to the controller with the item's teardown
report, and by no other road.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import weakref
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import pytest

from ..keys import SETTINGS_KEY

if TYPE_CHECKING:
    from ..backend.client import Backend
    from ..settings import Settings
    from .summary import RunSummary

#: Key of the summary in a serialized teardown report (xdist's and Ray's workers).
SUMMARY_FIELD = "mlexp_run"
#: Key set in every serialized report of a worker that tracks items.
TRACKED_FIELD = "mlexp_tracked"
#: The user property of a reused item's call report (``backend.tags.REUSED_FROM``).
REUSED_PROPERTY = "mlexp.reused_from"


class MlexpSession:
    """The session's state: settings, the store, and one summary per finished run."""

    def __init__(
        self,
        config: pytest.Config,
        resolve: Callable[[pytest.Config], Settings],
        open_backend: Callable[[Settings], Backend],
        on_tracked: Callable[[MlexpSession], None] | None = None,
    ) -> None:
        """``on_tracked``: registers what else looks at reports once tracked items are known
        here (the session's end, where it happens); a session without them never calls it."""
        self.config = config
        self._on_tracked = on_tracked
        self._resolve = resolve
        #: One summary per finished run, as reports arrived (from every worker).
        self.results: list[RunSummary] = []
        #: Whether collection failed (pytest still calls ``pytest_collection_finish``).
        self.collection_failed = False
        self._open_backend = open_backend
        self._backend: Backend | None = None
        self._order: dict[str, int] = {}
        self._summaries: weakref.WeakKeyDictionary[pytest.TestReport, RunSummary] = (
            weakref.WeakKeyDictionary()
        )
        self._restore_sigterm = False
        self._preparing: threading.Thread | None = None
        self._report_hooks: ReportHooks | None = None

    @property
    def settings(self) -> Settings:
        """Every setting, resolved on first use: when a tracked item is about to use them.

        Raises ``pytest.UsageError`` for a bad one, each time it is asked, so that a
        session without experiments never stops for a setting it does not use.
        """
        found = self.config.stash.get(SETTINGS_KEY, None)
        if found is None:
            found = self.config.stash[SETTINGS_KEY] = self._resolve(self.config)
        return found

    # -- the tracking store ------------------------------------------------------------------

    @property
    def backend(self) -> Backend:
        """The tracking store, opened (and mlflow imported) on first use."""
        if self._preparing is not None:
            self._preparing.join()
            self._preparing = None
        if self._backend is None:
            self._backend = self._open_backend(self.settings)
        self._handle_sigterm()
        return self._backend

    def prepare_backend(self) -> None:
        """The controller of workers: import mlflow and open the store while they run.

        Started when the first run's summary arrives from a worker, so sessions
        without one never pay for it; the session's end then finds the store
        open instead of adding the import to the time after the last worker ends.
        A failure is left for the session's end to meet again and report.
        """
        if self._backend is not None or self._preparing is not None:
            return
        try:
            settings = self.settings  # here, not in the thread: a worker resolved them already
        except pytest.UsageError:
            return

        def prepare() -> None:
            with contextlib.suppress(Exception):
                self._backend = self._open_backend(settings)

        self._preparing = threading.Thread(target=prepare, name="mlexp-prepare", daemon=True)
        self._preparing.start()

    def _handle_sigterm(self) -> None:
        """Treat SIGTERM (a CI timeout, ``kill``) like Ctrl-C, so runs end as KILLED."""
        if self._restore_sigterm or threading.current_thread() is not threading.main_thread():
            return
        if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
            return

        def interrupt(signum: int, frame: object) -> None:
            # The session is ending: a second SIGTERM (several senders, a process group)
            # must not kill it before its runs are closed. SIGKILL still does.
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            raise KeyboardInterrupt("SIGTERM")

        signal.signal(signal.SIGTERM, interrupt)
        self._restore_sigterm = True

    def pytest_unconfigure(self) -> None:
        if self._restore_sigterm:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)

    # -- collection --------------------------------------------------------------------------

    def track(self, items: Sequence[pytest.Item]) -> None:
        """Collection found tracked items: remember the collection order of ``items``."""
        self._order = {item.nodeid: index for index, item in enumerate(items)}
        self.watch_reports()

    @property
    def tracked(self) -> bool:
        """Whether collection found tracked items in this process."""
        return bool(self._order)

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        # Reach the store before the first experiment runs, so that a wrong URI
        # or a dead server stops the session at once, not after an hour of work.
        if self.config.getoption("collectonly") or self.collection_failed or not self._order:
            return
        self.backend  # noqa: B018 - opens the store

    def collection_index(self, item: pytest.Item) -> int:
        """The item's place in collection order, the same in every xdist worker."""
        return self._order.get(item.nodeid, len(self._order))

    # -- summaries ---------------------------------------------------------------------------

    def summarize(self, report: pytest.TestReport, summary: RunSummary) -> None:
        """Attach the summary of an item's run to its teardown report."""
        self._summaries[report] = summary

    def watch_reports(self) -> None:
        """From now on, look at every report: summaries to gather, reused items to tell.

        Called once this process tracks items, or receives the first report of a worker
        that does: a session without experiments pays nothing per report.
        """
        if self._report_hooks is None:
            self._report_hooks = ReportHooks(self)
            self.config.pluginmanager.register(self._report_hooks, "mlexp-reports")
            if self._on_tracked is not None:
                self._on_tracked(self)

    def gather(self, report: pytest.TestReport) -> None:
        """Keep the summary attached to ``report``, if any: its run ended."""
        summary = self._summaries.get(report)
        if summary is not None:
            self.results.append(summary)
            # A worker's run ended (it opened the store): from now on, SIGTERM ends the
            # session as Ctrl-C does, here too.
            self._handle_sigterm()

    # Summaries cross from workers (xdist's, Ray's) with their teardown reports: one road.

    @pytest.hookimpl(wrapper=True)
    def pytest_report_to_serializable(self, report: Any) -> Any:
        data = yield
        if not self._order or not isinstance(report, pytest.TestReport):
            return data
        if isinstance(data, dict):
            # Every report of a worker that tracks items says so: the controller looks at
            # reports from the first one on (a group's member, a seed its cell did not need).
            data[TRACKED_FIELD] = True
            summary = self._summaries.get(report)
            if summary is not None:
                data[SUMMARY_FIELD] = summary.to_json()
        return data

    @pytest.hookimpl(wrapper=True)
    def pytest_report_from_serializable(self, data: Any) -> Any:
        report = yield
        if not isinstance(data, dict) or not data.get(TRACKED_FIELD):
            return report  # a plain suite's report: nothing more is looked at
        self.watch_reports()
        if data.get(SUMMARY_FIELD) is not None and isinstance(report, pytest.TestReport):
            from .summary import RunSummary

            self._summaries[report] = RunSummary.from_json(data[SUMMARY_FIELD])
            # The session's end will need the store: open it while the workers run.
            self.prepare_backend()
        return report


def reused_from(report: Any) -> str | None:
    """The run a reused item's passed call report says it was reused from."""
    if not getattr(report, "user_properties", None) or report.when != "call":
        return None
    for key, value in report.user_properties:
        if key == REUSED_PROPERTY:
            return str(value)
    return None


class ReportHooks:
    """Registered by ``MlexpSession.watch_reports``: the hooks called for every report."""

    def __init__(self, session: MlexpSession) -> None:
        self.session = session

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "teardown":
            self.session.gather(report)

    @pytest.hookimpl(tryfirst=True)
    def pytest_report_teststatus(self, report: Any) -> Any:
        # --mlexp-reuse: a reused item passed; -v says from which run (on the xdist controller too).
        run_id = reused_from(report)
        if run_id is None or not report.passed:
            return None
        return "passed", ".", (f"PASSED (reused from run {run_id})", {"green": True})
