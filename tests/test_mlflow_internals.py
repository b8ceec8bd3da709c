"""MLflow's private names that pytest-mlexp relies on still exist, with the shapes it uses.

All of them are reached through ``pytest_mlexp/backend/mlflow_internals.py``.
When an MLflow release changes one, these tests fail naming that adapter:
fix it there. Also: no other module of the package reaches into MLflow's privates.
"""

from __future__ import annotations

import inspect
import re
import sqlite3
from pathlib import Path

import mlflow
import pytest
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient

from pytest_mlexp.backend import client as backend_client
from pytest_mlexp.backend import mlflow_internals
from pytest_mlexp.backend.client import Backend

ADAPTER = "pytest_mlexp/backend/mlflow_internals.py"
PACKAGE = Path(mlflow_internals.__file__).resolve().parent.parent


def broken(what: str) -> str:
    return (
        f"MLflow {mlflow.__version__} changed {what}, which {ADAPTER} relies on "
        f"(checked against MLflow {mlflow_internals.CHECKED_AGAINST}): update that adapter"
    )


def test_the_store_behind_a_client_and_its_metric_table(tmp_path) -> None:
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    store = mlflow_internals.tracking_store(client)
    assert store is not None, broken("MlflowClient._tracking_client.store")
    assert hasattr(store, "ManagedSessionMaker"), broken("SqlAlchemyStore.ManagedSessionMaker")
    experiment_id = client.create_experiment("internals")
    run_id = client.create_run(experiment_id).info.run_id
    client.log_batch(run_id, metrics=[Metric("m", 1.5, 7, 2), Metric("m", float("nan"), 8, 3)])
    try:
        rows = mlflow_internals.metric_rows(store, [run_id], ["m"])
    except Exception as exc:  # pragma: no cover - only when MLflow changed
        pytest.fail(broken(f"its metric table model (SqlMetric): {exc!r}"))
    assert sorted(rows, key=lambda row: row[2])[0] == (run_id, "m", 2, 1.5, 7), broken("SqlMetric")
    assert str(sorted(rows, key=lambda row: row[2])[1][3]) == "nan", broken("SqlMetric.is_nan")


def test_the_fluent_api_stack_of_active_runs(tmp_path) -> None:
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    run = client.create_run(client.create_experiment("internals"))
    try:
        mlflow_internals.push_active_run(run)
    except (ImportError, AttributeError, TypeError) as exc:  # pragma: no cover
        pytest.fail(broken(f"mlflow.tracking.fluent._active_run_stack / ActiveRun: {exc!r}"))
    try:
        active = mlflow.active_run()
        assert active is not None, broken("_active_run_stack (mlflow.active_run ignores it)")
        assert active.info.run_id == run.info.run_id, broken("_active_run_stack")
    finally:
        from mlflow.tracking.fluent import _active_run_stack

        _active_run_stack.get().pop()
    assert mlflow.active_run() is None


def test_the_artifact_repository_registry_and_cache() -> None:
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository
    from mlflow.store.artifact.local_artifact_repo import LocalArtifactRepository
    from mlflow.tracking._tracking_service import utils

    made: list[str] = []

    def factory(artifact_uri: str, tracking_uri: str | None = None, **_: object) -> object:
        made.append(artifact_uri)
        return LocalArtifactRepository("/tmp")

    try:
        mlflow_internals.register_artifact_repository("mlexp-internals-test", factory)
    except (ImportError, AttributeError) as exc:  # pragma: no cover
        pytest.fail(broken(f"_artifact_repository_registry.register: {exc!r}"))
    get_artifact_repository("mlexp-internals-test://x/y")
    assert made == ["mlexp-internals-test://x/y"], broken("the artifact repository registry")

    assert hasattr(utils, "_artifact_repos_cache"), broken("_tracking_service.utils cache")
    utils._artifact_repos_cache["mlexp-internals-run"] = object()
    mlflow_internals.forget_artifact_repository("mlexp-internals-run")
    assert "mlexp-internals-run" not in utils._artifact_repos_cache, broken("the repo cache")


@pytest.mark.parametrize("method", sorted(mlflow_internals.REST_STORE_OVERRIDES))
def test_the_rest_store_methods_the_spool_overrides(method: str) -> None:
    base = getattr(mlflow_internals.RestStore, method, None)
    assert base is not None, broken(f"RestStore.{method} (gone)")
    parameters = tuple(inspect.signature(base).parameters)
    assert parameters == mlflow_internals.REST_STORE_OVERRIDES[method], broken(
        f"RestStore.{method}'s parameters: now {parameters}"
    )


def test_sqlite_pragmas_through_sqlalchemys_engine_event(tmp_path) -> None:
    uri = f"sqlite:///{tmp_path / 'wal.db'}"
    Backend.for_session(uri, "test", artifact_location=None, experiment="pragmas")
    other = tmp_path / "other.db"
    from sqlalchemy import create_engine, text

    for database, expected in ((tmp_path / "wal.db", 1), (other, 2)):  # NORMAL=1, FULL=2
        engine = create_engine(f"sqlite:///{database}")
        with engine.connect() as connection:
            assert connection.execute(text("PRAGMA synchronous")).scalar() == expected, database
        engine.dispose()
    # A plain sqlite3 connection to the store is left alone.
    with sqlite3.connect(tmp_path / "wal.db") as plain:
        assert plain.execute("PRAGMA synchronous").fetchone()[0] == 2
    assert backend_client._CHECKPOINT_SYNCED


def test_no_other_module_reaches_into_mlflow_privates() -> None:
    private = re.compile(
        r"_tracking_client|_active_run_stack|_artifact_repository_registry|_artifact_repos_cache"
        r"|SqlMetric|ManagedSessionMaker|mlflow[\w.]*\._\w+"
    )
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "mlflow_internals.py":
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if private.search(line) and not line.lstrip().startswith("#"):
                found.append(f"{path.relative_to(PACKAGE)}:{number}: {line.strip()}")
    assert found == [], f"MLflow's private names belong in {ADAPTER} only"
