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
from collections.abc import Iterable, Mapping
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


def replay_order(paths: Iterable[Path]) -> list[Path]:
    """The journals in the order replay needs: group runs created offline before their members.

    A run created while the server was lost may name, as its parent, a group
    run created in the journal too (a grid's parent, a repeated cell): that
    one must exist on the server first.
    """

    def depth(path: Path) -> int:
        operations = read_journal(path)
        create = next((op for op in operations if op.get("op") == "create"), None)
        if create is None or T.KIND not in create["tags"]:
            return 2
        return 1 if T.PARENT_RUN_ID in create["tags"] else 0

    return sorted(paths, key=lambda path: (depth(path), path.name))


def replay(path: Path, backend: Backend, ids: dict[str, str] | None = None) -> str:
    """Send one journal file; returns the run id. Moves it to ``replayed/`` once complete.

    ``ids`` maps the journal ids of runs created offline to their ids on the
    server, across the journals of one ``mlexp sync``; a member's parent named
    by journal id becomes its server id.
    """
    ids = {} if ids is None else ids
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
            run_id = _find_or_create(backend, op, ids)
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


def _find_or_create(backend: Backend, op: Mapping[str, Any], ids: dict[str, str]) -> str:
    """Create the spooled run, unless an interrupted replay (or another process) already did.

    A group run another process of the session created meanwhile (same
    ``mlexp.group``) is the one kept: its members join it.
    """
    experiment_id = backend.experiment_id(op["experiment"])
    tags = dict(op["tags"])
    journal_id = tags[T.JOURNAL_ID]
    parent = tags.get(T.PARENT_RUN_ID)
    if parent is not None:
        tags[T.PARENT_RUN_ID] = _server_id(backend, experiment_id, parent, ids)
    found = first_run(backend.client, [experiment_id], tag_equals(T.JOURNAL_ID, journal_id))
    if found is None and T.GROUP in tags:
        found = first_run(backend.client, [experiment_id], tag_equals(T.GROUP, tags[T.GROUP]))
    if found is not None:
        run_id = str(found.info.run_id)
    else:
        run = backend.client.create_run(
            experiment_id, start_time=op["start_time"], tags=tags, run_name=op["run_name"]
        )
        run_id = str(run.info.run_id)
    ids[journal_id] = run_id
    return run_id


def _server_id(backend: Backend, experiment_id: str, run_id: str, ids: Mapping[str, str]) -> str:
    """``run_id``, or the server id of the run created offline under that journal id."""
    if run_id in ids:
        return ids[run_id]
    found = first_run(backend.client, [experiment_id], tag_equals(T.JOURNAL_ID, run_id))
    return str(found.info.run_id) if found is not None else run_id
