"""What changed since a run was made: Python, packages, declared inputs and git, then and now.

"Then" is the run's lineage (its tags, ``lineage/requirements.txt``,
``lineage/git_diff.patch``); "now" is this process and the project's folder.
"""

from __future__ import annotations

import hashlib
import platform
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..backend import tags as T
from .environment import requirements
from .git import read_git_state
from .plugin import GIT_DIFF_ARTIFACT, REQUIREMENTS_ARTIFACT

#: Changed packages listed before "... and N more".
PACKAGES_SHOWN = 15


def changes_since(
    client: Any,
    run_id: str,
    tags: Mapping[str, str],
    rootdir: Path,
    inputs: Mapping[str, str],
) -> list[str]:
    """One line each for Python, packages, declared inputs (name -> logged digest) and git.

    ``run_id`` is the run whose artifacts hold the lineage; ``tags`` are the
    tags of the run reproduced.
    """
    return [
        python_line(tags.get(T.PYTHON_VERSION)),
        packages_line(_logged_text(client, run_id, REQUIREMENTS_ARTIFACT), requirements()),
        inputs_line(inputs, rootdir),
        _git_line(client, run_id, tags, rootdir),
    ]


def python_line(then: str | None) -> str:
    now = platform.python_version()
    if then is None:
        return f"python: not logged then, {now} now"
    if then != now:
        return f"python: {then} then, {now} now"
    return f"python: {now}, the same"


def packages_line(then_text: str | None, now_text: str) -> str:
    """The packages whose versions differ between two requirements files (``name==version``)."""
    if then_text is None:
        return "packages: not logged then (the env part of lineage was off)"
    then, now = pins(then_text), pins(now_text)
    changed = [
        f"{key} {then.get(key, '-')} -> {now.get(key, '-')}"
        for key in sorted(set(then) | set(now))
        if then.get(key) != now.get(key)
    ]
    if not changed:
        return "packages: the same versions"
    hidden = len(changed) - PACKAGES_SHOWN
    more = f", ... and {hidden} more" if hidden > 0 else ""
    return f"packages changed ({len(changed)}): " + ", ".join(changed[:PACKAGES_SHOWN]) + more


def pins(text: str) -> dict[str, str]:
    """``name==version`` lines of a requirements file, by lower-case name."""
    found = {}
    for line in text.splitlines():
        name, sep, version = line.strip().partition("==")
        if sep and not name.startswith("#"):
            found[name.lower()] = version
    return found


def inputs_line(declared: Mapping[str, str], rootdir: Path) -> str:
    """Declared inputs whose content no longer has the digest (a prefix of sha256) logged."""
    if not declared:
        return "declared inputs: none"
    changed = []
    for name, digest in sorted(declared.items()):
        path = Path(name) if Path(name).is_absolute() else rootdir / name
        if not path.is_file():
            changed.append(f"{name} (gone)")
            continue
        now = _sha256(path)
        if not now.startswith(digest):
            changed.append(f"{name} (digest {digest} then, {now[: len(digest)]} now)")
    if not changed:
        return f"declared inputs: {len(declared)}, the same digests"
    return "declared inputs changed: " + ", ".join(changed)


def _git_line(client: Any, run_id: str, tags: Mapping[str, str], rootdir: Path) -> str:
    """The commit (and the uncommitted diff) then and now."""
    then_dirty = tags.get(T.GIT_DIRTY) == "true"
    state = read_git_state(rootdir)
    then_text = (tags.get(T.GIT_COMMIT) or "none") + (" (dirty)" if then_dirty else "")
    now_text = (state.commit if state is not None else "none") + (
        " (dirty)" if state is not None and state.dirty else ""
    )
    if then_text != now_text:
        return f"git commit: {then_text} then, {now_text} now"
    if state is None:
        return "git commit: none then, none now (not in a git repository)"
    if not state.dirty:
        return f"git commit: {now_text}, the same"
    if _logged_text(client, run_id, GIT_DIFF_ARTIFACT) == state.diff:
        return f"git commit: {now_text}, the same, with the same uncommitted changes"
    return f"git commit: {now_text}, the same, but the uncommitted changes differ"


def _logged_text(client: Any, run_id: str, name: str) -> str | None:
    """The text of a lineage artifact of the run, or ``None`` when it has none."""
    folder = name.rpartition("/")[0]
    if name not in {artifact.path for artifact in client.list_artifacts(run_id, folder)}:
        return None
    with tempfile.TemporaryDirectory(prefix="mlexp-lineage-") as tmp:
        local = Path(client.download_artifacts(run_id, name, tmp))
        return local.read_text(encoding="utf-8", errors="replace")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as source:
        while chunk := source.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
