"""The same experiments, unchanged, against a real ``mlflow server`` on 127.0.0.1."""

from __future__ import annotations

import socket

import pytest
from mlflow.tracking import MlflowClient

from conftest import logged_metrics


def test_grid_against_a_tracking_server(ourtester, mlflow_server, read_runs):
    ourtester.makepyfile(
        experiment_remote="""
        import mlflow
        import pytest

        @pytest.mark.parametrize("depth", [2, 4])
        def experiment_remote(mlflow_run, depth):
            mlflow.log_metric("fluent", depth)
            mlflow_run.log_metrics({"loss": 1 / depth}, step=0)
            mlflow_run.log_dict({"depth": depth}, "meta/config.json")
            assert depth < 4, "too deep"
            return {"acc": 1 - 1 / depth}
        """
    )
    # Credentials in the URI: an unauthenticated server ignores them, and
    # they must appear nowhere.
    uri = mlflow_server.url.replace("http://", "http://alice:pa55word@")
    result = ourtester.runpytest(
        "-p", "no:randomly", "--mlexp-tracking-uri", uri, "--mlexp-experiment", "remote-grid"
    )
    result.assert_outcomes(passed=1, failed=1)
    output = result.stdout.str() + result.stderr.str()
    assert "pa55word" not in output
    result.stdout.fnmatch_lines(
        [
            f"mlexp: tracking http://alice:***@127.0.0.1:{mlflow_server.port} "
            "(--mlexp-tracking-uri), experiment 'remote-grid', figures inline, session *",
            # A link to the run's page opens as printed: no user, no password.
            "experiment_remote[[]2[]]  FINISHED  loss=0.5 acc=0.5 fluent=2  "
            f"http://127.0.0.1:{mlflow_server.port}/#/experiments/*/runs/*",
        ]
    )

    client = MlflowClient(mlflow_server.url)
    passed, failed = read_runs("remote-grid", mlflow_server.url)
    assert passed.info.status == "FINISHED"
    assert failed.info.status == "FAILED"
    assert passed.data.params == {"depth": "2"}
    assert logged_metrics(passed) == {"fluent": 2.0, "loss": 0.5, "acc": 0.5}
    assert "AssertionError: too deep" in failed.data.tags["mlexp.error"]
    artifacts = {a.path for a in client.list_artifacts(failed.info.run_id, "mlexp")}
    assert artifacts == {"mlexp/traceback.txt"}
    assert client.list_artifacts(passed.info.run_id, "meta")[0].path == "meta/config.json"
    for run in (passed, failed):
        assert not any("pa55word" in value for value in run.data.tags.values())
        assert f"/runs/{run.info.run_id}" in result.stdout.str()


def test_server_stopped_before_the_session(ourtester):
    # A stopped server is a port nothing listens on: no server need start to be stopped.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    ourtester.makepyfile(experiment_x="def experiment_x(): pass")
    result = ourtester.runpytest("--mlexp-tracking-uri", url)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [f"ERROR: mlexp: tracking server {url} (from --mlexp-tracking-uri) is unreachable:*"]
    )
