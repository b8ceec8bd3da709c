"""The gate's work at the end of the session, on the controller, from the runs' summaries.

In order: judge the group runs (repeated cells by their means, searches by
their best trial: ``gate.group_runs``, once ``groups.completion`` completed
them), report each failed one as the failure of its last passed item
(``gate.group_reports``), then refresh the baseline file with
``--mlexp-update-baseline``. What
it decided is shown by ``reports.verdicts``.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pytest

from ..backend import tags as T
from ..runs.summary import Verdict
from ..settings.gate import GateSettings

if TYPE_CHECKING:
    from ..backend.client import Backend
    from ..runs.summary import RunSummary
    from .group_runs import Judgment


@dataclass
class GateOutcome:
    """What the gate decided in this session, for the terminal summary."""

    settings: GateSettings
    #: Verdicts of the items (from every worker) and of the group runs (cells, searches).
    verdicts: list[Verdict] = field(default_factory=list)
    #: How many tests the baseline file was refreshed for.
    updated: int = 0
    #: Why a group run could not be judged, if so.
    cell_error: str | None = None
    #: Test id -> its run's page in the tracking UI, for the markdown report.
    links: dict[str, str] = field(default_factory=dict)
    #: Test ids whose run exists only in the spool's journal: no page until ``mlexp sync``.
    pending: list[str] = field(default_factory=list)
    #: Grids judged by their best cell (``gate="best"``), and how many cells they had.
    grids: set[str] = field(default_factory=set)
    grid_cells: int = 0
    #: The test ids of the items that are a grid's cells (parametrized experiments).
    cells: set[str] = field(default_factory=set)


def group_label(verdict: Verdict, grids: Collection[str] = ()) -> str:
    """A group run as its failure names it: ``search x.py::f (best of 5 trials, parent run …)``."""
    if verdict.nodeid in grids:
        return (
            f"grid {verdict.nodeid} (best of {verdict.repeats} cells, "
            f"parent run {verdict.cell_run_id})"
        )
    if verdict.search:
        return (
            f"search {verdict.nodeid} (best of {verdict.repeats} trials, "
            f"parent run {verdict.cell_run_id})"
        )
    return (
        f"repeated cell {verdict.nodeid} (mean of {verdict.repeats} repeats, "
        f"cell run {verdict.cell_run_id})"
    )


def group_failure(verdict: Verdict, grids: Collection[str] = ()) -> str:
    """A failed group run's message: what failed and why, then the table of its metrics."""
    from .baselines import Baseline
    from .rules import FAILING
    from .verdicts import failure_message

    failing = [row for row in verdict.rows if row.verdict in FAILING]
    reason = "; ".join(f"{row.metric} {row.verdict.lower()}" for row in failing) or verdict.verdict
    lines = [f"{group_label(verdict, grids)} fails the session: {reason}"]
    if failing:
        baseline = Baseline({}, verdict.source) if verdict.source else None
        lines.append(failure_message(verdict.rows, failing, baseline))
    if verdict.problem:
        lines.append(f"mlexp: {verdict.problem}")
    return "\n".join(lines)


def finish_gate(
    settings: GateSettings,
    session_id: str,
    results: Sequence[RunSummary],
    store: Callable[[], Backend],
    pytest_session: pytest.Session,
) -> GateOutcome:
    """Judge the group runs and refresh the baseline file; a failed group run fails the session.

    ``store`` opens the store, when a group run is to be judged.
    """
    from .group_runs import judge_groups

    outcome = GateOutcome(settings, [r.verdict for r in results if r.verdict])
    # Repeated cells by their means, searches by their best trial, once they are complete.
    judgment = judge_groups(session_id, results, store, settings)
    outcome.verdicts += judgment.verdicts
    outcome.cell_error = judgment.error
    outcome.grids = judgment.grids
    outcome.grid_cells = sum(
        1 for r in results if r.groups is not None and r.groups.grid in judgment.grids
    )
    outcome.cells = {r.nodeid for r in results if r.groups is not None and r.groups.grid}
    if judgment.failed and pytest_session.exitstatus == pytest.ExitCode.OK:
        pytest_session.exitstatus = pytest.ExitCode.TESTS_FAILED
    _report_failed_groups(pytest_session.config, judgment, results, outcome.grids)
    _junit_properties(pytest_session, judgment.verdicts)
    if settings.update:
        outcome.updated = _update_file(settings, outcome.verdicts)
    if settings.report_md is not None and outcome.verdicts:
        outcome.links, outcome.pending = _links(outcome.verdicts, results, store)
    return outcome


