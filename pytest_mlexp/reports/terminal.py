"""What the terminal shows at the end of a session, in this order.

The runs (one row each; a large grid as its best few cells and a count,
all of them with ``-v``), the grid parents, the runs of dead processes that
were closed, what the runs used per function, how to open the UI and the
link to each experiment's runs; then
the gate's section, the models registered, the runs spooled for ``mlexp sync``,
and the HTML report.
"""

from __future__ import annotations

import math
import shlex
import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..backend import uris
from ..redaction import redact_text
from .words import counted

if TYPE_CHECKING:
    from ..runs.summary import RunSummary
    from ..settings import Settings, TrackingConfig
    from .end import SessionEnd

#: How many metrics a summary row shows.
SUMMARY_METRICS = 3
#: A grid with more cells than this is shown as its best few cells and a count (all with -v).
LARGE_GRID = 20
#: How many of a large grid's cells are shown without -v.
BEST_CELLS_SHOWN = 5


def write_summary(
    terminalreporter: Any,
    settings: Settings,
    results: Sequence[RunSummary],
    end: SessionEnd | None,
) -> None:
    """The session's summary; ``end`` is what the session's end did (None if it could not)."""
    tracking = settings.tracking
    write_runs(terminalreporter, tracking, results, settings.gate.directions)
    reruns = [r for r in results if r.superseded]
    if reruns:
        terminalreporter.write_line(
            f"mlexp: {len(reruns)} attempt{'s' if len(reruns) != 1 else ''} superseded by a "
            "rerun (tagged mlexp.outcome=rerun), each item counted by its last attempt: "
            + ", ".join(r.name for r in reruns[:5])
            + (" ..." if len(reruns) > 5 else "")
        )
    if any(r.reused_from or r.rerun_reason for r in results):
        from .reuse import write_reuse

        write_reuse(terminalreporter, results)
    if end is not None:
        for line in end.grid_lines:
            terminalreporter.write_line(line)
        if end.swept:
            terminalreporter.write_line(
                f"mlexp: marked {counted(len(end.swept), 'run')} KILLED whose process had died: "
                + ", ".join(end.swept[:5])
                + (" ..." if len(end.swept) > 5 else "")
            )
    write_usage(terminalreporter, results)
    if tracking.is_embedded:
        terminalreporter.write_line(f"open the MLflow UI with: {ui_command(tracking)}")
    links = end.runs_links if end is not None else {}
    for experiment, link in links.items():
        where = "then open" if tracking.is_embedded else "runs in the MLflow UI"
        named = f" (experiment {experiment!r})" if len(links) > 1 else ""
        terminalreporter.write_line(f"{where}{named}: {link}")
    if end is not None and end.gate is not None:
        from .verdicts import write_gate_summary

        # Repeats are judged through their cell, trials through their search's best,
        # and a rerun item by its last attempt: the count is of the other items, once each.
        items = sum(
            1
            for r in results
            if not r.superseded and (r.groups is None or not (r.groups.cell or r.groups.search))
        )
        write_gate_summary(terminalreporter, end.gate, items=items)
    if end is not None:
        for registration in end.registrations:
            markup = {"registered": {"green": True}, "error": {"red": True}}
            terminalreporter.write_line(
                registration.line, **markup.get(registration.kind, {"yellow": True})
            )
        if end.kept is not None:
            terminalreporter.write_line(end.kept)
    spooled = [r for r in results if r.spooled]
    if spooled:
        one = len(spooled) == 1
        from ..spool.journal import JOURNAL_DIR

        terminalreporter.write_line(
            f"mlexp: {counted(len(spooled), 'run')} could not reach {tracking.display_uri}; "
            f"{'it is' if one else 'they are'} kept in {tracking.rootdir / JOURNAL_DIR}. "
            f"Replay {'it' if one else 'them'} with: "
            f"{sync_command(tracking)}",
            yellow=True,
        )
    if end is not None and end.html is not None:
        terminalreporter.write_line(
            f"mlexp: HTML report of {counted(end.html.run_count, 'run')} written to {end.html_path}"
        )
    elif end is not None and end.html_error is not None:
        terminalreporter.write_line(
            f"mlexp: could not write the HTML report {end.html_path}: "
            f"{redact_text(end.html_error)}",
            red=True,
        )


