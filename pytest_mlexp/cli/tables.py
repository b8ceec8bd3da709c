"""Plain-text tables and values, as the ``mlexp`` command prints them."""

from __future__ import annotations

import datetime
from collections.abc import Sequence

from ..reports.stored_runs import StoredRun


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns aligned with two spaces; a header of empty strings is left out."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    ]
    if not any(header):
        lines = lines[1:]
    return "\n".join(lines)


def status(run: StoredRun) -> str:
    outcome = run.outcome
    return run.status + (f" ({outcome})" if outcome not in ("", "passed", "failed") else "")


def model_mark(run: StoredRun) -> str:
    """``model``, ``2 models``, ``model -> churn-clf v3 @candidate``, or ``-``."""
    count = len(run.models)
    shown = "" if not count else "model" if count == 1 else f"{count} models"
    if run.registered:
        shown = f"{shown or 'model'} -> {run.registered}"
    return shown or "-"


def started(run: StoredRun) -> str:
    if not run.start_time:
        return "-"
    return datetime.datetime.fromtimestamp(run.start_time / 1000).strftime("%Y-%m-%d %H:%M:%S")


def cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def text(value: str | None) -> str:
    return "-" if value is None else value


def number(value: float | None) -> str:
    return "-" if value is None else f"{value:.6g}"


def delta(a: float | None, b: float | None) -> str:
    if a is None or b is None:
        return ""
    change = b - a
    if change == 0:
        return "0"
    relative = f" ({change / abs(a):+.1%})" if a else ""
    return f"{change:+.6g}{relative}"


def filters(*parts: str) -> str:
    """MLflow search filters joined with ``and``; empty ones left out."""
    return " and ".join(p for p in parts if p.strip())
