"""What runs used, totalled per experiment function, as the terminal and the report say it.

A grid's cells, a repeated cell's seeds and a search's trials share their
function's line, attempts superseded by a rerun included (they ran too).
A reused run (``--mlexp-reuse``) is counted apart: it executed nothing, and
what its results cost stays on its source run, so it adds nothing here.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

from ..runs.usage import Usage
from .words import counted


@dataclass
class UsageTotal:
    """The runs of one experiment function (or of them all) and what they used."""

    runs: int = 0
    used: Usage = field(default_factory=Usage)
    #: Runs that copied an earlier run's results (``--mlexp-reuse``): they cost nothing.
    reused: int = 0
    #: Runs that recorded no usage and were not reused (their process was lost, or older runs).
    unmeasured: int = 0

    def add(self, usage: Usage | None, reused: bool) -> None:
        self.runs += 1
        if usage is not None:
            self.used += usage
        elif reused:
            self.reused += 1
        else:
            self.unmeasured += 1


def per_function(runs: Iterable[tuple[str, Usage | None, bool]]) -> dict[str, UsageTotal]:
    """``(function, usage, reused)`` per run -> the functions' totals, in first-seen order."""
    totals: dict[str, UsageTotal] = {}
    for function, usage, reused in runs:
        totals.setdefault(function, UsageTotal()).add(usage, reused)
    return totals


def overall(totals: Iterable[UsageTotal]) -> UsageTotal:
    total = UsageTotal()
    for part in totals:
        total.runs += part.runs
        total.used += part.used
        total.reused += part.reused
        total.unmeasured += part.unmeasured
    return total


def usage_text(total: UsageTotal, *, session: bool = True) -> str:
    """``3 runs: 1.24 s wall, 0.95 s CPU, no GPU``, and what was reused or not measured.

    ``session``: the runs are this session's, so reused runs cost nothing *this session*.
    """
    executed = total.runs - total.reused - total.unmeasured
    text = counted(total.runs, "run")
    if executed:
        used = total.used
        gpu = f"{significant(used.gpu_hours)} GPU-hours" if used.gpu_hours > 0 else "no GPU"
        spent = f"{duration(used.wall_seconds)} wall, {duration(used.cpu_seconds)} CPU, {gpu}"
        text += f": {spent}" if executed == total.runs else f", {executed} executed: {spent}"
    if total.reused:
        when = " this session" if session else ""
        text += (
            f"; {total.reused} reused, which cost nothing{when} "
            "(what they used is on the runs they copy)"
        )
    if total.unmeasured:
        text += f"; {total.unmeasured} not measured"
    return text


def significant(value: float, digits: int = 3) -> str:
    """``value`` to ``digits`` significant digits, never in e-notation: ``0.0000512``."""
    if value <= 0 or not math.isfinite(value):
        return f"{value:g}"
    decimals = max(0, digits - 1 - math.floor(math.log10(value)))
    return f"{value:.{decimals}f}"


def duration(seconds: float) -> str:
    """``0.42 s``, ``12.5 s``, ``3.2 min``, ``1.75 h``."""
    if seconds < 10:
        return f"{seconds:.2f} s"
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.2f} h"
