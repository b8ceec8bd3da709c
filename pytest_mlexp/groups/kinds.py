"""What completion writes on each kind of group run, from its members' final attempts.

- ``cell`` (a repeated cell): the mean and standard deviation of each metric
  of its passed repeats, the repeats' shared params, counts;
- ``grid`` (a grid's parent): counts, the best cell by the grid's metric, its
  metrics and params under ``best.``, a description;
- ``search`` (a search's parent): the trials' outcomes (complete, pruned,
  failed, killed), the best complete trial by the objective, the space as
  params, a description.

Each ``fill`` writes the group run and terminates it; it returns the line the
terminal prints for it, if any.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..backend import tags as T
from ..backend.client import MAX_PARAM_LENGTH, now_ms
from ..directions import BestSpec
from ..grids.repeats import SEED_PARAM
from .best import pick_best
from .members import final_attempts, group_status
from .notes import describe_grid, describe_search

if TYPE_CHECKING:
    from ..backend.client import Backend


@dataclass(frozen=True)
class Group:
    """A group run to complete, and how to rank its members."""

    run_id: str
    #: ``mlexp.kind``: cell, grid or search.
    kind: str
    #: Its test id: the cell's node id, the grid's or the search's function.
    name: str
    best: BestSpec = field(default_factory=lambda: BestSpec(None))
    #: Configured directions of metrics (``--mlexp-direction``).
    directions: Mapping[str, str] = field(default_factory=dict)
    #: The metric ranking members when ``best`` names none: the first one logged.
    first_metric: str | None = None


Fill = Callable[["Backend", Group, list[Any]], "str | None"]


def fill_cell(backend: Backend, group: Group, runs: list[Any]) -> str | None:
    repeats, reruns = final_attempts(runs)
    passed = [r for r in repeats if r.info.status == "FINISHED"]
    values: dict[str, list[float]] = {}
    for run in passed:
        for key, value in run.data.metrics.items():
            if not key.startswith(T.SYSTEM_METRICS_PREFIX):  # the machine's, not the cell's
                values.setdefault(key, []).append(float(value))
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
    ran = f"{len(cells)} cells"
    part = ran_in_part(backend, group.run_id, len(cells), "cells")
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
    _write(backend, group.run_id, best, metrics, [], tags, group_status(statuses))
    return (
        f"mlexp grid {group.name}: {ran}, {passed} passed, {failed} failed"
        + (f", {killed} killed" if killed else "")
        + (f" ({reruns} rerun{'s' if reruns != 1 else ''})" if reruns else "")
        + f"; {best.describe(SEED_PARAM)}; parent run {group.run_id}"
    )


def ran_in_part(backend: Backend, run_id: str, ran: int, members: str) -> str:
    """``2 of 6 cells ran this session`` when the group has more members than ran, else ``""``."""
    declared = backend.client.get_run(run_id).data.tags.get(T.MEMBERS, "")
    if not declared.isdigit() or int(declared) <= ran:
        return ""
    return f"{ran} of {declared} {members} ran this session"


def trial_outcome(run: Any) -> str:
    """complete, pruned, failed or killed: how a trial run ended, as the search counts it."""
    outcome = run.data.tags.get(T.OUTCOME, "")
    if outcome == T.OUTCOME_PRUNED:
        return "pruned"
    if run.info.status == "FINISHED" and outcome == "passed":
        return "complete"
    if run.info.status == "FINISHED":
        return "skipped"
    return "failed" if run.info.status == "FAILED" else "killed"


def fill_search(backend: Backend, group: Group, runs: list[Any]) -> str | None:
    from ..search.space import space_from_json

    parent = backend.client.get_run(group.run_id)
    trials, reruns = final_attempts(runs)
    trials.sort(key=lambda r: int(r.data.tags.get(T.TRIAL, 0)))
    outcomes = [trial_outcome(run) for run in trials]
    counts = {kind: outcomes.count(kind) for kind in ("complete", "pruned", "failed", "killed")}
    complete = [run for run, outcome in zip(trials, outcomes, strict=True) if outcome == "complete"]
    best = pick_best(complete, group.best, {})
    now = now_ms()
    status = group_status([run.info.status for run in trials]) if trials else "FAILED"
    if status == "FINISHED" and not complete:
        status = "FAILED"  # nothing to show for the search
    tags = [
        (T.TRIALS, str(len(trials))),
        (T.TRIALS_COMPLETE, str(counts["complete"])),
        (T.TRIALS_PRUNED, str(counts["pruned"])),
        (T.TRIALS_FAILED, str(counts["failed"])),
        (T.OUTCOME, "passed" if status == "FINISHED" else "failed"),
    ]
    if counts["killed"] or T.KILLED in parent.data.tags:
        # Also when none are left: a shard's earlier pass may have counted a running trial.
        tags.append((T.KILLED, str(counts["killed"])))
    if reruns:
        tags.append((T.RERUNS, str(reruns)))
    metrics = [
        (T.TRIALS, float(len(trials)), now, 0),
        (T.TRIALS_COMPLETE, float(counts["complete"]), now, 0),
        (T.TRIALS_PRUNED, float(counts["pruned"]), now, 0),
        (T.TRIALS_FAILED, float(counts["failed"]), now, 0),
    ]
    params: list[tuple[str, str]] = []
    space_text = parent.data.tags.get(T.SPACE)
    if space_text:
        for name, dimension in space_from_json(json.loads(space_text)).items():
            key = T.SPACE_PREFIX + name
            if key not in parent.data.params:
                params.append((key, dimension.describe()[:MAX_PARAM_LENGTH]))
    if best.run is not None:
        tags.append((T.BEST_TRIAL, best.run.data.tags.get(T.TRIAL, "")))
    tags.append((T.NOTE, describe_search(group.name, parent.data.tags, counts, best)))
    _write(backend, group.run_id, best, metrics, params, tags, status)
    head = (
        f"mlexp search {group.name}: {len(trials)} trials, {counts['complete']} complete, "
        f"{counts['pruned']} pruned, {counts['failed']} failed"
        + (f", {counts['killed']} killed" if counts["killed"] else "")
        + f" (study {parent.data.tags.get(T.STUDY, '?')}, {parent.data.tags.get(T.SAMPLER, '?')})"
    )
    return f"{head}; {best.describe()}; parent run {group.run_id}"


def _write(
    backend: Backend,
    run_id: str,
    best: Any,
    metrics: list[tuple[str, float, int, int]],
    params: list[tuple[str, str]],
    tags: list[tuple[str, str]],
    status: str,
) -> None:
    """Log a grid's or search's values and its best member's, then terminate it with ``status``."""
    from mlflow.exceptions import MlflowException

    best_params: list[tuple[str, str]] = []
    if best.run is not None:
        now = now_ms()
        tags = [
            *tags,
            (T.BEST_RUN_ID, best.run.info.run_id),
            (T.BEST_RUN_NAME, best.run.info.run_name or ""),
        ]
        metrics = [
            *metrics,
            *(
                (T.BEST_PREFIX + k, float(v), now, 0)
                for k, v in best.run.data.metrics.items()
                if not k.startswith(T.SYSTEM_METRICS_PREFIX)
            ),
        ]
        best_params = [(T.BEST_PREFIX + k, v) for k, v in best.run.data.params.items()]
    backend.log_batch(run_id, metrics=metrics, params=params, tags=tags)
    try:
        backend.log_batch(run_id, params=best_params)
    except MlflowException:
        # A later shard of the same session found another best member: params are
        # immutable, so the newer best goes to tags.
        later = [(T.LATER_BEST_PREFIX + k[len(T.BEST_PREFIX) :], v) for k, v in best_params]
        backend.log_batch(run_id, tags=later)
    backend.client.set_terminated(run_id, status)


#: The completion of each kind, by ``mlexp.kind``; completed in this order (members first).
FILLS: dict[str, Fill] = {
    T.KIND_CELL: fill_cell,
    T.KIND_GRID: fill_grid,
    T.KIND_SEARCH: fill_search,
}
