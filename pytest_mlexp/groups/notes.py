"""A group run's description (``mlflow.note.content``, shown on its page in the UI), in markdown."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..backend import tags as T
from .best import Best

#: Rows of the best cells' table in a grid's description.
DESCRIBED_CELLS = 10
#: Longest description kept (MLflow's limit on a tag value is larger).
MAX_NOTE = 5000


def describe_grid(grid: str, cells: Sequence[Any], best: Best, skip_param: str = "") -> str:
    """A grid parent's description: its size, outcomes, and best cells.

    ``cells`` are the MLflow runs of its cells, ``best`` what ``pick_best``
    chose; ``skip_param`` (the repeats' seed) is left out of the table.
    """
    statuses = [cell.info.status for cell in cells]
    passed, failed = statuses.count("FINISHED"), statuses.count("FAILED")
    killed = len(cells) - passed - failed
    outcome = (
        f"{len(cells)} {'cell' if len(cells) == 1 else 'cells'}: {passed} passed, {failed} failed"
        + (f", {killed} killed" if killed else "")
    )
    best_text = best.describe(skip_param)
    sessions = sorted({c.data.tags.get(T.SESSION_ID, "") for c in cells} - {""})
    lines = [
        f"Grid `{grid}`" + (f", pytest session `{', '.join(sessions)}`." if sessions else "."),
        "",
        f"**{outcome}.**",
        "",
        best_text[:1].upper() + best_text[1:] + ".",
    ]
    if best.run is not None and best.metric is not None:
        metric = best.metric
        ranked = sorted(
            (c for c in cells if c.info.status == "FINISHED" and metric in c.data.metrics),
            key=lambda c: float(c.data.metrics[metric]),
            reverse=best.direction is not None and best.direction.direction == "up",
        )[:DESCRIBED_CELLS]
        params = sorted({k for c in ranked for k in c.data.params if k != skip_param})
        lines += [
            "",
            f"Best {len(ranked)} {'cell' if len(ranked) == 1 else 'cells'} by {metric}:",
            "",
            "| cell | " + " | ".join([*params, metric]) + " |",
            "|" + "---|" * (len(params) + 2),
        ]
        for cell in ranked:
            row = [
                _cell_text(cell.info.run_name or ""),
                *(_cell_text(cell.data.params.get(k, "")) for k in params),
                f"{float(cell.data.metrics[metric]):.4g}",
            ]
            lines.append("| " + " | ".join(row) + " |")
    return _bounded("\n".join(lines))


def describe_search(
    function: str, parent_tags: Mapping[str, str], counts: Mapping[str, int], best: Best
) -> str:
    """A search parent's description: its study, the trials' outcomes, its best trial."""
    total = sum(counts.values())
    outcome = (
        f"{total} trials: {counts['complete']} complete, {counts['pruned']} pruned, "
        f"{counts['failed']} failed" + (f", {counts['killed']} killed" if counts["killed"] else "")
    )
    best_text = best.describe()
    lines = [
        f"Search `{function}`, Optuna study `{parent_tags.get(T.STUDY, '?')}` "
        f"({parent_tags.get(T.SAMPLER, '?')}, {parent_tags.get(T.SEARCH_STORAGE, '?')}).",
        "",
        f"**{outcome}.**",
        "",
        best_text[:1].upper() + best_text[1:] + ".",
    ]
    return "\n".join(lines)[:MAX_NOTE]


def _bounded(note: str) -> str:
    return note if len(note) <= MAX_NOTE else note[: MAX_NOTE - 1] + "…"


def _cell_text(value: str) -> str:
    """A value fit for a markdown table cell: one line, no pipes, not too long."""
    text = " ".join(str(value).split()).replace("|", "\\|")
    return text if len(text) <= 40 else text[:39] + "…"
