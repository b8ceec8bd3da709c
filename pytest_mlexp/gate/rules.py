"""Metric gating rules: bounds, tolerances, and the comparison that judges a run.

Pure logic with no pytest state and no mlflow: the gate feeds it the
metrics of a run and of its baseline and shows the rows it returns.
Directions come from ``directions``, the vocabulary grids use too.

Spellings (the same in markers, ini lines and ``mlexp.yaml``):

- a **bound**: ``">= 0.9"``, ``"> 0.9"``, ``"<= 0.5"``, ``"< 0.5"``, several
  joined by ``and``: ``">= 0.2 and < 1"``;
- a **direction**: ``up`` (higher is better), ``down`` (lower is better) or
  ``ignore`` (never compared);
- a **tolerance**: how much worse than the baseline a metric may get:
  ``0.01`` (absolute), ``"2%"`` (relative to the baseline), ``"2 std"`` (times
  the standard deviation logged as ``<metric>.std`` by repeated runs), or
  several joined by ``or`` (``"0.01 or 2 std"``), the most lenient applying; as
  a mapping: ``{"abs": 0.01, "rel": 0.02, "std": 2}``.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..directions import IGNORE, UP, Direction, direction_of
from ..runs.summary import Row as Row
from ..settings.options import DEFAULT_TOLERANCE_TEXT
from ..settings.tolerances import ACCEPTED_TOLERANCES as ACCEPTED_TOLERANCES
from ..settings.tolerances import RuleError as RuleError
from ..settings.tolerances import Tolerance as Tolerance
from ..settings.tolerances import format_number as format_number
from ..settings.tolerances import parse_tolerance as parse_tolerance

#: Suffix of the metric holding the standard deviation of ``<metric>`` over repeats.
STD_SUFFIX = ".std"

ACCEPTED_BOUNDS = (
    "'>= 0.9', '> 0.9', '<= 0.5', '< 0.5', or several joined by 'and' ('>= 0.2 and < 1')"
)
_OPERATORS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
}
_BOUND_RE = re.compile(r"^\s*(>=|<=|>|<)\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$")


# -- bounds -------------------------------------------------------------------


@dataclass(frozen=True)
class Bound:
    """``current <op> value``, e.g. ``>= 0.9``."""

    op: str
    value: float

    def holds(self, current: float) -> bool:
        return _OPERATORS[self.op](current, self.value)

    def __str__(self) -> str:
        return f"{self.op} {format_number(self.value)}"


def parse_bounds(expression: Any) -> tuple[Bound, ...]:
    """``">= 0.2 and < 1"`` -> two bounds; ``RuleError`` for anything else."""
    if not isinstance(expression, str):
        raise RuleError(f"expected a string such as '>= 0.9', got {expression!r}")
    bounds = []
    for part in re.split(r"\band\b", expression):
        match = _BOUND_RE.match(part)
        if match is None:
            raise RuleError(f"bad expression {expression!r}")
        bounds.append(Bound(match.group(1), float(match.group(2))))
    return tuple(bounds)


# -- tolerances -----------------------------------------------------------------


#: Tolerance used when nothing else is configured.
DEFAULT_TOLERANCE = parse_tolerance(DEFAULT_TOLERANCE_TEXT)


# -- the rules one item is judged by ----------------------------------------------


@dataclass(frozen=True)
class Rules:
    """What decides one item's verdict; the marker's values override the project's."""

    bounds: Mapping[str, tuple[Bound, ...]] = field(default_factory=dict)
    tolerances: Mapping[str, Tolerance] = field(default_factory=dict)
    directions: Mapping[str, str] = field(default_factory=dict)
    default_tolerance: Tolerance = DEFAULT_TOLERANCE

    def direction(self, metric: str) -> Direction:
        return direction_of(metric, self.directions)

    def tolerance(self, metric: str) -> Tolerance:
        return self.tolerances.get(metric, self.default_tolerance)


