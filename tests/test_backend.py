"""The shared MLflow helpers, each covered once: paged search, UI links, group runs, directions,
and telling a lost server from a refused request."""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import multiprocessing.forkserver
from pathlib import Path

import pytest
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from pytest_mlexp.backend import tags as T
from pytest_mlexp.backend import uris
from pytest_mlexp.backend.client import Backend
from pytest_mlexp.backend.errors import is_transient
from pytest_mlexp.backend.groups import find_or_create_group
from pytest_mlexp.backend.search import first_run, search_runs, tag_equals
from pytest_mlexp.directions import BestSpec, direction_of


class CountingClient(MlflowClient):
    """A real client that counts its ``search_runs`` requests."""

    requests = 0

    def search_runs(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        self.requests += 1
        return super().search_runs(*args, **kwargs)


@pytest.fixture
def store(tmp_path: Path, empty_store: Path) -> str:
    db = tmp_path / "mlflow.db"
    db.write_bytes(empty_store.read_bytes())
    return f"sqlite:///{db}"


def test_paged_search_yields_every_run_and_stops_when_told(store):
    client = CountingClient(store)
    experiment_id = client.create_experiment("paged")
    created = {client.create_run(experiment_id, tags={"n": str(i)}).info.run_id for i in range(7)}

    found = list(search_runs(client, [experiment_id], page_size=3))
    assert {run.info.run_id for run in found} == created
    assert client.requests == 3  # 3 + 3 + 1

    client.requests = 0
    only = first_run(client, [experiment_id], tag_equals("n", "4"))
    assert only is not None
    assert only.data.tags["n"] == "4"
    assert client.requests == 1
    assert list(search_runs(client, [])) == []


def test_ui_links_carry_no_credentials_and_exist_for_servers_only():
    # (Imported as a module: a test module's experiment_* functions are collected.)
    base = uris.ui_base("https://bob:hunter2@mlflow.example:5000/mlflow/")
    assert base == "https://mlflow.example:5000/mlflow"
    assert uris.experiment_link(base, "3") == "https://mlflow.example:5000/mlflow/#/experiments/3"
    assert uris.run_link(base, "3", "abc") == (
        "https://mlflow.example:5000/mlflow/#/experiments/3/runs/abc"
    )
    assert uris.ui_base("sqlite:////tmp/mlflow.db") is None
    assert uris.run_link(None, "3", "abc") is None


def _find_group(store: str) -> str:
    backend = Backend(MlflowClient(store), store, "test")
    return find_or_create_group(
        backend,
        "groups",
        session_id="s1",
        kind=T.KIND_GRID,
        key="experiment_a.py::experiment_a",
        name="experiment_a",
        tags={"team": "vision"},
    )


def test_group_run_is_created_once_by_racing_processes(store):
    MlflowClient(store).create_experiment("groups")
    # Not forks of this process, as xdist workers are not: no store or lock shared by fork.
    # Forks of a fresh server that imported MLflow once (not an import each); two, as
    # `-n 2`, already race for the one group run.
    server = multiprocessing.get_context("forkserver")
    server.set_forkserver_preload(
        ["mlflow.store.tracking.sqlalchemy_store", "mlflow.tracking", "pytest_mlexp.backend.groups"]
    )
    try:
        with concurrent.futures.ProcessPoolExecutor(max_workers=2, mp_context=server) as pool:
            ids = set(pool.map(_find_group, [store] * 4))
    finally:
        server.set_forkserver_preload([])
        multiprocessing.forkserver._forkserver._stop()  # no server outlives the test
    assert len(ids) == 1
    client = MlflowClient(store)
    runs = client.search_runs([client.get_experiment_by_name("groups").experiment_id])
    assert [run.info.run_id for run in runs] == list(ids)
    (run,) = runs
    assert run.info.run_name == "experiment_a"
    assert run.data.tags[T.KIND] == T.KIND_GRID
    assert run.data.tags[T.SESSION_ID] == "s1"
    assert run.data.tags["team"] == "vision"


def test_one_vocabulary_of_directions():
    assert direction_of("val_accuracy").direction == "up"
    assert direction_of("val_accuracy").guessed
    assert direction_of("test/rmse").direction == "down"
    assert direction_of("throughput").direction is None
    configured = direction_of("throughput", {"throughput": "up"})
    assert (configured.direction, configured.guessed) == ("up", False)
    assert BestSpec.parse("loss:min").resolve("loss").direction == "down"
    assert not BestSpec.parse("loss:min").resolve("loss").guessed
    assert str(BestSpec.parse("score:max")) == "score:max"
    with pytest.raises(ValueError, match="bad best metric 'r2:up'"):
        BestSpec.parse("r2:up")


def test_a_lost_server_is_transient_and_a_refused_request_is_not(
    unused_port, mlflow_server, monkeypatch
):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    with pytest.raises(MlflowException) as lost:
        MlflowClient(f"http://127.0.0.1:{unused_port}").get_experiment_by_name("x")
    assert is_transient(lost.value)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "120")  # a busy machine is not a lost server
    with pytest.raises(MlflowException) as refused:
        MlflowClient(mlflow_server.url).get_run("0" * 32)
    assert not is_transient(refused.value)


def test_shared_holders_of_the_store_lock_wait_for_the_creator_not_for_each_other() -> None:
    from pytest_mlexp.backend.locks import machine_lock

    key = ("store", f"test-{id(object())}")
    order: list[str] = []

    def open_store() -> None:
        with machine_lock(*key, shared=True):
            order.append("opened")

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        with machine_lock(*key, shared=True):
            # A second opener gets in while the first holds it (never, if it were exclusive).
            pool.submit(open_store).result(timeout=30)
        with machine_lock(*key):
            order.append("created")
            waiting = pool.submit(open_store)
            done, _ = concurrent.futures.wait([waiting], timeout=0.5)
            assert not done, "an opener did not wait for the store's creation"
        waiting.result(timeout=30)
    assert order == ["opened", "created", "opened"]
