"""Replaying a journal to the tracking server, exactly once.

Replay records each operation done in ``<id>.done``, and a created run
carries ``mlexp.journal_id``, so a replay cut short and started again
neither loses nor duplicates anything. A completed journal moves to
``replayed/``.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..backend import tags as T
from ..backend.search import first_run, tag_equals
from .journal import read_journal

if TYPE_CHECKING:
    from ..backend.client import Backend


def recorded_uri(path: Path) -> str | None:
    """The tracking URI a journal file was recorded for (credentials redacted), if it says."""
    operations = read_journal(path)
    header = operations[0] if operations and operations[0].get("op") == "header" else {}
    uri = header.get("tracking_uri")
    return str(uri) if uri else None


def replay(path: Path, backend: Backend) -> str:
    """Send one journal file; returns the run id. Moves it to ``replayed/`` once complete."""
    operations = read_journal(path)
    client = backend.client
    progress = path.with_suffix(".done")
    done_up_to, run_id = -1, None
    if progress.exists():
        for line in progress.read_text(encoding="utf-8").splitlines():
            if line.strip():
                state = json.loads(line)
                done_up_to, run_id = int(state["done"]), state["run_id"]

    def mark(index: int) -> None:
        with open(progress, "a", encoding="utf-8") as out:
            out.write(json.dumps({"done": index, "run_id": run_id}) + "\n")
            out.flush()
            os.fsync(out.fileno())

    for index, op in enumerate(operations):
        if index <= done_up_to:
            continue
        kind = op["op"]
        if kind == "header":
            pass
        elif kind == "attach":
            run_id = op["run_id"]
        elif kind == "create":
            run_id = _find_or_create(backend, op)
        elif kind == "batch":
            assert run_id is not None
            backend.log_batch(
                run_id,
                metrics=[(k, v, ts, step) for k, v, ts, step in op["metrics"]],
                params=[(k, v) for k, v in op["params"]],
                tags=[(k, v) for k, v in op["tags"]],
            )
        elif kind == "text":
            assert run_id is not None
            client.log_text(run_id, op["text"], op["artifact_file"])
        elif kind == "artifact":
            assert run_id is not None
            local = str(path.parent / op["path"])
            if op["dir"]:
                client.log_artifacts(run_id, local, op["artifact_path"])
            else:
                client.log_artifact(run_id, local, op["artifact_path"])
        elif kind == "terminate":
            assert run_id is not None
            client.set_terminated(run_id, op["status"], op["end_time"])
        mark(index)
    done_dir = path.parent / "replayed"
    done_dir.mkdir(exist_ok=True)
    for suffix in (".jsonl", ".done", ".files"):
        source = path.with_suffix(suffix)
        if source.exists():
            shutil.move(str(source), str(done_dir / source.name))
    assert run_id is not None
    return str(run_id)


def _find_or_create(backend: Backend, op: Mapping[str, Any]) -> str:
    """Create the spooled run, unless an interrupted replay already did."""
    experiment_id = backend.experiment_id(op["experiment"])
    journal_id = op["tags"][T.JOURNAL_ID]
    found = first_run(backend.client, [experiment_id], tag_equals(T.JOURNAL_ID, journal_id))
    if found is not None:
        return str(found.info.run_id)
    run = backend.client.create_run(
        experiment_id, start_time=op["start_time"], tags=op["tags"], run_name=op["run_name"]
    )
    return str(run.info.run_id)
