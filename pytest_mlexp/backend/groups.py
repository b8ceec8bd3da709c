"""Group runs: one run that holds others (a grid's parent, a repeated cell, a session's report).

Every process that needs the same group run (xdist workers, CI shards sharing
``MLEXP_SESSION_ID``) looks it up by a tag hashing the session id, the kind
and a key. A file lock serializes search-then-create on one machine; across
machines, a second search after creating resolves races by keeping the
oldest run and deleting the others.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import TYPE_CHECKING

from . import tags as T
from .locks import machine_lock
from .search import search_runs, tag_equals

if TYPE_CHECKING:
    from .client import Backend


def group_tag(session_id: str, kind: str, key: str) -> str:
    """The value of ``mlexp.group`` shared by every process looking for the same group run."""
    return hashlib.sha1(f"{session_id}\0{kind}\0{key}".encode()).hexdigest()[:24]


def find_or_create_group(
    backend: Backend,
    experiment: str,
    *,
    session_id: str,
    kind: str,
    key: str,
    name: str,
    tags: Mapping[str, str],
) -> str:
    """The id of the session's group run of ``kind`` for ``key``, created if nobody made it yet.

    ``tags`` are set when this call creates the run, with ``mlexp.kind``,
    ``mlexp.group`` and ``mlexp.session_id`` added.
    """
    group = group_tag(session_id, kind, key)
    all_tags = {
        **tags,
        T.KIND: kind,
        T.GROUP: group,
        T.SESSION_ID: session_id,
        T.RUN_NAME: name,
    }
    with machine_lock("group", backend.uri, group):
        try:
            experiment_id = backend.experiment_id(experiment)
            found = _oldest(backend, experiment_id, group)
            if found is not None:
                return found
            created = str(
                backend.client.create_run(experiment_id, tags=all_tags, run_name=name).info.run_id
            )
        except Exception as exc:
            if not backend.spools:
                raise
            # The server is lost: the group run goes to the journal with its members,
            # and ``mlexp sync`` creates it before them (``spool.replay``).
            return str(backend.client.offline_run(exc, experiment, name, all_tags))
        # Another machine (a CI shard) may have raced us: everyone keeps the oldest.
        keep = _oldest(backend, experiment_id, group) or created
        if keep != created:
            backend.client.delete_run(created)
        return keep


def _oldest(backend: Backend, experiment_id: str, group: str) -> str | None:
    runs = list(search_runs(backend.client, [experiment_id], tag_equals(T.GROUP, group)))
    if not runs:
        return None
    oldest = min(runs, key=lambda r: (r.info.start_time or 0, r.info.run_id))
    return str(oldest.info.run_id)
