"""The features of a session and the order they act in, written down in one place.

``plugin.py`` registers ``Pipeline`` in every process and ``Controller`` only
in the process that ends the session (not in xdist workers), the way xdist
registers its ``DSession`` only on the controller.

0. ``Pipeline.pytest_generate_tests``: at collection, the params file, searches
   and repeats parametrize the experiment functions that ask for it.
1. ``check_early``: at session start, what must stop a broken session before
   anything runs (a baseline file that does not parse).
2. ``activate``: once collection found tracked items, in the processes that
   run them, the features register their hooks: grid parents, lineage,
   artifact discovery, autolog, the gate, the params file, models, searches' trials. Until
   then nothing of theirs is imported, so test suites without experiments do not pay for them.
3. ``open_backend``: the store, with the spool in front of it under
   ``--mlexp-on-tracking-error spool``.
4. ``finish``: the controller's session-end work, in order: close the runs
   of dead processes and complete the grid parents, repeated cells and search
   parents, save the UI's view of the runs (its links), judge the cells' means
   and refresh the baseline file, register the best cells' models when the
   session passed, write the markdown and HTML reports.
   ``reports.terminal`` then prints what it did (``Controller``).

Under xdist the first three are done by the last worker to end, with the store
it has open, for every worker's runs (``Worker``): the controller prints what it
sent, and imports MLflow only when the session's end needs the store itself
(``needs_store``: the gate's group runs, registration, the HTML report) or when
a worker ended without a word (it died).

Under ``--mlexp-ray`` the controller also registers ``cluster.controller.RayController``,
which runs the items on warm Ray actors instead of pytest's loop. Each actor
holds a pytest session of its own whose ``config.workerinput`` is the
controller's, as an xdist worker's, so every feature sees the controller's
session id and process; it sends no share (it has no ``workeroutput``). The
summaries come with the replayed teardown reports, and the controller does the
session's end itself against the tracking server (``finish`` without shares).
"""

from __future__ import annotations

import os
from collections.abc import Generator, Sequence
from typing import TYPE_CHECKING, Any

import pytest

from .redaction import redact_text
from .reports.end import SessionEnd
from .runs.session import SUMMARY_FIELD

if TYPE_CHECKING:
    from .backend.client import Backend
    from .groups.kinds import GroupKind
    from .runs.session import MlexpSession
    from .runs.summary import RunSummary
    from .settings import Settings


def check_early(settings: Settings) -> None:
    """Stop the session before anything runs when a baseline file does not parse."""
    if settings.gate.baseline_file is not None:
        from .gate.baselines import read_file

        try:
            read_file(settings.gate.baseline_file)
        except ValueError as exc:
            raise pytest.UsageError(f"--mlexp-baseline-file: {exc}") from None


#: Marker arguments whose presence means a search (``search.declaration.SEARCH_KWARGS``).
_SEARCH_KWARGS = ("search", "trials", "objective", "sampler", "seed", "pruner", "study")


class Pipeline:
    """Registered as ``mlexp-pipeline`` in every process: collection, then the features."""

    def __init__(self, session: MlexpSession) -> None:
        self.session = session
        self.settings = session.settings
        #: Collection met a search declaration (a trial was parametrized).
        self.searches = False

    def pytest_sessionstart(self) -> None:
        if self.settings.gate.baseline_file is not None:
            check_early(self.settings)

    @pytest.hookimpl(trylast=True)
    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        file_search = None
        if self.settings.params.enabled:
            from .runs.markers import is_tracked

            if is_tracked(metafunc.definition):
                from .params.collection import parametrize_from_file, search_from_file

                parametrize_from_file(metafunc, self.settings.params)
                file_search = search_from_file(metafunc)
        markers = list(metafunc.definition.iter_markers("mlexp"))
        # Cheap: no search module is imported for functions that declare none.
        if file_search is not None or any(
            key in marker.kwargs for marker in markers for key in _SEARCH_KWARGS
        ):
            from .search.collection import parametrize_search

            self.searches = True
            parametrize_search(metafunc, self.settings, file_search)
        if any("repeats" in marker.kwargs or "seeds" in marker.kwargs for marker in markers):
            from .grids.repeats import parametrize_repeats

            parametrize_repeats(metafunc)

    @pytest.hookimpl(wrapper=True, trylast=True)
    def pytest_make_collect_report(self, collector: pytest.Collector) -> Generator[None, Any, Any]:
        # Innermost: every parametrization of a module's functions, before a node id, --lf
        # or -k leaves out some (a group judged as a whole needs all its members).
        report = yield
        if report.passed and isinstance(collector, pytest.Module | pytest.Class):
            from .groups.collected import record

            record(self.session.config, report.result)
        return report

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> Generator[None, Any, Any]:
        try:
            result = yield
            from .runs.markers import is_tracked

            tracked = [item for item in items if is_tracked(item)]
            if tracked and self.settings.params.enabled:
                from .params.collection import mark_resources

                mark_resources(self.session.config, tracked)
            if tracked:
                self.session.track(items)
                activate(self.session, tracked, searches=self.searches)
        except BaseException:
            # pytest still calls pytest_collection_finish: don't open the store for nothing.
            self.session.collection_failed = True
            raise
        return result


