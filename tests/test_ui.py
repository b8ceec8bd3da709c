"""What a user sees: the MLflow UI opened as the terminal says, runs told apart, figures offline.

The UI test runs the very command the terminal printed (only the port
changed), from another folder and without the virtualenv on ``PATH``, and
opens the printed link in headless Chromium with every request that leaves
127.0.0.1 refused.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from mlflow.tracking import MlflowClient

from conftest import stop_mlflow_server
from pytest_mlexp.backend import tags as T
from pytest_mlexp.backend.client import Backend
from pytest_mlexp.cli import main as mlexp_main
from pytest_mlexp.groups.naming import session_stamp, stamped_name
from pytest_mlexp.reports.ui_view import VIEW_KEY, VIEW_NAME, read_view_state

EXPERIMENTS = """
import plotly.graph_objects as go
import pytest

@pytest.mark.parametrize("alpha", [0.1, 1.0, 10.0])
def experiment_ridge(mlflow_run, alpha):
    mlflow_run.log_metric("r2", 1 / (1 + alpha))

def experiment_curve(mlflow_run):
    figure = go.Figure(go.Scatter(y=[3.0, 1.0, 2.0], mode="lines+markers"))
    mlflow_run.log_figure(figure, "plots/curve.html")
    return {"loss": 1.0}
"""

#: Where the docs' screenshot of the runs table is written, when asked for.
SCREENSHOT_ENV = "MLEXP_UI_SCREENSHOTS"

#: The project's default store exists before each session (conftest ``_premade_store``).
PREMADE_STORE = True


def printed(result: pytest.RunResult, label: str) -> str:
    """The rest of the terminal line starting with ``label``."""
    found = re.search(rf"^{re.escape(label)} (.+)$", result.stdout.str(), re.M)
    assert found is not None, result.stdout.str()
    return found.group(1)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_ui(command: list[str], cwd: Path, log: Path, port: int, timeout: float = 300.0) -> Any:
    """Run the printed command as a user would, without the virtualenv on PATH."""
    env = {"PATH": "/usr/bin:/bin", "HOME": str(cwd), "LANG": "C.UTF-8"}
    # Not the user's concern, but eight processes: MLflow's job runner for its GenAI jobs.
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
    # One server worker (``--workers``'s variable) serves one browser; MLflow starts four.
    env["MLFLOW_WORKERS"] = "1"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the printed command exited: {log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                return process
        except OSError:
            time.sleep(0.25)
    os.killpg(process.pid, signal.SIGKILL)
    raise AssertionError(f"mlflow ui did not answer in {timeout}s: {log.read_text()[-3000:]}")


def offline_page(browser: Any, blocked: list[str]) -> Any:
    page = browser.new_page(viewport={"width": 1500, "height": 800})
    page.route(
        re.compile(r"^(?!http://127\.0\.0\.1[:/]|data:|blob:|about:)"),
        lambda route: (blocked.append(route.request.url), route.abort()),
    )
    return page


def test_printed_ui_command_opens_the_runs_table_and_figures_offline(ourtester, browser, tmp_path):
    # That MLflow's table-creation lines stay out of the terminal, test_invisible checks.
    ourtester.makepyfile(experiment_ui=EXPERIMENTS)
    result = ourtester.runpytest("-p", "no:randomly")
    result.assert_outcomes(passed=4)

    command = shlex.split(printed(result, "open the MLflow UI with:"))
    store = ourtester.path / "mlflow.db"
    assert command == [
        sys.executable, "-m", "mlflow", "ui",
        "--backend-store-uri", f"sqlite:///{store}",
        "--default-artifact-root", str(ourtester.path / "mlruns"),
        "--port", "5000",
    ]  # fmt: skip
    client = MlflowClient(f"sqlite:///{store}")
    experiment = client.get_experiment_by_name(ourtester.path.name)
    link = printed(result, "then open:")
    assert link == (
        f"http://127.0.0.1:5000/#/experiments/{experiment.experiment_id}/runs"
        f"?workflowType=machine_learning&viewStateShareKey={VIEW_KEY}"
    )
    assert experiment.tags[T.EXPERIMENT_KIND] == "custom_model_development"

    port = free_port()
    command[-1] = str(port)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    process = start_ui(command, elsewhere, tmp_path / "ui.log", port)
    blocked: list[str] = []
    page = offline_page(browser, blocked)
    try:
        page.goto(link.replace(":5000/", f":{port}/"))
        page.get_by_text("matching runs").wait_for(timeout=120_000)
        page.locator(".ag-header-cell[col-id='metrics.`r2`']").wait_for(timeout=30_000)
        # Model training mode on the runs table, in the plugin's saved view.
        assert "/runs?" in page.url
        assert page.get_by_text("Detect Issues").count() == 0
        columns = [h.get_attribute("col-id") for h in page.locator(".ag-header-cell").all()]
        assert {"metrics.`r2`", "metrics.`loss`", "params.`alpha`"} <= set(columns)
        assert page.locator(".ag-row", has_text="experiment_ridge · ").count() == 1
        shots = Path(os.environ.get(SCREENSHOT_ENV, tmp_path))
        page.screenshot(path=str(shots / "ui-runs.png"))

        # The plotly figure renders in the artifact viewer with no network.
        (curve,) = client.search_runs(
            [experiment.experiment_id], "attributes.run_name = 'experiment_curve'"
        )
        page.goto(
            f"http://127.0.0.1:{port}/#/experiments/{experiment.experiment_id}/runs/"
            f"{curve.info.run_id}/artifacts?workflowType=machine_learning"
        )
        page.get_by_text("plots", exact=True).first.wait_for(timeout=120_000)
        page.get_by_text("plots", exact=True).first.click()
        page.get_by_text("curve.html", exact=True).first.click()
        deadline = time.monotonic() + 60
        points = 0
        while True:
            points = sum(f.locator(".scatterlayer .point").count() for f in page.frames)
            if points >= 3 or time.monotonic() > deadline:
                break
            page.wait_for_timeout(200)
        assert points == 3
        page.screenshot(path=str(shots / "ui-figure.png"))
        assert blocked == []
    finally:
        page.close()
        stop_mlflow_server(process)


def test_saved_view_shows_the_sessions_params_and_metrics(ourtester, client):
    ourtester.makepyfile(
        experiment_ui="""
