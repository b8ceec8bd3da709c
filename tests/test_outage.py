"""A server lost mid-session and restarted: after ``mlexp sync`` every value of every cell is there.

Cells log through ``mlflow_run``, through ``mlflow.log_*`` and through
autolog; the grid parent is completed again by ``mlexp sync``, and so is a search's parent.
"""

from __future__ import annotations

import pytest
from mlflow.tracking import MlflowClient

CELLS = 6

#: The third cell stops the server half-way; the cells after it start without one.
OUTAGE = f"""
import mlflow
import pytest
from server_control import stop_server
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

@pytest.mark.mlexp(best="mine:max")
@pytest.mark.parametrize("i", range({CELLS}))
def experiment_cell(mlflow_run, i):
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
    result = lose_server("--mlexp-lineage=none", "--mlexp-autolog=on")
    result.assert_outcomes(passed=CELLS)
    result.stdout.fnmatch_lines(
        [f"mlexp: {CELLS - 2} runs could not reach {server.url}; they are kept in *"]
    )

    server.start()
    up = mlexp(ourtester.path, "sync")
    assert up.returncode == 0, up.stdout + up.stderr
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
        if i < 2:
            # MLflow 3's sklearn autolog logs the model before its training metrics;
            # with the server lost, the model cannot be logged and autolog stops there.
            assert run.data.metrics["training_accuracy_score"] > 0.9, where
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


def test_sync_completes_a_search_parent_again(
    ourtester, losable_server, runs_of, mlexp, lose_server
) -> None:
    """Trials spooled during an outage come back with ``mlexp sync``, and so does their parent."""
    server = losable_server
    ourtester.makepyfile(experiment_search_outage=SEARCH_OUTAGE)
    result = lose_server("--mlexp-lineage=none")
    result.assert_outcomes(passed=TRIALS)

    server.start()
    up = mlexp(ourtester.path, "sync")
    assert up.returncode == 0, up.stdout + up.stderr
    assert (
        f"mlexp search experiment_search_outage.py::experiment_search: {TRIALS} trials, "
        f"{TRIALS} complete, 0 pruned, 0 failed"
    ) in up.stdout, up.stdout

    client = MlflowClient(tracking_uri=server.url)
    runs = runs_of(client, ourtester.path.name, groups=True)
    (parent,) = [r for r in runs if r.data.tags.get("mlexp.kind") == "search"]
    trials = [r for r in runs if r is not parent]
    assert len(trials) == TRIALS
    assert all(t.info.status == "FINISHED" for t in trials)
    assert {t.data.tags["mlflow.parentRunId"] for t in trials} == {parent.info.run_id}
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["mlexp.outcome"] == "passed"
    assert parent.data.tags["mlexp.trials"] == str(TRIALS)
    assert parent.data.tags["mlexp.trials_complete"] == str(TRIALS)
    assert parent.data.metrics["mlexp.trials"] == TRIALS
    best = min(trials, key=lambda t: t.data.metrics["loss"])
    assert parent.data.tags["mlexp.best_run_id"] == best.info.run_id


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


def test_sync_completes_repeated_cells_and_their_grid_again(
    ourtester, losable_server, runs_of, mlexp, lose_server
) -> None:
    """Repeats spooled during an outage come back with ``mlexp sync``; so do their cells' means."""
    server = losable_server
    ourtester.makepyfile(experiment_repeat_outage=REPEAT_OUTAGE)
    result = lose_server("--mlexp-lineage=none")
    result.assert_outcomes(passed=4)

    server.start()
    up = mlexp(ourtester.path, "sync")
    assert up.returncode == 0, up.stdout + up.stderr
    assert "mlexp grid experiment_repeat_outage.py::experiment_repeat: 2 cells, 2 passed" in (
        up.stdout
    ), up.stdout

    client = MlflowClient(tracking_uri=server.url)
    runs = runs_of(client, ourtester.path.name, groups=True)
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
