"""Searches: Optuna trials as tracked runs, on a real store and a real Optuna study.

The experiment is a quadratic bowl with one categorical: its optimum is
x=1, y=-2, shape=bowl, where the loss is 0.
"""

from __future__ import annotations

import re
import shutil
import textwrap
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient

BOWL = """
import pytest

@pytest.mark.mlexp(
    search={{"x": "uniform(-5, 5)", "y": "int(-5, 5)", "shape": ["bowl", "tilted", "steep"]}},
    trials={trials}, objective="loss:min", {extra}
)
def experiment_bowl(mlflow_run, x, y, shape):
    mlflow_run.log_metric("bias", {{"bowl": 0.0, "tilted": 3.0, "steep": 8.0}}[shape])
    return {{"loss": (x - 1) ** 2 + (y + 2) ** 2 + {{"bowl": 0, "tilted": 3, "steep": 8}}[shape]}}
"""

#: Faster sessions: the search is under test, not lineage or artifact discovery.
QUIET = ("-p", "no:randomly", "--mlexp-lineage", "none", "--mlexp-artifacts", "off")


@pytest.fixture
def project(ourtester: pytest.Pytester, empty_store: Path):  # type: ignore[no-untyped-def]
    """``project(**modules)``: experiment modules in a project with an empty store."""

    def make(**modules: str) -> pytest.Pytester:
        shutil.copy(empty_store, ourtester.path / "mlflow.db")
        for name, source in modules.items():
            (ourtester.path / f"{name}.py").write_text(textwrap.dedent(source))
        return ourtester

    return make


def bowl(trials: int, extra: str = "sampler='tpe', seed=0") -> str:
    return BOWL.format(trials=trials, extra=extra)


def search_runs(client: MlflowClient, experiment: str) -> tuple[list, list]:  # type: ignore[type-arg]
    """The search parents and the trials of ``experiment``, trials in trial order."""
    found = client.get_experiment_by_name(experiment)
    assert found is not None
    runs = client.search_runs([found.experiment_id], max_results=10_000)
    parents = [r for r in runs if r.data.tags.get("mlexp.kind") == "search"]
    trials = sorted(
        (r for r in runs if "mlexp.trial" in r.data.tags),
        key=lambda r: int(r.data.tags["mlexp.trial"]),
    )
    return parents, trials


def journal(root: Path, name: str) -> optuna.Study:
    """The study as Optuna stored it in the project's journal file (one file per study)."""
    path = root / ".mlexp" / "optuna" / (re.sub(r"[^A-Za-z0-9_.@-]+", "_", name) + ".log")
    assert path.is_file(), sorted(p.name for p in path.parent.iterdir())
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(path)))
    return optuna.load_study(study_name=name, storage=storage)


