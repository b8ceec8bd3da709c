"""The gate's work at the end of the session, on the controller, from the runs' summaries.

In order: judge the means of repeated cells (their cell runs were completed
by grids just before), then refresh the baseline file with
``--mlexp-update-baseline``. What it decided is shown by ``reports.verdicts``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest

from ..backend import tags as T
from ..redaction import redact_text
from ..runs.summary import Verdict
from ..settings.gate import GateSettings
from . import rules
from .baselines import Baseline
from .markers import project_rules, rules_from_json
from .rules import FAILING
from .verdicts import NO_BASELINE, failure_line, how_to_record, verdict_of, verdict_tags

if TYPE_CHECKING:
    from ..backend.client import Backend
    from ..runs.summary import RunSummary


@dataclass
class GateOutcome:
    """What the gate decided in this session, for the terminal summary."""

    settings: GateSettings
    #: Verdicts of the items (from every worker) and of the repeated cells.
    verdicts: list[Verdict] = field(default_factory=list)
    #: How many tests the baseline file was refreshed for.
    updated: int = 0
    #: Why the repeated cells could not be judged, if so.
    cell_error: str | None = None


def finish_gate(
    settings: GateSettings,
    session_id: str,
    results: Sequence[RunSummary],
    backend: Backend,
    pytest_session: pytest.Session,
) -> GateOutcome:
    """Judge the repeated cells and refresh the baseline file; a failed cell fails the session."""
    outcome = GateOutcome(settings, [r.verdict for r in results if r.verdict])
    if settings.compares or settings.update or settings.promote:
        failed = _judge_cells(session_id, results, backend, outcome)
        if failed and pytest_session.exitstatus == pytest.ExitCode.OK:
            pytest_session.exitstatus = pytest.ExitCode.TESTS_FAILED
    if any(r.groups is not None and r.groups.search_run_id for r in results):
        from ..search.gate import judge_searches

        # A search is judged by its best trial, bounds or not, once its parent is complete.
        failed = judge_searches(session_id, results, backend, outcome)
        if failed and pytest_session.exitstatus == pytest.ExitCode.OK:
            pytest_session.exitstatus = pytest.ExitCode.TESTS_FAILED
    if settings.update:
        outcome.updated = _update_file(settings, outcome.verdicts)
    return outcome


def _update_file(settings: GateSettings, verdicts: list[Verdict]) -> int:
    from .baselines import read_file, write_file

    assert settings.baseline_file is not None
    entries = dict(read_file(settings.baseline_file))
    updated = 0
    for verdict in verdicts:
        if verdict.passed and not verdict.repeat:
            entries[verdict.nodeid] = dict(verdict.metrics)
            updated += 1
    if updated:
        write_file(settings.baseline_file, entries)
    return updated


def _judge_cells(
    session_id: str, results: Sequence[RunSummary], backend: Backend, outcome: GateOutcome
) -> bool:
    """Judge the mean metrics of each repeated cell against its baseline; True if one failed.

    A failing cell fails the session (not an item: its mean exists only once
    every repeat ran, maybe on several workers), and joins the verdicts.
    """
    settings = outcome.settings
    cells: dict[str, tuple[str, str]] = {}
    cell_rules: dict[str, dict[str, Any]] = {}
    for result in results:
        groups = result.groups
        if groups is not None and groups.cell and groups.cell_run_id:
            cells.setdefault(groups.cell, (groups.cell_run_id, result.experiment))
            if result.cell_rules is not None:
                cell_rules.setdefault(groups.cell, result.cell_rules)
    if not cells:
        return False
    failed = False
    try:
        client = backend.client
        runs = {cell: client.get_run(run_id) for cell, (run_id, _) in cells.items()}
        store: dict[str, Baseline] = {}
        if settings.spec is not None:
            from .baselines import from_store

            store = from_store(
                client,
                settings.spec,
                session_id=session_id,
                experiment_ids={backend.experiment_id(e) for _, e in cells.values()},
                nodeids=cells,
                cells=True,
            )
        file_entries: dict[str, dict[str, float]] = {}
        if settings.baseline_file is not None:
            from .baselines import read_file

            file_entries = read_file(settings.baseline_file)
        for cell, run in runs.items():
            if run.info.status != "FINISHED":
                continue  # a repeat failed (its item failed) or the cell was not completed
            if not (settings.compares or settings.update):
                client.set_tag(run.info.run_id, T.PROMOTED, "true")  # --mlexp-promote only
                continue
            if settings.baseline_file is not None:
                entry = file_entries.get(cell)
                baseline = Baseline(entry, settings.file_label) if entry is not None else None
            else:
                baseline = store.get(cell)
            raw = cell_rules.get(cell)
            verdict = _judge_cell(backend, settings, cell, run, baseline, raw)
            failed = failed or not verdict.passed
            outcome.verdicts.append(verdict)
    except Exception as exc:
        outcome.cell_error = (
            f"could not judge the repeated cells in {backend.display_uri}: "
            f"{type(exc).__name__}: {redact_text(str(exc))[:300]}"
        )
        failed = True
    return failed


def _judge_cell(
    backend: Backend,
    settings: GateSettings,
    cell: str,
    run: Any,
    baseline: Baseline | None,
    raw_rules: dict[str, Any] | None,
) -> Verdict:
    """Compare one cell run's means with its baseline; tag the run with the verdict."""
    cell_rules = rules_from_json(raw_rules) if raw_rules is not None else project_rules(settings)
    metrics = dict(run.data.metrics)
    rows = rules.compare(metrics, baseline.metrics if baseline else None, cell_rules)
    verdict = verdict_of(rows, settings.compares, baseline)
    failing = [row for row in rows if row.verdict in FAILING]
    tags = verdict_tags(verdict, baseline)
    if failing:
        tags[T.ERROR] = failure_line(failing)[:500]
    if settings.promote:
        tags[T.PROMOTED] = "true"
    problem = None
    if verdict == NO_BASELINE and settings.require:
        problem = (
            f"no baseline for repeated cell {cell} in {settings.source} "
            f"(--mlexp-require-baseline). Record one first: {how_to_record(settings)}"
        )
    if failing or problem:
        # Like a failed item: never the "latest" baseline of a later session.
        tags[T.OUTCOME] = "failed"
        tags.pop(T.PROMOTED, None)
    run_id = str(run.info.run_id)
    backend.log_batch(run_id, tags=list(tags.items()))
    if failing or problem:
        backend.client.set_terminated(run_id, "FAILED")
    return Verdict(
        nodeid=cell,
        verdict=verdict,
        source=baseline.source if baseline else None,
        rows=rows,
        metrics=metrics,
        passed=not failing and problem is None,
        cell_run_id=run_id,
        repeats=run.data.tags.get(T.REPEATS, ""),
        problem=problem,
    )
