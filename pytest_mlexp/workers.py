"""What a session's workers are given by the process that ends the session.

A session runs its items in one process, or in workers: pytest-xdist's
(``-n``) or a Ray cluster's (``--mlexp-ray``). Every worker is given one
``Given``, built by ``pipeline.hand_to_workers``: xdist's reach it in their
``workerinput`` (``pytest_configure_node``, as xdist documents), Ray's with
the actor's spec. Every other part of pytest-mlexp asks ``given(config)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import pytest

#: The ``workerinput`` field holding an xdist worker's ``Given``, as JSON.
GIVEN_FIELD = "mlexp"


@dataclass(frozen=True)
class Given:
    """What a worker is given by its controller."""

    #: The controller's session id: every worker logs under it.
    session_id: str
    #: The controller's process: group runs belong to it, as they outlive workers.
    controller_pid: int
    #: This worker's number among the session's workers (xdist's ``gw<n>``).
    worker: int
    #: Unique to the session's run, shared by its workers (xdist's ``testrunuid``).
    run_uid: str
    #: Whether other workers of the session may run on this worker's machine at once.
    machine_shared: bool
    #: The controller's command line arguments.
    args: tuple[str, ...] = ()
    #: The folder holding a search's journal files, when it is not the worker's rootdir.
    journal_root: str | None = None
    #: The project's git state (``lineage.git.state_to_hand``), for copies without ``.git``.
    git: Mapping[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "args": list(self.args)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Given:
        return cls(**{**data, "args": tuple(data.get("args", ()))})


#: The ``Given`` of a worker (set by the worker before pytest configures it).
GIVEN_KEY = pytest.StashKey[Given]()


def given(config: pytest.Config) -> Given | None:
    """What this worker was given; ``None`` where the session ends (serially too)."""
    found = config.stash.get(GIVEN_KEY, None)
    if found is None:
        data = (getattr(config, "workerinput", None) or {}).get(GIVEN_FIELD)
        if data is None:
            return None
        found = config.stash[GIVEN_KEY] = Given.from_json(data)
    return found


def is_controller(config: pytest.Config) -> bool:
    """Whether this process ends the session: not a worker (a serial run is one too).

    Known from pytest_configure on: workers are given their ``Given`` before
    pytest configures them.
    """
    return given(config) is None


def is_xdist_worker(config: pytest.Config) -> bool:
    """Whether this process is an xdist worker (xdist's own ``is_xdist_worker``)."""
    return hasattr(config, "workerinput")
