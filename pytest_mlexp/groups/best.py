"""The best member of a group run: the passed run with the best value of one metric."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..directions import BestSpec, Direction, max_or_min
from ..runs.metric_values import DEFAULT_BEST_SOURCES
from ..runs.summary import RunSummary


@dataclass(frozen=True)
class Best:
    """The outcome of ranking cells by ``metric``; ``run`` is None when none could be ranked."""

    metric: str | None
    direction: Direction | None = None
    #: The winning MLflow run, with its metrics and params.
    run: Any = None
    #: The params that vary across the group's members (its grid axes, its search space):
    #: the only ones ``describe`` names; fixed values are in the run.
    axes: frozenset[str] | None = None
    #: Where ``metric`` was chosen: ``returned``, ``best= marker``, ``params file``...
    source: str = ""
    #: How many members were ranked, and how many of them passed (FINISHED).
    members: int = 0
    passed: int = 0

    @property
    def value(self) -> float:
        return float(self.run.data.metrics[self.metric])

    def describe(self, skip_param: str = "") -> str:
        """``best r2=0.4799 (max, guessed) at experiment_ridge[0.1] [alpha=0.1]``, or why not."""
        if self.metric is None:
            return "no comparable metric: no member logged a metric"
        assert self.direction is not None
        if not self.direction.known:
            return (
                f"no best cell: the direction of {self.metric!r} is unknown "
                f"(name it, e.g. best='{self.metric}:max' or '{self.metric}:min')"
            )
        if self.run is None:
            if not self.passed:
                # Every member failed, regressed or was killed: none is ranked.
                return (
                    f"no best {self.metric}: none of its {self.members} runs passed "
                    "(a failed or regressed run is never the best)"
                )
            return f"no best {self.metric}: no passed run logged {self.metric!r}"
        how = max_or_min(str(self.direction.direction))
        if self.direction.guessed:
            how += ", guessed"
        if self.source:
            how += f", {self.source}"
        params = {
            k: v
            for k, v in self.run.data.params.items()
            if k != skip_param and (self.axes is None or k in self.axes)
        }
        shown = ", ".join(f"{k}={v}" for k, v in params.items())
        return f"best {self.metric}={self.value:.4g} ({how}) at {self.run.info.run_name}" + (
            f" [{shown}]" if shown and len(shown) < 80 else ""
        )


def pick_best(
    runs: Sequence[Any],
    spec: BestSpec,
    directions: Mapping[str, str],
    first_metric: str | None = None,
) -> Best:
    """The best of the FINISHED ``runs`` by ``spec``'s metric (else ``first_metric``)."""
    metric = spec.metric or first_metric
    source = spec.source if spec.metric else ""
    if metric is None:
        return Best(None)
    direction = spec.resolve(metric, directions)
    if not direction.known:
        return Best(metric, direction, source=source)
    scored = [
        run
        for run in runs
        if run.info.status == "FINISHED"
        and isinstance(run.data.metrics.get(metric), int | float)
        and not math.isnan(run.data.metrics[metric])
    ]
    if not scored:
        passed = sum(1 for run in runs if run.info.status == "FINISHED")
        return Best(metric, direction, source=source, members=len(runs), passed=passed)
    sign = 1.0 if direction.direction == "up" else -1.0
    best = max(scored, key=lambda r: sign * float(r.data.metrics[metric]))
    return Best(metric, direction, best, varying(runs), source)


def group_best(results: Iterable[RunSummary], grid_run_id: str) -> BestSpec:
    """The metric ranking a grid's cells, from its members' summaries, with its source.

    A metric named (``best=``, the params file, ``best_metric``) wins; else
    the members' defaults (``runs.metric_values.default_best``) in their order:
    the first returned metric, the first named in ``expect=``, the first logged
    once, the first logged; members taken in collection order.
    """
    members = sorted(
        (r for r in results if r.groups is not None and r.groups.grid_run_id == grid_run_id),
        key=lambda r: r.index,
    )
    choices = [r.groups for r in members if r.groups is not None and r.groups.best]
    if not choices:
        return BestSpec(None)
    ranks = list(DEFAULT_BEST_SOURCES)
    chosen = min(
        choices, key=lambda g: ranks.index(g.best_source) if g.best_source in ranks else -1
    )
    return BestSpec.parse(chosen.best, chosen.best_source)


def varying(runs: Sequence[Any]) -> frozenset[str]:
    """The params whose value differs between ``runs``: a grid's axes, a search's space."""
    values: dict[str, set[str | None]] = {}
    keys = {key for run in runs for key in run.data.params}
    for key in keys:
        values[key] = {run.data.params.get(key) for run in runs}
    return frozenset(key for key, seen in values.items() if len(seen) > 1)
