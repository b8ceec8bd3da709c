"""``--mlexp-html=PATH``: this session's HTML report, written and logged to a run of its own."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ..backend import tags as T
from ..backend.groups import find_or_create_group
from .html import Report, build_report, write
from .stored_runs import session_filter

if TYPE_CHECKING:
    from ..backend.client import Backend
    from ..runs.summary import RunSummary
    from ..settings import TrackingConfig


def write_session_report(
    tracking: TrackingConfig, results: Sequence[RunSummary], backend: Backend, path: Path
) -> Report:
    """Build this session's report from the store, write it, and log it as an artifact."""
    names = sorted({r.experiment for r in results})
    experiments = [backend.client.get_experiment(backend.experiment_id(name)) for name in names]
    report = build_report(
        backend, experiments, session_filter(tracking.session_id), f"session {tracking.session_id}"
    )
    write(report, path)
    run_id = report_run(tracking, backend)
    try:
        backend.client.log_artifact(run_id, str(path))
    finally:
        backend.client.set_terminated(run_id, "FINISHED")
    return report


def report_run(tracking: TrackingConfig, backend: Backend) -> str:
    """The run that holds the session's report as an artifact.

    A group run of its own per session (``mlexp-session-<id>``, tag
    ``mlexp.kind=session``) in the session's experiment; several pytest
    invocations sharing a session id (``MLEXP_SESSION_ID``) share it.
    """
    return find_or_create_group(
        backend,
        tracking.experiment,
        session_id=tracking.session_id,
        kind=T.KIND_SESSION,
        key="report",
        name=f"mlexp-session-{tracking.session_id}",
        tags=dict(tracking.tags),
    )
