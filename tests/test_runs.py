"""End to end: experiments a user writes become MLflow runs with the right content and status."""

from __future__ import annotations

import math
import sys

import pytest

from conftest import logged_metrics

EXPERIMENT = "demo"

#: The project's default store exists before each session (conftest ``_premade_store``).
PREMADE_STORE = True


@pytest.fixture
def run_experiments(ourtester: pytest.Pytester):  # type: ignore[no-untyped-def]
    """Run pytest in the project with the experiment name fixed to ``demo``."""

    def run(*args: str) -> pytest.RunResult:
        return ourtester.runpytest("--mlexp-experiment", EXPERIMENT, "-p", "no:randomly", *args)

    return run


def test_grid_makes_one_run_per_cell(ourtester, run_experiments, read_runs):
    ourtester.makepyfile(
        experiment_ridge="""
        import pytest

        @pytest.mark.parametrize("alpha", [0.1, 1.0, 10.0])
        def experiment_ridge(mlflow_run, alpha):
            mlflow_run.log_metric("r2", 1 / (1 + alpha))
            return {"r2_again": 1 / (1 + alpha), "solver": "auto"}
        """
    )
    result = run_experiments("-v")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(
        [
            f"mlexp: tracking sqlite:///{ourtester.path}/mlflow.db (default), "
            f"experiment 'demo', figures inline, session *",
            "*mlexp: 3 runs in experiment 'demo'*",
            "experiment_ridge[[]0.1[]]*FINISHED*r2=0.9091 r2_again=0.9091*",
            f"open the MLflow UI with: {sys.executable} -m mlflow ui --backend-store-uri "
            f"sqlite:///{ourtester.path}/mlflow.db --default-artifact-root "
            f"{ourtester.path}/mlruns --port 5000",
            "then open: http://127.0.0.1:5000/#/experiments/1/runs?"
            "workflowType=machine_learning&viewStateShareKey=mlexp",
        ]
    )
    runs = read_runs(EXPERIMENT)
    assert [r.info.run_name for r in runs] == [
        "experiment_ridge[0.1]",
        "experiment_ridge[1.0]",
        "experiment_ridge[10.0]",
    ]
    for run, alpha in zip(runs, [0.1, 1.0, 10.0], strict=True):
        assert run.info.status == "FINISHED"
        assert run.data.params == {"alpha": str(alpha), "solver": "auto"}
        assert logged_metrics(run) == pytest.approx(
            {"r2": 1 / (1 + alpha), "r2_again": 1 / (1 + alpha)}
        )
        tags = run.data.tags
        assert tags["mlexp.nodeid"] == f"experiment_ridge.py::experiment_ridge[{alpha}]"
        assert tags["mlexp.outcome"] == "passed"
        assert tags["mlflow.source.name"] == "experiment_ridge.py"
        assert tags["mlflow.source.type"] == "LOCAL"
        assert tags["mlflow.user"]
    assert len({r.data.tags["mlexp.session_id"] for r in runs}) == 1
    # The returned dict is logged, not warned about.
    assert "PytestReturnNotNoneWarning" not in result.stdout.str()


def test_each_session_gets_its_own_id(ourtester, run_experiments, read_runs):
    ourtester.makepyfile(experiment_one="def experiment_one(): return {'x': 1}")
    run_experiments().assert_outcomes(passed=1)
    run_experiments().assert_outcomes(passed=1)
    sessions = {r.data.tags["mlexp.session_id"] for r in read_runs(EXPERIMENT)}
    assert len(sessions) == 2


