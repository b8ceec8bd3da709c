"""At session end, and after ``mlexp sync``: fill in and close the group runs from their members.

Runs once every run of the session has ended, in the process where the
session ends (``pipeline.finish``), serially, under xdist and on Ray alike,
Ctrl-C included. Counts, means and the
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
from .kinds import Group, GroupKind

if TYPE_CHECKING:
    from ..backend.client import Backend
    from ..runs.summary import RunSummary
    from ..settings import Settings

R = TypeVar("R")

#: Most times a group run is filled again because its members changed while it was filled.
MAX_PASSES = 5


def complete_groups(
    backend: Backend,
    results: Sequence[RunSummary],
    settings: Settings,
    kinds: Sequence[GroupKind],
) -> list[str]:
    """Fill and close the session's group runs of ``kinds``; their lines.

    ``kinds``: what the features registered (``grids.kinds``, ``search.kinds``).
    """
    return complete(backend, session_groups(results, settings, kinds), kinds)


def session_groups(
    results: Sequence[RunSummary], settings: Settings, kinds: Sequence[GroupKind]
) -> list[Group]:
    """The group runs the session's ``results`` belong to, each with how to rank its members."""
    return [group for kind in kinds for group in kind.session_groups(results, settings)]


def recomplete_groups(
    backend: Backend, run_ids: Sequence[str], kinds: Sequence[GroupKind]
) -> list[str]:
    """Complete again every group run ``run_ids`` belong to, up to the top; their lines.

    For ``mlexp sync``: runs replayed from the journal were missing (or still
    RUNNING) when their session completed its group runs. The metric ranking
    members is the one the group run holds (tags ``mlexp.best_metric`` and
    ``mlexp.best_direction``), else the first metric of its passed members.
    """
    by_kind = {kind.kind: kind for kind in kinds}
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
        kind = by_kind.get(parent.data.tags.get(T.KIND, ""))
        if kind is not None:
            found[parent_id] = _stored_group(backend, parent, kind)
            pending.append(parent_id)
    return complete(backend, list(found.values()), kinds)


def complete(backend: Backend, groups: Sequence[Group], kinds: Sequence[GroupKind]) -> list[str]:
    """Complete ``groups``, members before the groups holding them; the lines to print."""
    by_kind = {kind.kind: kind for kind in kinds}
    lines = []
    for group in sorted(groups, key=lambda g: by_kind[g.kind].holds_groups):
        fill = functools.partial(by_kind[group.kind].fill, backend, group)
        line = _settled(backend, group.run_id, fill)
        if line is not None:
            lines.append(line)
    return lines


def _stored_group(backend: Backend, run: Any, kind: GroupKind) -> Group:
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
    if spec.metric is None and kind.ranks_members:
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
    name = tags.get(kind.name_tag) or run.info.run_name or run_id
    return Group(run_id, kind.kind, name, spec, {}, first)


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
