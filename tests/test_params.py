"""Params from a file: grids and fixed values in experiments/params.yaml, --mlexp-set overrides."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from conftest import logged_metrics

PARAMS = """\
# the ridge's hyperparameters
experiment_ridge:
  params: {cv: 5, solver: auto}
  grid: {alpha: [0.1, 1.0, 10.0]}
"""

RIDGE = """
def experiment_ridge(mlflow_run, alpha, cv, solver):
    assert solver == "auto"
    mlflow_run.log_metric("rmse", alpha * cv)
    return {"r2": 1 / (1 + alpha)}
"""


@pytest.fixture
def project(ourtester: pytest.Pytester, empty_store: Path):  # type: ignore[no-untyped-def]
    """``project(params, **modules)``: experiments/params.yaml and experiment modules."""

    def make(params: str, **modules: str) -> pytest.Pytester:
        shutil.copy(empty_store, ourtester.path / "mlflow.db")
        folder = ourtester.path / "experiments"
        folder.mkdir(exist_ok=True)
        (folder / "params.yaml").write_text(textwrap.dedent(params))
        for name, source in modules.items():
            (folder / f"{name}.py").write_text(textwrap.dedent(source))
        return ourtester

    return make


#: Of lineage, only the part that logs the params file (``code``): git and the
#: environment are not what the params file is about, and cost each session.
LIGHT = ("--mlexp-lineage", "code", "--mlexp-artifacts", "off")


def run(ourtester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return ourtester.runpytest("-p", "no:randomly", "experiments", *LIGHT, *args)


def base_name(run) -> str:  # type: ignore[no-untyped-def]
    """A run's name without a grid parent's session stamp (``experiment_ridge · 11-28 ...``)."""
    return str(run.info.run_name).split(" · ")[0]


def by_name(runs):  # type: ignore[no-untyped-def]
    return {base_name(run): run for run in runs}


def store_view(runs) -> list[tuple]:  # type: ignore[no-untyped-def,type-arg]
    """Every run as a user sees it: name, status, params, metrics, its parent's name."""
    names = {run.info.run_id: base_name(run) for run in runs}
    return sorted(
        (
            base_name(run),
            run.info.status,
            tuple(sorted(run.data.params.items())),
            tuple(sorted(logged_metrics(run).items())),
            names.get(run.data.tags.get("mlflow.parentRunId", "")),
        )
        for run in runs
    )


def artifact_text(client: MlflowClient, run_id: str, path: str, tmp_path: Path) -> str:
    return Path(client.download_artifacts(run_id, path, str(tmp_path))).read_text()


def test_grid_from_the_file_is_the_grid_parametrize_makes(
    project, read_runs, client, tmp_path
) -> None:
    ourtester = project(PARAMS, experiment_ridge=RIDGE)
    result = run(ourtester, "-v")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(
        [
            "experiments/experiment_ridge.py::experiment_ridge[[]0.1[]] PASSED*",
            "experiments/experiment_ridge.py::experiment_ridge[[]1.0[]] PASSED*",
            "experiments/experiment_ridge.py::experiment_ridge[[]10.0[]] PASSED*",
        ]
    )
    runs = by_name(read_runs(ourtester.path.name, groups=True))
    assert set(runs) == {
        "experiment_ridge",
        "experiment_ridge[0.1]",
        "experiment_ridge[1.0]",
        "experiment_ridge[10.0]",
    }
    parent = runs["experiment_ridge"]
    assert parent.data.tags["mlexp.kind"] == "grid"
    assert parent.data.tags["mlexp.grid_size"] == "3"
    assert parent.data.tags["mlexp.best_run_name"] == "experiment_ridge[0.1]"
    assert parent.data.params["best.alpha"] == "0.1"
    for alpha in ("0.1", "1.0", "10.0"):
        cell = runs[f"experiment_ridge[{alpha}]"]
        assert cell.data.params == {"cv": "5", "solver": "auto", "alpha": alpha}
        assert cell.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert "mlexp.overrides" not in cell.data.tags
        assert artifact_text(client, cell.info.run_id, "lineage/params.yaml", tmp_path) == PARAMS
    artifacts = [
        a.path for a in client.list_artifacts(runs["experiment_ridge[0.1]"].info.run_id, "lineage")
    ]
    assert "lineage/params_overridden.yaml" not in artifacts