def test_failure_is_failed_with_traceback_and_others_stay(
    ourtester, run_experiments, read_runs, client
):
    ourtester.makepyfile(
        experiment_crash="""
        import pytest

        @pytest.mark.parametrize("lr", [0.1, 100.0])
        def experiment_train(mlflow_run, lr):
            mlflow_run.log_metric("loss", 0.5, step=0)
            if lr > 1:
                raise FloatingPointError(f"loss diverged at lr={lr}")
            return {"val_loss": 0.25}
        """
    )
    result = run_experiments()
    result.assert_outcomes(passed=1, failed=1)
    ok, crashed = read_runs(EXPERIMENT)
    assert ok.info.status == "FINISHED"
    assert logged_metrics(ok) == {"loss": 0.5, "val_loss": 0.25}
    assert crashed.info.status == "FAILED"
    assert crashed.data.tags["mlexp.outcome"] == "failed"
    assert crashed.data.tags["mlexp.error"] == "FloatingPointError: loss diverged at lr=100.0"
    # What was logged before the crash is kept.
    assert crashed.data.metrics["loss"] == 0.5
    path = client.download_artifacts(
        crashed.info.run_id, "mlexp/traceback.txt", str(ourtester.path)
    )
    with open(path) as f:
        traceback = f.read()
    assert "raise FloatingPointError" in traceback
    result.stdout.fnmatch_lines(["experiment_train[[]100.0[]]*FAILED*loss=0.5*"])


def test_setup_error_is_failed(ourtester, run_experiments, read_runs):
    ourtester.makepyfile(
        experiment_setup="""
        import pytest

        @pytest.fixture
        def dataset():
            raise FileNotFoundError("data/train.csv")

        def experiment_needs_data(dataset):
            pass
        """
    )
    run_experiments().assert_outcomes(errors=1)
    (run,) = read_runs(EXPERIMENT)
    assert run.info.status == "FAILED"
    assert run.data.tags["mlexp.outcome"] == "error"
    assert "FileNotFoundError: data/train.csv" in run.data.tags["mlexp.error"]


def test_skip_xfail_xpass_are_tagged(ourtester, run_experiments, read_runs):
    ourtester.makepyfile(
        experiment_outcomes="""
        import pytest

        @pytest.mark.skip(reason="no GPU")
        def experiment_a_skipped():
            pass

        def experiment_b_skipped_inside():
            pytest.skip("dataset missing")

        @pytest.mark.xfail(reason="known divergence")
        def experiment_c_xfailed():
            raise ValueError("diverged")

        @pytest.mark.xfail(reason="flaky")
        def experiment_d_xpassed():
            pass
        """
    )
    run_experiments().assert_outcomes(skipped=2, xfailed=1, xpassed=1)
    runs = read_runs(EXPERIMENT)
    seen = {r.info.run_name: (r.data.tags["mlexp.outcome"], r.info.status) for r in runs}
    assert seen == {
        "experiment_a_skipped": ("skipped", "FINISHED"),
        "experiment_b_skipped_inside": ("skipped", "FINISHED"),
        "experiment_c_xfailed": ("xfailed", "FAILED"),
        "experiment_d_xpassed": ("xpassed", "FINISHED"),
    }


def test_ctrl_c_marks_the_run_killed_and_keeps_earlier_runs(ourtester, run_experiments, read_runs):
    ourtester.makepyfile(
        experiment_interrupt="""
        def experiment_a_done(mlflow_run):
            mlflow_run.log_metric("acc", 0.9)

        def experiment_b_interrupted(mlflow_run):
            mlflow_run.log_metric("acc", 0.1, step=1)
            raise KeyboardInterrupt

        def experiment_c_never_run():
            pass
        """
    )
    # In-process, pytester would raise the inner session's Ctrl-C in this test.
    result = ourtester.runpytest(
        "--mlexp-experiment", EXPERIMENT, "-p", "no:randomly", no_reraise_ctrlc=True
    )
    assert result.ret == pytest.ExitCode.INTERRUPTED
    runs = read_runs(EXPERIMENT)
    seen = {r.info.run_name: (r.data.tags["mlexp.outcome"], r.info.status) for r in runs}
    assert seen == {
        "experiment_a_done": ("passed", "FINISHED"),
        "experiment_b_interrupted": ("interrupted", "KILLED"),
    }
    # Values logged before the interrupt reach the store.
    assert logged_metrics(runs[1]) == {"acc": 0.1}
    result.stdout.fnmatch_lines(["experiment_b_interrupted*KILLED (interrupted)*acc=0.1*"])


