"""At session end, and after ``mlexp sync``: fill in and close the group runs from their members.

Runs once every run of the session has ended: in its one process, or under
xdist in the last worker to end (``pipeline.Worker``), else the controller
(a worker died, or its end opens the store anyway). Counts, means and the
best member are read back from the store, so they cover every member of the
session, including those of other CI shards sharing its session id. Every
kind goes through ``_settled``: shards ending together leave the counts of all.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from ..backend import tags as T
from ..directions import BestSpec
from . import members
from .best import group_best
from .kinds import FILLS, Group

if TYPE_CHECKING:
    from ..backend.client import Backend
    from ..runs.summary import RunSummary
    from ..settings import Settings

R = TypeVar("R")

#: Most times a group run is filled again because its members changed while it was filled.
MAX_PASSES = 5


def complete_groups(
    backend: Backend, results: Sequence[RunSummary], settings: Settings
) -> list[str]:
    """Fill and close the session's cell runs, grid parents and search parents; their lines."""
    return complete(backend, session_groups(results, settings))


def session_groups(results: Sequence[RunSummary], settings: Settings) -> list[Group]:
    """The group runs the session's ``results`` belong to, each with how to rank its members."""
    found: dict[str, Group] = {}
    for result in results:
        refs = result.groups
        if refs is None:
            continue
        if refs.cell_run_id and refs.cell:
            found.setdefault(refs.cell_run_id, Group(refs.cell_run_id, T.KIND_CELL, refs.cell))
        if refs.grid_run_id and refs.grid_run_id not in found:
            grid_run_id = refs.grid_run_id
            # "The first metric": as the experiment logged it, not as the store lists it.
            first = next(
                (
                    key
                    for r in results
                    if r.groups is not None and r.groups.grid_run_id == grid_run_id
                    for key in r.metrics
                ),
                None,
            )
            found[grid_run_id] = Group(
                grid_run_id,
                T.KIND_GRID,
                str(refs.grid),
                group_best(results, grid_run_id),
                settings.gate.directions,
                first,
            )
        if refs.search_run_id and refs.search_run_id not in found:
            found[refs.search_run_id] = Group(
                refs.search_run_id, T.KIND_SEARCH, str(refs.search), BestSpec.parse(refs.best)
            )
    return list(found.values())


def recomplete_groups(backend: Backend, run_ids: Sequence[str]) -> list[str]:
    """Complete again every group run ``run_ids`` belong to, up to the top; their lines.

    For ``mlexp sync``: runs replayed from the journal were missing (or still
    RUNNING) when their session completed its group runs. The metric ranking
    members is the one the group run holds (tags ``mlexp.best_metric`` and
    ``mlexp.best_direction``), else the first metric of its passed members.
    """
    found: dict[str, Group] = {}
    pending = [str(run_id) for run_id in run_ids]
    seen: set[str] = set()
    while pending:
        run = backend.client.get_run(pending.pop())
        parent_id = run.data.tags.get(T.PARENT_RUN_ID)
        if not parent_id or parent_id in seen:
            continue
        seen.add(parent_id)
        parent = backend.client.get_run(parent_id)
        kind = parent.data.tags.get(T.KIND, "")
        if kind in FILLS:
            found[parent_id] = _stored_group(backend, parent, kind)
            pending.append(parent_id)
    return complete(backend, list(found.values()))


def complete(backend: Backend, groups: Sequence[Group]) -> list[str]:
    """Complete ``groups``, members before the groups holding them; the lines to print."""
    order = list(FILLS)
    lines = []
    for group in sorted(groups, key=lambda g: order.index(g.kind)):
        line = _settled(backend, group.run_id, functools.partial(FILLS[group.kind], backend, group))
        if line is not None:
            lines.append(line)
    return lines


def _stored_group(backend: Backend, run: Any, kind: str) -> Group:
    """A group run to complete again, as its session described it in its tags."""
    tags = run.data.tags
    run_id = str(run.info.run_id)
    metric = tags.get(T.BEST_METRIC, "")
    direction = tags.get(T.BEST_DIRECTION)
    if metric and direction and ":" not in metric:
        metric = f"{metric}:{direction}"
    try:
        spec = BestSpec.parse(metric)
    except ValueError:
        spec = BestSpec(None)
    first = None
    if spec.metric is None and kind != T.KIND_CELL:
        finished = [r for r in members.children(backend, run_id) if r.info.status == "FINISHED"]
        first = min(
            (
                key
                for r in finished
                for key in r.data.metrics
                if not key.startswith(T.SYSTEM_METRICS_PREFIX)
            ),
            default=None,
        )
    name_tag = {T.KIND_CELL: T.CELL, T.KIND_GRID: T.GRID, T.KIND_SEARCH: T.SEARCH}[kind]
    name = tags.get(name_tag) or run.info.run_name or run_id
    return Group(run_id, kind, name, spec, {}, first)


def _settled(backend: Backend, run_id: str, fill: Callable[[list[Any]], R]) -> R:
    """``fill`` the group run from its members until they no longer change meanwhile.

    CI shards sharing a session complete the same group runs. One that read
    the members while another shard's last ones were still running must not
    have the last word: after writing, each reads the members again and fills
    the group run again if they changed, so the last writer wrote what every
    shard's members left.
    """
    runs = members.children(backend, run_id)
    result = fill(runs)
    for _ in range(MAX_PASSES - 1):
        again = members.children(backend, run_id)
        if _states(again) == _states(runs):
            break
        runs = again
        result = fill(runs)
    return result


def _states(runs: Sequence[Any]) -> list[tuple[str, str, str]]:
    return sorted((r.info.run_id, r.info.status, r.data.tags.get(T.OUTCOME, "")) for r in runs)
