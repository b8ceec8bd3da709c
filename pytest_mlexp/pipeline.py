"""The features of a session and the order they act in, written down in one place.

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
   ``reports.terminal`` then prints what it did.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from .keys import SEARCH_COLLECTED_KEY
from .redaction import redact_text

if TYPE_CHECKING:
    from .backend.client import Backend
    from .gate.session_end import GateOutcome
    from .models.registry import Registration
    from .reports.html import Report
    from .runs.session import MlexpSession
    from .settings import Settings


@dataclass
class SessionEnd:
    """What the session's end did, for the terminal summary."""

    #: One line per grid parent completed (or why they could not be).
    grid_lines: list[str] = field(default_factory=list)
    #: Runs of dead processes marked KILLED.
    swept: list[str] = field(default_factory=list)
    gate: GateOutcome | None = None
    html: Report | None = None
    html_path: Path | None = None
    html_error: str | None = None
    #: Experiment name -> its runs table in the MLflow UI (``reports.ui_view``).
    runs_links: dict[str, str] = field(default_factory=dict)
    #: One line per function registering its best cell's model (or why it did not).
    registrations: list[Registration] = field(default_factory=list)


def check_early(settings: Settings) -> None:
    """Stop the session before anything runs when a baseline file does not parse."""
    if settings.gate.baseline_file is not None:
        from .gate.baselines import read_file

        try:
            read_file(settings.gate.baseline_file)
        except ValueError as exc:
            raise pytest.UsageError(f"--mlexp-baseline-file: {exc}") from None


def activate(session: MlexpSession, tracked: list[pytest.Item]) -> None:
    """Check the tracked items' markers, then register the features that act on them.

    Raises ``UsageError`` for a bad marker, naming the item and the argument.
    """
    from .runs.markers import check_marker

    for item in tracked:
        for marker in item.iter_markers("mlexp"):
            check_marker(item, marker)
    config, settings = session.config, session.settings
    trials = None
    if config.stash.get(SEARCH_COLLECTED_KEY, False):
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

    manager.register(ModelMetrics(), "mlexp-models")
    if settings.autolog:
        from .autolog import Autolog

        manager.register(Autolog(), "mlexp-autolog")
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
    from .backend.client import Backend, StoreError

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
    """The controller's session-end work, in order; returns what it did."""
    settings = session.settings
    end = SessionEnd()
    # The summary lists runs in collection order, with or without xdist.
    session.results.sort(key=lambda r: r.index)
    # An attempt superseded by a rerun (pytest-rerunfailures) is counted by its last attempt.
    final = [r for r in session.results if not r.superseded]
    try:
        backend = session.backend
    except pytest.UsageError:
        return end

    from .groups.completion import complete_groups
    from .groups.sweep import sweep_dead_runs

    try:
        end.swept = sweep_dead_runs(backend, {r.experiment for r in session.results})
        # Repeated cells, grid parents and search parents, from their members in the store.
        end.grid_lines = complete_groups(backend, final, settings)
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

    from .gate.session_end import finish_gate
    from .reports.verdicts import write_markdown

    end.gate = finish_gate(
        settings.gate, settings.tracking.session_id, final, backend, pytest_session
    )
    write_markdown(end.gate)

    if any(r.register for r in session.results) or settings.register.names:
        from .models.registry import register_models

        # After the gate: its verdicts and the grid parents' best cells are known.
        end.registrations = register_models(
            backend, session.results, settings, end.gate, int(pytest_session.exitstatus)
        )

    if settings.html is not None:
        from .reports.session_html import write_session_report

        end.html_path = settings.html
        try:
            end.html = write_session_report(settings.tracking, final, backend, settings.html)
        except Exception as exc:
            # The runs are stored; only the report is missing. Say so, don't crash.
            end.html_error = f"{type(exc).__name__}: {exc}"
    return end
