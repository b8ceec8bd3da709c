"""A setting refused in an xdist worker stops the session with its message, as serially.

Settings are checked when a tracked item is about to use them (a tracking URI
when the store opens at the end of collection, a marker when collection finds
it), so a suite without experiments never stops for one. Under xdist that
moment comes in the workers: a
``pytest.UsageError`` there ends the worker, and pytest-xdist would only report
that no worker was left. The worker hands the message to the controller in
``workeroutput``; the controller raises it again, so the user sees
``ERROR: <message>`` and exit code 4 as in a serial session.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest

from .workers import is_xdist_worker

#: The ``workeroutput`` key of the message a worker refused its session with.
REFUSAL_FIELD = "mlexp_refusal"


class WorkerRefusal:
    """Registered where pytest-xdist is installed, in the controller and in each worker."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_collection(self) -> Generator[None, Any, Any]:
        try:
            return (yield)
        except pytest.UsageError as exc:
            if is_xdist_worker(self.config):
                self.config.workeroutput[REFUSAL_FIELD] = str(exc)  # type: ignore[attr-defined]
            raise

    @pytest.hookimpl(tryfirst=True)
    def pytest_testnodedown(self, node: Any, error: object) -> None:
        message = (getattr(node, "workeroutput", None) or {}).get(REFUSAL_FIELD)
        if message:
            raise pytest.UsageError(message)
