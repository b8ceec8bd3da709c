"""The kind of group run searches make, registered with the group runs' engine (``groups``).

A search's parent: the trials' outcomes (complete, pruned, failed, killed),
how many ran when the session ran part of it, the best complete trial by the
objective, the space as params, a description.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..backend import tags as T
from ..backend.client import MAX_PARAM_LENGTH, now_ms
from ..directions import BestSpec
from ..groups.best import pick_best
from ..groups.kinds import Group, GroupKind, ran_in_part, write_group
from ..groups.members import final_attempts, group_status
from ..groups.notes import describe_search
from .space import space_from_json

if TYPE_CHECKING:
    from ..backend.client import Backend
    from ..runs.summary import RunSummary
    from ..settings import Settings


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
    write_group(backend, group.run_id, best, metrics, params, tags, status)
    ran = ran_in_part(parent.data.tags, len(trials), "trials") or f"{len(trials)} trials"
    head = (
        f"mlexp search {group.name}: {ran}, {counts['complete']} complete, "
        f"{counts['pruned']} pruned, {counts['failed']} failed"
        + (f", {counts['killed']} killed" if counts["killed"] else "")
        + f" (study {parent.data.tags.get(T.STUDY, '?')}, {parent.data.tags.get(T.SAMPLER, '?')})"
    )
    return f"{head}; {best.describe()}; parent run {group.run_id}"


def searches_of(results: Sequence[RunSummary], settings: Settings) -> list[Group]:
    """The search parents the session's ``results`` (its trials) belong to."""
    found: dict[str, Group] = {}
    for result in results:
        refs = result.groups
        if refs is not None and refs.search_run_id and refs.search_run_id not in found:
            found[refs.search_run_id] = Group(
                refs.search_run_id, T.KIND_SEARCH, str(refs.search), BestSpec.parse(refs.best)
            )
    return list(found.values())


SEARCH = GroupKind(T.KIND_SEARCH, T.SEARCH, fill_search, searches_of)