def test_exitfirst_leaves_no_run_running(ourtester, run_experiments, read_runs):
    ourtester.makepyfile(
        experiment_x="""
        import pytest

        @pytest.mark.parametrize("i", range(4))
        def experiment_x(i):
            assert i != 1
        """
    )
    run_experiments("-x").assert_outcomes(passed=1, failed=1)
    runs = read_runs(EXPERIMENT)
    assert [r.info.status for r in runs] == ["FINISHED", "FAILED"]


def test_fluent_api_lands_in_the_items_run(ourtester, run_experiments, read_runs, client):
    ourtester.makepyfile(
        experiment_fluent="""
        import mlflow

        def experiment_fluent(mlflow_run):
            assert mlflow.active_run().info.run_id == mlflow_run.run_id
            mlflow.log_param("optimizer", "adam")
            for step in range(3):
                mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
            mlflow_run.log_metric("acc", 0.5, step=0)
            mlflow_run.log_metric("acc", 0.75, step=1)

        def experiment_then_another():
            import mlflow
            assert mlflow.active_run() is not None
        """
    )
    run_experiments().assert_outcomes(passed=2)
    runs = read_runs(EXPERIMENT)
    assert len(runs) == 2
    fluent = runs[0]
    assert fluent.data.params == {"optimizer": "adam"}
    history = client.get_metric_history(fluent.info.run_id, "loss")
    assert [(m.step, m.value) for m in history] == [(0, 1.0), (1, 0.5), (2, pytest.approx(1 / 3))]
    acc = client.get_metric_history(fluent.info.run_id, "acc")
    assert sorted((m.step, m.value) for m in acc) == [(0, 0.5), (1, 0.75)]


@pytest.mark.fresh_store
def test_ordinary_tests_are_untouched_and_mlflow_not_imported(ourtester):
    ourtester.makeconftest(
        """
        import sys

        def pytest_sessionfinish(session):
            with open("mlflow-imported.txt", "w") as f:
                f.write(str("mlflow" in sys.modules))
        """
    )
    ourtester.makepyfile(
        test_plain="""
        def test_plain():
            assert 1 + 1 == 2
        """
    )
    # A fresh interpreter on purpose: this process has imported mlflow already.
    result = ourtester.runpytest_subprocess("-p", "no:randomly")
    result.assert_outcomes(passed=1)
    assert (ourtester.path / "mlflow-imported.txt").read_text() == "False"
    assert not (ourtester.path / "mlflow.db").exists()
    assert "mlexp: " not in result.stdout.str().split("collected", 1)[1]


@pytest.mark.fresh_store
def test_collect_only_does_not_import_mlflow(ourtester):
    ourtester.makeconftest(
        """
        import sys

        def pytest_sessionfinish(session):
            with open("mlflow-imported.txt", "w") as f:
                f.write(str("mlflow" in sys.modules))
        """
    )
    ourtester.makepyfile(experiment_a="def experiment_a(): pass")
    # A fresh interpreter on purpose: this process has imported mlflow already.
    result = ourtester.runpytest_subprocess("--collect-only", "-q")
    result.stdout.fnmatch_lines(["experiment_a.py::experiment_a"])
    assert (ourtester.path / "mlflow-imported.txt").read_text() == "False"


