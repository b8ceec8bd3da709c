"""At session end: fill in and close each search's parent run from its trials in the store.

Runs on the controller after every worker has ended, just after the grid
parents (``pipeline.finish``). The counts and the best trial are read back
from the store, so they cover the trials of every worker and CI shard of
the session.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..backend import tags as T
from ..backend.client import MAX_PARAM_LENGTH, now_ms
from ..directions import BestSpec
from ..grids.best import pick_best
from ..grids.completion import children, final_attempts, group_status
from ..grids.labels import MAX_NOTE
from .space import space_from_json

if TYPE_CHECKING:
    from ..backend.client import Backend
    from ..grids.best import Best
    from ..runs.summary import GroupRefs, RunSummary


def complete_searches(backend: Backend, results: Sequence[RunSummary]) -> list[str]:
    """Fill and close the session's search parents; one line per search."""
    searches: dict[str, GroupRefs] = {}
    for result in results:
        groups = result.groups
        if groups is not None and groups.search_run_id:
            searches.setdefault(groups.search_run_id, groups)
    return [_complete(backend, run_id, groups) for run_id, groups in searches.items()]


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


def _complete(backend: Backend, run_id: str, groups: GroupRefs) -> str:
    from mlflow.exceptions import MlflowException

    parent = backend.client.get_run(run_id)
    # Attempts superseded by a rerun (pytest-rerunfailures) are not counted, as in a grid.
    trials, reruns = final_attempts(children(backend, run_id))
    trials.sort(key=lambda r: int(r.data.tags.get(T.TRIAL, 0)))
    outcomes = [trial_outcome(run) for run in trials]
    counts = {kind: outcomes.count(kind) for kind in ("complete", "pruned", "failed", "killed")}
    complete = [run for run, outcome in zip(trials, outcomes, strict=True) if outcome == "complete"]
    spec = BestSpec.parse(groups.best)
    best = pick_best(complete, spec, {})
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
    if counts["killed"]:
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
    existing = parent.data.params
    space_text = parent.data.tags.get(T.SPACE)
    if space_text:
        for name, dimension in space_from_json(json.loads(space_text)).items():
            key = T.SPACE_PREFIX + name
            if key not in existing:
                params.append((key, dimension.describe()[:MAX_PARAM_LENGTH]))
    best_params: list[tuple[str, str]] = []
    if best.run is not None:
        tags += [
            (T.BEST_RUN_ID, best.run.info.run_id),
            (T.BEST_RUN_NAME, best.run.info.run_name or ""),
            (T.BEST_TRIAL, best.run.data.tags.get(T.TRIAL, "")),
        ]
        metrics += [(T.BEST_PREFIX + k, float(v), now, 0) for k, v in best.run.data.metrics.items()]
        best_params = [(T.BEST_PREFIX + k, v) for k, v in best.run.data.params.items()]
    tags.append((T.NOTE, describe_search(groups.search or "", parent.data.tags, counts, best)))
    backend.log_batch(run_id, metrics=metrics, params=params, tags=tags)
    try:
        backend.log_batch(run_id, params=best_params)
    except MlflowException:
        # A later shard of the same session found another best trial: params are final.
        later = [(T.LATER_BEST_PREFIX + k[len(T.BEST_PREFIX) :], v) for k, v in best_params]
        backend.log_batch(run_id, tags=later)
    backend.client.set_terminated(run_id, status)
    tags_of = parent.data.tags
    head = (
        f"mlexp search {groups.search}: {len(trials)} trials, {counts['complete']} complete, "
        f"{counts['pruned']} pruned, {counts['failed']} failed"
        + (f", {counts['killed']} killed" if counts["killed"] else "")
        + f" (study {tags_of.get(T.STUDY, '?')}, {tags_of.get(T.SAMPLER, '?')})"
    )
    return f"{head}; {best.describe()}; parent run {run_id}"


def describe_search(
    function: str, parent_tags: dict[str, str], counts: dict[str, int], best: Best
) -> str:
    """A search parent's description (markdown, shown on its page in the UI)."""
    total = sum(counts.values())
    outcome = (
        f"{total} trials: {counts['complete']} complete, {counts['pruned']} pruned, "
        f"{counts['failed']} failed" + (f", {counts['killed']} killed" if counts["killed"] else "")
    )
    best_text = best.describe()
    lines = [
        f"Search `{function}`, Optuna study `{parent_tags.get(T.STUDY, '?')}` "
        f"({parent_tags.get(T.SAMPLER, '?')}, {parent_tags.get(T.SEARCH_STORAGE, '?')}).",
        "",
        f"**{outcome}.**",
        "",
        best_text[:1].upper() + best_text[1:] + ".",
    ]
    return "\n".join(lines)[:MAX_NOTE]