def test_ids_match_the_decorator_so_a_baseline_file_still_applies(project) -> None:
    decorated = """
    import pytest

    @pytest.mark.parametrize("alpha", [0.1, 1.0, 10.0])
    def experiment_ridge(alpha):
        return {"r2": 1 / (1 + alpha)}
    """
    ourtester = project("", experiment_ridge=decorated)
    run(ourtester, "--mlexp-baseline-file", "baseline.yaml", "--mlexp-update-baseline")
    folder = ourtester.path / "experiments"
    (folder / "experiment_ridge.py").write_text(
        "def experiment_ridge(alpha):\n    return {'r2': 1 / (1 + alpha)}\n"
    )
    (folder / "params.yaml").write_text("experiment_ridge:\n  grid: {alpha: [0.1, 1.0, 10.0]}\n")
    result = run(ourtester, "--mlexp-baseline-file", "baseline.yaml", "--mlexp-require-baseline")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(["3 of 3 items have a baseline (baseline.yaml): 3 passed*"])


def test_fixed_values_as_arguments_through_the_fixture_and_logged_either_way(
    project, read_runs
) -> None:
    ourtester = project(
        """
        experiment_args:
          params: {cv: 5, dataset_version: 3}
        experiment_fixture:
          params: {cv: 3, solver: svd}
          grid: {depth: [1, 2]}
        experiment_mixed:
          params: {lr: 1e-3}
          grid: {alpha: [0.5]}
        """,
        experiment_params="""
        import pytest

        def experiment_args(cv):
            return {"cv_seen": cv}

        def experiment_fixture(params):
            assert params == {"cv": 3, "solver": "svd", "depth": params["depth"]}
            return {"depth_seen": params["depth"]}

        @pytest.mark.parametrize("model", ["a"])
        def experiment_mixed(model, alpha, params):
            assert params == {"model": "a", "lr": 0.001, "alpha": 0.5}
            assert isinstance(params["lr"], float)
        """,
    )
    result = run(ourtester, "-v")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(
        [
            "*::experiment_args PASSED*",
            "*::experiment_fixture[[]1[]] PASSED*",
            "*::experiment_fixture[[]2[]] PASSED*",
            "*::experiment_mixed[[]a-0.5[]] PASSED*",
        ]
    )
    runs = by_name(read_runs(ourtester.path.name, groups=True))
    args = runs["experiment_args"]
    # dataset_version is not an argument: still a param of the run.
    assert args.data.params == {"cv": "5", "dataset_version": "3"}
    assert logged_metrics(args) == {"cv_seen": 5.0}
    assert "mlflow.parentRunId" not in args.data.tags, "fixed values alone make no grid"
    assert runs["experiment_fixture[2]"].data.params == {"cv": "3", "solver": "svd", "depth": "2"}
    assert logged_metrics(runs["experiment_fixture[2]"]) == {"depth_seen": 2.0}
    assert runs["experiment_fixture"].data.tags["mlexp.grid_size"] == "2"
    assert runs["experiment_mixed[a-0.5]"].data.params == {
        "model": "a",
        "lr": "0.001",
        "alpha": "0.5",
    }


def test_a_value_replaces_a_fixture_of_that_name(project, read_runs) -> None:
    ourtester = project(
        "experiment_model:\n  grid: {width: [2, 3]}\n",
        conftest="""
        import pytest

        @pytest.fixture
        def width():
            return 1

        @pytest.fixture
        def model(width):
            return [0] * width
        """,
        experiment_model="def experiment_model(model):\n    return {'size': len(model)}\n",
    )
    run(ourtester).assert_outcomes(passed=2)
    runs = by_name(read_runs(ourtester.path.name))
    assert logged_metrics(runs["experiment_model[3]"]) == {"size": 3.0}
    assert runs["experiment_model[3]"].data.params == {"width": "3"}


