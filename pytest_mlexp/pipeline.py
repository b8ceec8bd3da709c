"""The features of a session and the order they act in, written down in one place.

``plugin.py`` registers ``collection.Collection`` in every process (it imports this
module when collection found tracked items); once tracked items are
known (``on_tracked``), ``Controller`` is registered only in the process that
ends the session (not in its workers), the way xdist registers its
``DSession`` only on the controller. A session without experiments registers
no hook that looks at each of its reports.

0. ``parametrize`` (from ``collection.Collection.pytest_generate_tests``): at collection, the
   params file, searches and repeats parametrize the experiment functions that ask for it. The first
   tracked function met resolves the session's settings (``MlexpSession.settings``);
   a suite without experiments resolves none.
1. ``check_early``: once collection found tracked items, what must stop a broken
   session before anything runs: a setting refused (raised again outside any module,
   so that the user sees it as a usage error, exit 4), a baseline file that does not parse.
2. ``activate``: then, in the processes that run them, the features register their
   hooks: grid parents, lineage, artifact discovery, autolog, the gate, the params
   file, models, searches' trials. Until then nothing of theirs is imported, so test
   suites without experiments do not pay for them.
3. ``open_backend``: the store, with the spool in front of it under
   ``--mlexp-on-tracking-error spool``.
4. Each item's run ends with a summary (``runs.summary.RunSummary``). It
   reaches the controller by one road: serially it stays in the process;
   from a worker it rides with the item's teardown report
   (``pytest_report_to_serializable``, ``runs.session``). Under xdist the
   workers report as they run; under ``--mlexp-ray`` the controller replays
   what each Ray worker returns (``cluster.dispatch``). A worker that died, or
   that Ctrl-C killed on the cluster, sends nothing: the controller ends its
   run KILLED and makes its summary from the store.
5. ``finish``: the controller's session-end work, once, for every run, in
   order: mark KILLED the runs of dead processes, complete the grid parents,
   repeated cells and search parents (also on Ctrl-C and SIGTERM: KILLED, with
   their counts), save the UI's view of the runs (its links), judge the cells'
   means and refresh the baseline file, register the best cells' models when
   the session passed, keep the best models, write the markdown and HTML reports.
   ``reports.terminal`` then prints what it did (``Controller``).

What a worker is given by the controller, xdist's or Ray's, is one
``workers.Given``, built by ``hand_to_workers``. The xdist controller imports
MLflow when the first summary arrives, while the workers still run
(``MlexpSession.prepare_backend``); a session whose items are not tracked
never imports it.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from .backend.client import Backend
    from .groups.kinds import GroupKind
    from .reports.end import SessionEnd
    from .runs.session import MlexpSession
    from .runs.summary import RunSummary
    from .settings import Settings
    from .workers import Given


#: Marker arguments whose presence means a search (``search.declaration.SEARCH_KWARGS``).
_SEARCH_KWARGS = ("search", "trials", "objective", "sampler", "seed", "pruner", "study")


def parametrize(metafunc: pytest.Metafunc, settings: Settings) -> bool:
    """Step 0: the params file, searches and repeats parametrize a tracked function that asks
    for it; whether it declares a search."""
    searches = False
    file_search = None
    if settings.params.enabled:
        from .params.collection import parametrize_from_file, search_from_file

        parametrize_from_file(metafunc, settings.params)
        file_search = search_from_file(metafunc)
    markers = list(metafunc.definition.iter_markers("mlexp"))
    # Cheap: no search module is imported for functions that declare none.
    if file_search is not None or any(
        key in marker.kwargs for marker in markers for key in _SEARCH_KWARGS
    ):
        from .search.collection import parametrize_search

        searches = True
        parametrize_search(metafunc, settings, file_search)
    if any("repeats" in marker.kwargs or "seeds" in marker.kwargs for marker in markers):
        from .grids.repeats import parametrize_repeats

        parametrize_repeats(metafunc)
    return searches


def start_tracking(
    session: MlexpSession, items: list[pytest.Item], tracked: list[pytest.Item], *, searches: bool
) -> None:
    """Collection found ``tracked`` among ``items`` (after every other plugin's selection):
    steps 1 and 2, then repeats' later seeds put after their first batch."""
    settings = session.settings  # a setting refused stops the session here
    check_early(settings)
    if settings.params.enabled:
        from .params.collection import mark_resources

        mark_resources(session.config, tracked)
    session.track(items)
    activate(session, tracked, searches=searches)
    from .grids.repeats import order_by_batch

    # After pytest-randomly's shuffle: seeds on demand wait for earlier batches.
    order_by_batch(items)


def check_early(settings: Settings) -> None:
    """Stop the session before anything runs when a baseline file does not parse."""
    if settings.gate.baseline_file is not None:
        from .gate.baselines import read_file

        try:
            read_file(settings.gate.baseline_file)
        except ValueError as exc:
            raise pytest.UsageError(f"--mlexp-baseline-file: {exc}") from None


def on_tracked(session: MlexpSession) -> None:
    """Register what looks at reports once tracked items are known in this process.

    Called once (``MlexpSession.watch_reports``): at the end of collection where the items
    are collected, on the first report of a worker that tracks items where they are not
    (the xdist controller). Where the session ends, its end (``Controller``) and a failed
    group's report (``gate.group_reports``). A session without experiments registers
    none of them, so its reports cost nothing here.
    """
    from .workers import is_controller

    config = session.config
    config.pluginmanager.register(SeedStatus(), "mlexp-seed-status")
    if is_controller(config):
        # The session's end (finish, the terminal summary) happens once, where workers report.
        config.pluginmanager.register(Controller(session), "mlexp-controller")
        from .gate import group_reports

        # A failed group run (cell, search, gate="best" grid) is reported as one of its items'.
        group_reports.register(config)


class SeedStatus:
    """Registered as ``mlexp-seed-status`` by ``on_tracked``, in every process."""

    @pytest.hookimpl(tryfirst=True)
    def pytest_report_teststatus(
        self, report: pytest.TestReport, config: pytest.Config
    ) -> tuple[str, str, str] | None:
        # An extra seed its cell did not need ran nothing: no letter, no count (from workers too).
        if report.skipped and report.when == "setup" and report.user_properties:
            from .backend.tags import SEED_NOT_NEEDED

            if any(name == SEED_NOT_NEEDED for name, _ in report.user_properties):
                from .gate.sequential_runs import count_in_progress

                count_in_progress(config, report.nodeid)
                return "", "", ""
        return None


def group_kinds() -> list[GroupKind]:
    """The kinds of group runs the features make: grids' cells and parents, searches' parents."""
    from .grids.kinds import CELL, GRID
    from .search.kinds import SEARCH

    return [CELL, GRID, SEARCH]


class Controller:
    """Registered as ``mlexp-controller`` by ``on_tracked``, only where the session ends (not
    in a session's workers).

    Every run's summary arrives here by one road: serially from the item's
    teardown, from xdist's and Ray's workers with the items' teardown reports
    (``runs.session``). The session's end is done here, once, for them all.
    """

    def __init__(self, session: MlexpSession) -> None:
        self.session = session
        #: What the session's end did; read by the terminal summary.
        self.end: SessionEnd | None = None

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        # Before junitxml writes its file: the gate adds the session's verdicts to it.
        if self.session.results:
            self.end = finish(self.session, session)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self.session.results:
            return
        from .reports.terminal import write_summary

        write_summary(terminalreporter, self.session.settings, self.session.results, self.end)


def hand_to_workers(
    session: MlexpSession,
    *,
    worker: int,
    run_uid: str,
    machine_shared: bool,
    remote: bool = False,
    local: bool = True,
) -> Given:
    """What the controller gives each of its workers, xdist's or a Ray cluster's.

    ``remote``: the worker runs on a copy of the project shipped without
    ``.git`` (Ray), so it is given the project's git state; ``local``: that
    copy is on the controller's machine, so a search's journal files are here.
    """
    from .settings.session_id import session_id
    from .workers import Given

    config = session.config
    git = None
    journal_root = None
    if remote:
        # A cluster's workers: --mlexp-ray asked for them, so the settings are resolved.
        settings = session.settings
        if "git" in settings.lineage:
            from .lineage.git import state_to_hand

            git = state_to_hand(settings.tracking.rootdir)
        journal_root = str(settings.tracking.rootdir) if local else None
    return Given(
        # xdist's workers are given it in every session, with or without experiments:
        # nothing else is resolved for them.
        session_id=session_id(config),
        controller_pid=os.getpid(),
        worker=worker,
        run_uid=run_uid,
        machine_shared=machine_shared,
        args=tuple(str(arg) for arg in config.invocation_params.args),
        journal_root=journal_root,
        git=git,
    )


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
    from .grids.repeats import seed_batch

    if any(seed_batch(item) for item in tracked):
        from .gate.sequential_runs import SeedsOnDemand

        # An extra seed runs only while its cell is undecided (before its run starts).
        manager.register(SeedsOnDemand(session), "mlexp-seeds")
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


def finish(session: MlexpSession, pytest_session: pytest.Session) -> SessionEnd:
    """The controller's session-end work, in order, for every run of the session; what it did."""
    from .redaction import redact_text
    from .reports.end import SessionEnd

    settings = session.settings
    end = SessionEnd()
    # The summary lists runs in collection order, with or without xdist.
    session.results.sort(key=lambda r: r.index)
    # An attempt superseded by a rerun (pytest-rerunfailures) is counted by its last attempt.
    final = [r for r in session.results if not r.superseded]
    if not _close_runs(session, end, final):
        return end

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
    from .redaction import redact_text

    settings = session.settings
    try:
        backend = session.backend
    except pytest.UsageError:
        return False

    from .groups.completion import complete_groups
    from .groups.sweep import sweep_dead_runs

    rejoined: list[str] = []
    if backend.spools:
        from .spool.rejoin import rejoin

        # A server back after an outage: the spooled runs are sent before their groups complete.
        rejoined = rejoin(backend, session.results)
    try:
        end.swept = sweep_dead_runs(backend, {r.experiment for r in session.results})
        # Repeated cells, grid parents and search parents, from their members in the store.
        end.grid_lines = rejoined + complete_groups(backend, final, settings, group_kinds())
    except Exception as exc:
        # A lost server: the next session's sweep closes what is left RUNNING.
        from .backend.errors import is_transient

        if is_transient(exc) and any(r.spooled for r in session.results):
            # The runs wait in the journal (rejoin found the server still down).
            why = (
                "mlexp: the group runs (grids, repeated cells, searches) are not complete: "
                f"the tracking server {backend.display_uri} was lost during this session and "
                "did not answer at its end; `mlexp sync` completes them with the spooled runs "
                "once the server is back."
            )
        else:
            why = (
                f"mlexp: could not complete the group runs in {backend.display_uri}: "
                f"{type(exc).__name__}: {redact_text(str(exc))[:300]}"
            )
        end.grid_lines = [*rejoined, why]

    from .reports.ui_view import runs_links

    try:
        end.runs_links = runs_links(backend, settings.tracking, session.results)
    except Exception:
        end.runs_links = {}  # Only links: the terminal then prints none.
    return True
