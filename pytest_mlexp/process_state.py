"""What a pytest session changes in its process, put back as it was at ``pytest_unconfigure``.

A session that tracks experiments points MLflow's fluent API at its store
(``mlflow.set_tracking_uri``, which also exports ``MLFLOW_TRACKING_URI``),
sets MLflow's HTTP retry and printing variables, may route the fluent API
through the spool, puts runs on the fluent API's stack and handles SIGTERM.
In a process of its own that ends with the session; when pytest runs in a
process that goes on (``pytester`` in-process, ``pytest.main`` called twice),
the next session must find the process as the first one did.

Bottom layer: imports no other module of the package, and ``mlflow`` only if
it is already imported (a session without experiments never imports it).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
from typing import Any

import pytest

#: Environment variables in these namespaces are put back: MLflow's and the plugin's own.
ENV_PREFIXES = ("MLFLOW_", "MLEXP_")
#: Loggers whose levels are put back (MLflow's, its store's, and Optuna's verbosity).
LOGGER_PREFIXES = ("mlflow", "alembic", "sqlalchemy", "optuna")
#: Most fluent runs ended at unconfigure: a guard against a stack that does not pop.
MAX_RUNS_ENDED = 100


def _environ() -> dict[str, str]:
    return {name: value for name, value in os.environ.items() if name.startswith(ENV_PREFIXES)}


def _levels() -> dict[str, int]:
    levels = {}
    for name, logger in logging.Logger.manager.loggerDict.items():
        if name.startswith(LOGGER_PREFIXES) and isinstance(logger, logging.Logger):
            levels[name] = logger.level
    return levels


class ProcessState:
    """Registered at ``pytest_configure``: a snapshot then, the same state at unconfigure."""

    def __init__(self) -> None:
        self.environ = _environ()
        self.levels = _levels()
        self.sigterm: Any = None
        if threading.current_thread() is threading.main_thread():
            self.sigterm = signal.getsignal(signal.SIGTERM)
        mlflow = sys.modules.get("mlflow")
        #: ``None`` when mlflow was not imported: nothing of its state to compare with.
        self.tracking_uri: str | None = None
        self.active_run_id: str | None = None
        if mlflow is not None:
            self.tracking_uri = mlflow.get_tracking_uri()
            active = mlflow.active_run()
            self.active_run_id = active.info.run_id if active is not None else None

    @pytest.hookimpl(trylast=True)
    def pytest_unconfigure(self) -> None:
        mlflow = sys.modules.get("mlflow")
        if mlflow is not None:
            self._end_fluent_runs(mlflow)
            # ``None`` forgets the URI the session set and unexports MLFLOW_TRACKING_URI:
            # the environment, put back next, then decides, as before the session.
            mlflow.set_tracking_uri(None)
        self._restore_environ()
        saved = self.tracking_uri
        if mlflow is not None and saved is not None and mlflow.get_tracking_uri() != saved:
            # Set in code before the session (``mlflow.set_tracking_uri``).
            mlflow.set_tracking_uri(saved)
            self._restore_environ()
        self._restore_levels()
        if self.sigterm is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self.sigterm)

    def _end_fluent_runs(self, mlflow: Any) -> None:
        """End the fluent runs the session left open above the one active before it."""
        for _ in range(MAX_RUNS_ENDED):
            active = mlflow.active_run()
            if active is None or active.info.run_id == self.active_run_id:
                return
            with contextlib.suppress(Exception):
                mlflow.end_run("KILLED")
            after = mlflow.active_run()
            if after is not None and after.info.run_id == active.info.run_id:
                return

    def _restore_environ(self) -> None:
        for name in set(_environ()) - set(self.environ):
            del os.environ[name]
        os.environ.update(self.environ)

    def _restore_levels(self) -> None:
        for name, level in self.levels.items():
            logging.getLogger(name).setLevel(level)
        if "optuna" not in self.levels and sys.modules.get("optuna") is not None:
            # Imported during the session, at Optuna's INFO, which the session may lower.
            logging.getLogger("optuna").setLevel(logging.INFO)
