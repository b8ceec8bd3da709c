"""Faults: a server unreachable at start, lost mid-session (fail or spool + sync)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from mlflow.tracking import MlflowClient

from conftest import logged_metrics

#: Experiments that lose the server in the middle: the second one stops it.
LOSING = """
from server_control import stop_server

def experiment_1_before(mlflow_run):
    mlflow_run.log_metric("m", 1)

def experiment_2_during(mlflow_run):
    mlflow_run.log_param("p", "kept")
    mlflow_run.flush()
    stop_server()
    mlflow_run.log_metric("m", 2)
    mlflow_run.log_metric("m", 2.5, step=1)

def experiment_3_after(mlflow_run, tmp_path):
    mlflow_run.log_params({"q": 3})
    (tmp_path / "model.txt").write_text("weights")
    mlflow_run.log_artifact(tmp_path / "model.txt")
    return {"m": 3}
"""


def test_unreachable_server_at_start_is_a_usage_error(ourtester, unused_port) -> None:
    ourtester.makepyfile(experiment_a="def experiment_a():\n    pass\n")
    port = unused_port
    result = ourtester.runpytest("--mlexp-tracking-uri", f"http://bob:s3cret@127.0.0.1:{port}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            f"ERROR: mlexp: tracking server http://bob:***@127.0.0.1:{port} "
            "(from --mlexp-tracking-uri) is unreachable: *Check that `mlflow server` is running*"
        ]
    )
    assert "s3cret" not in result.stdout.str() + result.stderr.str()
    result.stdout.no_fnmatch_line("*experiment_a*PASSED*")


def test_bad_policy_is_a_usage_error(ourtester) -> None:
    ourtester.makepyfile(experiment_a="def experiment_a():\n    pass\n")
    result = ourtester.runpytest("--mlexp-on-tracking-error", "retry")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: --mlexp-on-tracking-error: unknown policy 'retry' for a lost tracking "
            "server; accepted: fail, spool"
        ]
    )


def test_lost_server_spools_runs_that_sync_replays_once(
    ourtester, losable_server, lose_server, runs_of, mlexp
) -> None:
    server = losable_server
    ourtester.makepyfile(experiment_lose=LOSING)
    result = lose_server()
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(
        [
            f"mlexp: 2 runs could not reach {server.url}; they are kept in *.mlexp/journal. "
            f"Replay them with: cd {ourtester.path} && {sys.executable} -m pytest_mlexp sync"
        ]
    )
    journal = ourtester.path / ".mlexp" / "journal"
    assert len(list(journal.glob("*.jsonl"))) == 2

    # Nothing can be replayed while the server is down; nothing is lost either.
    down = mlexp(ourtester.path, "sync")
    assert down.returncode == 1, down.stdout + down.stderr
    assert "replayed 0 runs, 2 left" in down.stdout
    assert len(list(journal.glob("*.jsonl"))) == 2

    # The command as printed, from elsewhere, in a shell whose PATH has no virtualenv (not
    # activated), replays them; a second sync replays nothing (the command's own process is
    # paid once: the second is run in this one).
    server.start()
    printed = result.stdout.str().split("Replay them with: ", 1)[1].splitlines()[0]
    bare_path = {**os.environ, "PATH": "/usr/bin:/bin"}
    up = subprocess.run(printed, shell=True, cwd="/", env=bare_path, capture_output=True, text=True)
    assert up.returncode == 0, up.stdout + up.stderr
    assert "replayed 2 runs, 0 left" in up.stdout
    again = mlexp(ourtester.path, "sync")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "nothing to replay" in again.stdout

    client = MlflowClient(tracking_uri=server.url)
    runs = {run.info.run_name: run for run in runs_of(client, ourtester.path.name, groups=True)}
    assert sorted(runs) == ["experiment_1_before", "experiment_2_during", "experiment_3_after"]
    during, after = runs["experiment_2_during"], runs["experiment_3_after"]
    assert during.info.status == after.info.status == "FINISHED"
    assert during.data.params == {"p": "kept"}
    assert [(m.step, m.value) for m in client.get_metric_history(during.info.run_id, "m")] == [
        (0, 2.0),
        (1, 2.5),
    ]
    assert during.data.tags["mlexp.outcome"] == "passed"
    assert after.data.params == {"q": "3"}
    assert logged_metrics(after) == {"m": 3.0}
    assert after.data.tags["mlexp.nodeid"] == "experiment_lose.py::experiment_3_after"
    # The spooled run's own artifact, and its code lineage, replayed.
    paths = [a.path for a in client.list_artifacts(after.info.run_id)]
    assert paths == ["code", "lineage", "model.txt"]
    assert len(client.get_metric_history(after.info.run_id, "m")) == 1


def test_lost_server_fails_the_items_and_the_next_session_kills_the_run(
    ourtester, losable_server, lose_server, runs_of
) -> None:
    server = losable_server
    ourtester.makepyfile(experiment_lose=LOSING)
    # A process of its own, whose death the next session finds.
    result = lose_server(policy="fail", own_process=True)
    # 1 passed; 2 passed its call but its run could not be completed: error at teardown;
    # 3 could not create its run: error at setup.
    assert result.parseoutcomes()["passed"] == 2
    assert result.parseoutcomes()["errors"] == 2
    result.stdout.fnmatch_lines(
        [
            "*ERROR at setup of experiment_3_after*",
            f"*API request to {server.url}/api/2.0/mlflow/runs/create failed*",
        ]
    )
    result.stdout.fnmatch_lines(
        [f"mlexp: could not record run * in {server.url}: MlflowException: API request to *"]
    )
    assert not (ourtester.path / ".mlexp" / "journal").exists()

    server.start()
    client = MlflowClient(tracking_uri=server.url)
    runs = {run.info.run_name: run for run in runs_of(client, ourtester.path.name, groups=True)}
    assert runs["experiment_2_during"].info.status == "RUNNING"
    ourtester.makepyfile(experiment_lose="def experiment_next():\n    pass\n")
    ourtester.runpytest("--mlexp-tracking-uri", server.url).assert_outcomes(passed=1)
    during = client.get_run(runs["experiment_2_during"].info.run_id)
    assert during.info.status == "KILLED"


def test_http_retries_are_bounded_unless_set(ourtester, mlflow_server, monkeypatch) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "77")
    ourtester.makepyfile(
        experiment_env="""
        import os

        def experiment_env():
            assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "3"
            assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "77"
        """
    )
    ourtester.runpytest("--mlexp-tracking-uri", mlflow_server.url).assert_outcomes(passed=1)
    assert "MLFLOW_HTTP_REQUEST_MAX_RETRIES" not in os.environ
