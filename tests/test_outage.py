"""A server lost mid-session and back: after ``mlexp sync`` every value of every cell is there.

Cells log through ``mlflow_run``, through ``mlflow.log_*`` and through
autolog; the grid parent is completed again by ``mlexp sync``. Once lost, the
server is not asked again; when it is back before the session's end, the
session syncs itself and completes a search's parent and a grid's.
"""

from __future__ import annotations

import pytest
from mlflow.tracking import MlflowClient

CELLS = 6


#: A conftest: once the item ``DIES_AFTER`` (which stops the server) is done, the server's port
#: accepts each connection and closes it at once, counting them in ``attempts.txt``: how often
#: the session still tried the server after losing it.
DEAD_SERVER = """
import os, socket, threading

DIES_AFTER = "experiment_outage.py::experiment_cell[2]"
dead = {}

def serve(listener):
    while dead["open"]:
        try:
            connection, _ = listener.accept()
        except TimeoutError:
            continue
        dead["connections"] += 1
        connection.close()

def pytest_runtest_logfinish(nodeid):
    if nodeid == DIES_AFTER:
        port = int(os.environ["TEST_SERVER_URL"].rsplit(":", 1)[1])
        listener = socket.create_server(("127.0.0.1", port))  # SO_REUSEADDR on POSIX
        listener.settimeout(0.2)
        dead.update(open=True, connections=0, listener=listener)
        dead["thread"] = threading.Thread(target=serve, args=(listener,), daemon=True)
        dead["thread"].start()

def pytest_unconfigure():
    if dead:
        dead["open"] = False
        dead["thread"].join(timeout=5)
        dead["listener"].close()
        with open("attempts.txt", "w") as out:
            out.write(str(dead["connections"]))
"""

#: The third cell stops the server half-way; the cells after it start without one.
OUTAGE = f"""
import mlflow
import pytest
from server_control import stop_server
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

@pytest.mark.mlexp(best="mine:max", expect={{"mine": ">= 0"}})
@pytest.mark.parametrize("i", range({CELLS}))
def experiment_cell(mlflow_run, i):
    # Autolog's values, not its model: logging one infers its requirements in a subprocess.
    # The universal call, not mlflow.sklearn's: a flavor's own settings outlive the
    # plugin's mlflow.autolog(disable=True) and would stay on in later in-process sessions.
    mlflow.autolog(log_models=False, silent=True)
    mlflow_run.log_param("own_param", i)
    mlflow.log_param("fluent_param", i * 10)
    mlflow.set_tag("fluent_tag", f"tag{{i}}")
    if i == 2:
        mlflow_run.flush()
        stop_server()
    for step in range(3):
        mlflow.log_metric("fluent_loss", i + step / 10, step=step)
    mlflow.log_metrics({{"fluent_a": i, "fluent_b": -i}})
    X, y = load_iris(return_X_y=True)
    LogisticRegression(C=0.5 + i, max_iter=300).fit(X, y)
    mlflow_run.log_metric("mine", float(i))
"""


