"""What the gate's verdicts look like: the terminal section and the markdown report."""

from __future__ import annotations

import os
from collections.abc import Collection, Sequence
from typing import Any

from ..backend import uris
from ..gate import rules
from ..gate.baselines import Baseline
from ..gate.rules import FAILING, Row
from ..gate.session_end import GateOutcome, group_label
from ..gate.verdicts import (
    IMPROVED,
    INCONCLUSIVE,
    NO_BASELINE,
    PASSED,
    REGRESSED,
    failure_message,
    how_to_record,
    judged_metrics_line,
    row_summary,
)
from ..runs.summary import Verdict
from ..settings.gate import GateSettings
from .words import counted


def write_gate_summary(terminalreporter: Any, outcome: GateOutcome, items: int = 0) -> None:
    """The regressions and improvements of the session, and tests without a baseline.

    ``items``: how many tracked items ran, so the count of judged ones says what it is of.
    """
    verdicts, settings = outcome.verdicts, outcome.settings
    if verdicts:
        # A gate="best" grid's cells are judged through their grid, counted apart.
        items = max(0, items - outcome.grid_cells)
        _write_verdicts(terminalreporter, verdicts, settings, outcome.updated, items, outcome.grids)
    if outcome.cell_error is not None:
        terminalreporter.write_line(f"mlexp: {outcome.cell_error}", red=True)


def _write_verdicts(
    terminalreporter: Any,
    verdicts: list[Verdict],
    settings: GateSettings,
    updated: int,
    items: int = 0,
    grids: set[str] | None = None,
) -> None:
    title = "mlexp: metric gate"
    if settings.compares:
        title += f" against {settings.source}"
    terminalreporter.write_sep("=", title)
    counts: dict[str, int] = {}
    guessed: dict[str, str] = {}
    for verdict in verdicts:
        counts[verdict.verdict] = counts.get(verdict.verdict, 0) + 1
        for row in verdict.rows:
            if row.guessed:
                guessed[row.metric] = row.guessed
            if row.verdict in FAILING or row.verdict in (rules.IMPROVED, rules.INCONCLUSIVE):
                markup = {
                    row.verdict: {"green": True},
                    rules.INCONCLUSIVE: {"yellow": True},
                }.get(row.verdict, {"red": True})
                terminalreporter.write_line(
                    f"{row.verdict:<10} {verdict.nodeid}: {row_summary(row)}", **markup
                )
    for verdict in verdicts:
        # A group run fails the session, not an item: its table is shown here; it is
        # counted as the failure of its last passed item (``gate.group_reports``).
        if verdict.cell_run_id and not verdict.passed:
            failing = [row for row in verdict.rows if row.verdict in FAILING]
            terminalreporter.write_line(
                f"{group_label(verdict, grids or ())} fails the session:", red=True
            )
            if failing:
                baseline = Baseline({}, verdict.source) if verdict.source else None
                terminalreporter.write_line(failure_message(verdict.rows, failing, baseline))
            if verdict.problem:
                terminalreporter.write_line(f"mlexp: {verdict.problem}", red=True)
    _write_cells(terminalreporter, verdicts, settings)
    missing = [v.nodeid for v in verdicts if v.verdict == NO_BASELINE]
    if missing:
        shown = ", ".join(missing[:5]) + (f" (+{len(missing) - 5})" if len(missing) > 5 else "")
        terminalreporter.write_line(
            f"no baseline for {counted(len(missing), 'test')} (passed unchecked): {shown}",
            yellow=True,
        )
    if guessed:
        named = ", ".join(f"{metric} ({way})" for metric, way in sorted(guessed.items()))
        terminalreporter.write_line(
            f"directions guessed from the metric names: {named}; "
            "set them with mlexp_directions or @pytest.mark.mlexp(direction=...)"
        )
    if judged_metrics_line(verdicts):
        terminalreporter.write_line(judged_metrics_line(verdicts))
    keys = (REGRESSED, INCONCLUSIVE, IMPROVED, PASSED, NO_BASELINE)
    parts = [f"{counts[key]} {key}" for key in keys if counts.get(key)]
    terminalreporter.write_line(
        judged_line(verdicts, settings, items, grids) + ": " + ", ".join(parts or ["-"])
    )
    if settings.update:
        terminalreporter.write_line(
            f"baseline file {settings.file_label}: {counted(updated, 'test')} updated"
        )


