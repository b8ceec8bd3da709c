"""Autolog: sklearn's params, metrics and model land in the item's own run, never in another."""

from __future__ import annotations

import pytest

EXPERIMENT = "demo"

#: The project's default store exists before each session (conftest ``_premade_store``).
PREMADE_STORE = True

PROJECT = """
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

def fit():
    X, y = load_iris(return_X_y=True)
    return LogisticRegression(C=0.5, max_iter=300).fit(X, y)

def test_plain_before():
    fit()

def experiment_fit(mlflow_run):
    fit()
    return {"mine": 1.0}

def test_plain_after():
    fit()
"""


def all_runs(client):  # type: ignore[no-untyped-def]
    experiments = client.search_experiments()
    return client.search_runs([e.experiment_id for e in experiments])


def test_autolog_logs_into_the_items_run_only(ourtester, client):
    ourtester.makeini("[pytest]\nfilterwarnings =\n    error\n")
    ourtester.makepyfile(test_fit=PROJECT)
    result = ourtester.runpytest(
        "--mlexp-experiment", EXPERIMENT, "-p", "no:randomly", "--mlexp-lineage=none",
        "--mlexp-autolog=on",
    )  # fmt: skip
    result.assert_outcomes(passed=3)
    (run,) = all_runs(client)  # the plain tests' fits made no run anywhere
    assert run.info.run_name == "experiment_fit"
    assert run.data.params["C"] == "0.5"
    assert run.data.params["max_iter"] == "300"
    assert run.data.metrics["mine"] == 1.0
    assert run.data.metrics["training_accuracy_score"] > 0.9
    assert run.data.tags["mlexp.outcome"] == "passed"
    models = client.search_logged_models([run.info.experiment_id])
    assert [m.source_run_id for m in models] == [run.info.run_id]


def test_autolog_is_off_by_default_and_set_in_yaml(ourtester, client):
    ourtester.makepyfile(test_fit=PROJECT)
    args = ("--mlexp-experiment", EXPERIMENT, "-p", "no:randomly", "--mlexp-lineage=none")
    ourtester.runpytest(*args, "-k", "experiment").assert_outcomes(passed=1)
    (run,) = all_runs(client)
    assert "C" not in run.data.params
    ourtester.makefile(".yaml", mlexp="autolog: maybe\n")
    result = ourtester.runpytest(*args)
    assert result.ret == 4
    result.stderr.fnmatch_lines(
        ["ERROR: mlexp.yaml autolog: invalid value 'maybe' for autolog; accepted: true/false*"]
    )


@pytest.mark.parametrize("value", ["on", "true", "1", "yes"])
def test_autolog_values(ourtester, value):
    from pytest_mlexp.settings.autolog import resolve_autolog

    assert resolve_autolog(ourtester.parseconfig(f"--mlexp-autolog={value}")) is True
    assert resolve_autolog(ourtester.parseconfig()) is False


OWN_AUTOLOG = """
import mlflow
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

def fit():
    X, y = load_iris(return_X_y=True)
    return LogisticRegression(C=0.5, max_iter=300).fit(X, y)

def experiment_own_autolog(mlflow_run):
    # No model: MLflow would infer its requirements in a subprocess; the scope is under test.
    mlflow.sklearn.autolog(log_models=False)
    fit()

def test_plain_after():
    fit()
"""


@pytest.mark.parametrize("autolog", ["off", "on"])
def test_a_users_own_autolog_call_ends_with_its_item(ourtester, client, autolog):
    """``mlflow.sklearn.autolog()`` inside an experiment: the experiment's run, not a later test's.

    Without the scope, the plain test after it makes a stray run in ``Default``; with
    ``--mlexp-autolog=on`` too, although the flavor was on when the item started.
    """
    from mlflow.utils.autologging_utils import autologging_is_disabled

    ourtester.makepyfile(test_own=OWN_AUTOLOG)
    result = ourtester.runpytest(
        "--mlexp-experiment", EXPERIMENT, "-p", "no:randomly", "--mlexp-lineage=none",
        "--mlexp-artifacts=off", f"--mlexp-autolog={autolog}",
    )  # fmt: skip
    result.assert_outcomes(passed=2)
    (run,) = all_runs(client)  # none in Default from test_plain_after
    assert run.info.run_name == "experiment_own_autolog"
    assert run.data.params["C"] == "0.5"
    assert run.data.metrics["training_accuracy_score"] > 0.9
    assert autologging_is_disabled("sklearn")
