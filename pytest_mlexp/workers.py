"""pytest-xdist: is this process a worker, and what did the controller hand it.

The controller passes values to its workers through ``workerinput``
(``pytest_configure_node``), as xdist documents; every other part of
pytest-mlexp asks here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest


def is_worker(session: pytest.Session) -> bool:
    """Whether this process is an xdist worker (xdist's own ``is_xdist_worker``)."""
    if not session.config.pluginmanager.hasplugin("xdist"):
        return False
    from xdist import is_xdist_worker

    return bool(is_xdist_worker(session))


def is_controller(config: pytest.Config) -> bool:
    """Whether this process ends the session: not an xdist worker (a serial run is one too).

    Known from pytest_configure on: xdist hands a worker its ``workerinput``
    before configuring it.
    """
    return worker_input(config) is None


def worker_input(config: pytest.Config) -> Mapping[str, Any] | None:
    """The controller's ``workerinput`` in a worker; ``None`` in the controller or without xdist."""
    return getattr(config, "workerinput", None)