#: The ``workeroutput`` key of a worker's share of the session's end (``Worker``).
WORKER_SHARE_FIELD = "mlexp_share"


class Worker:
    """Registered as ``mlexp-worker`` only in xdist workers: the last one closes the session's runs.

    Each worker, at its end, leaves its runs' summaries for the others
    (``workers.Enders``). The last worker to end, once every run of the
    session has ended, does with the store it has open what the controller
    would otherwise import MLflow for: it marks KILLED the runs of dead
    processes, completes the group runs and writes the UI's view. It sends
    the lines and links to the controller in ``workeroutput``, as xdist
    documents; the others send that they ended.
    """

    def __init__(self, session: MlexpSession) -> None:
        self.session = session

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self) -> None:
        from .workers import Enders, worker_input

        config = self.session.config
        output = getattr(config, "workeroutput", None)
        given = worker_input(config)
        if output is None or given is None or not self.session.tracked:
            return
        if config.getoption("collectonly"):
            return
        mine = [summary.to_json() for summary in self.session.results]
        try:
            session_id = self.session.settings.tracking.session_id
            enders = Enders(session_id, given["mlexp_controller_pid"])
            everyone = enders.add(given["workerid"], mine, int(given["workercount"]))
            if everyone is None:
                output[WORKER_SHARE_FIELD] = {"last": False}
                return
            from .runs.summary import RunSummary

            results = sorted((RunSummary.from_json(data) for data in everyone), key=_index)
            if not results or needs_store(results, self.session.settings):
                # Nothing ran (the store is not opened for nothing), or the controller
                # opens the store anyway: then it does it all, once.
                output[WORKER_SHARE_FIELD] = {"last": False}
                return
            output[WORKER_SHARE_FIELD] = {"last": True, **worker_share(self.session, results)}
        except Exception:
            # No share: the controller does the work itself (and says what failed).
            return


def _index(result: RunSummary) -> int:
    return result.index


def worker_share(session: MlexpSession, results: list[RunSummary]) -> dict[str, Any]:
    """The session's end that needs only the store, for every worker's ``results``; JSON."""
    from .groups.completion import complete_groups
    from .groups.sweep import sweep_dead_runs
    from .reports.ui_view import runs_links

    backend, settings = session.backend, session.settings
    final = [r for r in results if not r.superseded]
    swept = sweep_dead_runs(backend, {r.experiment for r in results})
    lines = complete_groups(backend, final, settings, group_kinds())
    links = runs_links(backend, settings.tracking, results)
    return {"swept": swept, "lines": lines, "links": links}


def group_kinds() -> list[GroupKind]:
    """The kinds of group runs the features make: grids' cells and parents, searches' parents."""
    from .grids.kinds import CELL, GRID
    from .search.kinds import SEARCH

    return [CELL, GRID, SEARCH]


def needs_store(results: list[RunSummary], settings: Settings) -> bool:
    """Whether the session's end needs the store beyond what the workers did."""
    if (
        settings.html is not None
        or settings.register.names
        or settings.register.keep is not None
        or any(r.register for r in results)
    ):
        return True
    from .gate.group_runs import judges_any

    return judges_any(results, settings.gate)