def _links(
    verdicts: Sequence[Verdict], results: Sequence[RunSummary], store: Callable[[], Backend]
) -> tuple[dict[str, str], list[str]]:
    """Test id -> the page of the run its verdict is on: the item's run, the cell or search run;
    and the test ids whose run is pending sync.

    A server's own UI; for a local sqlite store, where ``mlflow ui`` serves it by default.
    A run that exists only in the spool's journal has no page yet (its id changes with
    ``mlexp sync``): it gets no link, as in the terminal (``Backend.run_link``).
    """
    from ..backend import uris

    try:
        backend = store()
        base = backend.ui_base or (uris.LOCAL_UI_BASE if uris.is_embedded(backend.uri) else None)
        if base is None:
            return {}, []
        runs: dict[str, tuple[str, str]] = {}
        for result in results:
            refs = result.groups
            runs.setdefault(result.nodeid, (result.experiment, result.run_id))
            if refs is not None and refs.cell and refs.cell_run_id:
                runs.setdefault(refs.cell, (result.experiment, refs.cell_run_id))
            if refs is not None and refs.search and refs.search_run_id:
                runs.setdefault(refs.search, (result.experiment, refs.search_run_id))
        links: dict[str, str] = {}
        pending: list[str] = []
        for verdict in verdicts:
            if verdict.nodeid not in runs:
                continue
            experiment, run_id = runs[verdict.nodeid]
            if backend.created_in_journal(run_id):
                pending.append(verdict.nodeid)
                continue
            try:
                experiment_id = backend.experiment_id(experiment)
            except Exception:
                continue  # a lost server: no link, as for the rest of its runs
            link = uris.run_link(base, experiment_id, run_id)
            if link is not None:
                links[verdict.nodeid] = link
        return links, pending
    except Exception:
        return {}, []  # the report without links rather than none


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


def _report_failed_groups(
    config: pytest.Config,
    judgment: Judgment,
    results: Sequence[RunSummary],
    grids: Collection[str],
) -> None:
    """Each failed group run, reported as the failure of its last passed item (``group_reports``);
    so is one that could not be judged.

    A group none of whose items passed here is already counted by their failures.
    """
    from .group_reports import GROUP_REPORTS_KEY

    reports = config.stash.get(GROUP_REPORTS_KEY, None)
    if reports is None:
        return
    failed = [
        (verdict.cell_run_id, group_failure(verdict, grids))
        for verdict in judgment.verdicts
        if verdict.cell_run_id and not verdict.passed
    ]
    failed += [(run_id, f"mlexp: {why}") for run_id, why in judgment.unjudged.items()]
    failures: dict[str, list[str]] = {}
    for run_id, message in failed:
        members = [
            r.nodeid
            for r in results
            if r.groups is not None
            and run_id in (r.groups.cell_run_id, r.groups.search_run_id, r.groups.grid_run_id)
            and reports.passed(r.nodeid)
        ]
        if members:
            failures.setdefault(members[-1], []).append(message)
    reports.fail({nodeid: "\n".join(messages) for nodeid, messages in failures.items()})


def _junit_properties(pytest_session: pytest.Session, verdicts: Sequence[Verdict]) -> None:
    """Each repeated cell's verdict and intervals as a property of the JUnit XML test suite.

    A cell is no test case (its repeats are), and is judged once they all
    reported: its verdict goes to the suite's ``<properties>``, e.g. ``mlexp.cell
    test_x.py::test_x[0.1]`` = ``inconclusive: accuracy [-0.05, +0.02] 95%, n 2/2, ...``.
    Through ``gate.junit``, the adapter to pytest's ``junitxml``.
    """
    from . import junit
    from .verdicts import gate_tags

    for verdict in verdicts:
        intervals = gate_tags(verdict.rows).get(T.GATE_INTERVAL)
        if verdict.cell_run_id and not verdict.search and intervals:
            junit.add_suite_property(
                pytest_session.config,
                f"mlexp.cell {verdict.nodeid}",
                f"{verdict.verdict}: {intervals}",
            )
