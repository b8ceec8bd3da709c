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

from ..backend.tags import SYSTEM_METRICS_PREFIX
from ..directions import IGNORE, UP, Direction, direction_of
from ..runs.summary import Row as Row
from ..settings.gate import BOUND as BOUND
from ..settings.gate import DEFAULT_CONFIDENCE as DEFAULT_CONFIDENCE
from ..settings.gate import MEAN as MEAN
from ..settings.options import DEFAULT_TOLERANCE_TEXT
from ..settings.tolerances import ACCEPTED_TOLERANCES as ACCEPTED_TOLERANCES
from ..settings.tolerances import RuleError as RuleError
from ..settings.tolerances import Tolerance as Tolerance
from ..settings.tolerances import format_number as format_number
from ..settings.tolerances import parse_tolerance as parse_tolerance
from .bounds import INCONCLUSIVE as INCONCLUSIVE
from .bounds import Interval, Sample
from .bounds import judge as judge_by_bound
from .sequential import Comparison, Design, judge_look

#: Suffix of the metric holding the standard deviation of ``<metric>`` over repeats.
STD_SUFFIX = ".std"
#: Suffix of the number of seeds behind a repeated cell's ``<metric>`` (in baseline files).
N_SUFFIX = ".n"

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
    #: How a repeated cell's means are judged: ``bound`` (confidence bound) or ``mean``.
    gate: str = BOUND
    #: The confidence of that bound.
    confidence: float = DEFAULT_CONFIDENCE
    #: ``judge=``: the metrics judged, named explicitly (``expect=`` bounds are judged too);
    #: ``None``: the default (``judges``).
    judge: frozenset[str] | None = None
    #: The run's metrics logged as a history and not returned (``runs.metric_values``).
    histories: frozenset[str] = frozenset()
    #: A repeated cell's seeds on demand: its first seeds, its budget and its batch
    #: (``repeats=(5, 20)``); 0: a fixed number of seeds, judged once.
    first_seeds: int = 0
    seed_budget: int = 0
    seed_step: int = 0

    @property
    def design(self) -> Design | None:
        """The sequential design of a cell with a budget judged by the bound, else None."""
        if self.gate != BOUND or not 0 < self.first_seeds < self.seed_budget:
            return None
        return Design(self.first_seeds, self.seed_budget, self.seed_step)

    def direction(self, metric: str) -> Direction:
        return direction_of(metric, self.directions)

    def judges(self, metric: str) -> bool:
        """Whether ``metric`` is judged, or only recorded.

        Named in ``judge=`` when that is given; else every metric but one
        logged as a history (several steps, not returned) that no ``expect=``,
        direction or tolerance names.
        """
        if metric in self.bounds:
            return True
        if metric.startswith(SYSTEM_METRICS_PREFIX):  # the machine's, not the experiment's
            return False
        if self.judge is not None:
            return metric in self.judge
        named = metric in self.directions or metric in self.tolerances
        return named or metric not in self.histories

    def tolerance(self, metric: str) -> Tolerance:
        return self.tolerances.get(metric, self.default_tolerance)


# -- comparison ---------------------------------------------------------------------

OK = "passed"
IMPROVED = "improved"
REGRESSED = "REGRESSED"
MISSING = "MISSING"
FAILED = "FAILED"
NOT_GATED = "not gated"
NEW = "new"

#: Verdicts that fail the item.
FAILING = frozenset({REGRESSED, MISSING, FAILED})


def with_histories(rules: Rules, histories: Iterable[str]) -> Rules:
    """``rules`` for a run whose ``histories`` (metrics logged at several steps) are known."""
    from dataclasses import replace

    return replace(rules, histories=frozenset(histories))


def judged(metrics: Mapping[str, float], rules: Rules) -> dict[str, float]:
    """The judged ones of ``metrics``, with their ``.std`` and ``.n`` (what a baseline keeps)."""
    return {key: value for key, value in metrics.items() if rules.judges(_base(key, metrics))}


def recorded(metrics: Iterable[str], rules: Rules) -> list[str]:
    """The metrics of ``metrics`` only recorded: charted and compared in reports, not judged."""
    names = list(metrics)
    return [
        key
        for key in names
        if not key.startswith(SYSTEM_METRICS_PREFIX) and not rules.judges(_base(key, names))
    ]


def _base(metric: str, metrics: Iterable[str]) -> str:
    """``loss`` for ``loss.std`` and ``loss.n`` when ``loss`` is among ``metrics``."""
    for suffix in (STD_SUFFIX, N_SUFFIX):
        if metric.endswith(suffix) and metric[: -len(suffix)] in metrics:
            return metric[: -len(suffix)]
    return metric


