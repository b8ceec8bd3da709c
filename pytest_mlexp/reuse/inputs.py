"""Declared inputs: data files matched by globs from the rootdir, hashed once per change.

Content hashes are cached in ``<rootdir>/.mlexp/input-hashes.json`` by
(path, size, modification time), so an unchanged 1 GB file is read once, not
every session. The cache is only a cache: a lost or corrupt file costs a re-read.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

#: Where the content hashes of declared inputs are kept, under the rootdir.
CACHE_FILE = Path(".mlexp") / "input-hashes.json"
_CHUNK = 1 << 20


@dataclass(frozen=True)
class InputFile:
    """One declared input file."""

    #: As shown and logged: relative to the rootdir when under it.
    name: str
    path: Path
    #: sha256 of its content, hex.
    digest: str


def expand(patterns: Iterable[str], rootdir: Path) -> tuple[list[Path], list[str]]:
    """The files the globs match (sorted, once each), and the globs that match no file."""
    files: set[Path] = set()
    unmatched: list[str] = []
    for pattern in patterns:
        if Path(pattern).is_absolute():
            found = glob.glob(pattern, recursive=True)
        else:
            found = [str(rootdir / f) for f in glob.glob(pattern, root_dir=rootdir, recursive=True)]
        matched = [Path(f).resolve() for f in found if os.path.isfile(f)]
        if not matched:
            unmatched.append(pattern)
        files.update(matched)
    return sorted(files), unmatched


def display_name(path: Path, rootdir: Path) -> str:
    """``path`` relative to the rootdir when under it, with ``/`` separators."""
    try:
        return path.relative_to(rootdir).as_posix()
    except ValueError:
        return path.as_posix()


class InputHashes:
    """Content hashes of files, cached on disk by (path, size, mtime)."""

    def __init__(self, rootdir: Path) -> None:
        self.rootdir = rootdir
        self.cache_path = rootdir / CACHE_FILE
        self._entries: dict[str, list[int | str]] | None = None

    def digest(self, path: Path) -> str:
        """sha256 of the file's content, read only when its size or mtime changed."""
        entries = self._load()
        stat = path.stat()
        key = str(path)
        entry = entries.get(key)
        if entry is not None and entry[0] == stat.st_size and entry[1] == stat.st_mtime_ns:
            return str(entry[2])
        digest = _sha256(path)
        entries[key] = [stat.st_size, stat.st_mtime_ns, digest]
        self._save(entries)
        return digest

    def files(self, paths: Iterable[Path]) -> list[InputFile]:
        return [InputFile(display_name(p, self.rootdir), p, self.digest(p)) for p in paths]

    def _load(self) -> dict[str, list[int | str]]:
        if self._entries is None:
            try:
                loaded = json.loads(self.cache_path.read_text(encoding="utf-8"))
                self._entries = loaded if isinstance(loaded, dict) else {}
            except (OSError, ValueError):
                self._entries = {}
        return self._entries

    def _save(self, entries: dict[str, list[int | str]]) -> None:
        """Write the cache atomically (xdist workers may write it at once; the last one wins)."""
        with contextlib.suppress(OSError):
            self.cache_path.parent.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(dir=self.cache_path.parent, suffix=".tmp")
            try:
                with os.fdopen(handle, "w", encoding="utf-8") as out:
                    json.dump(entries, out)
                os.replace(temporary, self.cache_path)
            except OSError:
                with contextlib.suppress(OSError):
                    os.unlink(temporary)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as source:
        while chunk := source.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
