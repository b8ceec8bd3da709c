"""A lock shared by the processes of one machine (xdist workers, parallel sessions)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

#: Lock files are named ``mlexp-<digest>.lock`` in the system temp directory.
LOCK_PREFIX = "mlexp-"


@contextlib.contextmanager
def machine_lock(*key: str, shared: bool = False) -> Iterator[None]:
    """Hold a lock named by ``key`` against every process of this machine.

    Exclusive by default; ``shared=True`` holders wait only for an exclusive
    holder, not for each other.

    The lock file is removed when the lock is released, so none are left in
    the temp directory. A process that opened the file before its removal
    finds, once it holds the lock, that the path names another file (or none)
    and tries again on the current one.

    On platforms without ``fcntl`` (Windows) it does not lock; callers must
    stay correct without it (a second look resolves races).
    """
    try:
        import fcntl
    except ImportError:
        yield
        return
    digest = hashlib.sha1("\0".join(key).encode()).hexdigest()[:16]
    path = Path(tempfile.gettempdir()) / f"{LOCK_PREFIX}{digest}.lock"
    while True:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
            try:
                current = os.stat(path)
            except FileNotFoundError:
                current = None
            held = os.fstat(descriptor)
            if current is None or (current.st_dev, current.st_ino) != (held.st_dev, held.st_ino):
                continue  # removed by its last holder while we waited: lock the new one
            try:
                yield
            finally:
                # Removed while still held: a waiter on this file then sees it gone
                # (shared holders may remove it under each other: they need no exclusion).
                with contextlib.suppress(OSError):
                    os.unlink(path)
            return
        finally:
            os.close(descriptor)  # closing releases the lock
