"""Judging one thing against its baseline: an item's run, a repeated cell, a grid or a search.

The item's run is judged when its function returned (``gate.plugin``), a group
run at session end (``gate.group_runs``); both by ``judge``: the rows of
``rules.compare`` (``rules.compare_cell`` for a cell's means), the verdict,
and why it fails besides a regression (no baseline under
``--mlexp-require-baseline``, inconclusive under ``--mlexp-gate-strict``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from . import rules
from .rules import FAILING
from .verdicts import INCONCLUSIVE, NO_BASELINE, how_to_record, inconclusive_line, verdict_of

if TYPE_CHECKING:
    from ..settings.gate import GateSettings
    from .baselines import Baseline
    from .rules import Row, Rules


@dataclass(frozen=True)
class Judged:
    """The gate's decision on one thing."""

    rows: list[Row]
    verdict: str
    #: The rows that regressed or broke a bound.
    failing: list[Row]
    #: Why it fails although nothing regressed, or None.
    problem: str | None = None

    @property
    def passed(self) -> bool:
        return not self.failing and self.problem is None


def judge(
    label: str,
    metrics: Mapping[str, float],
    baseline: Baseline | None,
    item_rules: Rules,
    settings: GateSettings,
    *,
    compares: bool,
    means: bool = False,
    problem: str | None = None,
) -> Judged:
    """Judge ``metrics`` (a repeated cell's ``means``) of ``label`` against ``baseline``.

    ``compares``: whether a baseline is asked for at all (not for a repeat,
    whose cell is judged instead); ``problem``: a reason to fail found before.
    """
    compare = rules.compare_cell if means else rules.compare
    rows = compare(dict(metrics), baseline.metrics if baseline else None, item_rules)
    verdict = verdict_of(rows, compares, baseline)
    failing = [row for row in rows if row.verdict in FAILING]
    if verdict == NO_BASELINE and settings.require and problem is None:
        problem = (
            f"no baseline for {label} in {settings.source} "
            f"(--mlexp-require-baseline). Record one first: {how_to_record(settings)}"
        )
    if verdict == INCONCLUSIVE and settings.strict and problem is None:
        problem = (
            f"{label} is inconclusive (--mlexp-gate-strict): its seeds cannot tell a "
            f"regression from noise: {inconclusive_line(rows)}"
        )
    return Judged(rows, verdict, failing, problem)
