"""The session object: one MLflow run around each tracked item."""

from __future__ import annotations

import functools
import getpass
import inspect
import signal
import threading
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest

from .config import TrackingConfig
from .redaction import redact_text
from .warning_types import MlexpWarning

if TYPE_CHECKING:
    from .tracking import ExperimentRun, Tracker

#: Keyword arguments accepted by ``@pytest.mark.mlexp``.
MARKER_KWARGS = (
    "experiment",
    "tags",
    # gate.py
    "expect",
    "tolerance",
    "direction",
    # grid.py
    "best",
    "repeats",
    "seeds",
)

#: Name of the session object in pytest's plugin manager.
PLUGIN_NAME = "mlexp-session"


@dataclass
class ItemRun:
    """What the session knows about a tracked item's run while it runs."""

    run: ExperimentRun
    experiment: str
    reports: dict[str, pytest.TestReport] = field(default_factory=dict)


RUN_KEY = pytest.StashKey[ItemRun]()


def is_tracked(item: pytest.Item) -> bool:
    """An ``experiment_*`` function, an item marked ``mlexp``, or one using ``mlflow_run``."""
    if not isinstance(item, pytest.Function):
        return False
    return (
        item.originalname.startswith("experiment_")
        or item.get_closest_marker("mlexp") is not None
        or "mlflow_run" in item.fixturenames
    )


def outcome_and_status(reports: dict[str, pytest.TestReport]) -> tuple[str, str]:
    """pytest's outcome for the item and the MLflow status it maps to."""
    setup, call, teardown = (reports.get(when) for when in ("setup", "call", "teardown"))
    for report in (setup, call):
        if report is not None and hasattr(report, "wasxfail"):
            return ("xfailed", "FAILED") if report.skipped else ("xpassed", "FINISHED")
    if setup is not None and setup.failed:
        return "error", "FAILED"
    if setup is not None and setup.skipped:
        return "skipped", "FINISHED"
    if call is None:
        return "interrupted", "KILLED"
    if call.failed:
        return "failed", "FAILED"
    if call.skipped:
        return "skipped", "FINISHED"
    if teardown is not None and teardown.failed:
        return "error", "FAILED"
    return "passed", "FINISHED"