def test_seeded_tpe_search_gets_close_to_the_optimum(project, client) -> None:
    ourtester = project(experiment_bowl=bowl(40))
    result = ourtester.runpytest(*QUIET)
    result.assert_outcomes(passed=40)
    parents, trials = search_runs(client, ourtester.path.name)

    assert len(parents) == 1
    parent = parents[0]
    tags = parent.data.tags
    assert parent.info.status == "FINISHED"
    # Named as a grid's parent is: the function, then the session's stamp.
    assert parent.info.run_name.split(" · ")[0] == "experiment_bowl"
    assert tags["mlflow.note.content"].startswith("Search `experiment_bowl.py::experiment_bowl`")
    assert "**40 trials: 40 complete, 0 pruned, 0 failed.**" in tags["mlflow.note.content"]
    assert tags["mlexp.search"] == "experiment_bowl.py::experiment_bowl"
    assert tags["mlexp.search.sampler"] == "tpe (seed 0)"
    assert (tags["mlexp.trials"], tags["mlexp.trials_complete"]) == ("40", "40")
    assert (tags["mlexp.best_metric"], tags["mlexp.best_direction"]) == ("loss", "min")
    assert parent.data.params["space.x"] == "uniform(-5.0, 5.0)"
    assert parent.data.params["space.y"] == "int(-5, 5)"
    assert parent.data.params["space.shape"] == "['bowl', 'tilted', 'steep']"

    # One run per trial: its values as params, its number as a tag, the parent above it.
    assert [t.info.run_name for t in trials] == [f"experiment_bowl[trial-{i}]" for i in range(40)]
    assert [t.data.tags["mlexp.trial"] for t in trials] == [str(i) for i in range(40)]
    for trial in trials:
        assert trial.info.status == "FINISHED"
        assert trial.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert set(trial.data.params) == {"x", "y", "shape"}
        assert -5 <= float(trial.data.params["x"]) <= 5

    # The best trial is close to the optimum (loss 0 at x=1, y=-2, shape=bowl; the
    # losses reach 80 in the space).
    best = parent.data.metrics["best.loss"]
    assert best < 1.0
    assert min(t.data.metrics["loss"] for t in trials) == best
    assert parent.data.params["best.shape"] == "bowl"
    assert parent.data.params["best.y"] == "-2"
    best_run = next(t for t in trials if t.info.run_id == tags["mlexp.best_run_id"])
    assert best_run.data.metrics["loss"] == best
    # ... better than the first ten trials, TPE's random start-up, after which the
    # sampler keeps to the bowl's floor.
    losses = [t.data.metrics["loss"] for t in trials]
    assert best < min(losses[:10])
    assert sum(losses[20:]) / 20 < sum(losses[:10]) / 10 / 2

    # Optuna's study holds the same 40 complete trials, told from the runs' metrics.
    study = journal(ourtester.path, tags["mlexp.search.study"])
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 40
    assert study.best_value == best
    result.stdout.fnmatch_lines(
        [
            # 40 trials are listed as a large grid's cells: the best five and a count.
            "... and 35 more trials of experiment_bowl.py::experiment_bowl (35 passed, "
            "0 failed or killed); -v lists every run",
            "mlexp search experiment_bowl.py::experiment_bowl: 40 trials, 40 complete, "
            "0 pruned, 0 failed (study experiment_bowl.py::experiment_bowl@*, tpe (seed 0)); "
            "best loss=* (min) at experiment_bowl[[]trial-*[]]*; parent run *",
        ]
    )


def test_the_same_seed_proposes_the_same_trials(project, client) -> None:
    ourtester = project(experiment_bowl=bowl(6, "sampler='random', seed=3"))
    for _ in range(2):
        ourtester.runpytest(*QUIET).assert_outcomes(passed=6)
    parents, trials = search_runs(client, ourtester.path.name)
    assert len(parents) == 2, "one parent per session"
    sessions: dict[str, list[dict[str, str]]] = {}
    for trial in trials:
        sessions.setdefault(trial.data.tags["mlexp.session_id"], []).append(trial.data.params)
    first, second = sessions.values()
    assert first == second
    assert len({tuple(sorted(p.items())) for p in first}) == 6
    assert {parent.data.tags["mlexp.members"] for parent in parents} == {"6"}

    # A session that runs part of the search says so.
    result = ourtester.runpytest(*QUIET, "-k", "trial-0")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        ["mlexp search experiment_bowl.py::experiment_bowl: 1 of 6 trials ran this session, *"]
    )


def test_workers_share_one_study_and_one_parent(project, client) -> None:
    ourtester = project(experiment_bowl=bowl(10))
    result = ourtester.runpytest(*QUIET, "-n", "2")
    result.assert_outcomes(passed=10)
    parents, trials = search_runs(client, ourtester.path.name)
    assert len(parents) == 1
    assert len(trials) == 10
    assert {t.data.tags["mlflow.parentRunId"] for t in trials} == {parents[0].info.run_id}
    assert sorted(int(t.data.tags["mlexp.trial"]) for t in trials) == list(range(10))
    assert len({tuple(sorted(t.data.params.items())) for t in trials}) == 10, "distinct trials"
    assert len({t.data.tags["mlexp.pid"] for t in trials}) == 2, "both workers ran trials"
    assert parents[0].data.tags["mlexp.trials_complete"] == "10"
    study = journal(ourtester.path, parents[0].data.tags["mlexp.search.study"])
    assert len(study.trials) == 10
    assert {t.state.name for t in study.trials} == {"COMPLETE"}


