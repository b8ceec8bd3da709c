"""A worker's mailbox on the shared file system: numbered calls in, numbered results out.

The controller writes ``call-<n>.json`` (an item to run, or the end of the
session); the Slurm job serving the mailbox answers ``result-<n>.pkl``. Each
file appears whole (written aside, then renamed), so neither side reads half
of one. Polling a folder is what a shared file system offers every node: no
port to open between the login node and the compute nodes.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import time
from pathlib import Path
from typing import Any

#: Seconds between two looks at the mailbox.
POLL = 0.05


class Mailbox:
    """The folder ``path``, shared by the controller and one worker."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def post(self, number: int, call: dict[str, Any]) -> None:
        """The controller's call number ``number``."""
        self._write(f"call-{number}.json", json.dumps(call).encode())

    def answer(self, number: int, result: Any) -> None:
        """The worker's result of call number ``number``."""
        self._write(f"result-{number}.pkl", pickle.dumps(result))

    def result(self, number: int) -> Any | None:
        """The result of call ``number``, once it is there (``None`` until then)."""
        path = self.path / f"result-{number}.pkl"
        if not path.exists():
            self._refresh()
            if not path.exists():
                return None
        with open(path, "rb") as file:
            return pickle.load(file)  # written by the session's own worker

    def next_call(self, number: int, timeout: float) -> dict[str, Any] | None:
        """Wait for call ``number`` (the worker's side); ``None`` after ``timeout`` seconds."""
        path = self.path / f"call-{number}.json"
        deadline = time.monotonic() + timeout
        while not path.exists():
            if time.monotonic() > deadline:
                return None
            time.sleep(POLL)
            self._refresh()
        found: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        return found

    def _write(self, name: str, content: bytes) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        aside = self.path / f".{name}.{os.getpid()}"
        aside.write_bytes(content)
        os.replace(aside, self.path / name)

    def _refresh(self) -> None:
        # NFS caches a folder's attributes: touching its mode makes the next look fresh
        # (as submitit does for its result files).
        with contextlib.suppress(OSError):
            self.path.chmod(self.path.stat().st_mode)