# -- comparison ---------------------------------------------------------------------

OK = "ok"
IMPROVED = "improved"
REGRESSED = "REGRESSED"
MISSING = "MISSING"
FAILED = "FAILED"
NOT_GATED = "not gated"
NEW = "new"

#: Verdicts that fail the item.
FAILING = frozenset({REGRESSED, MISSING, FAILED})


def compare(
    current: Mapping[str, float],
    baseline: Mapping[str, float] | None,
    rules: Rules,
) -> list[Row]:
    """Judge ``current`` metrics against the bounds and, when given, the ``baseline`` metrics.

    Every metric of the baseline is compared (except ``*.std`` and those whose
    direction is ``ignore``): a metric missing now is ``MISSING``; one of unknown
    direction is reported as ``not gated``.
    """
    rows: list[Row] = []
    for metric, bounds in rules.bounds.items():
        value = current.get(metric)
        if value is None:
            rows.append(Row(metric, None, None, "expect " + _bounds_text(bounds), MISSING))
            continue
        good = all(bound.holds(value) for bound in bounds) and not math.isnan(value)
        verdict = OK if good else FAILED
        rows.append(Row(metric, None, value, "expect " + _bounds_text(bounds), verdict))
    if baseline is None:
        return rows
    for metric in sorted(baseline):
        if metric.endswith(STD_SUFFIX):
            continue
        direction = rules.direction(metric)
        if direction.direction == IGNORE:
            continue
        before = baseline[metric]
        value = current.get(metric)
        if value is None:
            rows.append(Row(metric, before, None, "logged", MISSING))
            continue
        if not direction.known:
            rows.append(Row(metric, before, value, "direction unknown", NOT_GATED))
            continue
        up = direction.direction == UP
        std = _largest(current.get(metric + STD_SUFFIX), baseline.get(metric + STD_SUFFIX))
        tolerance = rules.tolerance(metric)
        margin = tolerance.allowed(before, std)
        better = value - before if up else before - value
        limit = before - margin if up else before + margin
        allowed = f"{'>=' if up else '<='} {format_number(limit)} (tol {tolerance})"
        if math.isnan(value) or better < -margin:
            verdict = REGRESSED
        elif better > margin:
            verdict = IMPROVED
        else:
            verdict = OK
        guessed = str(direction.direction) if direction.guessed else ""
        rows.append(Row(metric, before, value, allowed, verdict, guessed))
    return rows


def _largest(*values: float | None) -> float | None:
    present = [v for v in values if v is not None and math.isfinite(v)]
    return max(present) if present else None


def _bounds_text(bounds: Iterable[Bound]) -> str:
    return " and ".join(str(bound) for bound in bounds)


# -- tables -------------------------------------------------------------------------

COLUMNS = ("metric", "baseline", "current", "change", "allowed", "verdict")


def _cells(row: Row) -> tuple[str, ...]:
    return (
        row.metric,
        format_number(row.baseline),
        format_number(row.current),
        row.change_text,
        row.allowed,
        row.verdict,
    )


def format_table(rows: Iterable[Row]) -> str:
    """A plain-text table, aligned for a terminal."""
    lines = [COLUMNS, *(_cells(row) for row in rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(COLUMNS))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )


def markdown_table(rows: Iterable[tuple[str, Row]]) -> str:
    """A GitHub-flavoured markdown table of ``(test id, row)`` pairs."""
    lines = [
        "| test | " + " | ".join(COLUMNS) + " |",
        "|---|" + "---|" * len(COLUMNS),
    ]
    for nodeid, row in rows:
        cells = list(_cells(row))
        if row.verdict in FAILING:
            cells[-1] = f"**{cells[-1]}**"
        escaped = [_md_escape(cell) for cell in (nodeid, *cells)]
        lines.append("| " + " | ".join(escaped) + " |")
    return "\n".join(lines) + "\n"


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("<", "&lt;")