def test_values_of_both_apis_and_autolog_come_back_after_sync(
    ourtester, losable_server, runs_of, mlexp, lose_server
) -> None:
    server = losable_server
    ourtester.makepyfile(experiment_outage=OUTAGE)
    ourtester.makeconftest(DEAD_SERVER)
    result = lose_server("--mlexp-lineage=none", "--mlexp-autolog=on", "--mlexp-report-md=r.md")
    result.assert_outcomes(passed=CELLS)
    result.stdout.fnmatch_lines(
        [
            "mlexp: the group runs (grids, repeated cells, searches) are not complete: "
            f"the tracking server {server.url} was lost during this session and did not "
            "answer at its end; `mlexp sync` completes them with the spooled runs once the "
            "server is back.",
            f"mlexp: {CELLS - 2} runs could not reach {server.url}; they are kept in *",
        ],
        consecutive=False,
    )
    # Once lost (in cell 2), the server is not asked again: not by the cells after it, nor
    # by the session's end, which probes its /health once.
    assert (ourtester.path / "attempts.txt").read_text() == "1"
    # Runs that exist only in the journal have no page yet, and another id once synced.
    assert "/#/experiments//" not in result.stdout.str()
    result.stdout.fnmatch_lines(
        [f"experiment_cell[[]{i}[]] *FINISHED *pending sync (journal *)" for i in (3, 4, 5)]
    )
    # The markdown report alike: the runs made on the server are linked, the others pending.
    report = (ourtester.path / "r.md").read_text()
    assert report.count(f"]({server.url}/#/experiments/") == 3, report
    assert (
        "Pending sync: "
        + ", ".join(f"`experiment_outage.py::experiment_cell[{i}]`" for i in (3, 4, 5))
        in report
    ), report

    server.start()
    up = mlexp(ourtester.path, "sync")
    assert up.returncode == 0, up.stdout + up.stderr
    # One line per run and a total; not MLflow's own two lines per run it ends.
    synced = [line for line in up.stdout.splitlines() if "sync: experiment_cell[" in line]
    assert len(synced) == CELLS - 2, up.stdout
    assert all(f"{server.url}/#/experiments/" in line for line in synced), up.stdout
    assert "View run" not in up.stdout
    assert f"replayed {CELLS - 2} runs, 0 left" in up.stdout
    assert (
        f"mlexp grid experiment_outage.py::experiment_cell: {CELLS} cells, {CELLS} passed, "
        f"0 failed; best mine={CELLS - 1} (max) at experiment_cell[{CELLS - 1}]"
    ) in up.stdout

    client = MlflowClient(tracking_uri=server.url)
    runs = runs_of(client, ourtester.path.name, groups=True)
    (parent,) = [r for r in runs if r.data.tags.get("mlexp.kind") == "grid"]
    cells = {r.info.run_name: r for r in runs if r is not parent}
    assert sorted(cells) == [f"experiment_cell[{i}]" for i in range(CELLS)]
    for i in range(CELLS):
        run = cells[f"experiment_cell[{i}]"]
        where = f"cell {i}"
        assert run.info.status == "FINISHED", where
        assert run.data.tags["mlexp.outcome"] == "passed", where
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id, where
        assert run.data.params["own_param"] == str(i), where
        assert run.data.params["fluent_param"] == str(i * 10), where
        assert run.data.params["C"] == str(0.5 + i), where  # autolog
        assert run.data.tags["fluent_tag"] == f"tag{i}", where
        assert run.data.metrics["fluent_a"] == i, where
        assert run.data.metrics["fluent_b"] == -i, where
        assert run.data.metrics["mine"] == i, where
        assert run.data.metrics["training_accuracy_score"] > 0.9, where  # autolog
        history = client.get_metric_history(run.info.run_id, "fluent_loss")
        assert sorted((m.step, m.value) for m in history) == [
            (step, i + step / 10) for step in range(3)
        ], where
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["mlexp.grid_size"] == str(CELLS)
    assert parent.data.tags["mlexp.passed"] == str(CELLS)
    best = cells[f"experiment_cell[{CELLS - 1}]"]
    assert parent.data.tags["mlexp.best_run_id"] == best.info.run_id


TRIALS = 6

#: The third trial stops the server half-way; the trials after it start without one.
SEARCH_OUTAGE = f"""
import pytest
from server_control import stop_server

CALLS = []

@pytest.mark.mlexp(search={{"x": "uniform(-5, 5)"}}, trials={TRIALS}, objective="loss:min",
                   sampler="random", seed=0)
def experiment_search(mlflow_run, x):
    CALLS.append(x)
    if len(CALLS) == 3:
        mlflow_run.flush()
        stop_server()
    return {{"loss": (x - 1) ** 2}}
"""


#: A grid whose cells all run without a server: its parent is created in the journal too.
GRID_AFTER = """
import pytest

@pytest.mark.parametrize("lr", [0.1, 0.2])
def experiment_late(lr):
    return {"score": lr * 10}
"""


class RestartsServer:
    """A plugin: the lost server is started again once the items ran, before the session's end."""

    def __init__(self, server) -> None:
        self.server = server

    @pytest.hookimpl(wrapper=True)
    def pytest_runtestloop(self, session):
        try:
            return (yield)
        finally:
            self.server.process.wait(timeout=30)  # stopped by the experiment: reap it
            self.server.start()


def test_a_server_back_before_the_end_gets_the_spooled_runs_and_their_groups(
    ourtester, losable_server, runs_of, mlexp
) -> None:
    """The session syncs itself: trials and cells spooled during the outage, the search's
    parent and the grid's (created in the journal) completed, their lines printed."""
    server = losable_server
    ourtester.makepyfile(experiment_search_outage=SEARCH_OUTAGE, experiment_z_grid=GRID_AFTER)
    result = ourtester.runpytest(
        "-p", "no:randomly", "--mlexp-tracking-uri", server.url,
        "--mlexp-on-tracking-error", "spool", "-W", "ignore::pytest_mlexp.MlexpWarning",
        "--mlexp-lineage=none", plugins=[RestartsServer(server)],
    )  # fmt: skip
    result.assert_outcomes(passed=TRIALS + 2)
    result.stdout.fnmatch_lines(
        [
            f"mlexp: tracking server {server.url} answered again: "
            f"{TRIALS - 2 + 3} of {TRIALS - 2 + 3} spooled runs sent from the journal",
            f"mlexp search experiment_search_outage.py::experiment_search: {TRIALS} trials, "
            f"{TRIALS} complete, 0 pruned, 0 failed*",
            "mlexp grid experiment_z_grid.py::experiment_late: 2 cells, 2 passed, 0 failed*",
        ]
    )
    result.stdout.no_fnmatch_line("*pending sync*")
    result.stdout.no_fnmatch_line("*could not reach*")
    assert mlexp(ourtester.path, "sync").stdout.startswith("mlexp sync: nothing to replay")

    client = MlflowClient(tracking_uri=server.url)
    runs = runs_of(client, ourtester.path.name, groups=True)
    # Every run the terminal lists is the one on the server, with its page.
    for run in runs:
        if "mlexp.kind" not in run.data.tags:
            assert f"/runs/{run.info.run_id}" in result.stdout.str(), run.info.run_name
    (parent,) = [r for r in runs if r.data.tags.get("mlexp.kind") == "search"]
    trials = [r for r in runs if r.info.run_name.startswith("experiment_search[")]
    assert len(trials) == TRIALS
    assert all(t.info.status == "FINISHED" for t in trials)
    assert {t.data.tags["mlflow.parentRunId"] for t in trials} == {parent.info.run_id}
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["mlexp.outcome"] == "passed"
    assert parent.data.tags["mlexp.trials_complete"] == str(TRIALS)
    best = min(trials, key=lambda t: t.data.metrics["loss"])
    assert parent.data.tags["mlexp.best_run_id"] == best.info.run_id
    (grid,) = [r for r in runs if r.data.tags.get("mlexp.kind") == "grid"]
    cells = [r for r in runs if r.info.run_name.startswith("experiment_late[")]
    assert {c.data.tags["mlflow.parentRunId"] for c in cells} == {grid.info.run_id}
    assert grid.info.status == "FINISHED"
    assert grid.data.tags["mlexp.passed"] == "2"