def test_a_named_study_continues_in_the_next_session(project, client) -> None:
    ourtester = project(experiment_bowl=bowl(5, "study='bowl-v1', seed=0"))
    ourtester.runpytest(*QUIET).assert_outcomes(passed=5)
    ourtester.runpytest(*QUIET).assert_outcomes(passed=5)
    parents, trials = search_runs(client, ourtester.path.name)
    assert len(parents) == 2
    assert {p.data.tags["mlexp.search.study"] for p in parents} == {"bowl-v1"}
    # The second session's trials carry on the study's numbering...
    assert [t.data.tags["mlexp.trial"] for t in trials] == [str(i) for i in range(10)]
    by_session: dict[str, list[str]] = {}
    for trial in trials:
        by_session.setdefault(trial.data.tags["mlexp.session_id"], []).append(trial.info.run_name)
    assert [len(names) for names in by_session.values()] == [5, 5]
    # ... in one study, whose earlier trials guided the sampler: the second session's
    # sampler is seeded from the study's seed and its trials, so no point comes again.
    study = journal(ourtester.path, "bowl-v1")
    assert len(study.trials) == 10
    assert len({tuple(sorted(t.params.items())) for t in study.trials}) == 10
    assert [p.name for p in (ourtester.path / ".mlexp" / "optuna").glob("*.log")] == [
        "bowl-v1.log"
    ], "one journal file per study"
    assert {p.data.tags["mlexp.trials"] for p in parents} == {"5"}


PRUNED = """
import optuna
import pytest

@pytest.mark.mlexp(search={"x": "uniform(-5, 5)"}, trials=14, objective="loss:min",
                   sampler="random", seed=1, pruner="median")
def experiment_median(mlflow_run, x):
    for step in range(8):
        mlflow_run.log_metric("loss", (x - 1) ** 2 + 1 / (step + 1), step=step)
        if mlflow_run.should_prune():
            return

@pytest.mark.mlexp(search={"x": "uniform(-5, 5)"}, trials=6, objective="loss:min",
                   sampler="random", seed=1, pruner=optuna.pruners.ThresholdPruner(upper=4.0))
def experiment_threshold(mlflow_run, x):
    for step in range(8):
        mlflow_run.log_metric("loss", (x - 1) ** 2, step=step)
        if mlflow_run.should_prune():
            raise optuna.TrialPruned()
"""


def test_pruning_stops_bad_trials(project, client) -> None:
    ourtester = project(experiment_pruned=PRUNED)
    result = ourtester.runpytest(*QUIET, "-rs")
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) == 0
    assert outcomes["skipped"] >= 2
    assert outcomes["passed"] + outcomes["skipped"] == 20
    result.stdout.fnmatch_lines(
        ["SKIPPED [[]1[]] experiment_pruned.py:*: pruned at step * (loss=*): trial * of the search"]
    )
    parents, trials = search_runs(client, ourtester.path.name)
    pruned = [t for t in trials if t.data.tags["mlexp.outcome"] == "pruned"]
    assert len(pruned) == outcomes["skipped"]
    history = client.get_metric_history
    for trial in pruned:
        # Pruned: FINISHED in MLflow, stopped before its last step.
        assert trial.info.status == "FINISHED"
        assert len(history(trial.info.run_id, "loss")) < 8
    for trial in trials:
        if trial not in pruned:
            assert trial.data.tags["mlexp.outcome"] == "passed"
            assert len(history(trial.info.run_id, "loss")) == 8
    for parent in parents:
        mine = [t for t in pruned if t.data.tags["mlflow.parentRunId"] == parent.info.run_id]
        assert mine, f"{parent.info.run_name} pruned no trial"
        assert parent.data.tags["mlexp.trials_pruned"] == str(len(mine))
        assert parent.info.status == "FINISHED"
        # The best is a complete trial, never a pruned one.
        assert parent.data.tags["mlexp.best_run_id"] not in {t.info.run_id for t in mine}
        study_name = parent.data.tags["mlexp.search.study"]
        states = [t.state.name for t in journal(ourtester.path, study_name).trials]
        assert states.count("PRUNED") == len(mine)