def _write_cells(terminalreporter: Any, verdicts: list[Verdict], settings: GateSettings) -> None:
    """The repeated cells compared with a baseline: interval, n each side, verdict per metric."""
    pairs = [
        (v.nodeid, row)
        for v in verdicts
        if v.cell_run_id and not v.search
        for row in v.rows
        if isinstance(row, rules.CellRow)
    ]
    # A failing cell's table is shown above, with its failure.
    shown = [(nodeid, row) for nodeid, row in pairs if row.verdict not in FAILING]
    if shown:
        terminalreporter.write_line("repeated cells against their baseline:")
        terminalreporter.write_line(cell_table(shown))
    for verdict in verdicts:
        for note in verdict.notes:  # seeds on demand, and what the seeds can decide
            terminalreporter.write_line(note)
    inconclusive = [v for v in verdicts if v.verdict == INCONCLUSIVE]
    if inconclusive:
        one = len(inconclusive) == 1
        if settings.strict:
            what = "it fails the session" if one else "they fail the session"
        else:
            what = "it does not fail the session" if one else "they do not fail the session"
        terminalreporter.write_line(
            f"{counted(len(inconclusive), 'inconclusive repeated cell')}: "
            f"{'its' if one else 'their'} seeds cannot tell a "
            f"regression of more than the tolerance from noise; {what} "
            + (
                "(--mlexp-gate-strict)"
                if settings.strict
                else "(--mlexp-gate-strict would); run more seeds to decide"
            ),
            yellow=True,
        )
    by_means = sorted({(row.why or "gate=mean") for _, row in pairs if row.rule == rules.MEAN})
    if any(row.why.startswith("baseline") for _, row in pairs):
        terminalreporter.write_line(
            "repeated cells judged by their means, not a confidence bound ("
            + ", ".join(by_means)
            + "): their baseline has no seed counts and spreads, as baseline files written "
            "before pytest-mlexp recorded them; refresh it to judge them by the bound: "
            f"{how_to_record(settings)}",
            yellow=True,
        )


