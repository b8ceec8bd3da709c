"""What the terminal shows at the end of a session, in this order.

The runs (one row each), the grid parents, the runs of dead processes that
were closed, how to open the UI; then the gate's section, the models
registered, the runs spooled for ``mlexp sync``, and the HTML report.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..backend import uris
from ..redaction import redact_text

if TYPE_CHECKING:
    from ..pipeline import SessionEnd
    from ..runs.summary import RunSummary
    from ..settings import Settings, TrackingConfig

#: How many metrics a summary row shows.
SUMMARY_METRICS = 3


def write_summary(
    terminalreporter: Any,
    settings: Settings,
    results: Sequence[RunSummary],
    end: SessionEnd | None,
) -> None:
    """The session's summary; ``end`` is what the session's end did (None if it could not)."""
    tracking = settings.tracking
    write_runs(terminalreporter, tracking, results)
    if end is not None:
        for line in end.grid_lines:
            terminalreporter.write_line(line)
        if end.swept:
            terminalreporter.write_line(
                f"mlexp: marked {len(end.swept)} runs KILLED whose process had died: "
                + ", ".join(end.swept[:5])
                + (" ..." if len(end.swept) > 5 else "")
            )
    if tracking.is_embedded:
        terminalreporter.write_line(f"see them with: {ui_command(tracking)}")
    if end is not None and end.gate is not None:
        from .verdicts import write_gate_summary

        write_gate_summary(terminalreporter, end.gate)
    if end is not None:
        for registration in end.registrations:
            markup = {"registered": {"green": True}, "error": {"red": True}}
            terminalreporter.write_line(
                registration.line, **markup.get(registration.kind, {"yellow": True})
            )
    spooled = [r for r in results if r.spooled]
    if spooled:
        from ..spool.journal import JOURNAL_DIR

        terminalreporter.write_line(
            f"mlexp: {len(spooled)} runs could not reach {tracking.display_uri}; "
            f"they are kept in {tracking.rootdir / JOURNAL_DIR}. Replay them with: "
            f"cd {tracking.rootdir} && mlexp sync",
            yellow=True,
        )
    if end is not None and end.html is not None:
        terminalreporter.write_line(
            f"mlexp: HTML report of {end.html.run_count} runs written to {end.html_path}"
        )
    elif end is not None and end.html_error is not None:
        terminalreporter.write_line(
            f"mlexp: could not write the HTML report {end.html_path}: "
            f"{redact_text(end.html_error)}",
            red=True,
        )


def write_runs(
    terminalreporter: Any, tracking: TrackingConfig, results: Sequence[RunSummary]
) -> None:
    """One row per run: name, status, key metrics, run id (and its UI link on a server)."""
    experiments = sorted({r.experiment for r in results})
    names = ", ".join(repr(e) for e in experiments)
    noun = "experiment" if len(experiments) == 1 else "experiments"
    terminalreporter.write_sep("=", f"mlexp: {len(results)} runs in {noun} {names}")
    terminalreporter.write_line(f"tracking URI: {tracking.display_uri}")
    rows = [
        (
            r.name,
            r.status + ("" if r.outcome in ("passed", "failed") else f" ({r.outcome})"),
            format_metrics(r.metrics),
            r.url or r.run_id,
        )
        for r in results
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        line = "  ".join([*cells, row[3]])
        markup = {"red": True} if row[1].startswith(("FAILED", "KILLED")) else {}
        terminalreporter.write_line(line.rstrip(), **markup)


def format_metrics(metrics: Mapping[str, float], limit: int = SUMMARY_METRICS) -> str:
    shown = [f"{key}={value:.4g}" for key, value in list(metrics.items())[:limit]]
    if len(metrics) > limit:
        shown.append(f"(+{len(metrics) - limit})")
    return " ".join(shown) or "-"


def ui_command(tracking: TrackingConfig) -> str:
    """The shortest ``mlflow ui`` command that opens the embedded store."""
    if tracking.tracking_uri == uris.default_store_uri(tracking.rootdir):
        return f"cd {tracking.rootdir} && mlflow ui"
    return f"mlflow ui --backend-store-uri {tracking.tracking_uri}"