FAILING = """
import mlflow
import pytest

@pytest.mark.mlexp(search={"x": "uniform(0, 1)"}, trials=8, objective="loss:min",
                   sampler="random", seed=2)
def experiment_diverges(x):
    if x > 0.5:
        raise FloatingPointError(f"diverged at x={x:.3f}")
    return {"loss": x}

@pytest.mark.mlexp(search={"x": "uniform(0, 1)"}, trials=2, objective="loss:min")
def experiment_forgets(mlflow_run, x):
    mlflow_run.log_metric("los", x)

@pytest.mark.mlexp(search={"x": "uniform(0, 1)"}, trials=2, objective="loss:min")
def experiment_fluent(x):
    mlflow.log_metric("loss", x)  # the fluent API counts too
"""


def test_failed_trials_are_told_as_failed(project, client) -> None:
    ourtester = project(experiment_failing=FAILING)
    result = ourtester.runpytest(*QUIET)
    parents, trials = search_runs(client, ourtester.path.name)
    parents_by_name = {p.info.run_name.split(" · ")[0]: p for p in parents}

    diverging = [t for t in trials if t.info.run_name.startswith("experiment_diverges")]
    failed = [t for t in diverging if t.info.status == "FAILED"]
    assert 0 < len(failed) < 8
    for trial in failed:
        assert trial.data.tags["mlexp.error"].startswith("FloatingPointError: diverged at x=")
        assert float(trial.data.params["x"]) > 0.5
    parent = parents_by_name["experiment_diverges"]
    assert parent.info.status == "FAILED", "a failed trial fails its search's parent, as a cell"
    assert parent.data.tags["mlexp.trials_failed"] == str(len(failed))
    assert parent.data.metrics["best.loss"] <= 0.5
    study_name = parent.data.tags["mlexp.search.study"]
    states = [t.state.name for t in journal(ourtester.path, study_name).trials]
    assert states.count("FAIL") == len(failed)
    assert states.count("COMPLETE") == 8 - len(failed)

    # A trial that does not log the objective fails, saying so, and is told as failed.
    result.stdout.fnmatch_lines(
        [
            "*mlexp search: trial 0 of experiment_failing.py::experiment_forgets did not log "
            "the objective 'loss' (it logged: los); a trial is told to the study by its "
            "objective: log it with mlflow_run.log_metric('loss', value) or return "
            "{'loss': value}"
        ]
    )
    forgets = parents_by_name["experiment_forgets"]
    assert forgets.data.tags["mlexp.trials_failed"] == "2"
    assert "mlexp.best_run_id" not in forgets.data.tags
    study_name = forgets.data.tags["mlexp.search.study"]
    assert {t.state.name for t in journal(ourtester.path, study_name).trials} == {"FAIL"}

    fluent = parents_by_name["experiment_fluent"]
    assert fluent.data.tags["mlexp.trials_complete"] == "2"
    result.assert_outcomes(passed=8 - len(failed) + 2, failed=len(failed) + 2)
    assert not [t for t in trials if t.info.status == "RUNNING"]


def test_without_optuna_a_search_names_the_extra(project) -> None:
    ourtester = project(experiment_bowl=bowl(3))
    # Hide Optuna, as in an environment installed without the extra.
    ourtester.makeconftest("import sys\nsys.modules['optuna'] = None\n")
    result = ourtester.runpytest(*QUIET)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: @pytest.mark.mlexp on experiment_bowl.py::experiment_bowl: search: "
            "searches run on Optuna, which is not installed: "
            "pip install 'pytest-mlexp[search]'"
        ]
    )
    assert not (ourtester.path / ".mlexp").exists()


LOADED = """
import sys

def pytest_sessionfinish(session):
    names = ("optuna", "mlflow", "pytest_mlexp.search.plugin", "pytest_mlexp.search.collection")
    print("loaded:", [m for m in names if m in sys.modules])
"""


def test_collecting_a_search_imports_neither_optuna_nor_mlflow(project) -> None:
    ourtester = project(experiment_bowl=bowl(40))
    ourtester.makeconftest(LOADED)
    # A fresh interpreter on purpose: this process has imported optuna and mlflow already.
    result = ourtester.runpytest_subprocess(*QUIET, "-s", "--collect-only", "-q")
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(
        [
            "experiment_bowl.py::experiment_bowl[[]trial-0[]]",
            "experiment_bowl.py::experiment_bowl[[]trial-39[]]",
            "*loaded: [[]'pytest_mlexp.search.plugin', 'pytest_mlexp.search.collection'[]]",
        ]
    )
    assert not (ourtester.path / ".mlexp").exists(), "no study before a trial runs"


