"""The terminal's reuse section (``--mlexp-reuse``): what was reused, and why the rest executed."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..reuse.candidates import NEW
from .words import counted

if TYPE_CHECKING:
    from ..runs.summary import RunSummary

#: Most names listed on one line of the same reason.
_NAMES_SHOWN = 4


def write_reuse(terminalreporter: Any, results: Sequence[RunSummary]) -> None:
    """One count line, a count per grid, then one line per reason an item executed."""
    final = [r for r in results if not r.superseded]
    reused = [r for r in final if r.reused_from and r.outcome == "passed"]
    new = sum(1 for r in final if r.rerun_reason == NEW)
    executed = len(final) - len(reused)
    line = (
        f"mlexp reuse: {len(reused)} of {len(final)} runs reused from earlier sessions, "
        f"{executed} executed"
    )
    if new:
        line += f" ({new} with no earlier run)"
    terminalreporter.write_line(line, **({"green": True} if reused else {}))
    grids: dict[str, list[RunSummary]] = {}
    for result in final:
        if result.groups is not None and result.groups.grid:
            grids.setdefault(result.groups.grid, []).append(result)
    for grid, members in grids.items():
        count = sum(1 for c in members if c.reused_from and c.outcome == "passed")
        if not count:
            continue
        # A repeated grid's members are its cells' repeats (one a seed), not cells.
        cells = {c.groups.cell for c in members if c.groups is not None and c.groups.cell}
        if cells:
            what = f"repeats reused ({counted(len(cells), 'cell')})"
        else:
            what = "cells reused" if len(members) != 1 else "cell reused"
        terminalreporter.write_line(f"  {grid}: {count} of {len(members)} {what}")
    reasons: dict[str, list[str]] = {}
    for result in final:
        if result.rerun_reason and result.rerun_reason != NEW and not result.reused_from:
            reasons.setdefault(result.rerun_reason, []).append(result.name)
    for reason, names in sorted(reasons.items(), key=lambda pair: -len(pair[1])):
        shown = ", ".join(names[:_NAMES_SHOWN])
        if len(names) > _NAMES_SHOWN:
            shown += f" and {len(names) - _NAMES_SHOWN} more"
        terminalreporter.write_line(f"  {shown}: {reason}")
