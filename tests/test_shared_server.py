"""A shared tracking server: PostgreSQL backend under xdist, CI shards, basic auth."""

from __future__ import annotations

import contextlib
import os
import sqlite3
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from conftest import logged_metrics
from pytest_mlexp.lineage.git import git_state
from pytest_mlexp.runs.identity import current_user

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


def empty_database(uri: str, template: Path) -> None:
    """Leave the database at ``uri`` as a fresh ``mlflow server`` would find it: empty.

    When it holds the tables of this MLflow's schema (the same migration as ``template``, an
    empty sqlite store), only their rows go: the rows the migrations wrote (the tables with
    rows in ``template``) stay, and the server writes its Default experiment again. Migrating
    a new schema is most of a PostgreSQL server's start. Else the schema is dropped.
    """
    import sqlalchemy

    with contextlib.closing(sqlite3.connect(template)) as store:
        head = store.execute("SELECT version_num FROM alembic_version").fetchall()
        tables = [
            name
            for (name,) in store.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
        ]
        seeded = {
            name for name in tables if store.execute(f'SELECT 1 FROM "{name}" LIMIT 1').fetchone()
        }
    engine = sqlalchemy.create_engine(uri, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        inspector = sqlalchemy.inspect(connection)
        existing = set(inspector.get_table_names())
        version = (
            connection.execute(
                sqlalchemy.text("SELECT version_num FROM alembic_version")
            ).fetchall()
            if "alembic_version" in existing
            else None
        )
        if version == head and existing == set(tables):
            emptied = ", ".join(f'"{name}"' for name in sorted(existing - seeded | {"experiments"}))
            connection.execute(sqlalchemy.text(f"TRUNCATE {emptied} RESTART IDENTITY CASCADE"))
        else:
            connection.execute(sqlalchemy.text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    engine.dispose()


@pytest.fixture
def postgres_server(server_factory, server_store):  # type: ignore[no-untyped-def]
    uri = os.environ.get(POSTGRES_ENV)
    if not uri:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{POSTGRES_ENV} is not set: .ci/run must start PostgreSQL")
        pytest.skip(
            f"{POSTGRES_ENV} not set: the PostgreSQL tests need a database; start one "
            f'(as root, installs PostgreSQL if missing) with: export {POSTGRES_ENV}="$(bash '
            '.ci/postgres.sh /tmp/mlexp-pg)"'
        )
    empty_database(uri, server_store)
    server = server_factory(uri)
    server.start()
    return server


def test_four_workers_against_a_postgres_server_lose_nothing(
    ourtester, postgres_server, runs_of
) -> None:
    cells = 40  # ten a worker: enough for them to race; each cell is a dozen server requests
    ourtester.makepyfile(experiment_many=MANY.format(cells=cells))
    result = ourtester.runpytest(
        "-n", "4", "--mlexp-tracking-uri", postgres_server.url, "--mlexp-best-metric", "score",
        "--mlexp-lineage", "none", "--mlexp-artifacts", "off",
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
        # A password checked once per server worker, not hashed again for every request.
        "auth_cache_ttl_seconds = 3600\n"
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
    result = ourtester.runpytest("-n", "1", "--mlexp-tracking-uri", server.url, "-v", "-rA")
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


# -- a team on one server: two checkouts taking turns ---------------------------------------

TEAM = """
import pytest
from features import scale

@pytest.mark.parametrize("alpha", [1, 2])
def experiment_fit(alpha):
    return {"score": scale(alpha)}

@pytest.mark.mlexp(search={"x": "uniform(0, 1)"}, trials=2, objective="score:max",
                   sampler="random", seed=0, study="team-v1")
def experiment_search(x):
    return {"score": x}
"""

#: Optuna's gRPC storage proxy over a journal file: the study a team shares.
GRPC_PROXY = """
import sys, optuna
from optuna.storages.journal import JournalFileBackend
storage = optuna.storages.JournalStorage(JournalFileBackend(sys.argv[1]))
optuna.storages.run_grpc_proxy_server(storage, host="127.0.0.1", port=int(sys.argv[2]))
"""


@pytest.fixture
def grpc_storage(tmp_path, unused_port):  # type: ignore[no-untyped-def]
    """``grpc://127.0.0.1:PORT``: Optuna's gRPC storage proxy, stopped after the test."""
    import signal
    import subprocess
    import sys

    proxy = subprocess.Popen(
        [sys.executable, "-c", GRPC_PROXY, str(tmp_path / "study.log"), str(unused_port)],
        start_new_session=True,
    )
    yield f"grpc://127.0.0.1:{unused_port}"
    os.killpg(proxy.pid, signal.SIGTERM)
    proxy.wait(timeout=30)


def test_two_checkouts_taking_turns_share_a_server(
    pytester, mlflow_server, grpc_storage, git, mlexp, monkeypatch, tmp_path, request
) -> None:
    # Later tests read the user and git state of this process again, as they are then.
    request.addfinalizer(current_user.cache_clear)
    request.addfinalizer(git_state.cache_clear)
    origin = tmp_path / "origin"
    origin.mkdir()
    experiment = f"team-{tmp_path.name}"
    # The team's project: one server, one experiment, one study storage, all committed.
    (origin / "pytest.ini").write_text(
        f"[pytest]\nmlexp_tracking_uri = {mlflow_server.url}\nmlexp_experiment = {experiment}\n"
        f"mlexp_search_storage = {grpc_storage}\nmlexp_lineage = git\n"
    )
    (origin / ".gitignore").write_text(".mlexp/\n__pycache__/\n")
    (origin / "experiment_team.py").write_text(TEAM)
    (origin / "features.py").write_text("def scale(alpha):\n    return alpha / 10\n")
    git(origin, "init", "-q", "-b", "main")
    git(origin, "add", "-A")
    git(origin, "commit", "-qm", "start")
    a, b = tmp_path / "a", tmp_path / "b"
    git(tmp_path, "clone", "-q", str(origin), str(a))
    git(tmp_path, "clone", "-q", str(origin), str(b))
    git(b, "checkout", "-qb", "feature")
    with (b / "features.py").open("a") as out:
        out.write("# a comment\n")
    git(b, "commit", "-qam", "a comment")

    monkeypatch.setenv("MLEXP_EXPERIMENT_PATHS", ".")

    def as_user(user: str) -> None:
        """The next command is ``user``'s; git and the user are read once per process."""
        monkeypatch.setenv("LOGNAME", user)
        git_state.cache_clear()
        current_user.cache_clear()

    def session(checkout, user, *args):  # type: ignore[no-untyped-def]
        monkeypatch.chdir(checkout)
        as_user(user)
        result = pytester.runpytest(
            "--mlexp-reuse", "--mlexp-artifacts", "off", "-p", "no:randomly", *args,
        )  # fmt: skip
        result.assert_outcomes(passed=4)
        return result.stdout.str()

    client = MlflowClient(mlflow_server.url)

    def fits(output):  # type: ignore[no-untyped-def]
        """The grid's runs of the session that printed ``output``: cells by name, and "grid"."""
        session_id = output.split(", session ")[1].split()[0]
        runs = client.search_runs(
            [client.get_experiment_by_name(experiment).experiment_id],
            f"tags.`mlexp.session_id` = '{session_id}' and "
            "attributes.run_name LIKE 'experiment_fit%'",
        )
        return {run.data.tags.get("mlexp.kind") or run.info.run_name: run for run in runs}

    first = fits(session(a, "alice"))
    # An untracked conftest.py: the code changed, and the tree is not clean.
    (a / "conftest.py").write_text("# scratch\n")
    dirty_output = session(a, "alice")
    assert "code changed (conftest.py)" in dirty_output
    dirty = fits(dirty_output)
    assert {run.data.tags["mlexp.git.dirty"] for run in dirty.values()} == {"true"}

    # B, on a feature branch, gated against main: main's clean run, not the newer dirty one.
    feature_output = session(b, "bob", "--mlexp-baseline", "branch:main")
    assert "code changed (features.py)" in feature_output  # the nearest run's difference
    feature = fits(feature_output)
    for name in ("experiment_fit[1]", "experiment_fit[2]"):
        assert feature[name].data.tags["mlexp.baseline.run_id"] == first[name].info.run_id

    # A again, as at first: the runs matching its code are its first ones, older than B's.
    (a / "conftest.py").unlink()
    again_output = session(a, "alice")
    again = fits(again_output)
    assert "mlexp reuse: 2 of 4 runs reused" in again_output
    for name in ("experiment_fit[1]", "experiment_fit[2]"):
        assert again[name].data.tags["mlexp.reused_from"] == first[name].info.run_id

    # One study on the proxy: trial numbers go on across checkouts, no point comes twice.
    trials = client.search_runs(
        [client.get_experiment_by_name(experiment).experiment_id],
        "tags.`mlexp.trial` != ''",
    )
    assert sorted(int(t.data.tags["mlexp.trial"]) for t in trials) == list(range(8))
    assert {t.data.tags["mlexp.search.study"] for t in trials} == {"team-v1"}
    assert len({t.data.params["x"] for t in trials}) == 8
    assert not (a / ".mlexp" / "optuna").exists()

    # mlexp's defaults are the checkout's: B's report is B's session, not A's later one.
    feature_session = feature["experiment_fit[1]"].data.tags["mlexp.session_id"]
    again_session = again["experiment_fit[1]"].data.tags["mlexp.session_id"]
    as_user("bob")
    report = mlexp(b, "report", "-o", "r.html", "--figures", "cdn")
    assert report.returncode == 0, report.stderr
    assert f"(session {feature_session}, the latest of yours: user bob" in report.stdout
    anyone = mlexp(b, "report", "-o", "r.html", "--figures", "cdn", "--anyone")
    assert f"(session {again_session}, the latest of anyone's)" in anyone.stdout
    compared = mlexp(b, "compare", "experiment_fit[1]", "experiment_fit[2]")
    assert compared.returncode == 0, compared.stderr
    ids = compared.stdout.splitlines()[2].split()
    assert ids[2:] == [feature[f"experiment_fit[{i}]"].info.run_id for i in (1, 2)]
    assert "your latest (--anyone: anyone's)" in compared.stdout

    # The same name from another test file: refused, naming both; a node id picks one.
    as_user("alice")
    experiment_id = client.get_experiment_by_name(experiment).experiment_id
    other = client.create_run(
        experiment_id,
        run_name="experiment_fit[1]",
        tags={"mlexp.nodeid": "experiment_wine.py::experiment_fit[1]", "mlflow.user": "alice"},
    )
    client.set_terminated(other.info.run_id)
    refused = mlexp(a, "compare", "experiment_fit[1]", "experiment_fit[2]")
    assert refused.returncode == 2
    assert refused.stderr == (
        "mlexp compare: error: RUN_A 'experiment_fit[1]' names runs of 2 test files: "
        "experiment_team.py::experiment_fit[1], experiment_wine.py::experiment_fit[1]; "
        "give one of these node ids, or a run id\n"
    )
    picked = mlexp(a, "compare", "experiment_team.py::experiment_fit[1]", other.info.run_id)
    assert picked.returncode == 0, picked.stderr
    assert picked.stdout.splitlines()[2].split()[2] == again["experiment_fit[1]"].info.run_id