def test_a_suite_without_searches_loads_no_search_module(ourtester) -> None:
    ourtester.makeconftest(LOADED)
    ourtester.makepyfile(test_plain="def test_one():\n    assert True\n")
    # A fresh interpreter on purpose: this process has imported the search modules already.
    result = ourtester.runpytest_subprocess("-s", "-p", "no:randomly")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*loaded: [[][]]"])


FORMS = (
    "'uniform(a, b)', 'loguniform(a, b)', 'int(a, b)', 'int(a, b, log)', a list of values "
    "(a categorical, e.g. ['rbf', 'linear']), or an Optuna distribution object"
)

BAD = """
import pytest

@pytest.mark.mlexp({kwargs})
def experiment_bad(mlflow_run, x, kernel):
    return {{"loss": 1}}
"""


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param(
            "search={'x': 'gaussian(0, 1)', 'kernel': ['a']}, trials=3, objective='loss'",
            f"search['x']: cannot read 'gaussian(0, 1)'; accepted forms: {FORMS}",
            id="unknown-form",
        ),
        pytest.param(
            "search={'x': 'loguniform(0, 1)', 'kernel': ['a']}, trials=3, objective='loss'",
            "search['x']: loguniform(0.0, 1.0): a log scale needs a low bound above 0, got 0.0; "
            f"accepted forms: {FORMS}",
            id="log-from-zero",
        ),
        pytest.param(
            "search={'x': 'int(1.5, 3)', 'kernel': ['a']}, trials=3, objective='loss'",
            "search['x']: 'int(1.5, 3)': int() takes whole numbers, e.g. int(2, 12); "
            f"accepted forms: {FORMS}",
            id="int-of-floats",
        ),
        pytest.param(
            "search={'x': 'uniform(0, 1)', 'kernel': []}, trials=3, objective='loss'",
            f"search['kernel']: an empty list has nothing to choose from; accepted forms: {FORMS}",
            id="empty-choices",
        ),
        pytest.param(
            "search={'x': 'uniform(0, 1)', 'kernel': ['a']}, trials=0, objective='loss'",
            "trials: expected a positive number of trials, got 0",
            id="no-trials",
        ),
        pytest.param(
            "search={'x': 'uniform(0, 1)', 'kernel': ['a']}, trials=3",
            "objective: a search needs the metric it optimizes, as NAME:min or NAME:max, "
            "e.g. objective='val_loss:min', got None",
            id="no-objective",
        ),
        pytest.param(
            "search={'x': 'uniform(0, 1)', 'kernel': ['a']}, trials=3, objective='speed'",
            "objective: the direction of 'speed' is not known; write objective='speed:min' or "
            "objective='speed:max'",
            id="unknown-direction",
        ),
        pytest.param(
            "search={'x': 'uniform(0, 1)', 'kernel': ['a']}, trials=3, objective='loss', "
            "sampler='grid'",
            "sampler: unknown sampler 'grid'; accepted: tpe, random, qmc, or an Optuna BaseSampler",
            id="unknown-sampler",
        ),
        pytest.param(
            "search={'x': 'uniform(0, 1)', 'kernel': ['a'], 'depth': 'int(1, 3)'}, trials=3, "
            "objective='loss'",
            "search['depth']: experiment_bad() takes no argument 'depth', so its trials would "
            "not differ; add depth to the function's arguments, or request the 'params' "
            "fixture and read params['depth']",
            id="not-an-argument",
        ),
        pytest.param(
            "objective='loss:min'",
            "objective: objective= is given without search=; declare the space to search",
            id="objective-alone",
        ),
    ],
)
def test_bad_declarations_stop_the_session_naming_test_key_and_forms(
    project, kwargs: str, message: str
) -> None:
    ourtester = project(experiment_bad=BAD.format(kwargs=kwargs))
    result = ourtester.runpytest("-p", "no:randomly", "--collect-only")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [f"ERROR: @pytest.mark.mlexp on experiment_bad.py::experiment_bad: {message}"]
    )
    assert "Traceback" not in result.stderr.str()


