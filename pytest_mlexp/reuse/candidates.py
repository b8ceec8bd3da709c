"""The runs an item may reuse: the latest run of every test, found with one search."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..backend import tags as T
from ..backend.search import NOT_REPRODUCTION, PAGE_SIZE, search_runs

if TYPE_CHECKING:
    from mlflow.entities import Run

#: Why an item with no earlier run executed: counted, not listed, by the terminal.
NEW = "no earlier run"
#: Outcomes of a run whose results can be reused (a reused run's own included).
REUSABLE_OUTCOMES = frozenset({"passed", T.OUTCOME_REUSED})
_REGRESSED = "regressed"


@dataclass
class Decision:
    """What reuse decided for one item (``reuse.keys.DECISION_KEY``)."""

    #: The run whose results the item's run copies, or ``""`` when the item executes.
    reused_from: str = ""
    #: Why the item executes although it ran before (``code changed (helpers.py)``).
    reason: str = ""
    #: The run copied from (the latest one), when reused.
    source: Run | None = None


def latest_runs(
    client: Any, tests: Iterable[tuple[str, str]], session_id: str
) -> dict[tuple[str, str], Run]:
    """(experiment id, node id) -> the latest fingerprinted run of each of ``tests``, any status.

    One paged search, newest first, stopping once every test is found: in the
    usual case the previous session's runs, the first page. Runs of
    this session (other xdist workers), runs still RUNNING and attempts superseded
    by a rerun are passed over, and so are the runs of ``mlexp reproduce``.
    """
    wanted = set(tests)
    ids = sorted({experiment_id for experiment_id, _ in wanted})
    found: dict[tuple[str, str], Run] = {}
    runs = search_runs(
        client,
        ids,
        f"tags.`{T.FINGERPRINT}` IS NOT NULL and {NOT_REPRODUCTION}",
        order_by=["attributes.start_time DESC"],
        # A page twice the tests: the previous session's runs, without reading far back.
        page_size=min(PAGE_SIZE, max(100, 2 * len(wanted))),
    )
    for run in runs:
        tags = run.data.tags
        key = (str(run.info.experiment_id), tags.get(T.NODEID, ""))
        if key not in wanted or key in found:
            continue
        if tags.get(T.SESSION_ID) == session_id or run.info.status in ("RUNNING", "SCHEDULED"):
            continue
        if tags.get(T.OUTCOME) == T.OUTCOME_RERUN:
            continue
        found[key] = run
        if len(found) == len(wanted):
            break
    return found


def unusable(run: Run) -> str | None:
    """Why a run's results must not be reused (failed, killed, regressed, xfailed...), or None."""
    tags = run.data.tags
    outcome = tags.get(T.OUTCOME, "")
    status = str(run.info.status)
    if tags.get(T.VERDICT) == _REGRESSED:
        return "its latest run regressed"
    if status != "FINISHED":
        word = {"FAILED": "failed", "KILLED": "was killed"}.get(status, status.lower())
        return f"its latest run {outcome if outcome in ('xfailed', 'error') else word}"
    if outcome not in REUSABLE_OUTCOMES:
        return f"its latest run {outcome or 'has no outcome'}"
    return None


def original(run: Run) -> str:
    """The run that executed: a reused run points at its own source."""
    return run.data.tags.get(T.REUSED_FROM) or str(run.info.run_id)