def test_override_narrows_an_axis_and_is_logged(project, read_runs, client, tmp_path) -> None:
    ourtester = project(PARAMS, experiment_ridge=RIDGE)
    result = run(ourtester, "-v", "--mlexp-set", "alpha=[0.1,1.0]", "--mlexp-set", "cv=2")
    result.assert_outcomes(passed=2)
    runs = by_name(read_runs(ourtester.path.name))
    assert set(runs) == {"experiment_ridge[0.1]", "experiment_ridge[1.0]"}
    cell = runs["experiment_ridge[1.0]"]
    assert cell.data.params == {"cv": "2", "solver": "auto", "alpha": "1.0"}
    assert cell.data.metrics["rmse"] == 2.0
    assert cell.data.tags["mlexp.overrides"] == "'alpha=[0.1,1.0]' cv=2"
    assert artifact_text(client, cell.info.run_id, "lineage/params.yaml", tmp_path) == PARAMS
    overridden = artifact_text(client, cell.info.run_id, "lineage/params_overridden.yaml", tmp_path)
    assert overridden.splitlines() == [
        "# experiments/params.yaml with the overrides of this session applied:",
        "# --mlexp-set alpha=[0.1,1.0] --mlexp-set cv=2",
        "experiment_ridge:",
        "  params: {cv: 2, solver: auto}",
        "  grid:",
        "    alpha: [0.1, 1.0]",
    ]


def test_scalar_override_makes_one_cell_and_a_named_function_wins(project, read_runs) -> None:
    ourtester = project(
        PARAMS + "experiment_other:\n  grid: {alpha: [1, 2]}\n",
        experiment_ridge=RIDGE,
        experiment_other="def experiment_other(alpha):\n    return {'a': alpha}\n",
    )
    result = run(ourtester, "--mlexp-set", "experiment_ridge.alpha=0.5", "--mlexp-set", "alpha=7")
    result.assert_outcomes(passed=2)
    runs = by_name(read_runs(ourtester.path.name))
    assert set(runs) == {"experiment_ridge[0.5]", "experiment_other[7]"}
    assert runs["experiment_ridge[0.5]"].data.tags["mlexp.overrides"] == (
        "alpha=7 experiment_ridge.alpha=0.5"
    )
    assert runs["experiment_other[7]"].data.tags["mlexp.overrides"] == "alpha=7"


def test_override_makes_a_new_axis_from_a_fixed_value(project, read_runs) -> None:
    ourtester = project(PARAMS, experiment_ridge=RIDGE)
    result = run(ourtester, "-v", "--mlexp-set", "cv=[2,3]", "--mlexp-set", "alpha=1e-1")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        [
            "*::experiment_ridge[[]0.1-2[]] PASSED*",
            "*::experiment_ridge[[]0.1-3[]] PASSED*",
        ]
    )
    runs = by_name(read_runs(ourtester.path.name, groups=True))
    assert runs["experiment_ridge[0.1-3]"].data.params == {
        "solver": "auto",
        "alpha": "0.1",
        "cv": "3",
    }
    assert runs["experiment_ridge"].data.tags["mlexp.grid_size"] == "2"


