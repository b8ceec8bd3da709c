"""What tells group runs apart in the MLflow UI: names, tags and descriptions.

Every session adds its own grid parents. Without more, five sessions leave
five runs named ``experiment_ridge``; so a parent's name carries the session's
stamp (``experiment_ridge · 11-28 00:14 · a1b2c3d``: when it started, and the
git commit), it carries the user, git and source tags its cells carry, and
its description (``mlflow.note.content``, shown on its page) sums up the grid.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..backend import tags as T

if TYPE_CHECKING:
    from .best import Best

#: The default session id: ``20261128-001412-ce68dfe2`` (time and a random suffix).
_SESSION_TIME = re.compile(r"^\d{4}(\d{2})(\d{2})-(\d{2})(\d{2})\d{2}-[0-9a-f]+$")
#: Joins a group run's name and its session's stamp.
SEPARATOR = " · "
#: Rows of the best cells' table in a grid's description.
DESCRIBED_CELLS = 10
#: Longest description kept (MLflow's limit on a tag value is larger).
MAX_NOTE = 5000


def session_stamp(session_id: str) -> str:
    """``11-28 00:14`` from a default session id; a session id of the user's own as it is."""
    found = _SESSION_TIME.match(session_id)
    if found is None:
        return session_id
    month, day, hour, minute = found.groups()
    return f"{month}-{day} {hour}:{minute}"


def stamped_name(name: str, session_id: str, commit: str | None = None) -> str:
    """``experiment_ridge · 11-28 00:14 · a1b2c3d``: the run, its session, its commit."""
    parts = [name, session_stamp(session_id)]
    if commit:
        parts.append(commit[:7])
    return SEPARATOR.join(parts)


def lineage_tags(rootdir: Path, lineage: frozenset[str]) -> dict[str, str]:
    """The user and, when git lineage is on, the git tags, as the cells' runs carry them."""
    from ..runs.item_runs import current_user

    tags = {T.USER: current_user()}
    if "git" in lineage:
        from ..lineage.git import git_state

        state = git_state(rootdir.resolve())
        if state is not None:
            tags.update(state.tags())
    return tags


def describe_grid(grid: str, cells: Sequence[Any], best: Best) -> str:
    """A grid parent's description (markdown): its size, outcomes, and best cells.

    ``cells`` are the MLflow runs of its cells, ``best`` what ``pick_best`` chose.
    """
    from .repeats import SEED_PARAM

    statuses = [cell.info.status for cell in cells]
    passed, failed = statuses.count("FINISHED"), statuses.count("FAILED")
    killed = len(cells) - passed - failed
    outcome = f"{len(cells)} cells: {passed} passed, {failed} failed" + (
        f", {killed} killed" if killed else ""
    )
    best_text = best.describe(SEED_PARAM)
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
        params = sorted({k for c in ranked for k in c.data.params if k != SEED_PARAM})
        lines += [
            "",
            f"Best {len(ranked)} cells by {metric}:",
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
    note = "\n".join(lines)
    return note if len(note) <= MAX_NOTE else note[: MAX_NOTE - 1] + "…"


def _cell_text(value: str) -> str:
    """A value fit for a markdown table cell: one line, no pipes, not too long."""
    text = " ".join(str(value).split()).replace("|", "\\|")
    return text if len(text) <= 40 else text[:39] + "…"
