"""The spool on cluster nodes: journal files travel back to the controller's project.

Under ``--mlexp-on-tracking-error spool`` a worker whose server is lost keeps
what its runs still had to send in ``.mlexp/journal`` of its rootdir, which on
a node is the copy of the project Ray shipped there and removes with the
node's session. So after each item the worker takes the journal files out
(``take``) and returns them with the item's reports; the controller adds them
to its own ``.mlexp/journal`` (``keep``), where ``mlexp sync`` replays them.
A node lost before its item returned loses nothing the retry does not redo.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from pathlib import Path

#: Journal files already replayed stay where they are.
_REPLAYED = "replayed"


def take(journal: Path) -> list[tuple[str, bytes]]:
    """The files under ``journal`` (relative names, contents), removed from it."""
    if not journal.is_dir():
        return []
    taken = []
    for path in sorted(journal.rglob("*")):
        relative = path.relative_to(journal)
        if path.is_file() and relative.parts[0] != _REPLAYED:
            taken.append((relative.as_posix(), path.read_bytes()))
    for entry in journal.iterdir():
        if entry.name == _REPLAYED:
            continue
        if entry.is_dir():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    return taken


def keep(files: Iterable[tuple[str, bytes]], journal: Path) -> int:
    """Add files a worker took to ``journal``; how many journal files (runs) there are new."""
    added = 0
    for name, content in files:
        target = journal / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.suffix == ".jsonl" and target.exists():
            # A run spooled across two items of the worker: its header is there already.
            content = b"".join(content.splitlines(keepends=True)[1:])
        elif target.suffix == ".jsonl":
            added += 1
        with open(target, "ab") as out:
            out.write(content)
    return added
