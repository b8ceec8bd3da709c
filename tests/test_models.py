"""Models: ``mlflow_run.log_model`` with MLflow's flavors; the best cell registered at the end."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from pytest_mlexp import cli
from pytest_mlexp.models.flavors import UnsupportedModelError, flavor_for
from pytest_mlexp.models.requirements import model_key

# Importing mlflow.pyfunc (load_model, PythonModel) warns about MLflow's own type hints.
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:mlflow.*")

EXPERIMENT = "models"
FUNCTION = "experiment_clf.py::experiment_clf"

CLASSIFIER = """
import pytest
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression

X, y = make_classification(n_samples=120, n_features=4, random_state=0)
# MLflow infers a model's requirements in a subprocess (~20 s a model); tests name them.
FAST = {{"pip_requirements": ["scikit-learn"]}}

@pytest.mark.mlexp({marker})
@pytest.mark.parametrize("C", [0.001, 0.1])
def experiment_clf(mlflow_run, C):
    model = LogisticRegression(C=C).fit(X[:80], y[:80])
    {log}
    {extra}
    return {{"accuracy": model.score(X[80:], y[80:])}}
"""

#: Accuracy of each cell of CLASSIFIER: C=0.1 is the best.
ACCURACY = {"0.001": 0.475, "0.1": 0.925}
LOG = "mlflow_run.log_model(model, input_example=X[:2], **FAST)"
#: Faster sessions: models are under test, not lineage or artifact discovery.
QUIET = ("-p", "no:randomly", "--mlexp-lineage", "none", "--mlexp-artifacts", "off")


def classifier(marker: str = 'register="churn-clf"', log: str = LOG, extra: str = "") -> str:
    return CLASSIFIER.format(marker=marker, log=log, extra=extra)


def escaped(pattern: str) -> str:
    """``pattern`` for ``fnmatch_lines``, with brackets taken literally."""
    return pattern.replace("[", "[[]")


@pytest.fixture
def run_models(empty_store: Path, ourtester: pytest.Pytester):  # type: ignore[no-untyped-def]
    """``run_models(*args)``: pytest on ``ourtester``'s project, experiment ``models``."""
    if not (ourtester.path / "mlflow.db").exists():
        shutil.copy(empty_store, ourtester.path / "mlflow.db")

    def run(*args: str) -> pytest.RunResult:
        return ourtester.runpytest("--mlexp-experiment", EXPERIMENT, *QUIET, *args)

    return run


def by_name(runs: Any) -> dict[str, Any]:
    return {run.info.run_name: run for run in runs}


def registered_versions(client: MlflowClient, name: str) -> list[Any]:
    return list(client.search_model_versions(f"name = '{name}'"))


def assert_registered(client: MlflowClient, best: Any, version: str = "1") -> Any:
    """The version under alias ``candidate`` comes from ``best``'s logged model."""
    found = client.get_model_version_by_alias("churn-clf", "candidate")
    assert str(found.version) == version
    full = client.get_model_version("churn-clf", version)
    assert full.run_id == best.info.run_id
    [output] = best.outputs.model_outputs
    assert full.source == f"models:/{output.model_id}"
    return full


# -- logging models -----------------------------------------------------------------------------


