"""What the terminal shows at the end of a session."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .config import TrackingConfig

#: How many metrics a summary row shows.
SUMMARY_METRICS = 3


def write_terminal_summary(
    terminalreporter: Any, settings: TrackingConfig, results: Sequence[Mapping[str, Any]]
) -> None:
    """One row per run: name, status, key metrics, run id (and its UI link on a server)."""
    if not results:
        return
    experiments = sorted({str(r["experiment"]) for r in results})
    names = ", ".join(repr(e) for e in experiments)
    noun = "experiment" if len(experiments) == 1 else "experiments"
    terminalreporter.write_sep("=", f"mlexp: {len(results)} runs in {noun} {names}")
    terminalreporter.write_line(f"tracking URI: {settings.display_uri}")
    rows = [
        (
            str(r["name"]),
            str(r["status"])
            + ("" if r["outcome"] in ("passed", "failed") else f" ({r['outcome']})"),
            format_metrics(r["metrics"]),
            str(r["url"] or r["run_id"]),
        )
        for r in results
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        line = "  ".join([*cells, row[3]])
        status = row[1]
        markup = {"red": True} if status.startswith(("FAILED", "KILLED")) else {}
        terminalreporter.write_line(line.rstrip(), **markup)
    if settings.is_embedded:
        terminalreporter.write_line(f"see them with: {ui_command(settings)}")


def format_metrics(metrics: Mapping[str, float], limit: int = SUMMARY_METRICS) -> str:
    shown = [f"{key}={value:.4g}" for key, value in list(metrics.items())[:limit]]
    if len(metrics) > limit:
        shown.append(f"(+{len(metrics) - limit})")
    return " ".join(shown) or "-"


def ui_command(settings: TrackingConfig) -> str:
    """The shortest ``mlflow ui`` command that opens the embedded store."""
    default = f"sqlite:///{settings.rootdir / 'mlflow.db'}"
    if settings.tracking_uri == default:
        return f"cd {settings.rootdir} && mlflow ui"
    return f"mlflow ui --backend-store-uri {settings.tracking_uri}"
