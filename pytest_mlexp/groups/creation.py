"""Making a group run: found or created by the first process of the session that needs it.

A group run is found or created when the first member's run is about to be
created, so the member's run gets ``mlflow.parentRunId`` with its creation.
xdist workers and CI shards sharing a session id find the same run
(``backend.groups.find_or_create_group``: a tag hashing session, kind and key,
a machine lock, and the oldest run kept across machines). It belongs to the
controller's pid (tag ``mlexp.pid``), as it outlives the workers, and carries
the user, git and source tags its members carry.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from ..backend import tags as T
from ..backend.groups import find_or_create_group
from ..keys import SESSION_KEY
from ..runs.identity import current_user, source_name
from ..runs.markers import marker_options
from ..workers import given
from .naming import stamped_name

if TYPE_CHECKING:
    from ..settings import Settings


def host_name() -> str:
    return socket.gethostname()


def lineage_tags(config: pytest.Config, rootdir: Path, lineage: frozenset[str]) -> dict[str, str]:
    """The user and, when git lineage is on, the git tags, as the members' runs carry them."""
    tags = {T.USER: current_user()}
    if "git" in lineage:
        from ..lineage.git import session_git_state

        state = session_git_state(config, rootdir.resolve())
        if state is not None:
            tags.update(state.tags())
    return tags


class GroupRuns:
    """The group runs this process found or created, one per kind and key."""

    def __init__(self, config: pytest.Config, settings: Settings) -> None:
        self.config = config
        self.settings = settings
        handed = given(config)
        #: The controller's pid: group runs belong to it, as they outlive workers.
        self.owner_pid = handed.controller_pid if handed is not None else os.getpid()
        self._runs: dict[tuple[str, str], str] = {}

    def experiment(self, item: pytest.Item) -> str:
        """The experiment of ``item``'s runs: its marker's, else the session's."""
        return str(marker_options(item).get("experiment") or self.settings.tracking.experiment)

    def known(self, kind: str, key: str) -> bool:
        """Whether this process already found or created the group run of ``kind`` for ``key``."""
        return (kind, key) in self._runs

    def group(
        self, item: pytest.Item, kind: str, key: str, name: str, tags: Mapping[str, str]
    ) -> str:
        """The id of the session's group run of ``kind`` for ``key``, which ``item`` belongs to.

        ``tags`` are the kind's own; the session's and the marker's tags, the
        lineage, owner and source tags are added. A top-level group run (no
        ``mlflow.parentRunId`` in ``tags``) is named with its session's stamp.
        """
        if (kind, key) in self._runs:
            return self._runs[(kind, key)]
        tracking = self.settings.tracking
        options = marker_options(item)
        all_tags = {
            **tracking.tags,
            **{str(k): str(v) for k, v in options.get("tags", {}).items()},
            **tags,
            **lineage_tags(self.config, tracking.rootdir, self.settings.lineage),
            T.HOST: host_name(),
            T.PID: str(self.owner_pid),
            T.SOURCE_NAME: source_name(item, tracking.rootdir),
            T.SOURCE_TYPE: "LOCAL",
        }
        if T.PARENT_RUN_ID not in tags:  # a top-level run: say which session made it
            name = stamped_name(name, tracking.session_id, all_tags.get(T.GIT_COMMIT))
        run_id = find_or_create_group(
            self.config.stash[SESSION_KEY].backend,
            self.experiment(item),
            session_id=tracking.session_id,
            kind=kind,
            key=key,
            name=name,
            tags=all_tags,
        )
        self._runs[(kind, key)] = run_id
        return run_id