def test_grid_logs_a_model_per_cell_registers_the_best_and_reports_show_them(
    ourtester, run_models, read_runs, capsys, monkeypatch
):
    ourtester.makepyfile(experiment_clf=classifier())
    result = run_models()
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        [escaped("mlexp: registered churn-clf v1 @candidate from experiment_clf[0.1]")]
    )
    client = MlflowClient(f"sqlite:///{ourtester.path / 'mlflow.db'}")
    runs = by_name(read_runs(EXPERIMENT))
    experiment_id = runs["experiment_clf[0.1]"].info.experiment_id
    models = {m.source_run_id: m for m in client.search_logged_models([experiment_id])}
    for cell, accuracy in ACCURACY.items():
        run = runs[f"experiment_clf[{cell}]"]
        [output] = run.outputs.model_outputs  # the UI's Model column
        model = models[run.info.run_id]
        assert model.model_id == output.model_id
        assert model.name == "model"
        # Returned after log_model, the accuracy is linked to the model when the run ends.
        assert {(m.key, m.value) for m in model.metrics} == {("accuracy", accuracy)}
        assert model.params == {"C": cell}
    best = runs["experiment_clf[0.1]"]
    version = assert_registered(client, best)
    session = best.data.tags["mlexp.session_id"]
    assert version.tags == {
        "mlexp.session_id": session,
        "mlexp.nodeid": f"{FUNCTION}[0.1]",
        "mlexp.run_name": "experiment_clf[0.1]",
        "mlexp.regression": "not gated",
        "mlexp.best": "accuracy=0.925 (max)",
        "mlexp.metric.accuracy": "0.925",
    }
    assert version.description == (
        f"Model 'model' of experiment_clf[0.1] (run {best.info.run_id}), the best of 2 cells "
        f"by accuracy=0.925 (max); registered by pytest-mlexp session {session}; not gated."
    )
    assert best.data.tags["mlexp.registered_model"] == "churn-clf"
    assert best.data.tags["mlexp.registered_version"] == "1"
    # The logged model's page lists the version, as mlflow.register_model does.
    assert models[best.info.run_id].tags["mlflow.modelVersions"] == (
        '[{"name": "churn-clf", "version": "1"}]'
    )

    # What a deployment does: load the candidate and predict.
    mlflow.set_tracking_uri(f"sqlite:///{ourtester.path / 'mlflow.db'}")
    try:
        loaded = mlflow.pyfunc.load_model("models:/churn-clf@candidate")
    finally:
        mlflow.set_tracking_uri("")
    assert str(loaded.metadata.signature.inputs) == "[Tensor('float64', (-1, 4))]"
    from sklearn.datasets import make_classification

    features, labels = make_classification(n_samples=120, n_features=4, random_state=0)
    assert (loaded.predict(features[80:]) == labels[80:]).mean() == pytest.approx(0.925)

    # The next passing session makes version 2, and the alias moves to it. Its worse cell
    # logs no model: the reports show the models and the version.
    ourtester.makepyfile(experiment_clf=classifier(log="if C > 0.01: " + LOG))
    run_models("--mlexp-html", "report.html").assert_outcomes(passed=2)
    newest = {}
    for run in sorted(read_runs(EXPERIMENT), key=lambda r: r.info.start_time):
        newest[run.info.run_name] = run
    assert_registered(client, newest["experiment_clf[0.1]"], version="2")
    assert len(registered_versions(client, "churn-clf")) == 2
    page = (ourtester.path / "report.html").read_text()
    assert "<th aria-sort='none'>logged model</th>" in page
    assert "<b class='registered'>registered churn-clf v2 @candidate</b>" in page
    assert page.count(">1 model</span>") == 1

    monkeypatch.chdir(ourtester.path)
    capsys.readouterr()
    assert cli.main(["runs", "--experiment", EXPERIMENT]) == 0
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if line.startswith("RUN ID"))
    assert header.split()[-1] == "MODEL"
    rows = {line.split()[0]: line for line in out.splitlines()[2:]}
    row = {
        name: next(line for key, line in rows.items() if run.info.run_id.startswith(key))
        for name, run in newest.items()
    }
    assert row["experiment_clf[0.1]"].endswith("model -> churn-clf v2 @candidate")
    assert row["experiment_clf[0.001]"].endswith(" -")


