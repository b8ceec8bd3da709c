"""The git state of the project: commit, branch, remote (credentials stripped), uncommitted diff."""

from __future__ import annotations

import functools
import os
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ..backend import tags as T
from ..redaction import redact_uri
from ..workers import given

#: Seconds a single git command may take before lineage gives up on git.
GIT_TIMEOUT = 10.0


@dataclass(frozen=True)
class GitState:
    commit: str
    branch: str | None
    repo_url: str | None
    diff: str
    #: Python files git does not track nor ignore (a ``conftest.py`` left out of a commit).
    untracked: tuple[str, ...] = ()

    @property
    def dirty(self) -> bool:
        """Uncommitted changes, or untracked Python files: the code is not the commit's."""
        return bool(self.diff or self.untracked)

    def tags(self) -> dict[str, str]:
        tags = {T.GIT_COMMIT: self.commit, T.GIT_DIRTY: str(self.dirty).lower()}
        if self.branch:
            tags[T.GIT_BRANCH] = self.branch
        if self.repo_url:
            tags[T.GIT_REPO_URL] = self.repo_url
        return tags


@functools.cache
def git_state(directory: Path) -> GitState | None:
    """The git state of ``directory``'s repository, read once per process."""
    return read_git_state(directory)


def session_git_state(config: Any, directory: Path) -> GitState | None:
    """The git state the controller handed this worker, else ``directory``'s own."""
    handed = given(config)
    if handed is not None and handed.git is not None:
        return GitState(**handed.git)
    return git_state(directory)


def state_to_hand(directory: Path) -> dict[str, Any] | None:
    """``directory``'s git state for workers whose copy has no ``.git`` (``workers.Given.git``)."""
    state = git_state(directory)
    return asdict(state) if state is not None else None


def read_git_state(directory: Path) -> GitState | None:
    """The git state of the repository holding ``directory``; ``None`` without git or a repo."""
    commit = _git(directory, "rev-parse", "--verify", "HEAD")
    if not commit:
        return None
    branch = _git(directory, "rev-parse", "--abbrev-ref", "HEAD")
    remotes = (_git(directory, "remote") or "").split()
    remote = "origin" if "origin" in remotes else (remotes[0] if remotes else None)
    url = _git(directory, "remote", "get-url", remote) if remote else None
    diff = _git(directory, "diff", "HEAD", "--no-color", "--no-ext-diff", strip=False)
    untracked = _git(directory, "ls-files", "--others", "--exclude-standard", "--", "*.py")
    return GitState(
        commit=commit,
        branch=branch if branch and branch != "HEAD" else None,
        repo_url=strip_credentials(url) if url else None,
        diff=diff or "",
        untracked=tuple((untracked or "").splitlines()),
    )


def _git(directory: Path, *args: str, strip: bool = True) -> str | None:
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_OPTIONAL_LOCKS": "0"}
    try:
        done = subprocess.run(
            ["git", "-C", str(directory), *args],
            capture_output=True,
            text=True,
            errors="replace",
            timeout=GIT_TIMEOUT,
            env=env,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        return None
    return done.stdout.strip() if strip else done.stdout


def strip_credentials(url: str) -> str:
    """A remote URL without its credentials: user and password (or token) are removed.

    ``ssh://`` URLs keep their user name (``git@``), which is not a secret;
    scp-like ``git@host:org/repo.git`` is returned as is.

    >>> strip_credentials("https://user:tok@github.com/org/repo.git")
    'https://github.com/org/repo.git'
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return redact_uri(url)
    if not parts.scheme or "@" not in parts.netloc:
        return redact_uri(url)
    userinfo, _, host = parts.netloc.rpartition("@")
    if parts.scheme.startswith("ssh") or parts.scheme.endswith("+ssh"):
        return urlunsplit(parts._replace(netloc=f"{userinfo.partition(':')[0]}@{host}"))
    return redact_uri(urlunsplit(parts._replace(netloc=host)))