def write_runs(
    terminalreporter: Any,
    tracking: TrackingConfig,
    results: Sequence[RunSummary],
    directions: Mapping[str, str] | None = None,
) -> None:
    """One row per run: name, status, key metrics, run id (and its UI link on a server).

    A grid of more than ``LARGE_GRID`` cells shows its ``BEST_CELLS_SHOWN`` best
    cells and a line counting the others, unless ``-v`` asks for every row.
    """
    experiments = sorted({r.experiment for r in results})
    names = ", ".join(repr(e) for e in experiments)
    noun = "experiment" if len(experiments) == 1 else "experiments"
    terminalreporter.write_sep("=", f"mlexp: {counted(len(results), 'run')} in {noun} {names}")
    terminalreporter.write_line(f"tracking URI: {tracking.display_uri}")
    verbose = getattr(terminalreporter, "verbosity", 0) > 0
    shown, folded = (list(results), {}) if verbose else fold_large_grids(results, directions)
    rows = [
        (
            r.name,
            r.status + status_note(r),
            format_metrics(r.metrics),
            where_to_see(r),
        )
        for r in shown
    ]
    widths = [max((len(row[i]) for row in rows), default=0) for i in range(3)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        line = "  ".join([*cells, row[3]])
        markup = {"red": True} if row[1].startswith(("FAILED", "KILLED")) else {}
        terminalreporter.write_line(line.rstrip(), **markup)
    for grid, hidden in folded.items():
        failed = sum(r.status != "FINISHED" for r in hidden)
        what = "trials" if hidden[0].groups is not None and hidden[0].groups.search else "cells"
        terminalreporter.write_line(
            f"... and {len(hidden)} more {what} of {grid} ({len(hidden) - failed} passed, "
            f"{failed} failed or killed); -v lists every run",
            **({"red": True} if failed else {}),
        )


def write_usage(terminalreporter: Any, results: Sequence[RunSummary]) -> None:
    """What the runs used, one line per experiment function, and in all when several."""
    from .stored_runs import strip_params
    from .usage import overall, per_function, usage_text

    totals = per_function((strip_params(r.nodeid), r.usage, bool(r.reused_from)) for r in results)
    for function, total in totals.items():
        terminalreporter.write_line(f"mlexp used: {function}: {usage_text(total)}")
    if len(totals) > 1:
        terminalreporter.write_line(f"mlexp used in all: {usage_text(overall(totals.values()))}")


def where_to_see(result: RunSummary) -> str:
    """The run's link (or id); a run kept in the spool's journal is pending ``mlexp sync``.

    A run created in the journal has no page yet, and another id once synced.
    """
    if not result.spooled:
        return result.url or result.run_id
    if result.url:
        return f"{result.url} (pending sync)"
    return f"pending sync (journal {result.run_id[:8]})"


def status_note(result: RunSummary) -> str:
    """`` (skipped)``, `` (reused)``...: the outcome when the status alone does not say it."""
    if result.reused_from and result.outcome == "passed":
        return " (reused)"
    return "" if result.outcome in ("passed", "failed") else f" ({result.outcome})"


def fold_large_grids(
    results: Sequence[RunSummary], directions: Mapping[str, str] | None = None
) -> tuple[list[RunSummary], dict[str, list[RunSummary]]]:
    """The runs to list, and per large grid the cells left out (all but its best few).

    Cells are ranked as the grid's best cell is picked (its ``best=`` metric, else
    the first metric, by its direction); failed cells rank last. A search's trials
    are folded as a grid's cells, ranked by its objective.
    """
    grids: dict[str, list[RunSummary]] = {}
    for result in results:
        if result.groups is not None and (result.groups.grid or result.groups.search):
            grids.setdefault(result.groups.grid or str(result.groups.search), []).append(result)
    keep: set[int] = set()
    folded: dict[str, list[RunSummary]] = {}
    for grid, cells in grids.items():
        if len(cells) <= LARGE_GRID:
            continue
        ranked = sorted(cells, key=_ranking(cells, directions))
        keep.update(id(cell) for cell in ranked[:BEST_CELLS_SHOWN])
        folded[grid] = ranked[BEST_CELLS_SHOWN:]
    hidden = {id(cell) for cells in folded.values() for cell in cells}
    return [r for r in results if id(r) not in hidden or id(r) in keep], folded


def _ranking(cells: Sequence[RunSummary], directions: Mapping[str, str] | None) -> Any:
    from ..directions import BestSpec

    groups = cells[0].groups
    spec = BestSpec.parse(groups.best if groups is not None else "")
    metric = spec.metric or next((key for cell in cells for key in cell.metrics), None)
    direction = spec.resolve(metric, directions) if metric is not None else None
    sign = -1.0 if direction is not None and direction.direction == "up" else 1.0
    known = direction is not None and direction.known

    def key(cell: RunSummary) -> tuple[int, float]:
        value = cell.metrics.get(metric) if metric is not None else None
        if cell.status != "FINISHED" or value is None or math.isnan(value) or not known:
            return (1, 0.0)
        return (0, sign * value)

    return key


def format_metrics(metrics: Mapping[str, float], limit: int = SUMMARY_METRICS) -> str:
    shown = [f"{key}={value:.4g}" for key, value in list(metrics.items())[:limit]]
    if len(metrics) > limit:
        shown.append(f"(+{len(metrics) - limit})")
    return " ".join(shown) or "-"


def sync_command(tracking: TrackingConfig, python: str | None = None) -> str:
    """``cd <rootdir> && <python> -m pytest_mlexp sync``: runnable without an activated venv.

    ``mlexp`` is on PATH only while the virtualenv is activated; this interpreter is not.
    """
    sync = shlex.join([python or sys.executable, "-m", "pytest_mlexp", "sync"])
    return f"cd {shlex.quote(str(tracking.rootdir))} && {sync}"


def ui_command(tracking: TrackingConfig, python: str | None = None) -> str:
    """The ``mlflow ui`` command that opens the embedded store, as this interpreter runs it.

    It works from any folder and without activating a virtualenv: the Python
    that ran pytest (``-m mlflow``), the store's absolute URI, and the folder
    where experiments created from the UI keep their artifacts.
    """
    command = [python or sys.executable, "-m", "mlflow", "ui"]
    command += ["--backend-store-uri", tracking.tracking_uri]
    artifacts = tracking.store_artifact_dir
    if artifacts is not None:
        command += ["--default-artifact-root", str(artifacts)]
    command += ["--port", str(uris.LOCAL_UI_PORT)]
    return shlex.join(command)