def test_a_reused_best_cell_registers_its_source_runs_model(ourtester, run_models, read_runs):
    ourtester.makepyfile(experiment_clf=classifier())
    # The source session registers nothing: its model is no version yet.
    run_models("--mlexp-reuse", "--mlexp-no-register").assert_outcomes(passed=2)
    source = by_name(read_runs(EXPERIMENT))["experiment_clf[0.1]"]
    result = run_models("--mlexp-reuse")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        [escaped("mlexp: registered churn-clf v1 @candidate from experiment_clf[0.1]")]
    )
    client = MlflowClient(f"sqlite:///{ourtester.path / 'mlflow.db'}")
    reused = max(
        (r for r in read_runs(EXPERIMENT) if r.info.run_name == "experiment_clf[0.1]"),
        key=lambda r: r.info.start_time,
    )
    assert reused.data.tags["mlexp.reused_from"] == source.info.run_id
    assert not reused.outputs.model_outputs  # not executed: no model of its own
    # Version 1 is the model the source run logged, under the source run.
    assert_registered(client, source, version="1")
    assert reused.data.tags["mlexp.registered_version"] == "1"
    # Once more unchanged: the same model is already the newest version, none is added.
    result = run_models("--mlexp-reuse")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        [
            escaped(
                "mlexp: churn-clf v1 @candidate is already experiment_clf[0.1]'s model; "
                "nothing registered"
            )
        ]
    )
    assert len(registered_versions(client, "churn-clf")) == 1


def test_unsupported_object_is_a_clear_error_and_the_run_is_closed(
    ourtester, run_models, read_runs
):
    ourtester.makepyfile(
        experiment_odd="""
        import numpy as np

        def experiment_odd(mlflow_run):
            mlflow_run.log_model(np.zeros(3))

        def experiment_class(mlflow_run):
            from sklearn.linear_model import LogisticRegression

            mlflow_run.log_model(LogisticRegression)
        """
    )
    result = run_models()
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(
        [
            "E * pytest_mlexp.models.flavors.UnsupportedModelError: mlflow_run.log_model: no "
            "MLflow flavor is known for a numpy.ndarray object; pytest-mlexp picks the flavor "
            "of scikit-learn, XGBoost, LightGBM, CatBoost, statsmodels, PyTorch, "
            "TensorFlow/Keras and transformers objects, and mlflow.pyfunc.PythonModel, and "
            "never pickles a model silently. Call the MLflow flavor's own function in the "
            'experiment, e.g. mlflow.onnx.log_model(model, name="model"), or wrap the model '
            "in a mlflow.pyfunc.PythonModel and pass that to mlflow_run.log_model.",
            "E *UnsupportedModelError: mlflow_run.log_model: got the class "
            "sklearn.linear_model._logistic.LogisticRegression, not a model; pass the fitted "
            "object, e.g. LogisticRegression(...).fit(X, y)",
        ]
    )
    for run in read_runs(EXPERIMENT):
        assert run.info.status == "FAILED"
        assert not run.outputs.model_outputs


def test_flavor_is_picked_from_the_class_and_its_bases() -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    assert flavor_for(LogisticRegression()).function == "mlflow.sklearn.log_model"
    assert flavor_for(make_pipeline(LogisticRegression())).name == "sklearn"

    # A class of XGBoost's on top of scikit-learn's base: its own package wins.
    xgb_classifier = type("XGBClassifier", (LogisticRegression,), {"__module__": "xgboost.sklearn"})
    assert flavor_for(xgb_classifier()).name == "xgboost"
    # A user's network: a subclass of torch's Module, from the user's module.
    module = type("Module", (), {"__module__": "torch.nn.modules.module"})
    net = type("Net", (module,), {"__module__": "mynets"})
    assert flavor_for(net()).function == "mlflow.pytorch.log_model"
    booster = type("Booster", (), {"__module__": "lightgbm.basic"})
    assert flavor_for(booster()).name == "lightgbm"

    class Wrapper(mlflow.pyfunc.PythonModel):
        def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
            return model_input

    assert flavor_for(Wrapper()).name == "pyfunc"
    onnx_model = type("ModelProto", (), {"__module__": "onnx.onnx_ml_pb2"})
    with pytest.raises(UnsupportedModelError, match=r"MLflow has a flavor for onnx: call "):
        flavor_for(onnx_model())