def test_a_search_cannot_be_a_grid_too(project) -> None:
    ourtester = project(
        experiment_bad="""
        import pytest

        @pytest.mark.parametrize("kernel", ["rbf", "linear"])
        @pytest.mark.mlexp(search={"x": "uniform(0, 1)"}, trials=3, objective="loss")
        def experiment_bad(x, kernel):
            return {"loss": x}
        """
    )
    result = ourtester.runpytest("-p", "no:randomly", "--collect-only")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert (
        "ERROR: @pytest.mark.mlexp on experiment_bad.py::experiment_bad: search: a search "
        "cannot be combined with @pytest.mark.parametrize: each trial is one point of the "
        "space; put the parametrized values into search as a list, e.g. "
        "search={..., 'dataset': ['iris', 'wine']}"
    ) in result.stderr.lines


PARAMS_FILE = """\
experiment_svm:
  params: {cv: 3}
  search:
    lr: loguniform(1e-4, 1e-1)
    kernel: [rbf, linear]
  trials: 4
  objective: val_loss:min
  sampler: random
  seed: 0
"""

SVM = """
def experiment_svm(mlflow_run, lr, kernel, cv):
    assert cv == 3 and kernel in ("rbf", "linear") and 1e-4 <= lr <= 1e-1
    return {"val_loss": lr * cv}
"""


def test_a_search_declared_in_the_params_file(project, client) -> None:
    ourtester = project()
    (ourtester.path / "experiments").mkdir()
    (ourtester.path / "experiments" / "params.yaml").write_text(PARAMS_FILE)
    (ourtester.path / "experiments" / "experiment_svm.py").write_text(SVM)
    result = ourtester.runpytest(*QUIET, "experiments")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(["*experiment_svm[[]trial-3[]]*"])
    parents, trials = search_runs(client, ourtester.path.name)
    assert len(parents) == 1
    assert parents[0].data.tags["mlexp.search.sampler"] == "random (seed 0)"
    assert parents[0].data.params["space.lr"] == "loguniform(0.0001, 0.1)"
    for trial in trials:
        assert trial.data.params["cv"] == "3"
        assert set(trial.data.params) == {"cv", "lr", "kernel"}

    # A bad distribution in the file names the file's line.
    (ourtester.path / "experiments" / "params.yaml").write_text(
        PARAMS_FILE.replace("loguniform(1e-4, 1e-1)", "loguniform(-1, 1)")
    )
    result = ourtester.runpytest(*QUIET, "experiments", "--collect-only")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert (
        "ERROR: experiments/params.yaml:3: experiment_svm.search['lr']: "
        "loguniform(-1.0, 1.0): a log scale needs a low bound above 0, got -1.0; accepted "
        f"forms: {FORMS}"
    ) in result.stderr.lines


GATED = """
import pytest

@pytest.mark.mlexp(search={"x": "uniform(-5, 5)"}, trials=5, objective="loss:min",
                   sampler="random", seed=0, expect={"loss": "<= 0.0001"})
def experiment_gated(x):
    return {"loss": (x - 1) ** 2, "width": abs(x)}
"""


