"""The rules one item is judged by: the project's settings, then its markers, closest winning."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

import pytest

from ..grids.repeats import is_repeat, repeat_plan
from ..settings.gate import (
    BEST,
    GateSettings,
    confidence_level,
    direction,
    gate_rule,
    metric_names,
    tolerance,
)
from . import rules
from .rules import Bound, RuleError, Rules


def item_rules(item: pytest.Item, settings: GateSettings) -> Rules:
    """The item's rules, or ``UsageError`` naming the item and the bad marker argument."""
    where = f"@pytest.mark.mlexp on {item.nodeid}"
    bounds: dict[str, tuple[Bound, ...]] = {}
    tolerances = dict(settings.tolerances)
    directions = dict(settings.directions)
    default = settings.default_tolerance or rules.DEFAULT_TOLERANCE
    gate, confidence = settings.rule, settings.confidence
    judge = settings.judge
    for marker in reversed(list(item.iter_markers("mlexp"))):
        if marker.kwargs.get("judge") is not None:
            judge = metric_names(marker.kwargs["judge"], f"{where}: judge")
        if marker.kwargs.get("gate") is not None:
            gate = gate_rule(marker.kwargs["gate"], f"{where}: gate", marker=True)
        if marker.kwargs.get("confidence") is not None:
            confidence = confidence_level(marker.kwargs["confidence"], f"{where}: confidence")
        expect = marker.kwargs.get("expect")
        if expect is not None:
            if not isinstance(expect, Mapping):
                raise pytest.UsageError(
                    f"{where}: expect must be a dict of metric -> expression such as "
                    f"expect={{'accuracy': '>= 0.9'}}, got {expect!r}"
                )
            for metric, expression in expect.items():
                try:
                    bounds[str(metric)] = rules.parse_bounds(expression)
                except RuleError as exc:
                    raise pytest.UsageError(
                        f"{where}: expect[{metric!r}]: {exc}; accepted forms: "
                        f"{rules.ACCEPTED_BOUNDS}"
                    ) from None
        marker_tolerance = marker.kwargs.get("tolerance")
        if marker_tolerance is not None:
            per_metric = isinstance(marker_tolerance, Mapping) and not set(marker_tolerance) <= {
                "abs",
                "rel",
                "std",
            }
            if not per_metric:
                default = tolerance(marker_tolerance, f"{where}: tolerance")
            else:
                for metric, value in marker_tolerance.items():
                    parsed = tolerance(value, f"{where}: tolerance[{metric!r}]")
                    if metric == "*":
                        default = parsed
                    else:
                        tolerances[str(metric)] = parsed
        marker_direction = marker.kwargs.get("direction")
        if marker_direction is not None:
            if not isinstance(marker_direction, Mapping):
                raise pytest.UsageError(
                    f"{where}: direction must be a dict of metric -> 'up' | 'down' | 'ignore' "
                    f"such as direction={{'throughput': 'up'}}, got {marker_direction!r}"
                )
            for metric, value in marker_direction.items():
                directions[str(metric)] = direction(value, f"{where}: direction[{metric!r}]")
    if gate == BEST and (getattr(item, "callspec", None) is None or is_repeat(item)):
        raise pytest.UsageError(
            f"{where}: gate='best' gates a grid by its best cell: it needs a parametrized "
            "experiment without repeats (repeated cells are judged by gate='bound' or 'mean')"
        )
    plan = repeat_plan(item) if is_repeat(item) else None
    first, budget = plan if plan is not None else (0, 0)
    return Rules(
        bounds=MappingProxyType(bounds),
        tolerances=MappingProxyType(tolerances),
        directions=MappingProxyType(directions),
        default_tolerance=default,
        gate=gate,
        confidence=confidence,
        judge=judge,
        first_seeds=first,
        seed_budget=budget,
    )


def project_rules(settings: GateSettings) -> Rules:
    """The rules of an item without markers."""
    return Rules(
        tolerances=settings.tolerances,
        directions=settings.directions,
        default_tolerance=settings.default_tolerance or rules.DEFAULT_TOLERANCE,
        gate=settings.rule,
        confidence=settings.confidence,
        judge=settings.judge,
    )


def rules_to_json(rules: Rules, *, bounds: bool = False) -> dict[str, object]:
    """The rules a cell's mean is judged by, for its summary (bounds stay with each repeat).

    With ``bounds``, the ``expect=`` bounds too: a search or a ``gate='best'`` grid
    is judged by them as a whole.
    """
    from dataclasses import asdict

    data: dict[str, object] = {
        "tolerances": {k: asdict(v) for k, v in rules.tolerances.items()},
        "directions": dict(rules.directions),
        "default": asdict(rules.default_tolerance),
        "gate": rules.gate,
        "confidence": rules.confidence,
        "judge": sorted(rules.judge) if rules.judge is not None else None,
        "histories": sorted(rules.histories),
        "seeds": [rules.first_seeds, rules.seed_budget, rules.seed_step],
    }
    if bounds:
        data["bounds"] = {m: [asdict(b) for b in values] for m, values in rules.bounds.items()}
    return data


def rules_from_json(data: Mapping[str, object]) -> Rules:
    tolerances = data.get("tolerances", {})
    directions = data.get("directions", {})
    default = data["default"]
    judge, histories = data.get("judge"), data.get("histories")
    seeds = data.get("seeds")
    first, budget, step = (
        (int(n) for n in seeds) if isinstance(seeds, list) and len(seeds) == 3 else (0, 0, 0)
    )
    assert isinstance(tolerances, Mapping)
    assert isinstance(directions, Mapping)
    assert isinstance(default, Mapping)
    return Rules(
        tolerances=MappingProxyType({str(k): rules.Tolerance(**v) for k, v in tolerances.items()}),
        directions=MappingProxyType({str(k): str(v) for k, v in directions.items()}),
        default_tolerance=rules.Tolerance(**default),
        gate=str(data.get("gate", rules.BOUND)),
        confidence=float(str(data.get("confidence", rules.DEFAULT_CONFIDENCE))),
        judge=frozenset(map(str, judge)) if isinstance(judge, list) else None,
        histories=frozenset(map(str, histories)) if isinstance(histories, list) else frozenset(),
        first_seeds=first,
        seed_budget=budget,
        seed_step=step,
    )