def test_requirements_are_shared_by_models_made_of_the_same_packages() -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    first = model_key("sklearn", LogisticRegression(C=0.1))
    assert first == model_key("sklearn", LogisticRegression(C=1.0))
    assert first is not None
    assert "sklearn" in first[1]
    # A step from another package (a user's transformer) needs its own inference.
    step = type("Scaler", (), {"__module__": "mylib.features"})()
    other = model_key("sklearn", make_pipeline(step, LogisticRegression()))
    assert other is not None
    assert "mylib" in other[1]
    assert other != first


def test_models_logged_by_pyfunc_with_inferred_requirements(ourtester, run_models, read_runs):
    """Without pip_requirements, MLflow infers them once and the next cell reuses them."""
    ourtester.makepyfile(
        experiment_clf=classifier(
            marker="",
            log="mlflow_run.log_model(model, name='clf', input_example=X[:2])",
        )
    )
    run_models().assert_outcomes(passed=2)
    client = MlflowClient(f"sqlite:///{ourtester.path / 'mlflow.db'}")
    texts = []
    for run in read_runs(EXPERIMENT):
        [output] = run.outputs.model_outputs
        model = client.get_logged_model(output.model_id)
        assert model.name == "clf"
        path = Path(
            mlflow.artifacts.download_artifacts(f"{model.artifact_location}/requirements.txt")
        )
        texts.append(path.read_text())
    assert texts[0] == texts[1]
    assert any(line.startswith("scikit-learn==") for line in texts[0].splitlines())


# -- when nothing is registered ----------------------------------------------------------------


def test_regression_against_a_baseline_file_registers_nothing(ourtester, run_models):
    ourtester.makefile(
        ".yaml",
        baseline=f"""
        {FUNCTION}[0.001]:
          accuracy: 0.475
        {FUNCTION}[0.1]:
          accuracy: 0.99
        """,
    )
    ourtester.makepyfile(experiment_clf=classifier())
    result = run_models("--mlexp-baseline-file", "baseline.yaml")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            f"mlexp: nothing registered as churn-clf for {FUNCTION}: the gate failed "
            f"({escaped(FUNCTION)}[[]0.1])",
        ]
    )
    client = MlflowClient(f"sqlite:///{ourtester.path / 'mlflow.db'}")
    assert client.search_registered_models() == []

    # Against a baseline it meets, the same grid registers its best cell, with the verdict.
    (ourtester.path / "baseline.yaml").write_text(
        f"{FUNCTION}[0.001]:\n  accuracy: 0.475\n{FUNCTION}[0.1]:\n  accuracy: 0.925\n"
    )
    result = run_models("--mlexp-baseline-file", "baseline.yaml")
    result.assert_outcomes(passed=2)
    version = client.get_model_version_by_alias("churn-clf", "candidate")
    assert version.tags["mlexp.regression"] == "passed"
    assert version.tags["mlexp.baseline.source"] == "baseline.yaml"
    assert "gate: passed against baseline.yaml." in version.description


def test_failed_cell_registers_nothing(ourtester, run_models):
    ourtester.makepyfile(
        experiment_clf=classifier(extra="assert C > 0.01, 'diverged'"),
        test_other="def test_other():\n    pass\n",
    )
    result = run_models()
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(
        [
            f"mlexp: nothing registered as churn-clf for {FUNCTION}: a cell did not finish "
            "(experiment_clf[[]0.001] FAILED)"
        ]
    )
    client = MlflowClient(f"sqlite:///{ourtester.path / 'mlflow.db'}")
    assert client.search_registered_models() == []


def test_failed_session_or_best_cell_without_model_registers_nothing(ourtester, run_models):
    ourtester.makepyfile(
        experiment_clf=classifier(log="if C < 0.01: " + LOG),
        test_other="def test_other():\n    assert False\n",
    )
    result = run_models()
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(
        [f"mlexp: nothing registered as churn-clf for {FUNCTION}: the session failed (exit code 1)"]
    )
    result = run_models("-k", "experiment")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        [
            f"mlexp: nothing registered as churn-clf for {FUNCTION}: the best cell "
            "experiment_clf[[]0.1] logged no model; log one with mlflow_run.log_model(model)"
        ]
    )
    client = MlflowClient(f"sqlite:///{ourtester.path / 'mlflow.db'}")
    assert client.search_registered_models() == []