ERRORS = [
    pytest.param(
        "experiment_ridge:\n  params: {cv: 5}\n  grid: {alpha: [0.1, 1.0}\n",
        RIDGE,
        (),
        # libyaml's or PyYAML's own wording, whichever PyYAML was built with.
        "experiments/params.yaml:3: not valid YAML: while parsing a flow sequence, *; "
        "fix the syntax on that line",
        id="unparsable",
    ),
    pytest.param(
        "experiment_ridge:\n  params: {cv: 5, solver: auto}\n  grid:\n    alpha: 0.1\n",
        RIDGE,
        (),
        "experiments/params.yaml:4: experiment_ridge.grid.alpha: a grid axis must be a "
        "non-empty list of values, got 0.1; write alpha: [[]0.1[]], or move it to params: "
        "for a fixed value",
        id="non-list-axis",
    ),
    pytest.param(
        "experiment_ridge:\n  params: {cv: 5, solver: auto}\n  grid: {alpha: [1], depth: [1]}\n",
        RIDGE,
        (),
        "experiments/params.yaml:3: experiment_ridge.grid.depth: experiment_ridge() takes no "
        "argument 'depth', so its cells would not differ; add depth to the function's "
        "arguments, or request the 'params' fixture and read params[[]'depth'[]]",
        id="argument-not-taken",
    ),
    pytest.param(
        "experiment_ridge:\n  grid: {alpha: [1]}\n",
        "import pytest\n\n@pytest.mark.parametrize('alpha', [1, 2])\n"
        "def experiment_ridge(alpha):\n    pass\n",
        (),
        "experiments/params.yaml:2: experiment_ridge.grid.alpha: "
        "experiments/experiment_ridge.py::experiment_ridge is also parametrized by "
        "@pytest.mark.parametrize for 'alpha'; give alpha its values in one place: remove it "
        "from the decorator or from the file",
        id="also-parametrized",
    ),
    pytest.param(
        "experiment_ridge:\n  params: {cv: 5}\n",
        "def experiment_ridge(cv=3):\n    pass\n",
        (),
        "experiments/params.yaml:2: experiment_ridge.params.cv: experiment_ridge() gives 'cv' "
        "a default value, which pytest cannot replace; remove the default from the "
        "function's cv argument",
        id="default-argument",
    ),
    pytest.param(
        PARAMS,
        RIDGE,
        ("--mlexp-set", "alhpa=0.5"),
        "--mlexp-set alhpa=0.5: no experiment function in experiments/params.yaml has a param "
        "or grid axis 'alhpa' (known: alpha, cv, solver); fix the name, or add it to a "
        "function's params: or grid: in the file",
        id="unknown-override",
    ),
    pytest.param(
        PARAMS,
        RIDGE,
        ("--mlexp-set", "experiment_ridge.depth=[1,2]"),
        "--mlexp-set experiment_ridge.depth=[[]1,2[]]: experiment_ridge in "
        "experiments/params.yaml:2 has no param or grid axis 'depth' (it has: cv, solver, "
        "alpha); fix the name, or add depth under experiment_ridge's params: or grid: in "
        "the file",
        id="unknown-override-of-a-function",
    ),
    pytest.param(
        PARAMS,
        RIDGE,
        ("--mlexp-set", "alpha=[]"),
        "--mlexp-set alpha=[[][]]: a grid axis needs at least one value, e.g. alpha=[[]0.1,1.0[]]",
        id="empty-axis-override",
    ),
    pytest.param(
        "experiment_ridge:\n  resources: [1]\n",
        RIDGE,
        (),
        "experiments/params.yaml:2: experiment_ridge.resources: expected a mapping of resource "
        "to amount, as @pytest.mark.mlexp(resources=...) takes it, e.g. resources: "
        "{GPU: 1, memory: 8GB}",
        id="resources-not-a-mapping",
    ),
    pytest.param(
        "experiment_ridge:\n  search: {}\n",
        RIDGE,
        (),
        "experiments/params.yaml:2: experiment_ridge.search: expected a mapping of param to "
        'distribution, e.g. search: {lr: "loguniform(1e-4, 1e-1)"}',
        id="search-empty",
    ),
    pytest.param(
        "experiment_ridge:\n  parms: {cv: 5}\n",
        RIDGE,
        (),
        "experiments/params.yaml:2: experiment_ridge.parms: unknown section; accepted: "
        "params, grid, search, trials, objective, sampler, seed, pruner, study, resources, best, "
        "judge, seed_budget "
        "(put values under params: or grid:)",
        id="unknown-section",
    ),
    pytest.param(
        "experiment_ridge:\n  trials: [20]\n",
        RIDGE,
        (),
        "experiments/params.yaml:2: experiment_ridge.trials: expected a positive number of "
        "trials, got [[]20[]]",
        id="trials-not-a-number",
    ),
    pytest.param(
        "experiment_ridge:\n  best: r2:up\n",
        RIDGE,
        (),
        "experiments/params.yaml:2: experiment_ridge.best: bad best metric 'r2:up'; expected "
        "NAME, NAME:max or NAME:min, e.g. r2 or val_loss:min",
        id="best-bad-direction",
    ),
]


