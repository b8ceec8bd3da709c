"""A lock shared by the processes of one machine (xdist workers, parallel sessions)."""

from __future__ import annotations

import contextlib
import hashlib
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def machine_lock(*key: str) -> Iterator[None]:
    """Hold an exclusive lock named by ``key`` against every process of this machine.

    On platforms without ``fcntl`` (Windows) it does not lock; callers must
    stay correct without it (a second look resolves races).
    """
    try:
        import fcntl
    except ImportError:
        yield
        return
    digest = hashlib.sha1("\0".join(key).encode()).hexdigest()[:16]
    path = Path(tempfile.gettempdir()) / f"mlexp-{digest}.lock"
    with open(path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