def cell_table(pairs: Sequence[tuple[str, Row]]) -> str:
    """``test metric baseline current change interval verdict``, aligned."""
    header = ("test", "metric", "baseline", "current", "change", rules.INTERVAL_COLUMN, "verdict")
    lines = [header]
    for nodeid, row in pairs:
        interval = row.interval_text if isinstance(row, rules.CellRow) else "-"
        lines.append(
            (
                nodeid,
                row.metric,
                rules.format_number(row.baseline),
                rules.format_number(row.current),
                row.change_text,
                interval,
                row.verdict,
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )


def judged_line(
    verdicts: list[Verdict], settings: GateSettings, items: int = 0, grids: set[str] | None = None
) -> str:
    """What was judged, of how many: ``4 of 8 items have a baseline (baseline.yaml)``.

    ``items`` is how many tracked items ran, repeats of a cell aside. Without a
    baseline, only items with ``expect=`` bounds are judged, and the line says so.
    Repeats are judged by their bounds, repeated cells by their means, searches
    by their best trial: they are counted apart.
    """
    repeats = [v for v in verdicts if v.repeat]
    cells = [v for v in verdicts if v.cell_run_id and not v.search]
    by_best = [v for v in verdicts if v.search and v.nodeid in (grids or ())]
    searches = [v for v in verdicts if v.search and v not in by_best]
    plain = [v for v in verdicts if not v.repeat and not v.cell_run_id]
    total = max(items, len(plain))
    parts = []
    if settings.update and total:
        parts.append(
            f"{len(plain)} of {total} items recorded into the baseline file {settings.file_label}"
            + (" and judged by their expect= bounds" if any(v.rows for v in plain) else "")
        )
    elif settings.compares and total:
        with_baseline = sum(1 for v in plain if v.verdict != NO_BASELINE)
        parts.append(f"{with_baseline} of {total} items have a baseline ({settings.source})")
    elif plain:
        parts.append(
            f"{len(plain)} of {total} items judged by their expect= bounds "
            "(no baseline given: --mlexp-baseline or --mlexp-baseline-file)"
        )
    if repeats:
        parts.append(f"{counted(len(repeats), 'repeat')} by their expect= bounds")
    if cells and settings.update:
        parts.append(
            f"{counted(len(cells), 'repeated cell')} recorded into the baseline file "
            f"{settings.file_label} "
            "(means, spreads and seeds)"
        )
    elif cells:
        parts.append(f"{counted(len(cells), 'repeated cell')} {_cell_rule(cells)}")
    if searches:
        noun = "search by its" if len(searches) == 1 else "searches by their"
        parts.append(f"{len(searches)} {noun} best trial")
    if by_best:
        noun = "grid by its" if len(by_best) == 1 else "grids by their"
        parts.append(f"{len(by_best)} {noun} best cell")
    return "; ".join(parts)


#: What the verdicts judged, as a user names them, in the order they are counted.
_NOUNS = (
    ("experiment", "experiments"),
    ("cell", "cells"),
    ("repeat", "repeats"),
    ("repeated cell", "repeated cells"),
    ("search", "searches"),
    ("grid", "grids"),
)


def judged_things(
    verdicts: Sequence[Verdict], grids: Collection[str] = (), cells: Collection[str] = ()
) -> str:
    """``4 cells and 1 search``: what the verdicts are of, named as a user sees them.

    A grid's cell, an experiment of its own, a repeat of a repeated cell, the
    repeated cell (by its mean), a search (by its best trial), a grid judged by its best cell.
    """
    counts = dict.fromkeys((singular for singular, _ in _NOUNS), 0)
    for verdict in verdicts:
        if verdict.repeat:
            noun = "repeat"
        elif verdict.cell_run_id and verdict.nodeid in grids:
            noun = "grid"
        elif verdict.cell_run_id:
            noun = "search" if verdict.search else "repeated cell"
        else:
            noun = "cell" if verdict.nodeid in cells else "experiment"
        counts[noun] += 1
    parts = [counted(counts[one], one, many) for one, many in _NOUNS if counts[one]]
    if len(parts) > 1:
        return ", ".join(parts[:-1]) + " and " + parts[-1]
    return parts[0] if parts else "nothing"


def _cell_rule(cells: list[Verdict]) -> str:
    """How repeated cells were judged: by the confidence bound over seeds, by means, or both."""
    used = {row.rule for v in cells for row in v.rows if isinstance(row, rules.CellRow)}
    if used == {rules.BOUND}:
        return "by the confidence bound over seeds"
    if rules.BOUND in used:
        return "by the confidence bound over seeds or by the mean"
    return "by the mean over seeds"


def write_markdown(outcome: GateOutcome) -> None:
    """``--mlexp-report-md``: the verdicts as markdown, also added to ``$GITHUB_STEP_SUMMARY``."""
    settings = outcome.settings
    if settings.report_md is None or not outcome.verdicts:
        return
    links = _server_links(outcome.links)
    text = markdown_report(
        outcome.verdicts, settings, links, grids=outcome.grids, cells=outcome.cells
    )
    if outcome.pending:
        names = ", ".join(f"`{nodeid}`" for nodeid in outcome.pending)
        text += (
            f"Pending sync: {names}. The tracking server was lost, so these runs are only "
            "in the spool's journal; `mlexp sync` sends them, and their pages exist after it.\n"
        )
    if outcome.links and not links:
        text += (
            "The runs are in a local store, which has no page to link to: "
            "`mlflow ui` in the project opens them.\n"
        )
    settings.report_md.parent.mkdir(parents=True, exist_ok=True)
    settings.report_md.write_text(text, encoding="utf-8")
    step_summary = os.environ.get("GITHUB_STEP_SUMMARY", "").strip()
    if step_summary:
        with open(step_summary, "a", encoding="utf-8") as out:
            out.write(text + "\n")


def _server_links(links: dict[str, str]) -> dict[str, str]:
    """The links to a tracking server's UI; none to a local store's.

    A sqlite store's runs are served at ``127.0.0.1:5000`` only while ``mlflow ui``
    runs on the machine that has the store: from a pull request, such a link leads nowhere.
    """
    return {key: link for key, link in links.items() if not link.startswith(uris.LOCAL_UI_BASE)}


def markdown_report(
    verdicts: list[Verdict],
    settings: GateSettings,
    links: dict[str, str] | None = None,
    *,
    grids: Collection[str] = (),
    cells: Collection[str] = (),
) -> str:
    """A markdown section for a pull request or ``$GITHUB_STEP_SUMMARY``: failures first.

    ``links``: test id -> its run's page, linked from each row. ``grids``: the grids
    judged by their best cell; ``cells``: the items that are a grid's cells.
    """
    regressed = sum(v.verdict == REGRESSED for v in verdicts)
    improved = sum(v.verdict == IMPROVED for v in verdicts)
    inconclusive = sum(v.verdict == INCONCLUSIVE for v in verdicts)
    missing = [v.nodeid for v in verdicts if v.verdict == NO_BASELINE]
    against = f" against `{settings.source}`" if settings.compares else ""
    lines = [
        "## Model metrics",
        "",
        f"{judged_things(verdicts, grids, cells)} judged{against}: {regressed} regressed, "
        + (f"{inconclusive} inconclusive, " if inconclusive else "")
        + f"{improved} improved, {len(missing)} without baseline.",
        "",
    ]
    failed = [v for v in verdicts if not v.passed and not v.rows]
    pairs: list[tuple[str, Row]] = [(v.nodeid, row) for v in verdicts for row in v.rows]
    if pairs:
        lines.append(rules.markdown_table(pairs, links))
    if inconclusive:
        lines.append(
            "Inconclusive: the seeds cannot tell a regression beyond the tolerance from noise; "
            "the interval is the confidence bound of the change (current - baseline, in the "
            "metric's good direction) and how many seeds per side would decide."
        )
        lines.append("")
    for verdict in failed:
        if verdict.problem:
            lines.append(f"Failed: `{verdict.nodeid}`: {verdict.problem}")
            lines.append("")
    if missing:
        lines.append("No baseline: " + ", ".join(f"`{n}`" for n in missing))
        lines.append("")
    return "\n".join(lines)
