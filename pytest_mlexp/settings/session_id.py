"""The session id every run of a session is tagged with, the same in all its processes."""

from __future__ import annotations

import os
import time
import uuid

import pytest

from ..workers import given

#: Environment variable that fixes the session id, so that several pytest
#: invocations (CI shards, reruns) group their runs together.
SESSION_ID_ENV = "MLEXP_SESSION_ID"

_SESSION_ID_KEY = pytest.StashKey[str]()


def session_id(config: pytest.Config) -> str:
    """The controller's id in a worker; else ``MLEXP_SESSION_ID``, or one made once per session.

    Known without resolving any other setting: the xdist controller hands it to
    its workers whether or not the session tracks anything.
    """
    found = config.stash.get(_SESSION_ID_KEY, None)
    if found is None:
        handed = given(config)
        if handed is not None:
            found = handed.session_id
        else:
            from_env = os.environ.get(SESSION_ID_ENV, "").strip()
            found = from_env or f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}"
        config.stash[_SESSION_ID_KEY] = found
    return found