def test_no_register_flag_and_names_from_ini_and_yaml(ourtester, run_models):
    ourtester.makeini(
        "[pytest]\nmlexp_register =\n    experiment_clf=churn-clf\n    experiment_gone=x\n"
    )
    ourtester.makepyfile(experiment_clf=classifier(marker=""))
    result = run_models("--mlexp-no-register")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        [
            "mlexp: register: 'experiment_gone' (ini mlexp_register) matches no experiment run "
            "in this session; give a function's name or node id",
            "mlexp: nothing registered (--mlexp-no-register): churn-clf",
        ]
    )
    client = MlflowClient(f"sqlite:///{ourtester.path / 'mlflow.db'}")
    assert client.search_registered_models() == []

    # mlexp.yaml maps the function's node id; --mlexp-register-alias names the alias.
    ourtester.makeini("[pytest]\n")
    (ourtester.path / "mlexp.yaml").write_text(f"register:\n  {FUNCTION}: churn-clf\n")
    result = run_models("--mlexp-register-alias", "staging")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        [escaped("mlexp: registered churn-clf v1 @staging from experiment_clf[0.1]")]
    )
    assert str(client.get_model_version_by_alias("churn-clf", "staging").version) == "1"


@pytest.mark.parametrize(
    ("args", "files", "message"),
    [
        (
            ["--mlexp-register-alias", "v2"],
            {},
            "ERROR: --mlexp-register-alias: invalid alias 'v2'; accepted: letters, digits, _ and "
            "-, not 'latest' nor a version like 'v3', e.g. candidate",
        ),
        (
            [],
            {"mlexp.yaml": "register:\n  experiment_clf: a/b\n"},
            "ERROR: mlexp.yaml register.experiment_clf: invalid registered model name 'a/b'; "
            "expected a non-empty name without '/' or ':', e.g. churn-clf",
        ),
        (
            [],
            {"pytest.ini": "[pytest]\nmlexp_register = experiment_clf\n"},
            "ERROR: ini mlexp_register: malformed line 'experiment_clf'; expected TEST=NAME, "
            "e.g. experiment_classifier=churn-clf",
        ),
    ],
)
def test_bad_register_settings_are_usage_errors(ourtester, args, files, message):
    for name, text in files.items():
        (ourtester.path / name).write_text(text)
    ourtester.makepyfile(experiment_clf=classifier(marker=""))
    result = ourtester.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])
    assert not (ourtester.path / "mlflow.db").exists()


def test_bad_register_marker_is_a_usage_error(ourtester):
    ourtester.makepyfile(experiment_clf=classifier(marker='register=""'))
    result = ourtester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: @pytest.mark.mlexp on experiment_clf.py::experiment_clf[[]*]: register: "
            "invalid registered model name ''; expected a non-empty name without '/' or ':', "
            "e.g. churn-clf"
        ]
    )


# -- xdist, repeats, a server, reports ----------------------------------------------------------


