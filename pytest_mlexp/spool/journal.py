"""The journal: one file per spooled run, one JSON operation a line.

Operations: ``header`` (the tracking URI, credentials redacted), ``create``
(a run that never reached the server), ``attach`` (a run that exists on the
server), ``batch`` (params, metrics, tags), ``text``, ``artifact`` (a copy
kept beside the journal), ``terminate``.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..redaction import redact_uri

#: The journal of runs spooled while the server was lost, under the rootdir.
JOURNAL_DIR = Path(".mlexp") / "journal"


class Journal:
    """The journal folder of a project; one file per spooled run."""

    def __init__(self, root: Path, tracking_uri: str) -> None:
        self.root = root
        self.tracking_uri = redact_uri(tracking_uri)
        self._lock = threading.Lock()

    def append(self, local_id: str, op: Mapping[str, Any]) -> None:
        """Add one operation to the run's file, synced to disk before returning."""
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / f"{local_id}.jsonl"
        with self._lock, open(path, "a", encoding="utf-8") as out:
            if out.tell() == 0:
                out.write(json.dumps({"op": "header", "tracking_uri": self.tracking_uri}) + "\n")
            out.write(json.dumps(dict(op)) + "\n")
            out.flush()
            os.fsync(out.fileno())

    def keep_file(self, local_id: str, source: str) -> str:
        """Copy an artifact beside the journal; its path relative to the journal folder."""
        target = self.root / f"{local_id}.files" / uuid.uuid4().hex[:8] / Path(source).name
        target.parent.mkdir(parents=True, exist_ok=True)
        if Path(source).is_dir():
            shutil.copytree(source, target)
        else:
            shutil.copy2(source, target)
        return str(target.relative_to(self.root))


def read_journal(path: Path) -> list[dict[str, Any]]:
    """The operations of one journal file, header first."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
