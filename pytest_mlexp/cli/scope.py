"""Whose runs ``mlexp report`` and ``mlexp compare`` pick by default: this checkout's.

On a server a team shares, "the latest session" and "the latest run of that
name" would be anyone's. By default they are the latest of *yours*: runs
recorded by the same user name (tag ``mlflow.user``: your login, as pytest-mlexp
records it) from a checkout of the same git remote (tag
``mlflow.source.git.repoURL``; a run recorded without git lineage is taken as
yours when its user is). ``--anyone`` picks among everyone's runs. What is
named explicitly (``--session ID``, a run id) is taken whoever made it.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..backend import tags as T
from ..backend.errors import StoreError
from ..backend.search import NOT_REPRODUCTION, quote, tag_equals

if TYPE_CHECKING:
    from ..backend.client import Backend
    from ..reports.stored_runs import StoredRun
    from .project import Project

#: Runs read to find the latest of yours, or every test file a run name belongs to.
LOOKUP_RUNS = 500
#: The flag that widens the defaults to everyone's runs.
ANYONE_FLAG = "--anyone"


def add_anyone_flag(parser: Any, what: str) -> None:
    """``--anyone``: pick among everyone's runs, not only this checkout's."""
    parser.add_argument(
        ANYONE_FLAG,
        action="store_true",
        help=f"pick {what} among everyone's runs on the store (default: yours: "
        "runs of your user name from a checkout of this project's git remote)",
    )


@dataclass(frozen=True)
class Scope:
    """Whose runs a default picks: this checkout's (user and remote), or anyone's."""

    user: str
    #: This checkout's git remote (credentials stripped), or None without one.
    remote: str | None = None
    anyone: bool = False

    def filter(self) -> str:
        """The search clause selecting this user's runs (``""``: anyone's)."""
        return "" if self.anyone else tag_equals(T.USER, self.user)

    def holds(self, run: StoredRun) -> bool:
        """Whether ``run`` is one of this scope's (its remote, when both know one)."""
        if self.anyone:
            return True
        if run.tags.get(T.USER) != self.user:
            return False
        remote = run.tags.get(T.GIT_REPO_URL)
        return self.remote is None or remote is None or remote == self.remote

    def describe(self) -> str:
        """``yours: user alice, remote https://...; --anyone for anyone's``."""
        if self.anyone:
            return "anyone's"
        remote = f", remote {self.remote}" if self.remote else ""
        return f"yours: user {self.user}{remote}; {ANYONE_FLAG} for anyone's"


def checkout_scope(project: Project, args: argparse.Namespace) -> Scope:
    """The scope of this checkout, or anyone's under ``--anyone``."""
    from ..lineage.git import git_state
    from ..runs.identity import current_user

    state = git_state(project.tracking.rootdir.resolve())
    remote = state.repo_url if state is not None else None
    return Scope(current_user(), remote, bool(getattr(args, "anyone", False)))


def latest_session(backend: Backend, experiments: Sequence[Any], scope: Scope) -> str:
    """The session id of the scope's latest run recorded by pytest-mlexp (not a reproduction)."""
    from ..reports.stored_runs import search

    query = " and ".join(
        filter(None, [f"tags.`{T.SESSION_ID}` != ''", NOT_REPRODUCTION, scope.filter()])
    )
    runs = search(backend, experiments, query, max_results=LOOKUP_RUNS, include_containers=True)
    mine = next((run for run in runs if scope.holds(run)), None)
    if mine is None:
        whose = "" if scope.anyone else f" of yours (user {scope.user}; {ANYONE_FLAG}: anyone's)"
        raise StoreError(f"no runs recorded by pytest-mlexp{whose} in {backend.display_uri}")
    return mine.session_id


def run_by_name(
    backend: Backend, ref: str, experiments: Sequence[Any], scope: Scope, label: str
) -> StoredRun:
    """The scope's latest run named ``ref`` (a run name or a node id ``FILE::NAME``).

    A name whose runs come from more than one test file (the same function name
    in two files) is refused, listing the node ids to pick from.
    """
    from ..reports.stored_runs import search

    by_name = f"attributes.run_name = '{quote(ref)}'"
    named = tag_equals(T.NODEID, ref) if "::" in ref else by_name
    query = " and ".join(filter(None, [named, NOT_REPRODUCTION, scope.filter()]))
    runs = [
        run
        for run in search(
            backend, experiments, query, max_results=LOOKUP_RUNS, include_containers=True
        )
        if scope.holds(run)
    ]
    if not runs:
        if not scope.anyone and search(
            backend, experiments, f"{named} and {NOT_REPRODUCTION}", max_results=1
        ):
            raise StoreError(
                f"no run named {ref!r} of yours (user {scope.user}) in {backend.display_uri}; "
                f"others made some: add {ANYONE_FLAG}"
            )
        raise StoreError(f"no run with id or name {ref!r} in {backend.display_uri}")
    files = sorted({run.nodeid.partition("::")[0] for run in runs if run.nodeid})
    if len(files) > 1:
        nodeids = sorted({run.nodeid for run in runs if run.nodeid})
        raise StoreError(
            f"{label} {ref!r} names runs of {len(files)} test files: {', '.join(nodeids)}; "
            "give one of these node ids, or a run id"
        )
    return runs[0]