def compare(
    current: Mapping[str, float],
    baseline: Mapping[str, float] | None,
    rules: Rules,
) -> list[Row]:
    """Judge ``current`` metrics against the bounds and, when given, the ``baseline`` metrics.

    Every judged metric of the baseline (``Rules.judges``) is compared (except
    ``*.std`` and those whose direction is ``ignore``): a metric missing now is
    ``MISSING``; one of unknown direction is reported as ``not gated``.
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
        if metric.endswith(STD_SUFFIX) or _is_count(metric, baseline):
            continue
        if metric.startswith(SYSTEM_METRICS_PREFIX):  # the machine's, not the experiment's
            continue
        if not rules.judges(metric):  # a training curve: recorded, not judged
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


@dataclass(frozen=True)
class CellRow(Row):
    """A row of a repeated cell: how it was judged, and the interval when by the bound."""

    #: ``bound``, or ``mean`` (asked for, or one side has no spread: ``why``).
    rule: str = BOUND
    interval: Interval | None = None
    #: Why the means were compared instead of the bound, e.g. ``baseline without spread``.
    why: str = ""
    n_current: int | None = None
    n_baseline: int | None = None

    @property
    def interval_text(self) -> str:
        if self.interval is not None:
            return str(self.interval)
        if self.n_current is None and self.n_baseline is None:
            return "-"
        text = f"mean rule, n {_count(self.n_current)}/{_count(self.n_baseline)}"
        return text + (f" ({self.why})" if self.why else "")


def compare_cell(
    current: Mapping[str, float], baseline: Mapping[str, float] | None, rules: Rules
) -> list[Row]:
    """Judge a repeated cell's means against its baseline's, by the bound where both have seeds.

    ``current`` and ``baseline`` hold each metric's mean, its std as
    ``<metric>.std`` and its number of seeds as ``<metric>.n``. A metric whose
    two sides have at least 2 seeds and a spread each is judged by the
    confidence bound of the difference (``bounds.judge``), at ``rules.confidence``
    and with the tolerance converted to the metric's units as ``compare`` does;
    else, or with ``rules.gate == "mean"``, by its means (``compare``). A cell
    with a seed budget (``Rules.design``) is judged by the sequential rule
    (``gate.sequential``): at the look's level, Holm's over its metrics.
    """
    rows = compare(current, baseline, rules)
    if baseline is None:
        return rows
    judged: list[Row] = []
    bounded: list[tuple[int, Row, Comparison, str]] = []
    for row in rows:
        if row.baseline is None or row.verdict not in (OK, IMPROVED, REGRESSED):
            judged.append(row)
            continue
        prepared = _cell_row(row, current, baseline, rules)
        if isinstance(prepared, CellRow):
            judged.append(prepared)
        else:
            bounded.append((len(judged), row, *prepared))
            judged.append(row)
    design = rules.design
    if design is not None:
        intervals = judge_look([c for _, _, c, _ in bounded], design, rules.confidence)
    else:
        intervals = [
            judge_by_bound(c.current, c.baseline, c.tolerance, up=c.up, confidence=rules.confidence)
            for _, _, c, _ in bounded
        ]
    for (index, row, comparison, allowed), interval in zip(bounded, intervals, strict=True):
        judged[index] = CellRow(
            row.metric,
            row.baseline,
            row.current,
            allowed,
            interval.verdict,
            row.guessed,
            rule=BOUND,
            interval=interval,
            n_current=comparison.current.n or None,
            n_baseline=comparison.baseline.n or None,
        )
    return judged


def _cell_row(
    row: Row, current: Mapping[str, float], baseline: Mapping[str, float], rules: Rules
) -> CellRow | tuple[Comparison, str]:
    """The row judged by the means, or what the bound needs to judge it (and its allowed text)."""
    metric = row.metric
    now = sample_of(current, metric)
    before = sample_of(baseline, metric)
    fields = (row.metric, row.baseline, row.current, row.allowed, row.verdict, row.guessed)
    n_current, n_baseline = now.n or None, before.n or None
    why = ""
    if rules.gate == MEAN:
        return CellRow(*fields, rule=MEAN, n_current=n_current, n_baseline=n_baseline)
    if not before.has_spread:
        why = "baseline without seeds" if not before.n else "baseline has 1 seed"
    elif not now.has_spread:
        why = "1 seed"
    if why:
        return CellRow(*fields, rule=MEAN, why=why, n_current=n_current, n_baseline=n_baseline)
    up = rules.direction(metric).direction == UP
    tolerance = rules.tolerance(metric)
    assert row.baseline is not None
    tau = tolerance.allowed(row.baseline, _largest(now.std, before.std))
    allowed = (
        f"change >= {format_number(-tau)} (tol {tolerance})"
        if up
        else f"change <= +{format_number(tau)} (tol {tolerance})"
    )
    return Comparison(now, before, tau, up), allowed


def sample_of(metrics: Mapping[str, float], metric: str) -> Sample:
    """One side of a cell's comparison: ``metric``'s mean, ``.std`` and ``.n`` (n 0 if unknown)."""
    n = metrics.get(metric + N_SUFFIX)
    std = metrics.get(metric + STD_SUFFIX)
    if n is None or std is None or not math.isfinite(n):
        return Sample(metrics[metric], math.nan, 0)
    return Sample(metrics[metric], std, int(n))


def _count(n: int | None) -> str:
    return "?" if n is None else str(n)


def _is_count(metric: str, metrics: Mapping[str, float]) -> bool:
    """``<metric>.n``, the seeds behind ``<metric>``, is no metric to compare."""
    return metric.endswith(N_SUFFIX) and metric[: -len(N_SUFFIX)] in metrics


def _largest(*values: float | None) -> float | None:
    present = [v for v in values if v is not None and math.isfinite(v)]
    return max(present) if present else None


def _bounds_text(bounds: Iterable[Bound]) -> str:
    return " and ".join(str(bound) for bound in bounds)


# -- tables -------------------------------------------------------------------------

COLUMNS = ("metric", "baseline", "current", "change", "allowed", "verdict")
#: A repeated cell's tables also show the interval of the difference and n on each side.
INTERVAL_COLUMN = "interval (n now/before)"
CELL_COLUMNS = ("metric", "baseline", "current", "change", "allowed", INTERVAL_COLUMN, "verdict")


def _cells(row: Row, with_interval: bool = False) -> tuple[str, ...]:
    cells = [
        row.metric,
        format_number(row.baseline),
        format_number(row.current),
        row.change_text,
        row.allowed,
    ]
    if with_interval:
        cells.append(row.interval_text if isinstance(row, CellRow) else "-")
    cells.append(row.verdict)
    return tuple(cells)


def has_intervals(rows: Iterable[Row]) -> bool:
    """Whether some row is a repeated cell's, with an interval or seed counts to show."""
    return any(isinstance(row, CellRow) and row.interval_text != "-" for row in rows)


