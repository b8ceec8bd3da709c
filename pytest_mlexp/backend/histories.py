"""Metric histories of many runs at once, in as few requests as the store allows.

``MlflowClient`` offers one history per request (``get_metric_history(run_id,
key)``): 600 requests for a report of 200 runs with 3 metrics. Instead:

- a database store (sqlite, PostgreSQL, MySQL) answers one query per 500
  runs, reading the points of every metric as plain rows through MLflow's own
  table model (building one ORM object per point would cost more than the
  query); if that model ever changes, MLflow's ``get_metric_history_bulk``
  (one query per metric) takes over;
- a tracking server answers one request per metric and 100 runs, through the
  endpoint MLflow's UI reads, ``/ajax-api/2.0/mlflow/metrics/get-history-bulk``;
- any other store, or a bulk answer that may have been cut at its limit, is
  read one history at a time.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from . import mlflow_internals, uris

#: The server's limits for one bulk request.
SERVER_MAX_RUNS = 100
SERVER_MAX_POINTS = 25_000
#: Runs per query on a database store (well under SQLite's bound-variable limit).
DATABASE_MAX_RUNS = 500
BULK_ENDPOINT = "/ajax-api/2.0/mlflow/metrics/get-history-bulk"

#: One logged value: (step, value, timestamp in ms).
Point = tuple[int, float, int]
#: (run id, metric key) -> its points; pairs without any point are absent.
Histories = dict[tuple[str, str], list[Point]]


def metric_histories(backend: Any, wanted: Iterable[tuple[str, str]]) -> Histories:
    """Every logged value of each wanted ``(run id, metric key)``."""
    by_key: dict[str, list[str]] = {}
    for run_id, key in wanted:
        by_key.setdefault(key, []).append(run_id)
    if not by_key:
        return {}
    store = _database_store(backend)
    if store is not None:
        try:
            return _from_database(store, by_key)
        except Exception:
            pass  # MLflow's table model changed: its bulk query below still works.
    histories: Histories = {}
    server = uris.is_server(backend.uri)
    chunk = SERVER_MAX_RUNS if server else DATABASE_MAX_RUNS
    for key, run_ids in by_key.items():
        for start in range(0, len(run_ids), chunk):
            ids = run_ids[start : start + chunk]
            rows: list[tuple[str, int, float, int]] | None = None
            if store is not None:
                found = store.get_metric_history_bulk(ids, key, max_results=SERVER_MAX_POINTS)
                rows = [(m.run_id, m.step, m.value, m.timestamp) for m in found]
            elif server:
                rows = _from_server(backend.uri, ids, key)
            if rows is None or len(rows) >= SERVER_MAX_POINTS:
                # No bulk reading here, or the answer may be cut at its limit.
                for run_id in ids:
                    history = backend.client.get_metric_history(run_id, key)
                    if history:
                        histories[(run_id, key)] = [(m.step, m.value, m.timestamp) for m in history]
                continue
            for run_id, step, value, timestamp in rows:
                histories.setdefault((run_id, key), []).append(
                    (int(step), float(value), int(timestamp))
                )
    return histories


def _database_store(backend: Any) -> Any:
    """The client's SQL store when it has MLflow's bulk query (sqlite, PostgreSQL, MySQL)."""
    if uris.scheme(backend.uri) not in uris.DB_SCHEMES:
        return None
    store = mlflow_internals.tracking_store(backend.client)
    return store if hasattr(store, "get_metric_history_bulk") else None


def _from_database(store: Any, by_key: dict[str, list[str]]) -> Histories:
    """Every point of the wanted metrics, as rows: one query per ``DATABASE_MAX_RUNS`` runs."""
    keys = set(by_key)
    run_ids = sorted({run_id for ids in by_key.values() for run_id in ids})
    wanted = {(run_id, key) for key, ids in by_key.items() for run_id in ids}
    histories: Histories = {}
    for start in range(0, len(run_ids), DATABASE_MAX_RUNS):
        ids = run_ids[start : start + DATABASE_MAX_RUNS]
        for run_id, key, step, value, timestamp in mlflow_internals.metric_rows(store, ids, keys):
            if (run_id, key) in wanted:
                histories.setdefault((run_id, key), []).append((step, value, timestamp))
    return histories


def _from_server(uri: str, run_ids: Sequence[str], key: str) -> list[tuple[str, int, float, int]]:
    from mlflow.utils.credentials import get_default_host_creds
    from mlflow.utils.rest_utils import http_request_safe

    response = http_request_safe(  # type: ignore[no-untyped-call]
        get_default_host_creds(uri),  # type: ignore[no-untyped-call]
        BULK_ENDPOINT,
        "GET",
        params={"run_id": list(run_ids), "metric_key": key, "max_results": SERVER_MAX_POINTS},
    )
    return [
        (m["run_id"], int(m.get("step", 0)), float(m["value"]), int(m.get("timestamp", 0)))
        for m in response.json().get("metrics", [])
    ]


def latest_points(client: Any, run_id: str) -> dict[str, Point]:
    """Each metric's latest logged value of one run, as MLflow keeps it: ``key -> point``.

    MLflow's latest value is the one of the highest step, then the latest
    timestamp (``SqlAlchemyStore._update_latest_metrics_if_necessary``); the
    run's ``RunData`` holds it with its step and timestamp.
    """
    data = client.get_run(run_id).data
    metrics = getattr(data, "_metric_objs", None)
    if metrics is None:  # no step or timestamp kept: the values alone
        return {str(key): (0, float(value), 0) for key, value in data.metrics.items()}
    return {str(m.key): (int(m.step or 0), float(m.value), int(m.timestamp or 0)) for m in metrics}
