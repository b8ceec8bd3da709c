"""``--mlexp-html=PATH``: this session's HTML report, written and logged to a run of its own."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ..backend import tags as T
from ..backend.groups import find_or_create_group
from .html import Report, build_report, write
from .stored_runs import session_filter

#: The name of the run holding a session's HTML report, before the session's stamp.
REPORT_RUN_NAME = "HTML report"

if TYPE_CHECKING:
    from ..backend.client import Backend
    from ..runs.summary import RunSummary
    from ..settings import TrackingConfig


def write_session_report(
    tracking: TrackingConfig,
    results: Sequence[RunSummary],
    backend: Backend,
    path: Path,
    figures: str = "inline",
) -> Report:
    """Build this session's report from the store, write it, and log it as an artifact.

    ``figures``: ``--mlexp-figures``, how the page loads plotly.js (``inline`` or ``cdn``).
    """
    names = sorted({r.experiment for r in results})
    experiments = [backend.client.get_experiment(backend.experiment_id(name)) for name in names]
    report = build_report(
        backend,
        experiments,
        session_filter(tracking.session_id),
        f"session {tracking.session_id}",
        figures,
    )
    write(report, path)
    run_id = report_run(tracking, backend, path.name)
    try:
        backend.client.log_artifact(run_id, str(path))
    finally:
        backend.client.set_terminated(run_id, "FINISHED")
    return report


def report_run(tracking: TrackingConfig, backend: Backend, artifact: str = "") -> str:
    """The run that holds the session's report as an artifact.

    A group run of its own per session, in the session's experiment, named and
    tagged so that it is not taken for an experiment: ``HTML report · 11-28 00:14``,
    tags ``mlexp.kind=session`` and ``mlexp.report=html`` (the UI's filter
    ``tags.`mlexp.report` IS NULL`` hides it), and a description saying what it
    is. Several pytest invocations sharing a session id (``MLEXP_SESSION_ID``) share it.
    """
    from ..groups.naming import stamped_name
    from ..runs.identity import current_user

    session = tracking.session_id
    return find_or_create_group(
        backend,
        tracking.experiment,
        session_id=session,
        kind=T.KIND_SESSION,
        key="report",
        name=stamped_name(REPORT_RUN_NAME, session),
        tags={
            **tracking.tags,
            T.REPORT: "html",
            T.USER: current_user(),
            T.NOTE: (
                f"The HTML report of pytest session `{session}`"
                + (f" (artifact `{artifact}`)" if artifact else "")
                + ": a run table and plots of the session's runs. Not an experiment: the "
                "runs table's filter ``tags.`mlexp.report` IS NULL`` hides it."
            ),
        },
    )