import pytest

@pytest.mark.parametrize("alpha", [0.1, 1.0])
def experiment_ridge(mlflow_run, alpha):
    mlflow_run.log_metric("r2", 1 / (1 + alpha))
    return {"rmse": alpha}
"""
    )
    ourtester.runpytest("-p", "no:randomly").assert_outcomes(passed=2)
    experiment = client.get_experiment_by_name(ourtester.path.name)
    view = experiment.tags[T.SAVED_VIEW_PREFIX + VIEW_KEY]
    state = read_view_state(view)
    assert f'"name": "{VIEW_NAME}"' in view
    # The grid's parent logs its best cell's metrics as best.*: columns too, each next to
    # its cells' metric, so the parent's row in the table is not all "-".
    assert state["selectedColumns"] == [
        "attributes.`Source`", "metrics.`r2`", "metrics.`best.r2`",
        "metrics.`rmse`", "metrics.`best.rmse`", "params.`alpha`",
    ]  # fmt: skip
    assert state["searchFilter"] == "tags.`mlexp.report` IS NULL"
    parent = next(
        r for r in client.search_runs([experiment.experiment_id]) if r.data.tags.get(T.KIND)
    )
    assert parent.data.metrics["best.r2"] == pytest.approx(1 / 1.1)


@pytest.fixture
def fresh_client(tmp_path: Path) -> MlflowClient:
    return MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")


def test_experiments_are_marked_for_model_training_but_a_users_kind_is_kept(fresh_client, tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    untagged = fresh_client.create_experiment("untagged")
    genai = fresh_client.create_experiment("genai", tags={T.EXPERIMENT_KIND: "genai_development"})
    backend = Backend(MlflowClient(uri), uri, "test", (tmp_path / "mlruns").as_uri())
    new = backend.experiment_id("new")
    assert backend.experiment_id("untagged") == untagged
    assert backend.experiment_id("genai") == genai

    def kind(experiment_id: str) -> str | None:
        return fresh_client.get_experiment(experiment_id).tags.get(T.EXPERIMENT_KIND)

    assert kind(new) == "custom_model_development"
    assert kind(untagged) == "custom_model_development"
    assert kind(genai) == "genai_development"


def test_session_stamp_names_group_runs():
    assert session_stamp("20261128-001412-ce68dfe2") == "11-28 00:14:12"
    assert session_stamp("nightly-42") == "nightly-42"
    assert stamped_name("experiment_ridge", "20261128-001412-ce68dfe2", "a1b2c3d4e5f6") == (
        "experiment_ridge · 11-28 00:14:12 · a1b2c3d"
    )
    assert stamped_name("experiment_ridge", "nightly-42") == "experiment_ridge · nightly-42"


@pytest.mark.fresh_store
def test_grid_parents_are_told_apart(ourtester, read_runs):
    """A parent says which session and commit made it, who ran it, and what its grid found."""
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    ourtester.makepyfile(
        experiment_grid="""
