"""The kinds of group runs grids make, registered with the group runs' engine (``groups``).

- ``cell`` (a repeated cell): the mean and standard deviation of each metric
  of its passed repeats, the repeats' shared params, counts;
- ``grid`` (a grid's parent): counts, how many of its cells ran when the
  session ran part of it, the best cell by the grid's metric, its metrics
  and params under ``best.``, a description.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..backend import tags as T
from ..backend.client import MAX_PARAM_LENGTH, now_ms
from ..groups.best import group_best, pick_best
from ..groups.kinds import Group, GroupKind, ran_in_part, write_group
from ..groups.members import final_attempts, group_status
from ..groups.notes import describe_grid
from .repeats import SEED_PARAM

if TYPE_CHECKING:
    from ..backend.client import Backend
    from ..runs.summary import RunSummary
    from ..settings import Settings


def cell_values(runs: Sequence[Any]) -> dict[str, list[float]]:
    """Each metric's values over the passed ones of a cell's repeats (final attempts)."""
    values: dict[str, list[float]] = {}
    for run in final_attempts(runs)[0]:
        if run.info.status != "FINISHED":
            continue
        for key, value in run.data.metrics.items():
            if not key.startswith(T.SYSTEM_METRICS_PREFIX):  # the machine's, not the cell's
                values.setdefault(key, []).append(float(value))
    return values


def fill_cell(backend: Backend, group: Group, runs: list[Any]) -> str | None:
    repeats, reruns = final_attempts(runs)
    passed = [r for r in repeats if r.info.status == "FINISHED"]
    values = cell_values(runs)
    now = now_ms()
    metrics = []
    for key, series in values.items():
        metrics.append((key, statistics.fmean(series), now, 0))
        spread = statistics.stdev(series) if len(series) > 1 else 0.0
        metrics.append((f"{key}.std", spread, now, 0))
    existing = backend.client.get_run(group.run_id).data.params
    params = []
    if repeats:
        params = [
            (k, v[:MAX_PARAM_LENGTH])
            for k, v in repeats[0].data.params.items()
            if k != SEED_PARAM and k not in existing
        ]
    status = group_status([r.info.status for r in repeats])
    tags = [
        (T.REPEATS, str(len(repeats))),
        (T.REPEATS_PASSED, str(len(passed))),
        (T.OUTCOME, "passed" if status == "FINISHED" else "failed"),
    ]
    if reruns:
        tags.append((T.RERUNS, str(reruns)))
    backend.log_batch(group.run_id, metrics=metrics, params=params, tags=tags)
    backend.client.set_terminated(group.run_id, status)
    return None


def fill_grid(backend: Backend, group: Group, runs: list[Any]) -> str | None:
    cells, reruns = final_attempts(runs)
    cells.sort(key=lambda r: r.info.run_name or "")
    statuses = [r.info.status for r in cells]
    passed = statuses.count("FINISHED")
    failed = statuses.count("FAILED")
    killed = len(cells) - passed - failed
    best = pick_best(cells, group.best, group.directions, group.first_metric)
    now = now_ms()
    note = describe_grid(group.name, cells, best, SEED_PARAM)
    ran = f"{len(cells)} {'cell' if len(cells) == 1 else 'cells'}"
    part = ran_in_part(backend.client.get_run(group.run_id).data.tags, len(cells), "cells")
    if part:
        ran = part
        # Its first paragraph names the grid and the session: what follows is of this part.
        head, _, rest = note.partition("\n\n")
        note = f"{head}\n\n**{part}.**\n\n{rest}"
    tags = [
        (T.GRID_SIZE, str(len(cells))),
        (T.PASSED, str(passed)),
        (T.FAILED, str(failed)),
        (T.KILLED, str(killed)),
        (T.NOTE, note),
    ]
    if reruns:
        tags.append((T.RERUNS, str(reruns)))
    metrics = [
        (T.CELLS_METRIC, float(len(cells)), now, 0),
        (T.PASSED_METRIC, float(passed), now, 0),
        (T.FAILED_METRIC, float(failed), now, 0),
    ]
    if best.run is not None:
        assert best.direction is not None
        assert best.direction.direction is not None
        tags += [
            (T.BEST_METRIC, str(best.metric)),
            (T.BEST_DIRECTION, "max" if best.direction.direction == "up" else "min"),
        ]
    write_group(backend, group.run_id, best, metrics, [], tags, group_status(statuses))
    return (
        f"mlexp grid {group.name}: {ran}, {passed} passed, {failed} failed"
        + (f", {killed} killed" if killed else "")
        + (f" ({reruns} rerun{'s' if reruns != 1 else ''})" if reruns else "")
        + f"; {best.describe(SEED_PARAM)}; parent run {group.run_id}"
    )


def cells_of(results: Sequence[RunSummary], settings: Settings) -> list[Group]:
    """The repeated cells the session's ``results`` belong to."""
    found: dict[str, Group] = {}
    for result in results:
        refs = result.groups
        if refs is not None and refs.cell_run_id and refs.cell:
            found.setdefault(refs.cell_run_id, Group(refs.cell_run_id, T.KIND_CELL, refs.cell))
    return list(found.values())


def grids_of(results: Sequence[RunSummary], settings: Settings) -> list[Group]:
    """The grid parents the session's ``results`` belong to, each with how to rank its cells."""
    found: dict[str, Group] = {}
    for result in results:
        refs = result.groups
        if refs is None or not refs.grid_run_id or refs.grid_run_id in found:
            continue
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
    return list(found.values())


CELL = GroupKind(T.KIND_CELL, T.CELL, fill_cell, cells_of, ranks_members=False)
GRID = GroupKind(T.KIND_GRID, T.GRID, fill_grid, grids_of, holds_groups=True)
