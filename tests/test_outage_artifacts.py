"""Files the fluent API logs while the server is lost are spooled, and ``mlexp sync`` uploads them.

``mlflow.log_artifact``, ``log_figure``, ``log_dict`` and ``log_text`` called by
an experiment, in a run that lost its server half-way and in runs started
without one, come back after ``mlexp sync`` like ``mlflow_run``'s files.
"""

from __future__ import annotations

import json
from pathlib import Path

from mlflow.tracking import MlflowClient

CELLS = 3

#: The second cell stops the server between two uploads; the third starts without one.
FILES = f"""
import mlflow
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pytest
from server_control import stop_server

@pytest.mark.parametrize("i", range({CELLS}))
def experiment_files(mlflow_run, tmp_path, i):
    mlflow.log_text(f"before {{i}}", "notes/before.txt")
    if i == 1:
        mlflow_run.flush()
        stop_server()
    data = tmp_path / "data.csv"
    data.write_text(f"x,y\\n{{i}},{{i * 2}}\\n")
    mlflow.log_artifact(str(data))
    mlflow.log_artifact(str(data), artifact_path="nested/deeper")
    mlflow.log_dict({{"cell": i, "ok": True}}, "dicts/cell.json")
    figure, axes = plt.subplots()
    axes.plot([0, 1], [0, i])
    mlflow.log_figure(figure, "plots/line.png")
    plt.close(figure)
    mlflow_run.log_text(f"own {{i}}", "own.txt")
"""


def test_fluent_files_logged_during_an_outage_come_back_after_sync(
    ourtester, losable_server, runs_of, tmp_path, mlexp
) -> None:
    server = losable_server
    ourtester.makepyfile(experiment_files=FILES)
    result = ourtester.runpytest(
        "-p", "no:randomly", "--mlexp-tracking-uri", server.url,
        "--mlexp-on-tracking-error", "spool", "-W", "ignore::pytest_mlexp.MlexpWarning",
    )  # fmt: skip
    server.process.wait(timeout=30)
    result.assert_outcomes(passed=CELLS)
    result.stdout.fnmatch_lines([f"mlexp: {CELLS - 1} runs could not reach {server.url}; *"])
    journal = ourtester.path / ".mlexp" / "journal"
    assert len(list(journal.glob("*.jsonl"))) == CELLS - 1

    server.start()
    up = mlexp(ourtester.path, "sync")
    assert up.returncode == 0, up.stdout + up.stderr
    assert f"replayed {CELLS - 1} runs, 0 left" in up.stdout

    client = MlflowClient(tracking_uri=server.url)
    runs = {r.info.run_name: r for r in runs_of(client, ourtester.path.name)}
    assert sorted(runs) == [f"experiment_files[{i}]" for i in range(CELLS)]
    for i in range(CELLS):
        run = runs[f"experiment_files[{i}]"]
        where = f"cell {i}"
        assert run.info.status == "FINISHED", where
        run_id = run.info.run_id
        folder = tmp_path / f"cell{i}"
        folder.mkdir()

        def read(path: str, run_id: str = run_id, folder=folder) -> bytes:  # type: ignore[no-untyped-def]
            return Path(client.download_artifacts(run_id, path, str(folder))).read_bytes()

        assert read("notes/before.txt") == f"before {i}".encode(), where
        assert read("data.csv") == f"x,y\n{i},{i * 2}\n".encode(), where
        assert read("nested/deeper/data.csv") == f"x,y\n{i},{i * 2}\n".encode(), where
        assert json.loads(read("dicts/cell.json")) == {"cell": i, "ok": True}, where
        assert read("plots/line.png").startswith(b"\x89PNG"), where
        assert read("own.txt") == f"own {i}".encode(), where
