"""xdist attribution: did another worker run an experiment while this one's run was open?"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

import pytest

from ..workers import given


class Concurrency:
    """Tells whether another xdist worker ran a tracked item while this one ran.

    Each worker keeps a small marker file ``<worker> = "<active> <changes>"``
    in a directory shared by the test run; a run whose window saw another
    worker active, or its change counter move, cannot be sure who wrote a new
    file in a shared root.
    """

    def __init__(self, directory: Path, worker: str) -> None:
        self.directory = directory
        self.worker = worker
        self._changes = 0
        directory.mkdir(parents=True, exist_ok=True)

    def _write(self, active: bool) -> None:
        self._changes += 1
        marker = self.directory / self.worker
        temporary = marker.with_name(f".{self.worker}.tmp")
        try:
            temporary.write_text(f"{int(active)} {self._changes}")
        except FileNotFoundError:
            # A worker that finished its items removed the directory while it was empty.
            self.directory.mkdir(parents=True, exist_ok=True)
            temporary.write_text(f"{int(active)} {self._changes}")
        os.replace(temporary, marker)

    def _others(self) -> dict[str, tuple[bool, str]]:
        states: dict[str, tuple[bool, str]] = {}
        try:
            markers = list(self.directory.iterdir())
        except FileNotFoundError:
            return states
        for marker in markers:
            if marker.name.startswith(".") or marker.name == self.worker:
                continue
            try:
                active, _, changes = marker.read_text().partition(" ")
            except OSError:
                continue
            states[marker.name] = (active == "1", changes)
        return states

    def close(self) -> None:
        """Remove this worker's marker, and the directory once it is empty.

        Another worker may still be running: it makes the directory again.
        """
        with contextlib.suppress(OSError):
            (self.directory / self.worker).unlink()
        with contextlib.suppress(OSError):
            self.directory.rmdir()

    def begin(self) -> dict[str, tuple[bool, str]]:
        self._write(True)
        return self._others()

    def end(self, at_begin: dict[str, tuple[bool, str]]) -> bool:
        """Finish the window; True when another worker ran an item during it."""
        now = self._others()
        self._write(False)
        if any(active for active, _ in at_begin.values()):
            return True
        return any(
            active or at_begin.get(worker, (False, "0"))[1] != changes
            for worker, (active, changes) in now.items()
        )


def concurrency_for(config: pytest.Config) -> Concurrency | None:
    """Marker files shared by the workers of one xdist test run, when there are several."""
    handed = given(config)
    if handed is None or not handed.machine_shared:
        return None
    directory = Path(tempfile.gettempdir()) / f"mlexp-xdist-{handed.run_uid}"
    return Concurrency(directory, f"gw{handed.worker}")