class Controller:
    """Registered as ``mlexp-controller`` only where the session ends (not in xdist workers)."""

    def __init__(self, session: MlexpSession) -> None:
        self.session = session
        #: What the session's end did; read by the terminal summary.
        self.end: SessionEnd | None = None
        #: The shares of the session's end that xdist workers sent (``Worker``).
        self.shares: list[dict[str, Any]] = []
        #: A worker ended without its share (it crashed): the controller does it all.
        self.share_missing = False

    @pytest.hookimpl(wrapper=True)
    def pytest_report_from_serializable(self, data: Any) -> Generator[None, Any, Any]:
        report = yield
        if isinstance(data, dict) and data.get(SUMMARY_FIELD) is not None:
            from .runs.summary import RunSummary

            summary = RunSummary.from_json(data[SUMMARY_FIELD])
            if needs_store([summary], self.session.settings):
                # Import mlflow and open the store while the workers run.
                self.session.prepare_backend()
        return report

    def worker_ended(self, output: dict[str, Any] | None, error: object) -> None:
        """An xdist worker ended (``pytest_testnodedown``), sending its ``workeroutput``."""
        share = (output or {}).get(WORKER_SHARE_FIELD)
        if error is not None or not isinstance(share, dict):
            self.share_missing = True
        else:
            self.shares.append(share)

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.session.results:
            self.end = finish(self.session, session, self.shares, complete=not self.share_missing)
            if self.shares or self.share_missing:
                from .workers import Enders

                # What workers that died before the last one ended left behind.
                settings = self.session.settings
                Enders(settings.tracking.session_id, os.getpid()).discard()

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self.session.results:
            return
        from .reports.terminal import write_summary

        write_summary(terminalreporter, self.session.settings, self.session.results, self.end)


def check_markers(item: pytest.Item) -> None:
    """Raise ``UsageError`` for a bad ``mlexp`` marker, naming the item and the argument.

    The kernel's arguments first, then each feature's own.
    """
    from .models.plugin import check_marker as check_models_marker
    from .reuse.markers import check_reuse_marker
    from .runs.markers import check_best, check_marker, marker_place

    for marker in item.iter_markers("mlexp"):
        check_marker(item, marker)
        check_models_marker(marker, marker_place(item))
        check_reuse_marker(marker.kwargs, marker_place(item))
        check_best(item, marker)
        if "resources" in marker.kwargs:
            from .cluster.resources import demand_of

            # Refused with or without --mlexp-ray: the same file runs on both.
            demand_of(marker.kwargs["resources"], f"{marker_place(item)}: resources=")


def activate(session: MlexpSession, tracked: list[pytest.Item], *, searches: bool) -> None:
    """Check the tracked items' markers, then register the features that act on them.

    Raises ``UsageError`` for a bad marker, naming the item and the argument.
    """
    for item in tracked:
        check_markers(item)
    config, settings = session.config, session.settings
    trials = None
    if searches:
        from .search.collection import check_searches

        trials = check_searches(config, tracked)
    manager = config.pluginmanager
    if manager.has_plugin("mlexp-runs"):
        return
    from .artifacts.discovery import ArtifactDiscovery
    from .gate.plugin import RegressionGate
    from .grids.parents import GridParents
    from .runs.item_runs import ItemRuns

    manager.register(ItemRuns(session, tracked), "mlexp-runs")
    from .reuse.plugin import Reuse

    # Fingerprints every run; under --mlexp-reuse, records unchanged items without executing them.
    manager.register(Reuse(session, tracked), "mlexp-reuse")
    manager.register(GridParents(config, settings), "mlexp-grid")
    if settings.lineage:
        from .lineage.plugin import Lineage

        lineage = Lineage(config, settings.tracking.rootdir, settings.lineage)
        manager.register(lineage, "mlexp-lineage")
    manager.register(ArtifactDiscovery(config, settings), "mlexp-artifacts")
    from .models.plugin import ModelMetrics

    manager.register(ModelMetrics(settings.register), "mlexp-models")
    if settings.autolog:
        from .autolog import Autolog

        manager.register(Autolog(), "mlexp-autolog")
    from .autolog import AutologScope

    manager.register(AutologScope(), "mlexp-autolog-scope")
    if settings.system_metrics:
        from .system_metrics import SystemMetrics

        # Raises UsageError without psutil, before any item runs.
        manager.register(SystemMetrics(), "mlexp-system-metrics")
    gate = RegressionGate(config, settings)
    gate.prepare(tracked)
    manager.register(gate, "mlexp-gate")
    from .params.collection import session_state

    params = session_state(config)
    if params is not None:
        from .params.plugin import ParamsLog

        log_files = "code" in settings.lineage
        manager.register(ParamsLog(params, tracked, log_files=log_files), "mlexp-params")
    if trials:
        # After mlexp-runs: its tryfirst setup (asking the study) runs before the run starts.
        from .search.plugin import SearchTrials

        search = SearchTrials(session, trials)
        search.mark(tracked)
        manager.register(search, "mlexp-search")