class MlexpSession:
    """Starts, fills and ends the run of every tracked item; keeps the session's summary."""

    def __init__(self, config: pytest.Config, settings: TrackingConfig) -> None:
        self.config = config
        self.settings = settings
        #: One summary per finished run, in the order reports arrived (all workers).
        self.results: list[dict[str, Any]] = []
        self._tracker: Tracker | None = None
        self._running: dict[str, tuple[pytest.Item, ItemRun]] = {}
        self._restore_sigterm = False
        self._collection_failed = False

    # -- tracking store ----------------------------------------------------------

    @property
    def tracker(self) -> Tracker:
        """The tracking connection, opened (and mlflow imported) on first use."""
        if self._tracker is None:
            from .tracking import Tracker, TrackingUnavailable

            try:
                self._tracker = Tracker.open(self.settings)
            except TrackingUnavailable as exc:
                raise pytest.UsageError(f"mlexp: {exc}") from None
            self._handle_sigterm()
        return self._tracker

    def _handle_sigterm(self) -> None:
        """Treat SIGTERM (a CI timeout, ``kill``) like Ctrl-C, so runs end as KILLED."""
        if threading.current_thread() is not threading.main_thread():
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

    # -- collection --------------------------------------------------------------

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> Any:
        try:
            result = yield
            for item in items:
                for marker in item.iter_markers("mlexp"):
                    _check_marker(item, marker)
        except BaseException:
            # pytest still calls pytest_collection_finish: don't open the store for nothing.
            self._collection_failed = True
            raise
        return result

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        # Reach the store before the first experiment runs, so that a wrong URI
        # or a dead server stops the session at once, not after an hour of work.
        if self.config.option.collectonly or self._collection_failed:
            return
        if any(is_tracked(item) for item in session.items):
            self.tracker  # noqa: B018 - opens the connection

    # -- one run per item --------------------------------------------------------

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        # A plain tryfirst hook, not a wrapper: it runs before skip marks are
        # evaluated and fixtures set up, yet inside pytest's own setup wrappers
        # (logging, capture), so a failure to start the run is an ordinary setup error.
        if is_tracked(item):
            self._start(item)

    @pytest.hookimpl(wrapper=True)
    def pytest_pyfunc_call(self, pyfuncitem: pytest.Function) -> Any:
        item_run = pyfuncitem.stash.get(RUN_KEY, None)
        original = pyfuncitem.obj
        if item_run is None or inspect.iscoroutinefunction(original):
            return (yield)
        returned: list[Any] = []

        @functools.wraps(original)
        def capture_return(*args: Any, **kwargs: Any) -> None:
            returned.append(original(*args, **kwargs))

        pyfuncitem.obj = capture_return
        try:
            result = yield
        finally:
            pyfuncitem.obj = original
        if returned and returned[0] is not None:
            self.config.hook.pytest_mlexp_returned(
                item=pyfuncitem, run=item_run.run, value=returned[0]
            )
        return result

    @pytest.hookimpl(trylast=True)
    def pytest_mlexp_returned(self, item: pytest.Item, run: ExperimentRun, value: Any) -> bool:
        from .tracking import log_returned

        log_returned(run, item.nodeid, value)
        return True

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
        report: pytest.TestReport = yield
        item_run = item.stash.get(RUN_KEY, None)
        if item_run is not None:
            item_run.reports[report.when] = report
            if report.when == "teardown":
                self._finish(item, item_run, report)
        return report

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        # Summaries travel on teardown reports, so xdist brings workers' to the controller.
        summary = getattr(report, "mlexp_run", None)
        if summary is not None:
            self.results.append(summary)

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self) -> None:
        # Items cut short by Ctrl-C (or pytest.exit) never reach teardown.
        for item, item_run in list(self._running.values()):
            try:
                self.results.append(self._end(item, item_run, "interrupted", "KILLED"))
            except Exception as exc:
                warnings.warn(
                    MlexpWarning(f"could not record interrupted run of {item.nodeid}: {exc}"),
                    stacklevel=1,
                )

    # -- internals -------------------------------------------------------------------

    def _start(self, item: pytest.Item) -> None:
        options = marker_options(item)
        experiment = str(options.get("experiment") or self.settings.experiment)
        tags = {
            **self.settings.tags,
            **{str(k): str(v) for k, v in options.get("tags", {}).items()},
            **{
                k: v
                for extra in self.config.hook.pytest_mlexp_run_tags(item=item)
                for k, v in extra.items()
            },
            **self._standard_tags(item),
        }
        run = self.tracker.start_run(experiment=experiment, run_name=item.name, tags=tags)
        item_run = ItemRun(run=run, experiment=experiment)
        item.stash[RUN_KEY] = item_run
        self._running[item.nodeid] = (item, item_run)
        callspec = getattr(item, "callspec", None)
        if callspec is not None:
            run.log_params(callspec.params)
        self.config.hook.pytest_mlexp_run_start(item=item, run=run)

    def _standard_tags(self, item: pytest.Item) -> dict[str, str]:
        try:
            source = str(item.path.relative_to(self.settings.rootdir))
        except ValueError:
            source = str(item.path)
        return {
            "mlflow.source.name": source,
            "mlflow.source.type": "LOCAL",
            "mlflow.user": _user(),
            "mlexp.nodeid": item.nodeid,
            "mlexp.session_id": self.settings.session_id,
        }

    def _finish(self, item: pytest.Item, item_run: ItemRun, report: pytest.TestReport) -> None:
        outcome, status = outcome_and_status(item_run.reports)
        failed = next((r for r in item_run.reports.values() if r.failed), None)
        try:
            if failed is not None:
                traceback = redact_text(failed.longreprtext)
                item_run.run.set_tag("mlexp.error", _error_line(failed, traceback))
                item_run.run.log_text(traceback, "mlexp/traceback.txt")
            report.mlexp_run = self._end(item, item_run, outcome, status)  # type: ignore[attr-defined]
        except Exception as exc:
            # The run could not be completed: show it as an error of this item.
            self._running.pop(item.nodeid, None)
            self._terminate_quietly(item_run.run, "FAILED")
            report.outcome = "failed"
            report.longrepr = (
                f"mlexp: could not record run {item_run.run.run_id} in "
                f"{self.settings.display_uri}: {type(exc).__name__}: {exc}"
            )

    def _end(
        self, item: pytest.Item, item_run: ItemRun, outcome: str, status: str
    ) -> dict[str, Any]:
        self._running.pop(item.nodeid, None)
        run = item_run.run
        run.set_tag("mlexp.outcome", outcome)
        try:
            self.config.hook.pytest_mlexp_run_ending(
                item=item, run=run, status=status, outcome=outcome
            )
            self.tracker.end_run(run, status)
        except Exception:
            self._terminate_quietly(run, status)
            raise
        self.config.hook.pytest_mlexp_run_finished(
            item=item, run=run, status=status, outcome=outcome
        )
        return {
            "name": item.name,
            "nodeid": item.nodeid,
            "experiment": item_run.experiment,
            "status": status,
            "outcome": outcome,
            "run_id": run.run_id,
            "params": dict(run.params),
            "metrics": dict(run.metrics),
            "url": self.tracker.run_url(run),
        }

    def _terminate_quietly(self, run: ExperimentRun, status: str) -> None:
        """Best effort: never leave a run RUNNING, even when the store misbehaves."""
        try:
            self.tracker.end_run(run, status)
        except Exception as exc:
            warnings.warn(
                MlexpWarning(f"could not close run {run.run_id} as {status}: {exc}"), stacklevel=1
            )


