"""A newcomer's first hour (issue 23): the command line, reports and storage, as a user meets them.

One project, as a user would write it: a params file, a grid logging a model
and a plotly figure per cell, a search declared in its marker, a gate
baseline; one session that changes the search from the command line
(``--mlexp-set``), keeps the models of the best two cells, loads figures from
plotly's CDN and writes the HTML report. Then ``mlexp runs`` from a
subfolder, ``mlexp report``, and the report opened in Chromium at 1600x1000.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow
import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from pytest_mlexp.backend import tags as T

PARAMS = """\
experiment_grid:
  params: {max_iter: 50}
  grid: {C: [1, 2, 10]}
experiment_other:
  params: {depth: 3}
experiment_typo:
  params: {depth: 4}
"""

GRID = """\
import math

import plotly.graph_objects as go
import pytest


@pytest.mark.mlexp(register="first-hour-clf", best="score")
def experiment_grid(mlflow_run, C, max_iter):
    from sklearn.dummy import DummyClassifier

    model = DummyClassifier().fit([[0], [1]], [0, 1])
    mlflow_run.log_model(model, pip_requirements=["scikit-learn"])
    mlflow_run.log_figure(go.Figure(go.Scatter(x=[1, 2], y=[C, C])), "plots/curve.html")
    for step in range(3):
        mlflow_run.log_metric("loss_curve", C / (step + 1), step=step)
    metrics = {f"m_{i:02d}": C * i for i in range(24)}
    metrics["score"] = -abs(math.log10(C / 2))
    return metrics
"""

SEARCH = """\
import math

import pytest


@pytest.mark.mlexp(search={"lr": "loguniform(1e-3, 1.0)"}, trials=40, objective="loss:min")
def experiment_search(lr):
    return {"loss": abs(math.log10(lr) + 1)}