#: Two repeated cells of a grid; the second repeat of the first cell stops the server.
REPEAT_OUTAGE = """
import pytest
from server_control import stop_server

CALLS = []

@pytest.mark.mlexp(repeats=2, best="score:max")
@pytest.mark.parametrize("lr", [0.1, 0.2])
def experiment_repeat(mlflow_run, lr, seed):
    CALLS.append(seed)
    if len(CALLS) == 2:
        mlflow_run.flush()
        stop_server()
    return {"score": lr * 10 + seed}
"""


#: A search whose every trial runs without a server: its parent is created in the journal too.
SEARCH_AFTER = """
import pytest

@pytest.mark.mlexp(search={"x": "uniform(-5, 5)"}, trials=3, objective="loss:min",
                   sampler="random", seed=0)
def experiment_zsearch(x):
    return {"loss": (x - 1) ** 2}
"""


def test_sync_completes_repeated_cells_and_their_grid_again(
    ourtester, losable_server, runs_of, mlexp, lose_server
) -> None:
    """Repeats spooled during an outage come back with ``mlexp sync``; so do their cells' means,
    and a search made while the server was lost."""
    server = losable_server
    ourtester.makepyfile(experiment_repeat_outage=REPEAT_OUTAGE, experiment_zsearch=SEARCH_AFTER)
    result = lose_server("--mlexp-lineage=none")
    result.assert_outcomes(passed=4 + 3)

    server.start()
    up = mlexp(ourtester.path, "sync")
    assert up.returncode == 0, up.stdout + up.stderr
    assert "mlexp grid experiment_repeat_outage.py::experiment_repeat: 2 cells, 2 passed" in (
        up.stdout
    ), up.stdout
    assert (
        "mlexp search experiment_zsearch.py::experiment_zsearch: 3 trials, 3 complete, "
        "0 pruned, 0 failed"
    ) in up.stdout, up.stdout

    client = MlflowClient(tracking_uri=server.url)
    runs = runs_of(client, ourtester.path.name, groups=True)
    (search,) = [r for r in runs if r.data.tags.get("mlexp.kind") == "search"]
    trials = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == search.info.run_id]
    assert len(trials) == 3
    assert search.info.status == "FINISHED"
    assert search.data.tags["mlexp.trials_complete"] == "3"
    best = min(trials, key=lambda t: t.data.metrics["loss"])
    assert search.data.tags["mlexp.best_run_id"] == best.info.run_id
    runs = [r for r in runs if r is not search and r not in trials]
    kinds = {r.info.run_id: r.data.tags.get("mlexp.kind") for r in runs}
    (grid,) = [r for r in runs if kinds[r.info.run_id] == "grid"]
    cells = sorted(
        (r for r in runs if kinds[r.info.run_id] == "cell"), key=lambda r: r.info.run_name
    )
    repeats = [r for r in runs if kinds[r.info.run_id] is None]
    assert len(cells) == 2
    assert len(repeats) == 4
    assert all(r.info.status == "FINISHED" for r in repeats)
    for cell, lr in zip(cells, (0.1, 0.2), strict=True):
        assert cell.info.status == "FINISHED", cell.info.run_name
        assert cell.data.tags["mlflow.parentRunId"] == grid.info.run_id
        assert cell.data.tags["mlexp.repeats"] == "2"
        assert cell.data.tags["mlexp.repeats_passed"] == "2"
        assert cell.data.metrics["score"] == pytest.approx(lr * 10 + 0.5)
    assert grid.info.status == "FINISHED"
    assert grid.data.tags["mlexp.grid_size"] == "2"
    assert grid.data.tags["mlexp.best_run_id"] == cells[1].info.run_id