def test_registration_under_xdist_and_from_the_best_repeat(ourtester, run_models, read_runs):
    ourtester.makepyfile(
        experiment_clf=classifier(marker='register="churn-clf", repeats=2, best="accuracy"')
        .replace("def experiment_clf(mlflow_run, C):", "def experiment_clf(mlflow_run, C, seed):")
        .replace("LogisticRegression(C=C)", "LogisticRegression(C=C * (1 + seed))")
    )
    # One worker is enough: the point is the hand-off to the controller, which judges the
    # cells over their repeats, registers and prunes (seeds over two workers: test_confidence).
    result = run_models("-n", "1", "--mlexp-keep-models", "1")
    result.assert_outcomes(passed=4)
    # C=0.1 ties over its seeds (0.925): the first repeat with the best accuracy wins.
    # The controller keeps the models of the best cell only, after registering: the
    # other cell's two repeats lose theirs.
    result.stdout.fnmatch_lines(
        [
            escaped("mlexp: registered churn-clf v1 @candidate from experiment_clf[0.1-seed*]"),
            "mlexp: --mlexp-keep-models 1: removed 2 logged models * of 2 runs below the best 1 *",
        ]
    )
    client = MlflowClient(f"sqlite:///{ourtester.path / 'mlflow.db'}")
    version = client.get_model_version_by_alias("churn-clf", "candidate")
    source = client.get_run(version.run_id)
    assert source.data.tags["mlexp.cell"] == f"{FUNCTION}[0.1]"
    assert source.data.metrics["accuracy"] == pytest.approx(0.925)
    # The cell was judged (its mean), not the repeat.
    assert version.tags["mlexp.regression"] == "not gated"
    assert "the best of 2 cells by accuracy=0.925 (max)" in version.description

    # Run in part, a repeated grid registers nothing: its cells count only by their repeats.
    for selection, why in (
        ("seed0", "only 1 of 2 repeats of cell experiment_clf[0.1] ran this session; run all its "
         "repeats to register"),
        ("0.001", "only 1 of 2 cells ran this session, and a repeated cell counts only when it "
         "runs; run the whole grid to register its best cell"),
    ):  # fmt: skip
        result = run_models("-k", selection)
        result.assert_outcomes(passed=2)
        result.stdout.fnmatch_lines(
            [escaped(f"mlexp: nothing registered as churn-clf for {FUNCTION}: {why}")]
        )
    assert len(registered_versions(client, "churn-clf")) == 1


def test_registration_on_a_tracking_server(ourtester, mlflow_server, read_runs):
    ourtester.makepyfile(experiment_clf=classifier(marker='register="churn-clf-remote"'))
    result = ourtester.runpytest(
        *QUIET,
        "--mlexp-tracking-uri",
        mlflow_server.url,
        "--mlexp-experiment",
        "models-remote",
        "--mlexp-html",
        "report.html",
    )
    result.assert_outcomes(passed=2)
    client = MlflowClient(mlflow_server.url)
    version = client.get_model_version_by_alias("churn-clf-remote", "candidate")
    link = f"{mlflow_server.url}/#/models/churn-clf-remote/versions/{version.version}"
    assert (
        f"<a href='{link}'><b class='registered'>registered churn-clf-remote "
        f"v{version.version} @candidate</b></a>"
    ) in (ourtester.path / "report.html").read_text()
    result.stdout.fnmatch_lines(
        [
            escaped(
                f"mlexp: registered churn-clf-remote v{version.version} @candidate from "
                f"experiment_clf[0.1] {mlflow_server.url}/#/models/churn-clf-remote/versions/"
                f"{version.version}"
            )
        ]
    )
    runs = by_name(read_runs("models-remote", mlflow_server.url))
    best = runs["experiment_clf[0.1]"]
    assert client.get_model_version("churn-clf-remote", version.version).run_id == (
        best.info.run_id
    )
    [output] = best.outputs.model_outputs
    model = client.get_logged_model(output.model_id)
    assert {(m.key, m.value) for m in model.metrics} == {("accuracy", 0.925)}

    mlflow.set_tracking_uri(mlflow_server.url)
    try:
        loaded = mlflow.pyfunc.load_model("models:/churn-clf-remote@candidate")
    finally:
        mlflow.set_tracking_uri("")
    from sklearn.datasets import make_classification

    features, _ = make_classification(n_samples=120, n_features=4, random_state=0)
    assert loaded.predict(features[:4]).shape == (4,)


# -- a grid run in part -------------------------------------------------------------------------

