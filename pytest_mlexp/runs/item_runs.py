"""One MLflow run around each tracked item: started in setup, ended after teardown.

Registered (``pipeline.activate``) only in processes whose collection found
tracked items, so ordinary tests never go through these hooks. What each run
leaves is a ``RunSummary``, handed to the session object.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import pytest

from ..backend import tags as T
from ..keys import CELL_RULES_KEY, GROUPS_KEY, REGISTER_KEY, REUSE_KEY, RUN_KEY, VERDICT_KEY
from ..redaction import redact_text
from ..warning_types import MlexpWarning

# Re-exported until grids/ and search/ import them from runs.identity.
from .identity import current_user, run_name, source_name
from .item_run import ItemRun
from .markers import BEST_FROM_FILE_KEY, marker_options
from .metric_values import MetricValues, read_values
from .outcome import error_line, outcome_and_status
from .summary import GroupRefs, RunSummary

if TYPE_CHECKING:
    from .experiment_run import ExperimentRun
    from .session import MlexpSession

_TRACKED_KEY = pytest.StashKey[bool]()


class ItemRuns:
    """Registered as ``mlexp-runs``: starts, fills and ends the run of every tracked item."""

    def __init__(self, session: MlexpSession, tracked: list[pytest.Item]) -> None:
        self.session = session
        self.config = session.config
        self.settings = session.settings
        for item in tracked:
            item.stash[_TRACKED_KEY] = True
        self._running: dict[str, tuple[pytest.Item, ItemRun]] = {}
        #: The summary of each item's latest finished attempt, until a rerun supersedes it.
        self._finished: dict[str, RunSummary] = {}

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        # A plain tryfirst hook, not a wrapper: it runs before skip marks are
        # evaluated and fixtures set up, yet inside pytest's own setup wrappers
        # (logging, capture), so a failure to start the run is an ordinary setup error.
        if item.stash.get(_TRACKED_KEY, False):
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
        from .metric_values import log_returned

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

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        # pytest-rerunfailures logs the failed phase of an attempt it reruns as
        # "rerun", after the attempt's run ended and before its teardown report
        # (which carries the summary to the session, or to the xdist controller).
        if report.outcome != T.OUTCOME_RERUN:
            return
        summary = self._finished.pop(report.nodeid, None)
        if summary is None:
            return
        summary.outcome = T.OUTCOME_RERUN
        try:
            self.session.backend.client.set_tag(summary.run_id, T.OUTCOME, T.OUTCOME_RERUN)
        except Exception as exc:
            warnings.warn(
                MlexpWarning(f"could not mark run {summary.run_id} as a rerun attempt: {exc}"),
                stacklevel=1,
            )

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self) -> None:
        # Items cut short by Ctrl-C (or pytest.exit) never reach teardown.
        for item, item_run in list(self._running.values()):
            try:
                self.session.results.append(self._end(item, item_run, "interrupted", "KILLED"))
            except Exception as exc:
                warnings.warn(
                    MlexpWarning(f"could not record interrupted run of {item.nodeid}: {exc}"),
                    stacklevel=1,
                )

    # -- internals -----------------------------------------------------------------------------

    def _start(self, item: pytest.Item) -> None:
        # mlflow is imported here, when the first tracked item runs.
        from ..backend.fluent import start_run
        from .experiment_run import ExperimentRun

        options = marker_options(item)
        experiment = str(options.get("experiment") or self.settings.tracking.experiment)
        tags = {
            **self.settings.tracking.tags,
            **{str(k): str(v) for k, v in options.get("tags", {}).items()},
            **{
                k: v
                for extra in self.config.hook.pytest_mlexp_run_tags(item=item)
                for k, v in extra.items()
            },
            **self._standard_tags(item),
        }
        attempt = attempt_of(item)
        if attempt is not None:
            tags[T.ATTEMPT] = str(attempt)
            # A rerun is judged afresh: no verdict carried over from the attempt before.
            if VERDICT_KEY in item.stash:
                del item.stash[VERDICT_KEY]
            if CELL_RULES_KEY in item.stash:
                del item.stash[CELL_RULES_KEY]
        backend = self.session.backend
        run_id, experiment_id = start_run(
            backend, experiment=experiment, run_name=run_name(item), tags=tags
        )
        run = ExperimentRun(backend, run_id, experiment_id)
        run.figures = self.settings.figures
        item_run = ItemRun(run=run, experiment=experiment)
        item.stash[RUN_KEY] = item_run
        self._running[item.nodeid] = (item, item_run)
        callspec = getattr(item, "callspec", None)
        if callspec is not None:
            run.log_params(callspec.params)
        self.config.hook.pytest_mlexp_run_start(item=item, run=run)

    def _standard_tags(self, item: pytest.Item) -> dict[str, str]:
        return {
            T.SOURCE_NAME: source_name(item, self.settings.tracking.rootdir),
            T.SOURCE_TYPE: "LOCAL",
            T.USER: current_user(),
            T.NODEID: item.nodeid,
            T.SESSION_ID: self.settings.tracking.session_id,
        }

    def _finish(self, item: pytest.Item, item_run: ItemRun, report: pytest.TestReport) -> None:
        outcome, status = outcome_and_status(item_run.reports)
        failed = next((r for r in item_run.reports.values() if r.failed), None)
        try:
            if failed is not None:
                traceback = redact_text(failed.longreprtext)
                item_run.run.set_tag(T.ERROR, error_line(failed, traceback))
                item_run.run.log_text(traceback, "mlexp/traceback.txt")
            summary = self._end(item, item_run, outcome, status)
            self.session.summarize(report, summary)
            if attempt_of(item) is not None:
                self._finished[item.nodeid] = summary
        except Exception as exc:
            # The run could not be completed: show it as an error of this item.
            self._running.pop(item.nodeid, None)
            self._terminate_quietly(item_run.run, "FAILED")
            report.outcome = "failed"
            report.longrepr = (
                f"mlexp: could not record run {item_run.run.run_id} in "
                f"{self.settings.tracking.display_uri}: {type(exc).__name__}: {exc}"
            )

    def _end(self, item: pytest.Item, item_run: ItemRun, outcome: str, status: str) -> RunSummary:
        from ..backend.fluent import end_run

        self._running.pop(item.nodeid, None)
        run = item_run.run
        run.set_tag(T.OUTCOME, outcome)
        try:
            self.config.hook.pytest_mlexp_run_ending(
                item=item, run=run, status=status, outcome=outcome
            )
            # The run's values, read once for every reader; its shape stays with it for reuse.
            values = read_values(run)
            shape = {
                T.RETURNED: ",".join(values.returned),
                T.HISTORIES: ",".join(sorted(values.histories)),
            }
            run.set_tags({key: text for key, text in shape.items() if text})
            try:
                run.flush()
            finally:
                end_run(self.session.backend, run.run_id, status)
        except Exception:
            self._terminate_quietly(run, status)
            raise
        self.config.hook.pytest_mlexp_run_finished(
            item=item, run=run, status=status, outcome=outcome
        )
        verdict = item.stash.get(VERDICT_KEY, None)
        if verdict is not None:
            call = item_run.reports.get("call")
            verdict.passed = call is not None and call.passed
        reuse = item.stash.get(REUSE_KEY, None)
        return RunSummary(
            name=item.name,
            nodeid=item.nodeid,
            experiment=item_run.experiment,
            status=status,
            outcome=outcome,
            run_id=run.run_id,
            params=dict(run.params),
            metrics=values.values,
            returned=list(values.returned),
            histories=sorted(values.histories),
            url=self.session.backend.run_link(run.experiment_id, run.run_id),
            index=self.session.collection_index(item),
            groups=with_best(item, item.stash.get(GROUPS_KEY, None), values),
            verdict=verdict,
            cell_rules=item.stash.get(CELL_RULES_KEY, None),
            spooled=self.session.backend.is_spooled(run.run_id),
            attempt=attempt_of(item) or 1,
            register=item.stash.get(REGISTER_KEY, ""),
            reused_from=reuse.reused_from if reuse is not None else "",
            rerun_reason=reuse.reason if reuse is not None else "",
        )

    def _terminate_quietly(self, run: ExperimentRun, status: str) -> None:
        """Best effort: never leave a run RUNNING, even when the store misbehaves."""
        from ..backend.fluent import end_run

        try:
            end_run(self.session.backend, run.run_id, status)
        except Exception as exc:
            warnings.warn(
                MlexpWarning(f"could not close run {run.run_id} as {status}: {exc}"), stacklevel=1
            )


def with_best(item: pytest.Item, refs: GroupRefs | None, values: MetricValues) -> GroupRefs | None:
    """The item's group refs with the metric picking its grid's best cell, and its source."""
    from .metric_values import BEST_MARKER, BEST_PARAMS_FILE, BEST_SETTING, default_best

    if refs is None or refs.search_run_id:
        return refs  # a search's trials are ranked by its objective
    options = marker_options(item)
    if refs.best:
        if item.stash.get(BEST_FROM_FILE_KEY, False):
            source = BEST_PARAMS_FILE
        else:
            source = BEST_MARKER if options.get("best") else BEST_SETTING
        return dataclasses.replace(refs, best_source=source)
    expect = options.get("expect")
    found = default_best(values, list(expect) if isinstance(expect, Mapping) else [])
    if found is None:
        return refs
    return dataclasses.replace(refs, best=found[0], best_source=found[1])


def attempt_of(item: pytest.Item) -> int | None:
    """The attempt pytest-rerunfailures is running (1, 2...), or ``None`` without reruns."""
    count = getattr(item, "execution_count", None)
    return count if isinstance(count, int) and not isinstance(count, bool) else None