import pytest

@pytest.mark.parametrize("alpha", [0.1, 1.0, 10.0])
def experiment_ridge(mlflow_run, alpha):
    if alpha == 10.0:
        raise AssertionError("diverged")
    mlflow_run.log_metric("r2", 1 / (1 + alpha))
"""
    )
    subprocess.run([*git, "init", "-q"], cwd=ourtester.path, check=True)
    subprocess.run([*git, "add", "."], cwd=ourtester.path, check=True)
    subprocess.run([*git, "commit", "-qm", "grid"], cwd=ourtester.path, check=True)
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=ourtester.path, capture_output=True, text=True
    ).stdout.strip()
    result = ourtester.runpytest("-p", "no:randomly")
    result.assert_outcomes(passed=2, failed=1)
    session = re.search(r"^mlexp: tracking .*, session (\S+)$", result.stdout.str(), re.M)
    assert session is not None
    session = session.group(1)

    runs = read_runs(ourtester.path.name, groups=True)
    (parent,) = [r for r in runs if r.data.tags.get(T.KIND) == T.KIND_GRID]
    cell = next(r for r in runs if r.info.run_name == "experiment_ridge[0.1]")
    assert parent.info.run_name == f"experiment_ridge · {session_stamp(session)} · {commit[:7]}"
    for tag in (T.USER, T.GIT_COMMIT, T.GIT_BRANCH, T.SOURCE_NAME, T.SOURCE_TYPE):
        assert parent.data.tags[tag] == cell.data.tags[tag], tag
    note = parent.data.tags[T.NOTE]
    assert f"pytest session `{session}`" in note
    assert "**3 cells: 2 passed, 1 failed.**" in note
    assert (
        "Best r2=0.9091 (max, guessed, logged once) at experiment_ridge[0.1] [alpha=0.1]." in note
    )
    assert "| experiment_ridge[0.1] | 0.1 | 0.9091 |" in note
    assert "experiment_ridge[10.0] |" not in note  # failed cells are not ranked


LARGE_GRID = """
import pytest

@pytest.mark.parametrize("i", range(21))  # one more than reports.terminal.LARGE_GRID
def experiment_big(mlflow_run, i):
    return {"acc": i / 100}

def experiment_single(mlflow_run):
    return {"acc": 1.0}
"""


def test_a_large_grid_shows_its_best_cells_and_a_count(ourtester):
    ourtester.makepyfile(experiment_big=LARGE_GRID)
    lean = ("-p", "no:randomly", "--mlexp-lineage", "none", "--mlexp-artifacts", "off")
    short = ourtester.runpytest(*lean)
    short.assert_outcomes(passed=22)
    rows = [line for line in short.stdout.lines if " FINISHED " in line]
    assert [row.split()[0] for row in rows] == [
        "experiment_big[16]", "experiment_big[17]", "experiment_big[18]",
        "experiment_big[19]", "experiment_big[20]", "experiment_single",
    ]  # fmt: skip
    short.stdout.fnmatch_lines(
        [
            "... and 16 more cells of experiment_big.py::experiment_big (16 passed, "
            "0 failed or killed); -v lists every run"
        ]
    )
    verbose = ourtester.runpytest(*lean, "-v")
    rows = [line for line in verbose.stdout.lines if " FINISHED " in line]
    assert len(rows) == 22
    assert "more cells of" not in verbose.stdout.str()


def test_mlexp_version(capsys):
    with pytest.raises(SystemExit) as exited:
        mlexp_main(["--version"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert re.fullmatch(r"mlexp \S+ \(mlflow 3\.\S+, pytest \S+, Python \S+\)\n", out), out
