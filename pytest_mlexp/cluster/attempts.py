"""Closing the run of an attempt whose Ray worker died, or was cancelled by Ctrl-C.

The run was started by a process on another machine, so the session-end
sweep (this machine's dead processes only) cannot see it: the controller
finds it in the store by the session and the item, the only attempt of that
item that can be running, and ends it KILLED.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..backend import tags as T
from ..backend.search import search_runs, tag_equals
from ..runs.summary import RunSummary

if TYPE_CHECKING:
    import pytest

    from ..backend.client import Backend


def close_attempt(
    backend: Backend,
    item: pytest.Item,
    experiment: str,
    session_id: str,
    *,
    outcome: str,
    index: int,
) -> list[RunSummary]:
    """End KILLED, with ``outcome``, the item's runs of this session still RUNNING.

    ``outcome``: ``rerun`` for a lost worker's attempt (the retry counts),
    ``interrupted`` for Ctrl-C. Returns their summaries for the session's end.
    """
    query = " and ".join(
        (
            "attributes.status = 'RUNNING'",
            tag_equals(T.SESSION_ID, session_id),
            tag_equals(T.NODEID, item.nodeid),
        )
    )
    closed = []
    for run in list(search_runs(backend.client, [backend.experiment_id(experiment)], query)):
        run_id = run.info.run_id
        backend.client.set_tag(run_id, T.OUTCOME, outcome)
        backend.client.set_terminated(run_id, "KILLED")
        closed.append(
            RunSummary(
                name=item.name,
                nodeid=item.nodeid,
                experiment=experiment,
                status="KILLED",
                outcome=outcome,
                run_id=run_id,
                params=dict(run.data.params),
                url=backend.run_link(run.info.experiment_id, run_id),
                index=index,
                attempt=int(run.data.tags.get(T.ATTEMPT, "1") or 1),
            )
        )
    return closed