def marker_options(item: pytest.Item) -> dict[str, Any]:
    """The item's ``mlexp`` marker arguments; a function's marker overrides its module's.

    ``tags`` merge across markers, the closest marker winning per key.
    """
    options: dict[str, Any] = {}
    tags: dict[str, Any] = {}
    for marker in reversed(list(item.iter_markers("mlexp"))):
        options.update(marker.kwargs)
        # Markers are validated after collection; until then, skip bad tags quietly.
        marker_tags = marker.kwargs.get("tags")
        if isinstance(marker_tags, Mapping):
            tags.update(marker_tags)
    options["tags"] = tags
    return options


def _check_marker(item: pytest.Item, marker: pytest.Mark) -> None:
    where = f"@pytest.mark.mlexp on {item.nodeid}"
    if marker.args:
        raise pytest.UsageError(
            f"{where}: takes keyword arguments only ({', '.join(MARKER_KWARGS)}), "
            f"got positional {marker.args!r}"
        )
    unknown = sorted(set(marker.kwargs) - set(MARKER_KWARGS))
    if unknown:
        raise pytest.UsageError(
            f"{where}: unknown argument {unknown[0]!r}; accepted: {', '.join(MARKER_KWARGS)}"
        )
    experiment = marker.kwargs.get("experiment")
    if experiment is not None and (not isinstance(experiment, str) or not experiment.strip()):
        raise pytest.UsageError(
            f"{where}: experiment must be a non-empty string, got {experiment!r}"
        )
    tags = marker.kwargs.get("tags")
    if tags is not None and not isinstance(tags, dict):
        raise pytest.UsageError(
            f"{where}: tags must be a dict such as tags={{'team': 'vision'}}, got {tags!r}"
        )


@functools.cache
def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return "unknown"


def _error_line(report: pytest.TestReport, traceback: str) -> str:
    """The one-line reason of a failure, as pytest's short summary shows it."""
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is not None:
        return redact_text(crash.message)[:500]
    lines = [line for line in traceback.strip().splitlines() if line.strip()]
    return lines[-1][:500] if lines else ""
