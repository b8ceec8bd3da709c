"""An in-process pytest session leaves the process as it found it (``process_state``)."""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Iterator
from typing import Any

import mlflow
import pytest

from conftest import logged_metrics

EXPERIMENT = """
import mlflow

def experiment_fit(mlflow_run):
    mlflow.log_param("alpha", 0.1)
    mlflow_run.log_metric("r2", 0.5)
    return {"loss": 0.1}
"""


def _state() -> dict[str, Any]:
    levels = {
        name: logger.level
        for name, logger in logging.Logger.manager.loggerDict.items()
        if isinstance(logger, logging.Logger) and name.startswith(("mlflow", "optuna", "alembic"))
    }
    active = mlflow.active_run()
    return {
        # pytest itself unsets PYTEST_CURRENT_TEST after an item, the inner session's too.
        "environ": {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"},
        "tracking_uri": mlflow.get_tracking_uri(),
        "active_run": active.info.run_id if active is not None else None,
        "levels": levels,
        "sigterm": signal.getsignal(signal.SIGTERM),
    }


def _changed(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """What differs, down to the environment variables and loggers that changed."""
    changed: dict[str, Any] = {}
    for field, old in before.items():
        new = after[field]
        if isinstance(old, dict):
            # Loggers made during the session (at NOTSET) are no change; those before are.
            names = old.keys() if field == "levels" else old.keys() | new.keys()
            keys = {k for k in names if old.get(k) != new.get(k)}
            if keys:
                changed[field] = {k: (old.get(k), new.get(k)) for k in sorted(keys)}
        elif old != new:
            changed[field] = (old, new)
    return changed


@pytest.fixture
def preset_uri(tmp_path) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """A tracking URI set in code before the session, as a user's conftest might."""
    uri = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    mlflow.set_tracking_uri(uri)
    yield uri
    mlflow.set_tracking_uri(None)  # type: ignore[arg-type]
    os.environ.pop("MLFLOW_TRACKING_URI", None)


def test_embedded_store_session_leaves_the_process_as_it_was(ourtester, read_runs) -> None:
    ourtester.makepyfile(experiment_fit=EXPERIMENT)
    before = _state()
    result = ourtester.runpytest_inprocess("-p", "no:randomly")
    result.assert_outcomes(passed=1)
    assert _changed(before, _state()) == {}
    (run,) = read_runs(ourtester.path.name)
    assert run.data.params == {"alpha": "0.1"}


def test_uri_set_in_code_before_the_session_is_set_again(ourtester, preset_uri, read_runs) -> None:
    ourtester.makepyfile(experiment_fit=EXPERIMENT)
    before = _state()
    ourtester.runpytest_inprocess("-p", "no:randomly").assert_outcomes(passed=1)
    assert _changed(before, _state()) == {}
    assert mlflow.get_tracking_uri() == preset_uri
    # Set in code, it is exported as MLFLOW_TRACKING_URI: the session logs there.
    (run,) = read_runs(ourtester.path.name, uri=preset_uri)
    assert logged_metrics(run) == {"r2": 0.5, "loss": 0.1}


def test_server_session_leaves_the_process_as_it_was(ourtester, mlflow_server) -> None:
    ourtester.makepyfile(experiment_fit=EXPERIMENT)
    before = _state()
    result = ourtester.runpytest_inprocess(
        "-p", "no:randomly", "--mlexp-tracking-uri", mlflow_server.url
    )
    result.assert_outcomes(passed=1)
    assert _changed(before, _state()) == {}
    client = mlflow.MlflowClient(mlflow_server.url)
    experiment = client.get_experiment_by_name(ourtester.path.name)
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.data.params == {"alpha": "0.1"}