def test_the_gate_judges_a_search_by_its_best_trial(project, client) -> None:
    ourtester = project(experiment_gated=GATED)
    result = ourtester.runpytest(*QUIET)
    # The trials pass (a search explores); the search as a whole misses its bound.
    result.assert_outcomes(passed=4, failed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    parents, _ = search_runs(client, ourtester.path.name)
    parent = parents[0]
    assert parent.info.status == "FAILED"
    assert parent.data.tags["mlexp.regression"] == "regressed"
    assert parent.data.tags["mlexp.error"].startswith("loss = ")
    result.stdout.fnmatch_lines(
        [
            "FAILED     experiment_gated.py::experiment_gated: loss = *, expect <= 0.0001",
            "search experiment_gated.py::experiment_gated (best of 5 trials, parent run *) "
            "fails the session:",
            "1 search by its best trial: 1 regressed",
        ]
    )

    # Baselines are kept under the function's test id, from the best trial's metrics.
    baseline = ourtester.path / "baseline.yaml"
    gated = GATED.replace(', expect={"loss": "<= 0.0001"}', "")
    (ourtester.path / "experiment_gated.py").write_text(textwrap.dedent(gated))
    ourtester.runpytest(
        *QUIET, "--mlexp-baseline-file", str(baseline), "--mlexp-update-baseline"
    ).assert_outcomes(passed=5)
    import yaml

    entries = yaml.safe_load(baseline.read_text())
    assert list(entries) == ["experiment_gated.py::experiment_gated"]
    best = min(
        t.data.metrics["loss"]
        for t in search_runs(client, ourtester.path.name)[1]
        if t.data.tags["mlexp.session_id"] == result_session(ourtester, client)
    )
    assert entries["experiment_gated.py::experiment_gated"]["loss"] == pytest.approx(best)
    assert set(entries["experiment_gated.py::experiment_gated"]) == {"loss", "width"}

    # A worse search (another seed) against that baseline regresses as a whole.
    (ourtester.path / "experiment_gated.py").write_text(
        textwrap.dedent(gated.replace("seed=0", "seed=5").replace("trials=5", "trials=1"))
    )
    result = ourtester.runpytest(*QUIET, "--mlexp-baseline-file", str(baseline))
    result.assert_outcomes(failed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "REGRESSED  experiment_gated.py::experiment_gated: loss regressed: *",
            "search experiment_gated.py::experiment_gated (best of 1 trials, *",
        ]
    )


def result_session(ourtester: pytest.Pytester, client: MlflowClient) -> str:
    """The session id of the newest search parent."""
    parents, _ = search_runs(client, ourtester.path.name)
    return str(max(parents, key=lambda p: p.info.start_time).data.tags["mlexp.session_id"])


def test_reports_show_the_trials_history_and_importances(project, client, mlexp) -> None:
    ourtester = project(experiment_bowl=bowl(8, "sampler='random', seed=0"))
    report = ourtester.path / "report.html"
    result = ourtester.runpytest(*QUIET, f"--mlexp-html={report}")
    result.assert_outcomes(passed=8)
    page = report.read_text()
    assert "Optimization history: experiment_bowl.py::experiment_bowl@" in page
    assert "Hyperparameter importances: experiment_bowl.py::experiment_bowl@" in page

    # `mlexp runs` lists the trials with their number in the study.
    done = mlexp(ourtester.path, "runs")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[1].split()[:4] == ["RUN", "ID", "NAME", "TRIAL"]
    trial_rows = [line.split() for line in lines if "experiment_bowl[trial-" in line]
    assert len(trial_rows) == 8, "the search's parent is not a row: its trials are"
    assert sorted(int(row[2]) for row in trial_rows) == list(range(8))


REGISTERED = """
import pytest
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression

X, y = make_classification(n_samples=120, n_features=4, random_state=0)

@pytest.mark.mlexp(search={"C": "loguniform(1e-4, 10)"}, trials=4, objective="accuracy:max",
                   sampler="random", seed=0, register="search-clf")
def experiment_clf(mlflow_run, C):
    model = LogisticRegression(C=C).fit(X[:80], y[:80])
    mlflow_run.log_model(model, pip_requirements=["scikit-learn"])
    return {"accuracy": model.score(X[80:], y[80:])}
"""


@pytest.mark.filterwarnings("ignore::UserWarning:mlflow.*")
def test_register_takes_the_best_trials_model(project, client) -> None:
    ourtester = project(experiment_clf=REGISTERED)
    result = ourtester.runpytest(*QUIET)
    result.assert_outcomes(passed=4)
    (parent,), trials = search_runs(client, ourtester.path.name)
    best_id = parent.data.tags["mlexp.best_run_id"]
    version = client.get_model_version_by_alias("search-clf", "candidate")
    assert version.run_id == best_id, "the best trial's model, not the first trial's"
    assert "the best of 4 trials by accuracy=" in str(version.description)
    best = next(t for t in trials if t.info.run_id == best_id)
    shown = best.info.run_name.replace("[", "[[]")
    result.stdout.fnmatch_lines([f"mlexp: registered search-clf v1 @candidate from {shown}"])
