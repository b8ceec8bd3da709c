"""A stat-only walk of a directory tree, the diff of two walks, and what is never uploaded."""

from __future__ import annotations

import fnmatch
import os
import re
import stat
from collections.abc import Iterable, Sequence
from pathlib import Path

#: Directories never walked, by name (virtualenvs are also found by their pyvenv.cfg).
PRUNED_DIRS = frozenset(
    {
        ".git", ".hg", ".svn", "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache",
        ".tox", ".nox", ".venv", "venv", "site-packages", "node_modules",
        ".ipynb_checkpoints", "mlruns", "mlartifacts",
    }
)  # fmt: skip
#: Never uploaded, whatever the patterns say.
SECRET_PATTERNS = (
    ".env", ".env.*", "*.pem", "*.key", "id_rsa*", "id_dsa*", "id_ecdsa*", "id_ed25519*",
    ".netrc", "*credentials*", "*.p12", "*.pfx", ".pgpass", ".pypirc",
)  # fmt: skip

MODEL_SUFFIXES = frozenset(
    {".h5", ".pkl", ".joblib", ".model", ".keras", ".pt", ".pth", ".onnx", ".safetensors",
     ".pickle", ".ckpt", ".bin"}
)  # fmt: skip
PLOT_SUFFIXES = frozenset({".png", ".svg", ".html", ".jpg", ".jpeg", ".gif", ".pdf"})

#: (mtime_ns, size, inode): a file whose triple changed was rewritten.
Stamp = tuple[int, int, int]


_SUFFIX_GLOB = re.compile(r"^\*\.[A-Za-z0-9_-]+$")


def _glob_regex(patterns: Iterable[str]) -> re.Pattern[str] | None:
    patterns = list(patterns)
    if not patterns:
        return None
    return re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in patterns), re.IGNORECASE)


class Scanner:
    """A stat-only walk of a directory tree, pruning early, matching names by pattern.

    Only files whose names match are stat'ed; ``*.ext`` patterns are a set lookup.
    """

    def __init__(
        self,
        patterns: Sequence[str] | None,
        exclude: Sequence[str] = (),
        pruned: Iterable[Path] = (),
    ) -> None:
        patterns = list(patterns) if patterns is not None else None
        self._match_all = patterns is None or "*" in patterns
        simple = [p for p in patterns or () if _SUFFIX_GLOB.match(p)]
        self._suffixes = frozenset(p[1:].lower() for p in simple)
        # Other patterns: with a "/" they match the path relative to the root, else the name.
        rest = [p for p in patterns or () if p not in simple]
        self._names = _glob_regex(p for p in rest if "/" not in p)
        self._paths = _glob_regex(p for p in rest if "/" in p)
        self._exclude = _glob_regex(exclude)
        self._secret = _glob_regex(SECRET_PATTERNS)
        self.pruned = {str(p) for p in pruned}

    def _excluded(self, name: str, relative: str) -> bool:
        return self._exclude is not None and bool(
            self._exclude.match(name) or self._exclude.match(relative)
        )

    def _wanted(self, name: str, relative: str) -> bool:
        if self._match_all:
            return True
        dot = name.rfind(".")
        if dot >= 0 and name[dot:].lower() in self._suffixes:
            return True
        return bool(
            (self._names is not None and self._names.match(name))
            or (self._paths is not None and self._paths.match(relative))
        )

    def scan(self, root: Path) -> dict[str, Stamp]:
        """Every wanted regular file under ``root`` and its stamp."""
        found: dict[str, Stamp] = {}
        real_root = os.path.realpath(root)
        stack = [(str(root), "")]
        excluded, pruned, wanted = self._excluded, self.pruned, self._wanted
        has_exclude = self._exclude is not None
        while stack:
            directory, prefix = stack.pop()
            try:
                with os.scandir(directory) as it:
                    entries = list(it)
            except OSError:
                continue
            if prefix and any(e.name == "pyvenv.cfg" for e in entries):
                continue  # a virtualenv
            for entry in entries:
                name = entry.name
                try:
                    if entry.is_dir(follow_symlinks=False):
                        if name in PRUNED_DIRS or entry.path in pruned:
                            continue
                        if has_exclude and excluded(name, prefix + name):
                            continue
                        stack.append((entry.path, prefix + name + "/"))
                        continue
                    if not wanted(name, prefix + name):
                        continue
                    if has_exclude and excluded(name, prefix + name):
                        continue
                    if self._secret is not None and self._secret.match(name):
                        continue
                    if entry.is_symlink():
                        # Never follow a link out of the root.
                        target = os.path.realpath(entry.path)
                        if not target.startswith(real_root + os.sep):
                            continue
                        info = os.stat(entry.path)
                    else:
                        info = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                if stat.S_ISREG(info.st_mode):
                    found[entry.path] = (info.st_mtime_ns, info.st_size, info.st_ino)
        return found


def changed(before: dict[str, Stamp], after: dict[str, Stamp]) -> list[str]:
    """Files of ``after`` that are new or whose stamp differs, in walk order."""
    return [path for path, stamp in after.items() if before.get(path) != stamp]


def is_secret(path: Path) -> bool:
    regex = _glob_regex(SECRET_PATTERNS)
    return regex is not None and bool(regex.match(path.name))


def kind_folder(path: Path) -> str:
    """``models``, ``plots`` or ``files``: where a file lands in the run's artifacts."""
    suffix = path.suffix.lower()
    if suffix in MODEL_SUFFIXES:
        return "models"
    if suffix in PLOT_SUFFIXES:
        return "plots"
    return "files"
