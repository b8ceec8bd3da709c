"""Metric histories read in bulk give what one ``get_metric_history`` per run and metric gives."""

from __future__ import annotations

import math
import uuid

import pytest
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient

from pytest_mlexp.backend.client import Backend
from pytest_mlexp.backend.histories import metric_histories


def _log_runs(client: MlflowClient, runs: int) -> tuple[list[str], str]:
    experiment_id = client.create_experiment(f"histories-{uuid.uuid4().hex[:8]}")
    run_ids = []
    for i in range(runs):
        run_id = client.create_run(experiment_id).info.run_id
        metrics = [Metric("loss", 1 / (s + 1) + i, 1000 + s, s) for s in range(30)]
        metrics += [Metric("acc", 0.5 + i / 100, 5, 0), Metric("odd", math.nan, 6, 0)]
        if i % 2:
            metrics.append(Metric("only_odd", float(i), 7, 3))
        client.log_batch(run_id, metrics=metrics)
        run_ids.append(run_id)
    return run_ids, experiment_id


def _one_by_one(client: MlflowClient, wanted):  # type: ignore[no-untyped-def]
    found = {}
    for run_id, key in wanted:
        points = client.get_metric_history(run_id, key)
        if points:
            found[(run_id, key)] = sorted((m.step, m.value, m.timestamp) for m in points)
    return found


def _compare(backend: Backend, client: MlflowClient, run_ids: list[str]) -> None:
    keys = ("loss", "acc", "odd", "only_odd")
    wanted = [(run_id, key) for run_id in run_ids for key in keys]
    bulk = {pair: sorted(points) for pair, points in metric_histories(backend, wanted).items()}
    expected = _one_by_one(client, wanted)
    assert sorted(bulk) == sorted(expected)
    for pair, points in expected.items():
        for got, want in zip(bulk[pair], points, strict=True):
            assert got[0] == want[0]
            assert got[2] == want[2]
            assert got[1] == pytest.approx(want[1], nan_ok=True)
    assert len(bulk[(run_ids[0], "loss")]) == 30
    assert (run_ids[0], "only_odd") not in bulk
    assert math.isnan(bulk[(run_ids[0], "odd")][0][1])


def test_bulk_histories_on_sqlite(tmp_path, monkeypatch) -> None:
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    def one_query_per_metric(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("all metrics are read as rows in one query")

    monkeypatch.setattr(SqlAlchemyStore, "get_metric_history_bulk", one_query_per_metric)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    run_ids, _ = _log_runs(client, 12)
    _compare(Backend.for_reading(uri, "test"), client, run_ids)


def test_bulk_histories_on_a_server_over_its_run_limit(mlflow_server, monkeypatch) -> None:
    # 3 runs per request instead of 100: the chunks are stitched together.
    monkeypatch.setattr("pytest_mlexp.backend.histories.SERVER_MAX_RUNS", 3)
    client = MlflowClient(tracking_uri=mlflow_server.url)
    run_ids, _ = _log_runs(client, 7)
    _compare(Backend.for_reading(mlflow_server.url, "test"), client, run_ids)
