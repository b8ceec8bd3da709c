"""The best member of a group run: the passed run with the best value of one metric."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..directions import BestSpec, Direction, max_or_min


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

    @property
    def value(self) -> float:
        return float(self.run.data.metrics[self.metric])

    def describe(self, skip_param: str = "") -> str:
        """``best r2=0.4799 (max, guessed) at experiment_ridge[0.1] [alpha=0.1]``, or why not."""
        if self.metric is None:
            return "no comparable metric"
        assert self.direction is not None
        if not self.direction.known:
            return (
                f"no best cell: the direction of {self.metric!r} is unknown "
                f"(name it, e.g. best='{self.metric}:max' or '{self.metric}:min')"
            )
        if self.run is None:
            return "no comparable metric"
        how = max_or_min(str(self.direction.direction))
        if self.direction.guessed:
            how += ", guessed"
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
    if metric is None:
        return Best(None)
    direction = spec.resolve(metric, directions)
    if not direction.known:
        return Best(metric, direction)
    scored = [
        run
        for run in runs
        if run.info.status == "FINISHED"
        and isinstance(run.data.metrics.get(metric), int | float)
        and not math.isnan(run.data.metrics[metric])
    ]
    if not scored:
        return Best(metric, direction)
    sign = 1.0 if direction.direction == "up" else -1.0
    best = max(scored, key=lambda r: sign * float(r.data.metrics[metric]))
    return Best(metric, direction, best, varying(runs))


def varying(runs: Sequence[Any]) -> frozenset[str]:
    """The params whose value differs between ``runs``: a grid's axes, a search's space."""
    values: dict[str, set[str | None]] = {}
    keys = {key for run in runs for key in run.data.params}
    for key in keys:
        values[key] = {run.data.params.get(key) for run in runs}
    return frozenset(key for key, seen in values.items() if len(seen) > 1)