def test_marked_tests_and_mlflow_run_users_are_tracked(ourtester, run_experiments, read_runs):
    # Not test_models: in-process, that module name is this suite's tests/test_models.py.
    ourtester.makepyfile(
        test_model_suite="""
        import pytest

        pytestmark = pytest.mark.mlexp(tags={"suite": "models"})

        def test_uses_run(mlflow_run):
            mlflow_run.log_metric("auc", 0.8)

        @pytest.mark.mlexp(experiment="special", tags={"owner": "ana"})
        def test_marked():
            pass
        """,
        test_plain="def test_plain(): pass",
    )
    run_experiments().assert_outcomes(passed=3)
    (uses_run,) = read_runs(EXPERIMENT)
    assert uses_run.info.run_name == "test_uses_run"
    assert uses_run.data.tags["suite"] == "models"
    (marked,) = read_runs("special")
    assert marked.data.tags["owner"] == "ana"
    assert marked.data.tags["suite"] == "models"


def test_experiments_collected_beside_users_own_patterns(ourtester, run_experiments, read_runs):
    ourtester.makeini(
        """
        [pytest]
        python_files = check_*.py
        python_functions = check_*
        """
    )
    ourtester.makepyfile(
        check_things="""
        def check_fast(): pass
        def experiment_in_check_file(): pass
        """,
        experiment_own="def experiment_own(): pass",
        test_ignored="def test_not_collected(): pass",
    )
    result = run_experiments("-v")
    result.assert_outcomes(passed=3)
    names = [r.info.run_name for r in read_runs(EXPERIMENT)]
    assert names == ["experiment_in_check_file", "experiment_own"]


def test_indirect_fixture_params_are_logged(ourtester, run_experiments, read_runs):
    ourtester.makepyfile(
        experiment_indirect="""
        import pytest

        @pytest.fixture
        def model(request):
            return {"name": request.param}

        @pytest.mark.parametrize("model", ["ridge", "lasso"], indirect=True)
        @pytest.mark.parametrize("features", [["age", "bmi"]])
        def experiment_models(model, features):
            return {"score": len(model["name"])}
        """
    )
    run_experiments().assert_outcomes(passed=2)
    params = [r.data.params for r in read_runs(EXPERIMENT)]
    assert params == [
        {"model": "lasso", "features": "['age', 'bmi']"},
        {"model": "ridge", "features": "['age', 'bmi']"},
    ]


@pytest.mark.fresh_store
def test_disabled_with_no_mlexp(ourtester):
    ourtester.makepyfile(experiment_a="def experiment_a(): pass", test_a="def test_a(): pass")
    result = ourtester.runpytest("-p", "no:mlexp")
    result.assert_outcomes(passed=1)
    assert "mlexp:" not in result.stdout.str()
    assert not (ourtester.path / "mlflow.db").exists()


def test_tracking_config_fixture(ourtester, run_experiments):
    ourtester.makepyfile(
        experiment_cfg="""
        def experiment_cfg(tracking_config):
            assert tracking_config.experiment == "demo"
            assert tracking_config.tracking_uri.endswith("/mlflow.db")
            assert tracking_config.sources["experiment"] == "--mlexp-experiment"
        """
    )
    run_experiments().assert_outcomes(passed=1)


