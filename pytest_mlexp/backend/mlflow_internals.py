"""Every MLflow name pytest-mlexp uses that MLflow does not document as public, in one place.

Checked against MLflow 3.17.2 (the version installed when this was written;
pyproject.toml accepts mlflow>=3.1). ``tests/test_mlflow_internals.py`` checks
each name and signature used here and fails, naming this module, when an
MLflow release changes one of them: fix it here, nowhere else.

What has a public API does not come here: sqlite pragmas go through
SQLAlchemy's ``event.listen(Engine, "connect", ...)``, the fluent API's run
through ``mlflow.start_run(run_id=...)`` where the store can answer for it,
the spool's store through MLflow's ``mlflow.tracking_store`` entry point.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

from mlflow.store.tracking.rest_store import RestStore

__all__ = [
    "CHECKED_AGAINST",
    "REST_STORE_OVERRIDES",
    "RestStore",
    "forget_artifact_repository",
    "metric_rows",
    "push_active_run",
    "register_artifact_repository",
    "tracking_store",
]

#: The MLflow version these names were checked against.
CHECKED_AGAINST = "3.17.2"

#: (run id, metric key, step, value, timestamp in ms) of one logged metric value.
MetricRow = tuple[str, str, int, float, int]


def tracking_store(client: Any) -> Any:
    """The store behind an ``MlflowClient`` (``client._tracking_client.store``), or None."""
    return getattr(getattr(client, "_tracking_client", None), "store", None)


def metric_rows(store: Any, run_ids: Iterable[str], keys: Iterable[str]) -> list[MetricRow]:
    """Every value of the metrics ``keys`` of ``run_ids`` in a SQL store, in one query.

    Reads MLflow's table model (``SqlMetric``) through the store's
    ``ManagedSessionMaker`` as plain rows: one ORM object per point would cost
    more than the query.
    """
    from mlflow.store.tracking.dbmodels.models import SqlMetric

    with store.ManagedSessionMaker() as session:
        rows = (
            session.query(
                SqlMetric.run_uuid,
                SqlMetric.key,
                SqlMetric.step,
                SqlMetric.value,
                SqlMetric.timestamp,
                SqlMetric.is_nan,
            )
            .filter(SqlMetric.run_uuid.in_(list(run_ids)), SqlMetric.key.in_(list(keys)))
            .all()
        )
    return [
        (run_id, key, int(step), math.nan if is_nan else float(value), int(timestamp))
        for run_id, key, step, value, timestamp, is_nan in rows
    ]


def push_active_run(run: Any) -> None:
    """Put ``run`` on top of the fluent API's active runs without asking any store for it.

    What ``mlflow.start_run`` does once it has the run (``_active_run_stack``,
    ``ActiveRun``); for a run only the spool's journal knows.
    """
    from mlflow.tracking.fluent import ActiveRun, _active_run_stack

    _active_run_stack.get().append(ActiveRun(run))  # type: ignore[no-untyped-call]


def register_artifact_repository(scheme: str, factory: Callable[..., Any]) -> None:
    """Make ``factory(artifact_uri, tracking_uri=, registry_uri=)`` the repository of ``scheme``.

    MLflow's public way is the ``mlflow.artifact_repository`` entry point, which
    needs a reinstall to change; this registers in the same registry at run time.
    """
    from mlflow.store.artifact.artifact_repository_registry import _artifact_repository_registry

    _artifact_repository_registry.register(scheme, factory)  # type: ignore[no-untyped-call]


def forget_artifact_repository(run_id: str) -> None:
    """Drop MLflow's cached artifact repository of a run: the next upload asks the store again."""
    from mlflow.tracking._tracking_service import utils

    utils._artifact_repos_cache.pop(run_id, None)


#: The methods of MLflow's REST store (``RestStore``, the base of the spool's
#: ``mlflow.tracking_store`` plugin, ``spool.store.SpoolingStore``) that it overrides.
REST_STORE_OVERRIDES: dict[str, tuple[str, ...]] = {
    "log_metric": ("self", "run_id", "metric"),
    "log_param": ("self", "run_id", "param"),
    "set_tag": ("self", "run_id", "tag"),
    "log_batch": ("self", "run_id", "metrics", "params", "tags"),
    "update_run_info": ("self", "run_id", "run_status", "end_time", "run_name"),
    "get_run": ("self", "run_id"),
    "create_run": ("self", "experiment_id", "user_id", "start_time", "tags", "run_name"),
    "get_logged_model": ("self", "model_id", "allow_deleted"),
    # Every request it sends: none once the server is lost.
    "_call_endpoint": (
        "self",
        "api",
        "json_body",
        "endpoint",
        "retry_timeout_seconds",
        "response_proto",
    ),
}