def format_table(rows: Iterable[Row]) -> str:
    """A plain-text table, aligned for a terminal."""
    rows = list(rows)
    wide = has_intervals(rows)
    columns = CELL_COLUMNS if wide else COLUMNS
    lines = [columns, *(_cells(row, wide) for row in rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(columns))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )


def markdown_table(rows: Iterable[tuple[str, Row]], links: Mapping[str, str] | None = None) -> str:
    """A GitHub-flavoured markdown table of ``(test id, row)`` pairs, failures first.

    Text is shown as is, in code spans where it holds ``<`` or ``>``; ``links``
    (test id -> URL) link each test to its run.
    """
    pairs = sorted(rows, key=lambda pair: _rank(pair[1]))
    links = links or {}
    wide = has_intervals(row for _, row in pairs)
    columns = CELL_COLUMNS if wide else COLUMNS
    lines = [
        "| test | " + " | ".join(columns) + " |",
        "|---|" + "---|" * len(columns),
    ]
    for nodeid, row in pairs:
        test = f"`{_md_cell(nodeid)}`"
        if nodeid in links:
            test = f"[{test}]({links[nodeid]})"
        cells = [_md_code(cell) for cell in _cells(row, wide)]
        if row.verdict in FAILING:
            cells[-1] = f"**{cells[-1]}**"
        lines.append("| " + " | ".join([test, *cells]) + " |")
    return "\n".join(lines) + "\n"


def _rank(row: Row) -> int:
    """Failures first, then inconclusive rows, improvements, the rest."""
    if row.verdict in FAILING:
        return 0
    return {INCONCLUSIVE: 1, IMPROVED: 2}.get(row.verdict, 3)


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|")


def _md_code(text: str) -> str:
    """Text with ``<``/``>`` in a code span, so markdown shows it as is."""
    if "<" in text or ">" in text:
        return f"`{_md_cell(text)}`"
    return _md_cell(text)