@pytest.mark.parametrize(("params", "module", "args", "message"), ERRORS)
def test_mistakes_stop_the_session_at_collection(
    project, params: str, module: str, args: tuple[str, ...], message: str
) -> None:
    ourtester = project(params, experiment_ridge=module)
    result = run(ourtester, *args)
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(
        [
            "*ERROR collecting experiments/experiment_ridge.py*",
            message,
            "*Interrupted: 1 error during collection*",
        ]
    )
    assert "Traceback" not in result.stdout.str()
    assert not list(ourtester.path.glob("mlruns/*/*")), "nothing ran"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("--mlexp-set", "alpha"),
            "ERROR: --mlexp-set alpha: expected KEY=VALUE, where KEY is a param (alpha) or a "
            "function and a param (experiment_ridge.alpha), e.g. --mlexp-set alpha=0.5",
        ),
        (
            ("--mlexp-set", "alpha=[1,"),
            "ERROR: --mlexp-set alpha=[[]1,: the value is not valid YAML (*); give a number, "
            "a string, true/false, or a list such as [[]0.1,1.0[]]",
        ),
        (
            ("--mlexp-params-file", "missing.yaml"),
            "ERROR: --mlexp-params-file: params file */missing.yaml does not exist; give the "
            "path of a YAML file of experiment params, or none for no params file",
        ),
        (
            ("--mlexp-params-file", "none", "--mlexp-set", "alpha=1"),
            "ERROR: --mlexp-set alpha=1: the params file is switched off "
            "(--mlexp-params-file); overrides change the values of a params file",
        ),
    ],
)
def test_bad_flags_are_usage_errors(project, args: tuple[str, ...], message: str) -> None:
    ourtester = project(PARAMS, experiment_ridge=RIDGE)
    result = run(ourtester, *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


def test_override_without_a_params_file(ourtester) -> None:
    ourtester.makepyfile(experiment_a="def experiment_a():\n    pass\n")
    result = ourtester.runpytest("--mlexp-set", "alpha=1")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(
        [
            "--mlexp-set alpha=1: there is no params file to override: "
            "experiments/params.yaml does not exist; create it, or name one with "
            "--mlexp-params-file"
        ]
    )


def test_function_matching_no_experiment_is_a_warning(project) -> None:
    ourtester = project(
        PARAMS + "experiment_rigde:\n  grid: {alpha: [1]}\n",
        experiment_ridge=RIDGE,
    )
    result = run(ourtester, "--collect-only", "-q")
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(
        [
            "experiments/params.yaml:5",
            "*MlexpWarning: experiment_rigde in experiments/params.yaml matches no experiment "
            "function collected in this session; fix the name if it is a typo*",
        ]
    )
    # -k deselects after collection: the function was still collected, no warning.
    quiet = run(ourtester, "--collect-only", "-q", "-k", "not ridge")
    assert "MlexpWarning" not in PARAMS + quiet.stdout.str()
    # Warnings as errors: a clean usage error naming the mistake, not an INTERNALERROR.
    strict = run(ourtester, "--collect-only", "-q", "-W", "error::pytest_mlexp.MlexpWarning")
    assert strict.ret == pytest.ExitCode.USAGE_ERROR
    strict.stderr.fnmatch_lines(
        ["ERROR: experiment_rigde in experiments/params.yaml matches no experiment function *"]
    )


def test_params_file_from_the_settings_file_or_switched_off(ourtester, read_runs) -> None:
    ourtester.makefile(".yaml", mlexp="params_file: conf/grid.yaml\n")
    (ourtester.path / "conf").mkdir()
    (ourtester.path / "conf" / "grid.yaml").write_text("experiment_k:\n  grid: {k: [1, 2]}\n")
    (ourtester.path / "experiments").mkdir()
    (ourtester.path / "experiments" / "params.yaml").write_text("experiment_k:\n  grid: [1]\n")
    ourtester.makepyfile(
        experiment_k="""
        import pytest

        def experiment_k(k):
            return {"k": k}

        @pytest.mark.parametrize("k", [5])
        def experiment_own(k):
            return {"k": k}
        """
    )
    ourtester.runpytest("-p", "no:randomly", *LIGHT).assert_outcomes(passed=3)
    assert {r.info.run_name for r in read_runs(ourtester.path.name)} == {
        "experiment_k[1]",
        "experiment_k[2]",
        "experiment_own[5]",
    }
    off = ourtester.runpytest("-p", "no:randomly", "--mlexp-params-file", "none", "--co", "-q")
    # Switched off: neither file is read (experiments/params.yaml is broken), no cells.
    off.stdout.fnmatch_lines(
        ["experiment_k.py::experiment_k", "experiment_k.py::experiment_own[[]5[]]"]
    )


def test_lineage_off_logs_no_params_file(project, read_runs, client) -> None:
    ourtester = project(PARAMS, experiment_ridge=RIDGE)
    run(ourtester, "--mlexp-lineage", "none", "--mlexp-set", "alpha=1").assert_outcomes(passed=1)
    (cell,) = read_runs(ourtester.path.name)
    assert client.list_artifacts(cell.info.run_id, "lineage") == []
    assert cell.data.tags["mlexp.overrides"] == "alpha=1"


def test_a_suite_without_experiments_never_reads_the_file(ourtester) -> None:
    (ourtester.path / "experiments").mkdir()
    (ourtester.path / "experiments" / "params.yaml").write_text("[not: valid\n")
    ourtester.makeconftest(
        """
        import sys

        def pytest_sessionfinish(session):
            loaded = [m for m in ("pytest_mlexp.params.collection", "mlflow") if m in sys.modules]
            print("loaded:", loaded)
        """
    )
    ourtester.makepyfile(test_plain="def test_one():\n    assert True\n")
    # A fresh interpreter on purpose: this process has imported both already.
    result = ourtester.runpytest_subprocess("-s")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*loaded: [[][]]"])


def test_xdist_collects_the_same_cells_as_serial(project, client, runs_of) -> None:
    ourtester = project(
        PARAMS
        + "experiment_two:\n  params: {k: 1}\n  grid: {a: [1, 2], b: [x, y]}\n"
        + "experiment_rep:\n  grid: {lr: [0.1, 0.2]}\n",
        experiment_ridge=RIDGE,
        experiment_two="""
        import pytest

        def experiment_two(params, a):
            return {"score": a + params["k"] + (params["b"] == "y")}

        @pytest.mark.mlexp(repeats=2)
        def experiment_rep(lr, seed):
            return {"acc": lr + seed}
        """,
    )
    args = ("--mlexp-set", "alpha=[0.1,10.0]", "--mlexp-set", "experiment_two.k=[1,2]")
    serial = run(ourtester, "-n", "0", "--mlexp-experiment", "serial", *args)
    serial.assert_outcomes(passed=14)
    parallel = run(ourtester, "-n", "2", "--mlexp-experiment", "xdist", *args)
    parallel.assert_outcomes(passed=14)
    serial_view = store_view(runs_of(client, "serial", groups=True))
    assert store_view(runs_of(client, "xdist", groups=True)) == serial_view
    assert [view[0] for view in serial_view if view[0].startswith("experiment_two[")] == [
        f"experiment_two[{a}-{b}-{k}]" for a in (1, 2) for b in "xy" for k in (1, 2)
    ]
    # Repeats come after the file's axes: a cell run per lr, under the grid's parent.
    parents = {view[0]: view[4] for view in serial_view}
    assert parents["experiment_rep[0.2-seed1]"] == "experiment_rep[0.2]"
    assert parents["experiment_rep[0.2]"] == "experiment_rep"


WINE = """
def experiment_ridge(mlflow_run, alpha):
    return {"r2": alpha}
"""


def test_one_function_name_in_two_files(project, read_runs) -> None:
    # A section keyed by the bare name would give both files its values: refused, naming them.
    ourtester = project(PARAMS, experiment_ridge=RIDGE, experiment_wine=WINE)
    refused = run(ourtester, "--collect-only", "-q")
    assert refused.ret == pytest.ExitCode.INTERRUPTED
    refused.stdout.fnmatch_lines(
        [
            "experiments/params.yaml:2: experiment_ridge names an experiment function of 2 files "
            "(experiments/experiment_ridge.py, experiments/experiment_wine.py), and would give "
            "each this section's values; key the section by its file instead, e.g. "
            "experiments/experiment_ridge.py::experiment_ridge: *",
        ]
    )
    # Keyed by file (its path, or its name alone): each function its own section, and the
    # runs and grid parents are named with their file, the name alone being ambiguous.
    keyed = PARAMS.replace("experiment_ridge:", "experiment_ridge.py::experiment_ridge:")
    keyed += "experiments/experiment_wine.py::experiment_ridge:\n  grid: {alpha: [3, 4]}\n"
    (ourtester.path / "experiments" / "params.yaml").write_text(keyed)
    result = run(
        ourtester, "--mlexp-lineage", "none", "--mlexp-artifacts", "off",
        "--mlexp-set", "experiments/experiment_wine.py::experiment_ridge.alpha=[7]",
    )  # fmt: skip
    result.assert_outcomes(passed=4)
    runs = read_runs(ourtester.path.name, groups=True)
    assert sorted(base_name(r) for r in runs) == [
        "experiment_ridge.py::experiment_ridge",
        "experiment_ridge.py::experiment_ridge[0.1]",
        "experiment_ridge.py::experiment_ridge[1.0]",
        "experiment_ridge.py::experiment_ridge[10.0]",
        "experiment_wine.py::experiment_ridge",
        "experiment_wine.py::experiment_ridge[7]",
    ]
    wine = by_name(runs)["experiment_wine.py::experiment_ridge[7]"]
    assert wine.data.params == {"alpha": "7"}
    # A file.py::function key whose file part matches no file: warned, saying which files do.
    (ourtester.path / "experiments" / "params.yaml").write_text(
        "nowhere.py::experiment_ridge:\n  grid: {alpha: [1]}\n"
    )
    typo = run(ourtester, "--collect-only", "-q")
    typo.stdout.fnmatch_lines(
        [
            "*MlexpWarning: nowhere.py::experiment_ridge in experiments/params.yaml matches no "
            "experiment function collected in this session; fix the name if it is a typo "
            "(experiment_ridge.py, experiment_wine.py define experiment_ridge: fix the file part)"
        ]
    )


def test_a_search_setting_keyed_by_file_and_function_is_split_after_the_function() -> None:
    """``file.py::function.trials`` sets that file's search; the ``::`` prefix is taken whole."""
    from pytest_mlexp.settings.params import Override

    def sets(key: str, function: str, path: str) -> str | None:
        return Override(f"{key}=3", key, 3).sets_search_of(function, path)

    assert sets("experiment_f.trials", "experiment_f", "experiments/a.py") == "trials"
    assert sets("experiments/a.py::experiment_f.trials", "experiment_f", "experiments/a.py") == (
        "trials"
    )
    assert sets("a.py::experiment_f.seed", "experiment_f", "experiments/a.py") == "seed"
    assert sets("b.py::experiment_f.trials", "experiment_f", "experiments/a.py") is None
    assert sets("a.py::experiment_f.alpha", "experiment_f", "experiments/a.py") is None
    assert sets("ab.py::experiment_f.trials", "experiment_f", "experiments/b.py") is None