def open_backend(settings: Settings) -> Backend:
    """Open the session's store, or raise ``UsageError`` saying what is wrong."""
    from .backend import uris
    from .backend.client import Backend
    from .backend.errors import StoreError

    tracking = settings.tracking
    try:
        backend = Backend.for_session(
            tracking.tracking_uri,
            tracking.uri_source,
            artifact_location=tracking.artifact_location,
            experiment=tracking.experiment,
        )
    except StoreError as exc:
        raise pytest.UsageError(f"mlexp: {exc}") from None
    if settings.on_tracking_error == "spool":
        from .spool.client import SpoolingClient
        from .spool.journal import JOURNAL_DIR, Journal

        journal = Journal(tracking.rootdir / JOURNAL_DIR, tracking.tracking_uri)
        backend.client = SpoolingClient(backend.client, journal)
        if uris.is_server(tracking.tracking_uri):
            from .spool.store import route_fluent_api

            # mlflow.log_* and autolog spool with mlflow_run's values.
            route_fluent_api(backend.client, tracking.tracking_uri)
    return backend


def finish(
    session: MlexpSession,
    pytest_session: pytest.Session,
    shares: Sequence[dict[str, Any]] = (),
    *,
    complete: bool = False,
) -> SessionEnd:
    """The controller's session-end work, in order; returns what it did.

    ``shares``: what xdist workers sent of it (``Worker``); ``complete`` when
    every worker sent one (none died).
    """
    settings = session.settings
    end = SessionEnd()
    # The summary lists runs in collection order, with or without xdist.
    session.results.sort(key=lambda r: r.index)
    # An attempt superseded by a rerun (pytest-rerunfailures) is counted by its last attempt.
    final = [r for r in session.results if not r.superseded]
    taken = complete and not needs_store(final, settings) and _take_shares(end, shares)
    if not taken:
        if not _close_runs(session, end, final):
            return end
        # Runs the last worker marked KILLED before the controller looked (a worker died).
        end.swept = [run_id for share in shares for run_id in share.get("swept", [])] + end.swept

    from .gate.session_end import finish_gate
    from .reports.verdicts import write_markdown

    end.gate = finish_gate(
        settings.gate,
        settings.tracking.session_id,
        final,
        lambda: session.backend,
        pytest_session,
    )
    write_markdown(end.gate)

    if any(r.register for r in session.results) or settings.register.names:
        from .models.registry import register_models

        # After the gate: its verdicts and the grid parents' best cells are known.
        end.registrations = register_models(
            session.backend, session.results, settings, end.gate, int(pytest_session.exitstatus)
        )

    if settings.register.keep is not None and final:
        from .models.keep import keep_best_models

        # After registration: a registered version's run is never pruned.
        keep = settings.register.keep
        try:
            backend = session.backend
            experiments = [backend.experiment_id(name) for name in {r.experiment for r in final}]
            end.kept = keep_best_models(
                backend, experiments, settings.tracking.session_id, keep
            ).line(keep)
        except Exception as exc:
            end.kept = (
                f"mlexp: --mlexp-keep-models {keep}: could not remove models: "
                f"{type(exc).__name__}: {redact_text(str(exc))[:300]}"
            )

    if settings.html is not None:
        from .reports.session_html import write_session_report

        end.html_path = settings.html
        try:
            backend = session.backend
            end.html = write_session_report(
                settings.tracking, final, backend, settings.html, settings.figures
            )
        except Exception as exc:
            # The runs are stored; only the report is missing. Say so, don't crash.
            end.html_error = f"{type(exc).__name__}: {exc}"
    return end


def _close_runs(session: MlexpSession, end: SessionEnd, final: list[RunSummary]) -> bool:
    """Sweep dead runs, complete the group runs, save the UI's view; False without a store."""
    settings = session.settings
    try:
        backend = session.backend
    except pytest.UsageError:
        return False

    from .groups.completion import complete_groups
    from .groups.sweep import sweep_dead_runs

    try:
        end.swept = sweep_dead_runs(backend, {r.experiment for r in session.results})
        # Repeated cells, grid parents and search parents, from their members in the store.
        end.grid_lines = complete_groups(backend, final, settings, group_kinds())
    except Exception as exc:
        # A lost server: the next session's sweep closes what is left RUNNING.
        end.grid_lines = [
            f"mlexp: could not complete the group runs in {backend.display_uri}: "
            f"{type(exc).__name__}: {redact_text(str(exc))[:300]}"
        ]

    from .reports.ui_view import runs_links

    try:
        end.runs_links = runs_links(backend, settings.tracking, session.results)
    except Exception:
        end.runs_links = {}  # Only links: the terminal then prints none.
    return True


def _take_shares(end: SessionEnd, shares: Sequence[dict[str, Any]]) -> bool:
    """What the last worker did of the session's end (``Worker``); False if none did it."""
    last = [share for share in shares if share.get("last")]
    if len(last) != 1:
        return False
    end.swept = list(last[0]["swept"])
    end.grid_lines = list(last[0]["lines"])
    end.runs_links = dict(last[0]["links"])
    return True