#: A 3-cell grid; ``{more}`` adds cells (a change of the code: no earlier run matches it then).
PARTIAL_GRID = """
import pytest
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression

X, y = make_classification(n_samples=120, n_features=4, random_state=0)

@pytest.mark.mlexp(register="churn-clf", best="accuracy:max")
@pytest.mark.parametrize("C", [0.001, 0.1, 100.0{more}])
def experiment_clf(mlflow_run, C):
    model = LogisticRegression(C=C).fit(X[:80], y[:80])
    mlflow_run.log_model(model, pip_requirements=["scikit-learn"])
    return {{"accuracy": model.score(X[80:], y[80:])}}
"""


def test_a_grid_run_in_part_registers_only_from_the_whole_grid(ourtester, run_models, read_runs):
    """Selection x registration and the grid line: node id, --deselect (xdist), -k, -x."""
    ourtester.makepyfile(experiment_clf=PARTIAL_GRID.format(more=""))
    client = MlflowClient(f"sqlite:///{ourtester.path / 'mlflow.db'}")
    result = run_models()
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(
        [
            f"mlexp grid {FUNCTION}: 3 cells, 3 passed, 0 failed; best accuracy=0.925*",
            escaped("mlexp: registered churn-clf v1 @candidate from experiment_clf[0.1]"),
        ]
    )
    best = by_name(read_runs(EXPERIMENT))["experiment_clf[0.1]"]

    # The worst cell alone: its grid counts the others by their runs of this code, whose
    # best is already version 1. Nothing registered, the alias stays.
    result = run_models(f"{FUNCTION}[0.001]")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            f"mlexp grid {FUNCTION}: 1 of 3 cells ran this session, 1 passed, 0 failed; "
            "best accuracy=0.475*",
            escaped(
                "mlexp: churn-clf v1 @candidate is already experiment_clf[0.1]'s model; "
                "nothing registered"
            ),
        ]
    )
    parent = next(
        r
        for r in read_runs(EXPERIMENT, groups=True)
        if r.data.tags.get("mlexp.kind") == "grid" and r.data.tags.get("mlexp.grid_size") == "1"
    )
    assert parent.data.tags["mlexp.members"] == "3"
    assert "**1 of 3 cells ran this session.**" in parent.data.tags["mlflow.note.content"]
    # The same with the best cell deselected (on one xdist worker: the controller registers),
    # and -k.
    for selection in (["--deselect", f"{FUNCTION}[0.1]", "-n", "1"], ["-k", "not 0.1"]):
        result = run_models(*selection)
        result.assert_outcomes(passed=2)
        result.stdout.fnmatch_lines(
            [
                f"mlexp grid {FUNCTION}: 2 of 3 cells ran this session, *",
                "mlexp: churn-clf v1 @candidate is already *",
            ]
        )
    assert [str(v.version) for v in registered_versions(client, "churn-clf")] == ["1"]
    assert_registered(client, best, version="1")

    # A new cell: the code changed, no cell left out has a run of it. Nothing registered.
    ourtester.makepyfile(experiment_clf=PARTIAL_GRID.format(more=", 1.0"))
    result = run_models(f"{FUNCTION}[0.001]")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            f"mlexp grid {FUNCTION}: 1 of 4 cells ran this session, *",
            escaped(
                "mlexp: nothing registered as churn-clf for experiment_clf.py::experiment_clf: "
                "only 1 of 4 cells ran this session, and experiment_clf[0.1], "
                "experiment_clf[1.0], experiment_clf[100.0] have no earlier passed run of the "
                "current code; run the whole grid to register its best cell"
            ),
        ]
    )
    # -x stops the grid at its first failure: the line says how much ran.
    ourtester.makepyfile(
        experiment_clf=PARTIAL_GRID.format(more="").replace(
            "    return {", '    assert C != 0.001, "too weak"\n    return {'
        )
    )
    result = run_models("-x")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [f"mlexp grid {FUNCTION}: 1 of 3 cells ran this session, 0 passed, 1 failed*"]
    )
    assert [str(v.version) for v in registered_versions(client, "churn-clf")] == ["1"]
    assert_registered(client, best, version="1")
