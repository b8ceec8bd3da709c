"""pytest-xdist: is this process a worker, and what did the controller hand it.

The controller passes values to its workers through ``workerinput``
(``pytest_configure_node``), as xdist documents; every other part of
pytest-mlexp asks here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest


def is_worker(session: pytest.Session) -> bool:
    """Whether this process is an xdist worker (xdist's own ``is_xdist_worker``)."""
    if not session.config.pluginmanager.hasplugin("xdist"):
        return False
    from xdist import is_xdist_worker

    return bool(is_xdist_worker(session))


def is_controller(config: pytest.Config) -> bool:
    """Whether this process ends the session: not an xdist worker (a serial run is one too).

    Known from pytest_configure on: xdist hands a worker its ``workerinput``
    before configuring it.
    """
    return worker_input(config) is None


def worker_input(config: pytest.Config) -> Mapping[str, Any] | None:
    """The controller's ``workerinput`` in a worker; ``None`` in the controller or without xdist."""
    return getattr(config, "workerinput", None)


class Enders:
    """The xdist workers of one session that have ended, with their runs' summaries.

    A file in the temp directory, named by the session and its controller's
    process, that each worker appends to at its end (under a lock of the
    machine). The worker that finds every worker there is the last: it gets
    everyone's summaries, and the file is removed. Workers of the same
    machine only, as xdist's are.
    """

    def __init__(self, session_id: str, controller_pid: int) -> None:
        import hashlib
        import tempfile
        from pathlib import Path

        digest = hashlib.sha1(f"{session_id}\0{controller_pid}".encode()).hexdigest()[:16]
        self.path = Path(tempfile.gettempdir()) / f"mlexp-ended-{digest}.jsonl"

    def add(self, worker: str, summaries: list[Any], workers: int) -> list[Any] | None:
        """Record that ``worker`` ended; every worker's summaries if it is the last, else None."""
        import json

        from .backend.locks import machine_lock

        with machine_lock("ended", str(self.path)):
            with self.path.open("a", encoding="utf-8") as file:
                file.write(json.dumps({"worker": worker, "summaries": summaries}) + "\n")
            lines = [json.loads(line) for line in self.path.read_text("utf-8").splitlines()]
            if len({line["worker"] for line in lines}) < workers:
                return None
            self.path.unlink()
        return [summary for line in lines for summary in line["summaries"]]

    def discard(self) -> None:
        """Remove what workers left (a worker died before the last ended)."""
        self.path.unlink(missing_ok=True)
