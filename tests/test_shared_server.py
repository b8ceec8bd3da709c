"""A shared tracking server: PostgreSQL backend under xdist, CI shards, basic auth."""

from __future__ import annotations

import os

import pytest
from mlflow.tracking import MlflowClient

from conftest import logged_metrics

POSTGRES_ENV = "MLEXP_TEST_POSTGRES_URI"

MANY = """
import pytest

@pytest.mark.parametrize("i", range({cells}))
def experiment_many(mlflow_run, i):
    mlflow_run.log_params({{"p" + str(j): j for j in range(5)}})
    mlflow_run.log_metrics({{"m" + str(j): i * j for j in range(5)}})
    mlflow_run.log_metric("curve", i, step=1)
    return {{"score": i}}
"""

#: Keeps one shard of the items, as a CI matrix job would (like pytest-shard).
SHARDING = """
import os

def pytest_collection_modifyitems(items):
    shard, shards = int(os.environ["SHARD"]), int(os.environ["SHARDS"])
    items[:] = [item for i, item in enumerate(items) if i % shards == shard]
"""


@pytest.fixture
def postgres_server(server_factory):  # type: ignore[no-untyped-def]
    uri = os.environ.get(POSTGRES_ENV)
    if not uri:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{POSTGRES_ENV} is not set: .ci/run must start PostgreSQL")
        pytest.skip(
            f"{POSTGRES_ENV} not set: the PostgreSQL tests need a database; start one "
            f'(as root, installs PostgreSQL if missing) with: export {POSTGRES_ENV}="$(bash '
            '.ci/postgres.sh /tmp/mlexp-pg)"'
        )
    import sqlalchemy

    # A fresh database for this test: drop what earlier tests left.
    engine = sqlalchemy.create_engine(uri, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(sqlalchemy.text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    engine.dispose()
    server = server_factory(uri)
    server.start()
    return server


def test_four_workers_against_a_postgres_server_lose_nothing(
    ourtester, postgres_server, runs_of
) -> None:
    cells = 100
    ourtester.makepyfile(experiment_many=MANY.format(cells=cells))
    result = ourtester.runpytest(
        "-n", "4", "--mlexp-tracking-uri", postgres_server.url, "--mlexp-best-metric", "score"
    )  # fmt: skip
    result.assert_outcomes(passed=cells)
    client = MlflowClient(tracking_uri=postgres_server.url)
    runs = runs_of(client, ourtester.path.name, groups=True)
    children = [run for run in runs if "mlexp.kind" not in run.data.tags]
    parents = [run for run in runs if run.data.tags.get("mlexp.kind") == "grid"]
    assert len(parents) == 1
    assert sorted(run.info.run_name for run in children) == sorted(
        f"experiment_many[{i}]" for i in range(cells)
    )
    for run in children:
        i = int(run.info.run_name.split("[")[1].rstrip("]"))
        assert run.info.status == "FINISHED"
        assert run.data.params == {"i": str(i), **{f"p{j}": str(j) for j in range(5)}}
        assert logged_metrics(run) == {
            **{f"m{j}": i * j for j in range(5)},
            "curve": i,
            "score": i,
        }
        assert run.data.tags["mlflow.parentRunId"] == parents[0].info.run_id
    assert parents[0].data.tags["mlexp.grid_size"] == str(cells)
    assert parents[0].data.params["best.i"] == str(cells - 1)


def test_ci_shards_sharing_a_session_id_share_the_parent(
    ourtester, mlflow_server, monkeypatch, runs_of
) -> None:
    ourtester.makepyfile(experiment_many=MANY.format(cells=6))
    ourtester.makeconftest(SHARDING)
    monkeypatch.setenv("MLEXP_SESSION_ID", f"ci-{ourtester.path.name}")
    monkeypatch.setenv("SHARDS", "2")
    for shard in ("0", "1"):
        monkeypatch.setenv("SHARD", shard)
        result = ourtester.runpytest("--mlexp-tracking-uri", mlflow_server.url)
        result.assert_outcomes(passed=3)
    client = MlflowClient(tracking_uri=mlflow_server.url)
    runs = runs_of(client, ourtester.path.name, groups=True)
    parents = [run for run in runs if run.data.tags.get("mlexp.kind") == "grid"]
    assert len(parents) == 1
    assert len(runs) == 7
    assert {run.data.tags.get("mlflow.parentRunId") for run in runs if run not in parents} == {
        parents[0].info.run_id
    }
    # The last shard to finish saw every cell.
    assert parents[0].data.tags["mlexp.grid_size"] == "6"
    assert parents[0].info.status == "FINISHED"


def test_authenticated_server_never_shows_the_password(
    ourtester, server_factory, monkeypatch, tmp_path, runs_of
) -> None:
    password = "Pw-9f3kq27x-secret"
    auth_ini = tmp_path / "auth.ini"
    auth_ini.write_text(
        "[mlflow]\ndefault_permission = READ\n"
        f"database_uri = sqlite:///{tmp_path / 'auth.db'}\nadmin_username = admin\n"
        f"admin_password = {password}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
    )
    monkeypatch.setenv("MLFLOW_AUTH_CONFIG_PATH", str(auth_ini))
    monkeypatch.setenv("MLFLOW_FLASK_SERVER_SECRET_KEY", "test-only-csrf-key")
    server = server_factory(None, "--app-name", "basic-auth")
    server.start()

    ourtester.makepyfile(
        experiment_auth="""
        import pytest

        @pytest.mark.parametrize("alpha", [1, 2])
        def experiment_auth(mlflow_run, alpha):
            mlflow_run.log_text("notes", "notes.txt")
            return {"m": alpha}

        def experiment_fails():
            raise AssertionError("boom")
        """
    )
    # Without credentials the server refuses: a clear error before anything runs.
    refused = ourtester.runpytest("--mlexp-tracking-uri", server.url)
    assert refused.ret == pytest.ExitCode.USAGE_ERROR
    refused.stderr.fnmatch_lines([f"ERROR: mlexp: cannot use tracking store {server.url}*"])

    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "admin")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", password)
    result = ourtester.runpytest("-n", "2", "--mlexp-tracking-uri", server.url, "-v", "-rA")
    outcomes = result.parseoutcomes()
    assert (outcomes.get("passed"), outcomes.get("failed")) == (2, 1), (
        result.stdout.str()[-6000:] + server.log.read_text()[-4000:]
    )
    output = result.stdout.str() + result.stderr.str()
    assert password not in output

    client = MlflowClient(tracking_uri=server.url)
    runs = runs_of(client, ourtester.path.name, groups=True)
    assert len(runs) == 4
    for run in runs:
        texts = [*run.data.params.values(), *run.data.tags.values(), *run.data.params]
        assert not any(password in text for text in texts), run.info.run_name
    # Every file the runs uploaded, read where the server keeps them (one request each
    # through basic auth would cost a password hash on the server, for the same bytes).
    uploaded = [path for path in (server.root / "artifacts").rglob("*") if path.is_file()]
    names = sorted(path.name for path in uploaded)
    assert names.count("notes.txt") == 2, names
    assert "traceback.txt" in names, names
    for path in uploaded:
        assert password.encode() not in path.read_bytes(), path