class TestBadValuesAreLoggedSafely:
    def test_long_param_is_cut_with_a_warning(self, ourtester, run_experiments, read_runs):
        ourtester.makepyfile(
            experiment_long="""
            import pytest

            @pytest.mark.parametrize("prompt", ["x" * 7000])
            def experiment_long(prompt):
                pass
            """
        )
        result = run_experiments()
        result.assert_outcomes(passed=1, warnings=1)
        result.stdout.fnmatch_lines(
            ["*MlexpWarning: param 'prompt' is 7000 characters, over MLflow's limit of 6000*"]
        )
        (run,) = read_runs(EXPERIMENT)
        assert run.info.status == "FINISHED"
        assert len(run.data.params["prompt"]) == 6000

    def test_nan_metric_is_logged_with_a_warning(self, ourtester, run_experiments, read_runs):
        ourtester.makepyfile(
            experiment_nan="""
            def experiment_nan():
                return {"loss": float("nan"), "acc": 0.5}
            """
        )
        result = run_experiments()
        result.assert_outcomes(passed=1, warnings=1)
        result.stdout.fnmatch_lines(["*MlexpWarning: metric 'loss' is nan*"])
        (run,) = read_runs(EXPERIMENT)
        assert math.isnan(run.data.metrics["loss"])
        assert run.data.metrics["acc"] == 0.5

    def test_invalid_metric_key_is_renamed(self, ourtester, run_experiments, read_runs):
        ourtester.makepyfile(
            experiment_keys="""
            def experiment_keys():
                return {"acc[fold=1]": 0.5}
            """
        )
        result = run_experiments()
        result.assert_outcomes(passed=1, warnings=1)
        result.stdout.fnmatch_lines(
            ["*metric key 'acc[[]fold=1[]]' has characters MLflow refuses*"]
        )
        (run,) = read_runs(EXPERIMENT)
        assert logged_metrics(run) == {"acc_fold_1_": 0.5}

    def test_changing_a_param_fails_the_item_with_a_clear_error(
        self, ourtester, run_experiments, read_runs
    ):
        ourtester.makepyfile(
            experiment_relog="""
            import pytest

            @pytest.mark.parametrize("alpha", [0.1])
            def experiment_relog(mlflow_run, alpha):
                mlflow_run.log_param("alpha", 0.2)
            """
        )
        result = run_experiments()
        result.assert_outcomes(failed=1)
        result.stdout.fnmatch_lines(
            ["*ValueError: param 'alpha' is already logged as '0.1'; MLflow params cannot change*"]
        )
        (run,) = read_runs(EXPERIMENT)
        assert run.info.status == "FAILED"
        assert run.data.params == {"alpha": "0.1"}

    def test_non_dict_return_warns(self, ourtester, run_experiments, read_runs):
        ourtester.makepyfile(experiment_ret="def experiment_ret(): return 0.5")
        result = run_experiments()
        result.assert_outcomes(passed=1, warnings=1)
        result.stdout.fnmatch_lines(
            ["*experiment_ret returned float, which is not logged; return a dict of metric names*"]
        )
        (run,) = read_runs(EXPERIMENT)
        assert logged_metrics(run) == {}


def test_sigterm_marks_the_run_killed(ourtester, run_experiments, read_runs):
    ourtester.makepyfile(
        experiment_term="""
        import os, signal, time

        def experiment_terminated(mlflow_run):
            mlflow_run.log_metric("epoch", 3)
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(30)
        """
    )
    # A process of its own: the experiment signals the process pytest runs in.
    result = ourtester.runpytest_subprocess("--mlexp-experiment", EXPERIMENT, "-p", "no:randomly")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    (run,) = read_runs(EXPERIMENT)
    assert run.info.status == "KILLED"
    assert logged_metrics(run) == {"epoch": 3}


def test_run_tags_and_returned_hooks_from_a_conftest(ourtester, run_experiments, read_runs, client):
    ourtester.makeconftest(
        """
        def pytest_mlexp_run_tags(item):
            callspec = getattr(item, "callspec", None)
            return {"dataset": callspec.params["data"] if callspec else "all"}

        def pytest_mlexp_returned(item, run, value):
            if isinstance(value, str):
                run.log_text(value, "returned.md")
                return True
            return None
        """
    )
    ourtester.makepyfile(
        experiment_hooks="""
        import pytest

        @pytest.mark.parametrize("data", ["iris"])
        def experiment_text(data):
            return "# a report"

        def experiment_dict():
            return {"acc": 0.5}
        """
    )
    run_experiments().assert_outcomes(passed=2)
    as_dict, as_text = read_runs(EXPERIMENT)
    assert as_text.data.tags["dataset"] == "iris"
    assert as_dict.data.tags["dataset"] == "all"
    # The conftest's hook handled the string; the built-in one still logs dicts.
    assert "returned.md" in [a.path for a in client.list_artifacts(as_text.info.run_id)]
    assert logged_metrics(as_text) == {}
    assert logged_metrics(as_dict) == {"acc": 0.5}
