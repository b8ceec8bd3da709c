"""At session end: mark KILLED the RUNNING runs of this machine whose process died."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from ..backend import tags as T
from ..backend.search import search_runs, tag_equals
from .creation import host_name

if TYPE_CHECKING:
    from ..backend.client import Backend


def process_alive(pid: int) -> bool:
    """Whether ``pid`` is a live process on this machine (zombies count as dead)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


def sweep_dead_runs(backend: Backend, experiments: set[str]) -> list[str]:
    """Mark KILLED the RUNNING runs of this machine whose recorded process is gone.

    Only runs tagged with this host and a pid that no longer runs are
    touched: other people's live sessions on a shared server are safe.
    """
    experiment_ids = [backend.experiment_id(name) for name in sorted(experiments)]
    running = search_runs(
        backend.client,
        experiment_ids,
        f"attributes.status = 'RUNNING' and {tag_equals(T.HOST, host_name())}",
    )
    swept = []
    for run in list(running):
        pid = run.data.tags.get(T.PID, "")
        if pid.isdigit() and not process_alive(int(pid)):
            backend.client.set_tag(run.info.run_id, T.OUTCOME, "interrupted")
            backend.client.set_terminated(run.info.run_id, "KILLED")
            swept.append(run.info.run_id)
    return swept
