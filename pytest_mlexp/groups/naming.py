"""What tells a session's group runs apart in the MLflow UI: their names.

Every session adds its own grid parents and search parents. Without more,
five sessions leave five runs named ``experiment_ridge``; so a top-level group
run's name carries the session's stamp: when it started, to the second, and
the git commit (``experiment_ridge · 11-28 00:14:12 · a1b2c3d``). Two sessions
started in the same minute on the same commit get two names.
"""

from __future__ import annotations

import re

#: The default session id: ``20261128-001412-ce68dfe2`` (time and a random suffix).
_SESSION_TIME = re.compile(r"^\d{4}(\d{2})(\d{2})-(\d{2})(\d{2})(\d{2})-[0-9a-f]+$")
#: Joins a group run's name and its session's stamp.
SEPARATOR = " · "


def session_stamp(session_id: str) -> str:
    """``11-28 00:14:12`` from a default session id; a session id of the user's own as it is."""
    found = _SESSION_TIME.match(session_id)
    if found is None:
        return session_id
    month, day, hour, minute, second = found.groups()
    return f"{month}-{day} {hour}:{minute}:{second}"


def stamped_name(name: str, session_id: str, commit: str | None = None) -> str:
    """``experiment_ridge · 11-28 00:14:12 · a1b2c3d``: the run, its session, its commit."""
    parts = [name, session_stamp(session_id)]
    if commit:
        parts.append(commit[:7])
    return SEPARATOR.join(parts)
