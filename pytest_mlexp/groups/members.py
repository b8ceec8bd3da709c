"""A group run's members, read back from the store, and the status they give it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..backend import tags as T
from ..backend.search import search_runs, tag_equals

if TYPE_CHECKING:
    from ..backend.client import Backend


def children(backend: Backend, run_id: str) -> list[Any]:
    """The runs whose parent is ``run_id``."""
    run = backend.client.get_run(run_id)
    return list(
        search_runs(backend.client, [run.info.experiment_id], tag_equals(T.PARENT_RUN_ID, run_id))
    )


def final_attempts(runs: Sequence[Any]) -> tuple[list[Any], int]:
    """The runs that count, and how many attempts a rerun superseded (pytest-rerunfailures)."""
    final = [r for r in runs if r.data.tags.get(T.OUTCOME) != T.OUTCOME_RERUN]
    return final, len(runs) - len(final)


def group_status(statuses: Sequence[str]) -> str:
    """FAILED if any member failed, else KILLED if any was killed or left running, else FINISHED."""
    if "FAILED" in statuses:
        return "FAILED"
    if "KILLED" in statuses or "RUNNING" in statuses:
        return "KILLED"
    return "FINISHED"
