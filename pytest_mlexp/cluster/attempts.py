"""Closing the run of an attempt whose cluster worker was lost, or was stopped by Ctrl-C.

The run was started by a process on another machine, so the session-end
sweep (this machine's dead processes only) cannot see it: the controller
finds it in the store by the session and the item, the only attempt of that
item that can be running, and ends it KILLED. Its summary names the group
runs it belongs to, read from its tags as the worker wrote them, so the
session's end completes them as it would have from the worker's summary.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..backend import tags as T
from ..backend.search import search_runs, tag_equals
from ..runs.summary import GroupRefs, RunSummary

if TYPE_CHECKING:
    import pytest

    from ..backend.client import Backend


def close_attempt(
    backend: Backend,
    item: pytest.Item,
    experiment: str,
    session_id: str,
    *,
    outcome: str,
    index: int,
    reason: str = "",
) -> list[RunSummary]:
    """End KILLED, with ``outcome``, the item's runs of this session still RUNNING.

    ``outcome``: ``rerun`` for a lost worker's attempt (the retry counts),
    ``interrupted`` for Ctrl-C; ``reason``: why the worker was lost, in the
    cluster's words (tag ``mlexp.cluster.lost``). Returns their summaries for
    the session's end.
    """
    query = " and ".join(
        (
            "attributes.status = 'RUNNING'",
            tag_equals(T.SESSION_ID, session_id),
            tag_equals(T.NODEID, item.nodeid),
        )
    )
    closed = []
    for run in list(search_runs(backend.client, [backend.experiment_id(experiment)], query)):
        run_id = run.info.run_id
        backend.client.set_tag(run_id, T.OUTCOME, outcome)
        if reason:
            backend.client.set_tag(run_id, T.CLUSTER_LOST, reason[:5000])
        backend.client.set_terminated(run_id, "KILLED")
        closed.append(
            RunSummary(
                name=item.name,
                nodeid=item.nodeid,
                experiment=experiment,
                status="KILLED",
                outcome=outcome,
                run_id=run_id,
                params=dict(run.data.params),
                url=backend.run_link(run.info.experiment_id, run_id),
                index=index,
                attempt=int(run.data.tags.get(T.ATTEMPT, "1") or 1),
                groups=group_refs(backend, run.data.tags),
            )
        )
    return closed


def group_refs(backend: Backend, tags: dict[str, str]) -> GroupRefs | None:
    """The group runs of a run with ``tags``, as ``grids.parents``/``search.plugin`` set them."""
    parent = tags.get(T.PARENT_RUN_ID)
    if not parent:
        return None
    if tags.get(T.SEARCH):
        return GroupRefs(
            best=_best(backend.client.get_run(parent)),
            search=tags[T.SEARCH],
            search_run_id=parent,
        )
    grid, cell = tags.get(T.GRID), tags.get(T.CELL)
    if cell:
        # A repeat: its parent is its cell, whose parent is the grid's when it has one.
        cell_run = backend.client.get_run(parent)
        grid_run_id = cell_run.data.tags.get(T.PARENT_RUN_ID) if grid else None
        grid_run = backend.client.get_run(grid_run_id) if grid_run_id else None
        best = _best(grid_run) if grid_run is not None else ""
        return GroupRefs(grid, grid_run_id, cell, parent, best)
    if grid:
        return GroupRefs(grid, parent, best=_best(backend.client.get_run(parent)))
    return None


def _best(group_run: Any) -> str:
    """The metric ranking the group run's members, as ``best=`` names it (``loss:min``, ``""``)."""
    tags = group_run.data.tags
    metric, direction = str(tags.get(T.BEST_METRIC, "")), tags.get(T.BEST_DIRECTION)
    return f"{metric}:{direction}" if metric and direction and ":" not in metric else metric