"""

OTHER = "def experiment_other(depth):\n    return {'x': depth}\n"

FILES = ["experiments/experiment_grid.py", "experiments/experiment_search.py"]

#: The project's default store exists before each session (conftest ``_premade_store``):
#: a newcomer's first session makes it, but its tables are MLflow's work, not under test.
PREMADE_STORE = True


def project(ourtester: pytest.Pytester) -> Path:
    root = ourtester.path
    (root / "experiments").mkdir()
    (root / "experiments" / "params.yaml").write_text(PARAMS)
    (root / "experiments" / "experiment_grid.py").write_text(GRID)
    (root / "experiments" / "experiment_search.py").write_text(SEARCH)
    (root / "experiments" / "experiment_other.py").write_text(OTHER)
    (root / "baseline.yaml").write_text(
        "".join(
            f"experiments/experiment_grid.py::experiment_grid[{c}]:\n  score: -1.0\n"
            for c in (1, 2, 10)
        )
    )
    return root


def test_a_first_session_as_a_user_meets_it(ourtester, mlexp, browser) -> None:
    root = project(ourtester)
    result = ourtester.runpytest(
        *FILES,
        "-p",
        "no:randomly",
        "--mlexp-set",
        "experiment_search.trials=11",
        "--mlexp-set",
        "experiment_search.sampler=random",
        "--mlexp-set",
        "experiment_search.seed=3",
        "--mlexp-figures",
        "cdn",
        "--mlexp-keep-models",
        "2",
        "--mlexp-html",
        "report.html",
        "--mlexp-baseline-file",
        "baseline.yaml",
    )
    result.assert_outcomes(passed=3 + 11)
    out = result.stdout.str()
    # The grid line names the grid's axis, not the fixed max_iter.
    result.stdout.fnmatch_lines(
        ["mlexp grid experiments/experiment_grid.py::experiment_grid: 3 cells, 3 passed, 0 failed;"
         " best score=0 (max, guessed, best= marker) at experiment_grid[[]2] [[]C=2]; parent run *"]
    )  # fmt: skip
    # experiment_other is defined in a file this session did not collect: no warning;
    # experiment_typo is defined nowhere: warned.
    assert "experiment_other in" not in out
    result.stdout.fnmatch_lines(
        ["*experiment_typo in experiments/params.yaml matches no experiment function collected "
         "in this session; fix the name if it is a typo (no Python file under * defines it)*"]
    )  # fmt: skip
    result.stdout.fnmatch_lines(
        ["mlexp: --mlexp-keep-models 2: removed 1 logged models (*B) of 1 runs below the best 2 "
         "of 2 grids and searches"]
    )  # fmt: skip

    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(root.name)
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    cells = {
        r.info.run_name: r for r in runs if T.GRID in r.data.tags and T.KIND not in r.data.tags
    }
    search = next(r for r in runs if r.data.tags.get(T.KIND) == T.KIND_SEARCH)
    grid_parent = next(r for r in runs if r.data.tags.get(T.KIND) == T.KIND_GRID)
    # --mlexp-set changed the marker's search: 11 trials, random sampler, seed 3.
    assert search.data.tags[T.TRIALS] == "11"
    assert search.data.tags[T.SAMPLER].startswith("random (seed 3)")

    # Keep-models 2: the worst cell (C=10) lost its model's files and entity; the others kept.
    def model_of(name: str) -> Any:
        (output,) = cells[name].outputs.model_outputs
        return client.get_logged_model(output.model_id)

    (worst,) = cells["experiment_grid[10]"].outputs.model_outputs
    with pytest.raises(MlflowException, match="not found"):
        client.get_logged_model(worst.model_id)
    assert list(root.glob(f"mlruns/**/{worst.model_id}")) == []
    for kept in ("experiment_grid[1]", "experiment_grid[2]"):
        model = model_of(kept)
        assert (Path(model.artifact_location.removeprefix("file://")) / "MLmodel").is_file()
    # The best cell's model was registered, as v1 @candidate.
    assert str(client.get_model_version_by_alias("first-hour-clf", "candidate").version) == "1"

    # --mlexp-figures cdn: a figure is a few kB that load plotly.js from its CDN.
    figure = Path(
        client.download_artifacts(cells["experiment_grid[1]"].info.run_id, "plots/curve.html")
    )
    assert figure.stat().st_size < 50_000
    assert "https://cdn.plot.ly/plotly-" in figure.read_text()
    assert (root / "report.html").is_file()

    # A version registered from a run that is not among the best keeps its model.
    from pytest_mlexp.backend.client import Backend
    from pytest_mlexp.models.keep import keep_best_models

    second = model_of("experiment_grid[1]")
    # MLflow's registry looks the logged model up through the global tracking URI.
    mlflow.set_tracking_uri(f"sqlite:///{root / 'mlflow.db'}")
    try:
        client.create_model_version("first-hour-clf", f"models:/{second.model_id}",
                                    run_id=cells["experiment_grid[1]"].info.run_id,
                                    model_id=second.model_id)  # fmt: skip
    finally:
        mlflow.set_tracking_uri("")
    client.set_registered_model_alias("first-hour-clf", "candidate", "2")
    backend = Backend(client, f"sqlite:///{root / 'mlflow.db'}", "test", None)
    session = cells["experiment_grid[1]"].data.tags[T.SESSION_ID]
    pruned = keep_best_models(backend, [experiment.experiment_id], session, 1)
    assert (pruned.count, pruned.registered) == (0, 1)
    assert (Path(second.artifact_location.removeprefix("file://")) / "MLmodel").is_file()

    # -- mlexp runs, from a subfolder: the experiment pytest logs to, not "all experiments".
    code = mlexp(root / "experiments", "runs")
    assert (code.returncode, code.stderr) == (0, "")
    lines = code.stdout.splitlines()
    assert lines[0] == f"14 runs in experiment {root.name!r} of sqlite:///{root}/mlflow.db"
    assert lines[-1] == (
        "(3 group runs (1 grid, 1 search, 1 session report) not listed: "
        "mlexp runs --parents lists them)"
    )
    # The alias moved to v2: the registry's current aliases are shown, not the tag's.
    best_line = next(line for line in lines if " experiment_grid[2] " in line)
    assert best_line.endswith("model -> first-hour-clf v1")
    # A filter on group runs' tags says where they went instead of a bare "0 runs".
    code = mlexp(root, "runs", "--filter", f"tags.`{T.KIND}` = 'search'")
    assert code.stdout.splitlines() == [
        f"0 runs in experiment {root.name!r} of sqlite:///{root}/mlflow.db "
        f"(tags.`{T.KIND}` = 'search')",
        "(1 group run (1 search) not listed: mlexp runs --parents lists them)",
    ]
    code = mlexp(root, "runs", "--parents")
    rows = code.stdout.splitlines()[2:]
    assert len(rows) == 3  # the grid, the search, the session's HTML report
    grid_row = next(line for line in rows if line.startswith(grid_parent.info.run_id))
    assert "experiment_grid · " in grid_row
    assert "  grid  " in grid_row
    assert "3 cells: 3 passed" in grid_row
    assert grid_row.endswith("experiment_grid[2] (score=0)")
    search_row = next(line for line in rows if line.startswith(search.info.run_id))
    assert "11 trials: 11 complete" in search_row
    assert "(loss=" in search_row

    # -- mlexp report: the project's figures setting, or --figures ---------------------------
    ourtester.makeini("[pytest]\nmlexp_figures = cdn\n")
    code = mlexp(root, "report", "-o", "cdn.html")
    assert code.returncode == 0, code.stderr
    report = (root / "cdn.html").read_text()
    assert len(report) < 500_000
    assert '<script src="https://cdn.plot.ly/plotly-' in report

    # -- the report, rebuilt inline, seen in Chromium at 1600x1000 --------------------------
    code = mlexp(root, "report", "--figures", "inline", "-o", "inline.html")
    assert code.returncode == 0, code.stderr
    check_report_layout(browser, root / "inline.html")


def check_report_layout(browser: Any, path: Path) -> None:
    page = browser.new_page(viewport={"width": 1600, "height": 1000})
    try:
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(path.as_uri(), wait_until="load")
        page.wait_for_timeout(300)
        assert errors == []
        # A table per experiment function, each with its own params only.
        tables = page.locator("table.runs")
        assert tables.count() == 2
        headers = [tables.nth(i).locator("th").all_inner_texts() for i in range(2)]
        grid_head, search_head = sorted(headers, key=len, reverse=True)
        assert "C" in grid_head
        assert "lr" not in grid_head
        assert "lr" in search_head
        assert "C" not in search_head

        # Natural order: trial-2 above trial-10, C=2 above C=10 (by their boxes).
        def top(text: str) -> float:
            box = page.locator("td.name", has_text=text).first.bounding_box()
            assert box is not None
            return float(box["y"])

        assert top("experiment_search[trial-2]") < top("experiment_search[trial-10]")
        assert top("experiment_grid[2]") < top("experiment_grid[10]")
        # The best cell and the best trial are marked, and the mark is on screen.
        assert page.locator("tr.best").count() == 2
        mark = page.locator("tr.best", has_text="experiment_grid[2]").locator(".best-mark")
        assert mark.is_visible()

        # The grid's table is wider than the page: scrolled sideways, the run's name
        # stays at the left edge and the verdict at the right edge of the table.
        wide = page.locator("div.table", has=page.locator("th", has_text="m_23"))
        box = wide.bounding_box()
        assert box is not None
        assert box["x"] + box["width"] <= 1600
        assert wide.evaluate("e => e.scrollWidth > e.clientWidth + 200")
        for scroll in (0, 100_000):
            wide.evaluate(f"e => {{ e.scrollLeft = {scroll}; }}")
            name = wide.locator("tr", has_text="experiment_grid[1]").locator("td").first
            verdict = wide.locator("tr", has_text="experiment_grid[1]").locator("td").last
            name_box, verdict_box = name.bounding_box(), verdict.bounding_box()
            assert name_box is not None
            assert verdict_box is not None
            assert abs(name_box["x"] - box["x"]) <= 2
            right = box["x"] + box["width"]
            assert right - 30 <= verdict_box["x"] + verdict_box["width"] <= right + 1
            assert "passed" in verdict.inner_text() or "improved" in verdict.inner_text()

        # Legends sit beside the plots: no legend box overlaps a plot area or a title.
        legends = page.locator(".plot .legend")
        assert legends.count() >= 2  # the metric history and the search's history
        for i in range(legends.count()):
            legend = legends.nth(i)
            plot = page.locator(".plot").filter(has=legend).first
            legend_box = legend.bounding_box()
            assert legend_box is not None
            covered = plot.locator(".nsewdrag, .gtitle")
            for j in range(covered.count()):
                other = covered.nth(j).bounding_box()
                assert other is not None
                assert not overlaps(legend_box, other), (i, j, legend_box, other)
    finally:
        page.close()


def overlaps(a: dict[str, float], b: dict[str, float]) -> bool:
    return not (
        a["x"] + a["width"] <= b["x"]
        or b["x"] + b["width"] <= a["x"]
        or a["y"] + a["height"] <= b["y"]
        or b["y"] + b["height"] <= a["y"]
    )


@pytest.mark.parametrize(
    ("wrong", "message", "fixed"),
    [
        (
            "experiment_grid.trials=2",
            "--mlexp-set experiment_grid.trials=2: trials is a search's setting, and "
            "experiment_grid declares no search; declare one (search= in @pytest.mark.mlexp, or "
            "search: under experiment_grid in experiments/params.yaml), or drop the override",
            None,
        ),
        (
            "experiment_search.trials=0",
            "ERROR: --mlexp-set experiment_search.trials=0: experiment_search.trials: expected a "
            "positive number of trials, got 0",
            "experiment_search.trials=2",
        ),
        (
            "experiment_search.sampler=bogus",
            "ERROR: --mlexp-set experiment_search.sampler=bogus: experiment_search.sampler: "
            "unknown sampler 'bogus'; accepted: tpe, random, qmc, or an Optuna *",
            "experiment_search.sampler=qmc",
        ),
        (
            "experiment_search.seed=abc",
            "ERROR: --mlexp-set experiment_search.seed=abc: experiment_search.seed: expected an "
            "integer seed, got 'abc'",
            "experiment_search.seed=7",
        ),
        (
            "experiment_search.objective=quality",
            "ERROR: --mlexp-set experiment_search.objective=quality: experiment_search.objective: "
            "the direction of 'quality' is not known; write objective='quality:min' or "
            "objective='quality:max'",
            "experiment_search.objective=quality:max",
        ),
    ],
)
def test_each_search_setting_error_says_a_fix_that_works(
    ourtester, wrong: str, message: str, fixed: str | None
) -> None:
    project(ourtester)
    result = ourtester.runpytest(*FILES, "--collect-only", "-q", "--mlexp-set", wrong)
    assert result.ret in (pytest.ExitCode.USAGE_ERROR, pytest.ExitCode.INTERRUPTED)
    (result.stderr if message.startswith("ERROR") else result.stdout).fnmatch_lines([message])
    # The fix, followed: the grid's own override is dropped; a search's value corrected.
    args = ["--mlexp-set", fixed] if fixed else []
    followed = ourtester.runpytest(*FILES, "--collect-only", "-q", *args)
    assert followed.ret == pytest.ExitCode.OK, followed.stdout.str() + followed.stderr.str()
    trials = 2 if fixed == "experiment_search.trials=2" else 40
    followed.stdout.fnmatch_lines([f"{3 + trials} tests collected*"])


@pytest.mark.parametrize(
    ("wrong", "message", "fix", "edit"),
    [
        # "fix the name, or add max_itr under experiment_grid's params:": the second fix.
        (
            "experiment_grid.max_itr=5",
            "*--mlexp-set experiment_grid.max_itr=5: experiment_grid in experiments/params.yaml:1 "
            "has no param or grid axis 'max_itr' (it has: max_iter, C); fix the name, or add "
            "max_itr under experiment_grid's params: or grid: in the file",
            "experiment_grid.max_itr=5",
            ("params: {max_iter: 50}", "params: {max_iter: 50, max_itr: 1}"),
        ),
        # "... or add the function to the file".
        (
            "experiment_new.depth=5",
            "*--mlexp-set experiment_new.depth=5: experiments/params.yaml has no experiment "
            "function 'experiment_new' (it has: experiment_grid, experiment_other, "
            "experiment_typo) and no param 'experiment_new.depth'; fix the name, or add the "
            "function to the file",
            "experiment_new.depth=5",
            ("experiment_typo:", "experiment_new:\n  params: {depth: 1}\nexperiment_typo:"),
        ),
        # "a grid axis needs at least one value, e.g. C=[0.1,1.0]".
        (
            "C=[]",
            "*--mlexp-set C=[[][]]: a grid axis needs at least one value, e.g. C=[[]0.1,1.0]",
            "C=[0.1,1.0]",
            None,
        ),
        # "expected KEY=VALUE ... e.g. --mlexp-set alpha=0.5".
        (
            "C",
            "ERROR: --mlexp-set C: expected KEY=VALUE, where KEY is a param (alpha) or a function "
            "and a param (experiment_ridge.alpha), e.g. --mlexp-set alpha=0.5",
            "C=0.5",
            None,
        ),
    ],
)
def test_each_params_override_error_says_a_fix_that_works(
    ourtester, wrong: str, message: str, fix: str, edit: tuple[str, str] | None
) -> None:
    root = project(ourtester)
    result = ourtester.runpytest(*FILES, "--collect-only", "-q", "--mlexp-set", wrong)
    assert result.ret in (pytest.ExitCode.USAGE_ERROR, pytest.ExitCode.INTERRUPTED)
    (result.stderr if message.startswith("ERROR") else result.stdout).fnmatch_lines([message])
    if edit is not None:
        params = root / "experiments" / "params.yaml"
        params.write_text(params.read_text().replace(*edit))
    followed = ourtester.runpytest(*FILES, "--collect-only", "-q", "--mlexp-set", fix)
    assert followed.ret == pytest.ExitCode.OK, followed.stdout.str() + followed.stderr.str()


def test_a_search_in_the_params_file_takes_its_settings_from_the_command_line(ourtester) -> None:
    (ourtester.path / "experiments").mkdir()
    (ourtester.path / "experiments" / "params.yaml").write_text(
        "experiment_fs:\n  params: {seed: 1}\n  search: {lr: 'loguniform(1e-3, 1.0)'}\n"
        "  trials: 5\n  objective: loss:min\n"
    )
    (ourtester.path / "experiments" / "experiment_fs.py").write_text(
        "def experiment_fs(lr, seed):\n    return {'loss': lr + seed}\n"
    )
    # trials sets the file's search; seed is a fixed param of the function, so it stays one.
    result = ourtester.runpytest(
        "experiments", "--collect-only", "-q", "-p", "no:randomly",
        "--mlexp-set", "experiment_fs.trials=2", "--mlexp-set", "experiment_fs.seed=4",
    )  # fmt: skip
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    result.stdout.fnmatch_lines(
        ["experiments/experiment_fs.py::experiment_fs[[]trial-0]",
         "experiments/experiment_fs.py::experiment_fs[[]trial-1]", "2 tests collected*"]
    )  # fmt: skip
