"""At session end: fill in and close the group runs, and close the runs of dead processes.

Runs on the controller, after every worker has ended. Counts, means and the
best cell are read back from the store, so they cover every child of the
session, including those of other CI shards sharing its session id.
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from ..backend import tags as T
from ..backend.client import MAX_PARAM_LENGTH, now_ms
from ..backend.search import search_runs, tag_equals
from ..directions import BestSpec
from .best import pick_best
from .labels import describe_grid
from .parents import host_name
from .repeats import SEED_PARAM

if TYPE_CHECKING:
    from ..backend.client import Backend
    from ..runs.summary import RunSummary
    from ..settings import Settings

R = TypeVar("R")


def process_alive(pid: int) -> bool:
    """Whether ``pid`` is a live process on this machine (zombies count as dead)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


def sweep_dead_runs(backend: Backend, experiments: set[str]) -> list[str]:
    """Mark KILLED the RUNNING runs of this machine whose recorded process is gone.

    Only runs tagged with this host and a pid that no longer runs are
    touched: other people's live sessions on a shared server are safe.
    """
    experiment_ids = [backend.experiment_id(name) for name in sorted(experiments)]
    running = search_runs(
        backend.client,
        experiment_ids,
        f"attributes.status = 'RUNNING' and {tag_equals(T.HOST, host_name())}",
    )
    swept = []
    for run in list(running):
        pid = run.data.tags.get(T.PID, "")
        if pid.isdigit() and not process_alive(int(pid)):
            backend.client.set_tag(run.info.run_id, T.OUTCOME, "interrupted")
            backend.client.set_terminated(run.info.run_id, "KILLED")
            swept.append(run.info.run_id)
    return swept


def complete_groups(
    backend: Backend, results: Sequence[RunSummary], settings: Settings
) -> list[str]:
    """Fill and close the session's cell runs, then its grid parents; one line per grid."""
    cells = {r.groups.cell_run_id for r in results if r.groups and r.groups.cell_run_id}
    grids: dict[str, RunSummary] = {}
    for result in results:
        if result.groups is not None and result.groups.grid_run_id:
            grids.setdefault(result.groups.grid_run_id, result)
    for run_id in cells:
        assert run_id is not None
        _complete_cell(backend, run_id)
    lines = []
    for run_id, example in grids.items():
        assert example.groups is not None
        # The marker's metric, else the session's, as the item's run recorded it.
        spec = BestSpec.parse(example.groups.best)
        # "The first metric": as the experiment logged it, not as the store lists it.
        first = next(
            (
                key
                for r in results
                if r.groups is not None and r.groups.grid_run_id == run_id
                for key in r.metrics
            ),
            None,
        )
        lines.append(
            _complete_grid(
                backend, run_id, str(example.groups.grid), spec, settings.gate.directions, first
            )
        )
    return lines


def recomplete_groups(backend: Backend, run_ids: Sequence[str]) -> list[str]:
    """Complete again the cell runs and grid parents that ``run_ids`` belong to.

    For ``mlexp sync``: runs replayed from the journal were missing (or still
    RUNNING) when their session completed its group runs. The grid's best
    metric is the one its session chose (tags ``mlexp.best_metric`` and
    ``mlexp.best_direction``), else the first metric of its cells. One line per grid.
    """
    cells: dict[str, Any] = {}
    grids: dict[str, Any] = {}
    pending = [str(run_id) for run_id in run_ids]
    seen: set[str] = set()
    while pending:
        run = backend.client.get_run(pending.pop())
        parent_id = run.data.tags.get(T.PARENT_RUN_ID)
        if not parent_id or parent_id in seen:
            continue
        seen.add(parent_id)
        parent = backend.client.get_run(parent_id)
        kind = parent.data.tags.get(T.KIND)
        if kind == T.KIND_CELL:
            cells[parent_id] = parent
            pending.append(parent_id)
        elif kind == T.KIND_GRID:
            grids[parent_id] = parent
    for run_id in cells:
        _complete_cell(backend, run_id)
    lines = []
    for run_id, parent in grids.items():
        tags = parent.data.tags
        metric = tags.get(T.BEST_METRIC, "")
        direction = tags.get(T.BEST_DIRECTION)
        if metric and direction and ":" not in metric:
            metric = f"{metric}:{direction}"
        try:
            spec = BestSpec.parse(metric)
        except ValueError:
            spec = BestSpec(None)
        first = None
        if spec.metric is None:
            finished = [r for r in children(backend, run_id) if r.info.status == "FINISHED"]
            first = min((key for r in finished for key in r.data.metrics), default=None)
        name = tags.get(T.GRID) or parent.info.run_name or run_id
        lines.append(_complete_grid(backend, run_id, name, spec, {}, first))
    return lines


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
    """FAILED if any child failed, else KILLED if any was killed or left running, else FINISHED."""
    if "FAILED" in statuses:
        return "FAILED"
    if "KILLED" in statuses or "RUNNING" in statuses:
        return "KILLED"
    return "FINISHED"


