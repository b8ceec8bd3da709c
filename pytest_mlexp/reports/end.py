"""What the controller's session-end work did (``pipeline.finish``), for the terminal summary."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..gate.session_end import GateOutcome
    from ..models.registry import Registration
    from .html import Report


@dataclass
class SessionEnd:
    """What the session's end did, for the terminal summary."""

    #: One line per grid parent completed (or why they could not be).
    grid_lines: list[str] = field(default_factory=list)
    #: Runs of dead processes marked KILLED.
    swept: list[str] = field(default_factory=list)
    gate: GateOutcome | None = None
    html: Report | None = None
    html_path: Path | None = None
    html_error: str | None = None
    #: Experiment name -> its runs table in the MLflow UI (``reports.ui_view``).
    runs_links: dict[str, str] = field(default_factory=dict)
    #: One line per function registering its best cell's model (or why it did not).
    registrations: list[Registration] = field(default_factory=list)
    #: What ``--mlexp-keep-models`` removed (or why it could not), one line.
    kept: str | None = None