#: Most times a group run is filled again because its children changed while it was filled.
MAX_PASSES = 5


def _settled(backend: Backend, run_id: str, fill: Callable[[list[Any]], R]) -> R:
    """``fill`` the group run from its children until they no longer change meanwhile.

    CI shards sharing a session complete the same group runs. One that read
    the children while another shard's last cells were still running must
    not have the last word: after writing, each reads the children again and
    fills the group run again if they changed, so the last writer wrote what
    every shard's cells left.
    """
    runs = children(backend, run_id)
    result = fill(runs)
    for _ in range(MAX_PASSES - 1):
        again = children(backend, run_id)
        if _states(again) == _states(runs):
            break
        runs = again
        result = fill(runs)
    return result


def _states(runs: Sequence[Any]) -> list[tuple[str, str, str]]:
    return sorted((r.info.run_id, r.info.status, r.data.tags.get(T.OUTCOME, "")) for r in runs)


def _complete_cell(backend: Backend, run_id: str) -> None:
    _settled(backend, run_id, lambda runs: _fill_cell(backend, run_id, runs))


def _fill_cell(backend: Backend, run_id: str, runs: list[Any]) -> None:
    repeats, reruns = final_attempts(runs)
    passed = [r for r in repeats if r.info.status == "FINISHED"]
    values: dict[str, list[float]] = {}
    for run in passed:
        for key, value in run.data.metrics.items():
            values.setdefault(key, []).append(float(value))
    now = now_ms()
    metrics = []
    for key, series in values.items():
        metrics.append((key, statistics.fmean(series), now, 0))
        spread = statistics.stdev(series) if len(series) > 1 else 0.0
        metrics.append((f"{key}.std", spread, now, 0))
    existing = backend.client.get_run(run_id).data.params
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
    backend.log_batch(run_id, metrics=metrics, params=params, tags=tags)
    backend.client.set_terminated(run_id, status)


def _complete_grid(
    backend: Backend,
    run_id: str,
    name: str,
    spec: BestSpec,
    directions: Any,
    first_metric: str | None,
) -> str:
    return _settled(
        backend,
        run_id,
        lambda runs: _fill_grid(backend, run_id, name, spec, directions, first_metric, runs),
    )


def _fill_grid(
    backend: Backend,
    run_id: str,
    name: str,
    spec: BestSpec,
    directions: Any,
    first_metric: str | None,
    runs: list[Any],
) -> str:
    from mlflow.exceptions import MlflowException

    cells, reruns = final_attempts(runs)
    cells.sort(key=lambda r: r.info.run_name or "")
    statuses = [r.info.status for r in cells]
    passed = statuses.count("FINISHED")
    failed = statuses.count("FAILED")
    killed = len(cells) - passed - failed
    best = pick_best(cells, spec, directions, first_metric)
    now = now_ms()
    tags = [
        (T.GRID_SIZE, str(len(cells))),
        (T.PASSED, str(passed)),
        (T.FAILED, str(failed)),
        (T.KILLED, str(killed)),
        (T.NOTE, describe_grid(name, cells, best)),
    ]
    if reruns:
        tags.append((T.RERUNS, str(reruns)))
    metrics = [
        (T.CELLS_METRIC, float(len(cells)), now, 0),
        (T.PASSED_METRIC, float(passed), now, 0),
        (T.FAILED_METRIC, float(failed), now, 0),
    ]
    params: list[tuple[str, str]] = []
    if best.run is not None:
        assert best.direction is not None
        assert best.direction.direction is not None
        tags += [
            (T.BEST_RUN_ID, best.run.info.run_id),
            (T.BEST_RUN_NAME, best.run.info.run_name or ""),
            (T.BEST_METRIC, str(best.metric)),
            (T.BEST_DIRECTION, "max" if best.direction.direction == "up" else "min"),
        ]
        metrics += [(T.BEST_PREFIX + k, float(v), now, 0) for k, v in best.run.data.metrics.items()]
        params = [(T.BEST_PREFIX + k, v) for k, v in best.run.data.params.items()]
    backend.log_batch(run_id, metrics=metrics, tags=tags)
    try:
        backend.log_batch(run_id, params=params)
    except MlflowException:
        # A later shard of the same session found another best cell: params are
        # immutable, so the newer best goes to tags.
        later = [(T.LATER_BEST_PREFIX + key[len(T.BEST_PREFIX) :], value) for key, value in params]
        backend.log_batch(run_id, tags=later)
    backend.client.set_terminated(run_id, group_status(statuses))
    return (
        f"mlexp grid {name}: {len(cells)} cells, {passed} passed, {failed} failed"
        + (f", {killed} killed" if killed else "")
        + (f" ({reruns} rerun{'s' if reruns != 1 else ''})" if reruns else "")
        + f"; {best.describe(SEED_PARAM)}; parent run {run_id}"
    )
