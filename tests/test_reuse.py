"""--mlexp-reuse: unchanged experiments are recorded from their latest run instead of executed.

The project: a helper module imported by one experiment module only, a
declared data file, a grid from the params file and a failing experiment.
Every experiment appends its name to ``calls.log``: what a session executed
is read back from there, what it recorded from the store.
"""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from conftest import logged_metrics

EXPERIMENT = "reuse"

RECORD = """
from pathlib import Path
from typing import Any


def record(name):
    with open(Path(__file__).parent / "calls.log", "a") as log:
        log.write(name + "\\n")
"""

HELPERS = """
FACTOR = 2

def score(x):
    return x * FACTOR
"""

EXPERIMENTS_A = """
import pytest
from helpers_a import score
from record import record

@pytest.mark.parametrize("x", [1, 2])
def experiment_a(mlflow_run, x):
    record(f"a{x}")
    mlflow_run.log_metric("score", score(x))
    mlflow_run.set_tags({"team": "vision", "kind": "sweep"})
"""

EXPERIMENTS_B = """
from pathlib import Path
from typing import Any

import pytest
from record import record

@pytest.mark.mlexp(inputs=["data/*.csv"])
def experiment_data(mlflow_run):
    record("data")
    rows = Path("data/train.csv").read_text().splitlines()
    mlflow_run.log_metric("rows", len(rows))

def experiment_plain(mlflow_run):
    record("plain")
    mlflow_run.log_metric("accuracy", 0.9)

def experiment_fails(mlflow_run):
    record("fails")
    assert False, "broken on purpose"

def experiment_grid(mlflow_run, lr):
    record(f"grid{lr}")
    mlflow_run.log_metric("loss", 1.0 - lr)
"""

PARAMS = """
experiment_grid:
  grid: {{lr: [{values}]}}
"""


@pytest.fixture
def project(ourtester: pytest.Pytester, empty_store: Path) -> pytest.Pytester:
    ourtester.makeini(
        f"[pytest]\nmlexp_experiment = {EXPERIMENT}\nmlexp_params_file = params.yaml\n"
    )
    ourtester.makepyfile(
        record=RECORD, helpers_a=HELPERS, test_exp_a=EXPERIMENTS_A, test_exp_b=EXPERIMENTS_B
    )
    (ourtester.path / "params.yaml").write_text(PARAMS.format(values="0.1, 0.2"))
    (ourtester.path / "data").mkdir()
    (ourtester.path / "data" / "train.csv").write_text("x,y\n1,2\n3,4\n")
    # Creating a store's tables costs seconds: start from a copy of an empty one.
    shutil.copy(empty_store, ourtester.path / "mlflow.db")
    return ourtester


def executed(pytester: pytest.Pytester) -> Counter[str]:
    """What the sessions since the last call executed."""
    log = pytester.path / "calls.log"
    calls = Counter(log.read_text().split()) if log.exists() else Counter()
    log.unlink(missing_ok=True)
    return calls


#: Faster sessions: reuse fingerprints the code itself; lineage and artifact discovery are
#: not under test here.
QUIET = ("-p", "no:randomly", "--mlexp-lineage", "none", "--mlexp-artifacts", "off")


def session(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest(*QUIET, *args)


EVERYTHING = Counter(["a1", "a2", "data", "plain", "fails", "grid0.1", "grid0.2"])


def first_session(pytester: pytest.Pytester) -> None:
    session(pytester).assert_outcomes(passed=6, failed=1)
    assert executed(pytester) == EVERYTHING


def store(pytester: pytest.Pytester) -> MlflowClient:
    return MlflowClient(f"sqlite:///{pytester.path / 'mlflow.db'}")


def latest_runs(pytester: pytest.Pytester) -> dict[str, Run]:
    """The latest run of each test, by its name (grid parents left out)."""
    client = store(pytester)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    assert experiment is not None
    found: dict[str, Run] = {}
    for run in client.search_runs(
        [experiment.experiment_id], order_by=["attributes.start_time DESC"], max_results=1000
    ):
        if "mlexp.kind" not in run.data.tags:
            found.setdefault(str(run.info.run_name), run)
    return found


def test_unchanged_session_executes_only_the_failing_experiment_serially_and_under_xdist(
    project: pytest.Pytester,
) -> None:
    first_session(project)
    first = latest_runs(project)
    # Every run carries its fingerprint and its parts, reuse or not.
    tags = first["experiment_data"].data.tags
    assert len(tags["mlexp.fingerprint"]) == 32
    for part in ("test", "params", "code", "inputs", "env"):
        assert len(tags[f"mlexp.fingerprint.{part}"]) == 16
    assert "test_exp_b.py=" in tags["mlexp.fingerprint.code_files"]
    assert "record.py=" in tags["mlexp.fingerprint.code_files"]
    assert "helpers_a.py" not in tags["mlexp.fingerprint.code_files"]
    assert tags["mlexp.fingerprint.input_files"].startswith("data/train.csv=")

    # Without the flag, everything runs.
    result = session(project)
    result.assert_outcomes(passed=6, failed=1)
    assert executed(project) == EVERYTHING
    assert "mlexp reuse" not in result.stdout.str()

    result = session(
        project, "--mlexp-reuse", "-v", "--junitxml=report.xml", "--mlexp-tag", "team=infra"
    )
    result.assert_outcomes(passed=6, failed=1)
    assert executed(project) == Counter(["fails"])
    result.stdout.fnmatch_lines(
        [
            "*test_exp_a.py::experiment_a[[]1[]] PASSED (reused from run *)*",
            "*experiment_plain*FINISHED (reused)*accuracy=0.9*",
            "mlexp reuse: 6 of 7 runs reused from earlier sessions, 1 executed",
            "  test_exp_b.py::experiment_grid: 2 of 2 cells reused",
            "  experiment_fails: its latest matching run failed",
            "mlexp grid test_exp_b.py::experiment_grid: 2 cells, 2 passed, 0 failed; "
            "best loss=0.8 (min, guessed, logged once) at experiment_grid[[]0.2[]]*",
        ]
    )
    second = session_runs = latest_runs(project)
    plain = session_runs["experiment_plain"]
    source = store(project).search_runs(
        [plain.info.experiment_id],
        "attributes.run_name = 'experiment_plain'",
        order_by=["attributes.start_time DESC"],
    )[1]
    assert plain.info.status == "FINISHED"
    assert plain.data.tags["mlexp.outcome"] == "reused"
    assert plain.data.tags["mlexp.reused_from"] == source.info.run_id
    assert logged_metrics(plain) == {"accuracy": 0.9}
    assert plain.data.tags["mlexp.fingerprint"] == source.data.tags["mlexp.fingerprint"]
    assert "Reused, not executed" in plain.data.tags["mlflow.note.content"]
    a1 = second["experiment_a[1]"]
    assert a1.data.params == {"x": "1"}
    assert logged_metrics(a1) == {"score": 2.0}
    # The source's own tags are copied; this session's (--mlexp-tag) win.
    assert a1.data.tags["kind"] == "sweep"
    assert a1.data.tags["team"] == "infra"
    assert second["experiment_fails"].data.tags["mlexp.outcome"] == "failed"
    # JUnit: reused items passed, and name their source.
    xml = (project.path / "report.xml").read_text()
    assert xml.count('name="mlexp.reused_from"') == 6
    assert f'value="{source.info.run_id}"' in xml

    # Under xdist (one worker is enough: the point is that a worker's fingerprint is the
    # serial session's, not a race), the same runs are reused.
    result = session(project, "--mlexp-reuse", "-n", "1", "-v", "--mlexp-html=report.html")
    result.assert_outcomes(passed=6, failed=1)
    assert executed(project) == Counter(["fails"])
    result.stdout.fnmatch_lines(
        [
            "*PASSED (reused from run *)*test_exp_a.py::experiment_a[[]1[]]*",
            "mlexp reuse: 6 of 7 runs reused from earlier sessions, 1 executed",
        ]
    )
    # The HTML report shows the reused runs with their metrics.
    html = (project.path / "report.html").read_text()
    assert html.count("FINISHED (reused)") == 6
    # A run reused twice points at the run that executed, not at the reused one.
    assert latest_runs(project)["experiment_plain"].data.tags["mlexp.reused_from"] == (
        source.info.run_id
    )


def test_what_changed_reruns_and_is_explained(project: pytest.Pytester) -> None:
    first_session(project)
    plain_source = latest_runs(project)["experiment_plain"].info.run_id

    # Editing the helper re-runs the experiments importing it, editing the data file the
    # experiment declaring it; each says why (one session for both).
    (project.path / "helpers_a.py").write_text(HELPERS.replace("FACTOR = 2", "FACTOR = 3"))
    (project.path / "data" / "train.csv").write_text("x,y\n1,2\n3,4\n5,6\n")
    result = session(project, "--mlexp-reuse")
    result.assert_outcomes(passed=6, failed=1)
    assert executed(project) == Counter(["a1", "a2", "data", "fails"])
    result.stdout.fnmatch_lines(
        [
            "mlexp reuse: 3 of 7 runs reused*",
            "  experiment_a[[]1[]], experiment_a[[]2[]]: code changed (helpers_a.py)",
        ]
    )
    result.stdout.fnmatch_lines(["  experiment_data: inputs changed (data/train.csv)"])
    runs = latest_runs(project)
    assert logged_metrics(runs["experiment_a[1]"]) == {"score": 3.0}
    assert logged_metrics(runs["experiment_data"]) == {"rows": 4.0}
    # The declared input is the run's dataset (the UI's Dataset column), digest and context.
    (dataset_input,) = runs["experiment_data"].inputs.dataset_inputs
    assert dataset_input.dataset.name == "data/train.csv"
    assert dataset_input.dataset.source_type == "local"
    assert (project.path / "data" / "train.csv").as_uri() in dataset_input.dataset.source
    assert {t.key: t.value for t in dataset_input.tags} == {"mlflow.data.context": "training"}
    # Its hash is cached by (path, size, mtime) under .mlexp/.
    assert (project.path / ".mlexp" / "input-hashes.json").exists()

    # Adding a grid value runs the new cell only.
    (project.path / "params.yaml").write_text(PARAMS.format(values="0.1, 0.2, 0.3"))
    result = session(project, "--mlexp-reuse")
    result.assert_outcomes(passed=7, failed=1)
    assert executed(project) == Counter(["grid0.3", "fails"])
    result.stdout.fnmatch_lines(
        [
            "mlexp reuse: 6 of 8 runs reused from earlier sessions, 2 executed "
            "(1 with no earlier run)",
            "  test_exp_b.py::experiment_grid: 2 of 3 cells reused",
        ]
    )
    # A run reused twice points at the run that executed, not at the reused one.
    reused_twice = latest_runs(project)["experiment_plain"]
    assert reused_twice.data.tags["mlexp.reused_from"] == plain_source


def test_rerun_flag_and_reuse_false_execute(project: pytest.Pytester) -> None:
    project.makeini(
        f"[pytest]\nmlexp_experiment = {EXPERIMENT}\nmlexp_params_file = params.yaml\n"
        "mlexp_reuse = true\n"
    )
    project.makepyfile(
        test_exp_c="""
        import pytest
        from record import record

        @pytest.mark.mlexp(reuse=False)
        def experiment_noisy(mlflow_run):
            record("noisy")
        """
    )
    session(project).assert_outcomes(passed=7, failed=1)
    assert executed(project) == EVERYTHING + Counter(["noisy"])
    session(project, "--mlexp-rerun").assert_outcomes(passed=7, failed=1)
    assert executed(project) == EVERYTHING + Counter(["noisy"])
    result = session(project)
    assert executed(project) == Counter(["noisy", "fails"])
    result.stdout.fnmatch_lines(["  experiment_noisy: reuse=False"])


def test_a_searchs_trials_always_execute(project: pytest.Pytester) -> None:
    project.makepyfile(
        test_exp_c="""
        import pytest
        from record import record

        @pytest.mark.mlexp(search={"x": "uniform(0, 1)"}, trials=2, objective="loss:min",
                           sampler="random", seed=0)
        def experiment_search(mlflow_run, x):
            record("trial")
            return {"loss": x}
        """
    )
    session(project, "--mlexp-reuse").assert_outcomes(passed=8, failed=1)
    assert executed(project) == EVERYTHING + Counter(["trial", "trial"])
    result = session(project, "--mlexp-reuse")
    result.assert_outcomes(passed=8, failed=1)
    assert executed(project) == Counter(["trial", "trial", "fails"])
    result.stdout.fnmatch_lines(
        ["  experiment_search[[]trial-0[]], experiment_search[[]trial-1[]]: a search's trial *"]
    )


def test_a_reused_cell_regressing_against_a_baseline_file_still_fails(
    project: pytest.Pytester,
) -> None:
    first_session(project)
    (project.path / "baseline.yaml").write_text(
        "test_exp_b.py::experiment_plain:\n  accuracy: 0.95\n"
    )
    result = session(project, "--mlexp-reuse", "--mlexp-baseline-file", "baseline.yaml")
    result.assert_outcomes(passed=5, failed=2)
    assert executed(project) == Counter(["fails"])
    result.stdout.fnmatch_lines(["*accuracy*regressed*"])
    plain = latest_runs(project)["experiment_plain"]
    assert plain.info.status == "FAILED"
    assert plain.data.tags["mlexp.regression"] == "regressed"
    # A regressed run is never reused: the next session executes it.
    result = session(project, "--mlexp-reuse")
    assert executed(project) == Counter(["plain", "fails"])
    result.stdout.fnmatch_lines(["  experiment_plain: its latest matching run regressed"])


def test_unstable_params_env_variable_and_input_context(
    ourtester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, empty_store: Path
) -> None:
    shutil.copy(empty_store, ourtester.path / "mlflow.db")
    ourtester.makeini("[pytest]\nmlexp_inputs = data/*.txt\n")
    ourtester.makepyfile(
        record=RECORD,
        test_objects="""
        import pytest
        from record import record

        class Model:
            pass

        @pytest.mark.parametrize("model", [Model()])
        def experiment_object(mlflow_run, model):
            record("object")

        @pytest.mark.mlexp(input_context="evaluation")
        def experiment_eval(mlflow_run):
            record("eval")

        @pytest.mark.xfail(reason="a known bug")
        def experiment_known(mlflow_run):
            record("known")
            assert False
        """,
    )
    (ourtester.path / "data").mkdir()
    (ourtester.path / "data" / "test.txt").write_text("1\n")
    session(ourtester).assert_outcomes(passed=2, xfailed=1)
    assert executed(ourtester) == Counter(["object", "eval", "known"])
    monkeypatch.setenv("MLEXP_REUSE", "1")
    result = session(ourtester)
    result.assert_outcomes(passed=2, xfailed=1)
    assert executed(ourtester) == Counter(["object", "known"])
    result.stdout.fnmatch_lines_random(
        [
            "  experiment_object[[]model0[]]: fingerprint could not be computed: param 'model' "
            "has no stable value (<test_objects.Model object at 0x*>)*",
            "  experiment_known: its latest matching run xfailed",
        ]
    )
    client = store(ourtester)
    (run,) = client.search_runs(
        [e.experiment_id for e in client.search_experiments()],
        "attributes.run_name = 'experiment_eval'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    assert run.data.tags["mlexp.outcome"] == "reused"
    (dataset_input,) = run.inputs.dataset_inputs
    assert dataset_input.dataset.name == "data/test.txt"
    assert {t.key: t.value for t in dataset_input.tags} == {"mlflow.data.context": "evaluation"}


def test_on_a_server(ourtester: pytest.Pytester, mlflow_server: Any) -> None:
    uri = mlflow_server.url
    ourtester.makeini(f"[pytest]\nmlexp_experiment = reuse-server-{ourtester.path.name}\n")
    ourtester.makepyfile(
        record=RECORD,
        # Not test_server: in-process, that module name is this suite's tests/test_server.py.
        test_reuse_on_server="""
        import pytest
        from record import record

        @pytest.mark.parametrize("x", [1, 2, 3])
        def experiment_s(mlflow_run, x):
            record(f"s{x}")
            mlflow_run.log_metric("m", x)
        """,
    )
    session(ourtester, "--mlexp-tracking-uri", uri).assert_outcomes(passed=3)
    assert executed(ourtester) == Counter(["s1", "s2", "s3"])
    result = session(ourtester, "--mlexp-tracking-uri", uri, "--mlexp-reuse")
    result.assert_outcomes(passed=3)
    assert executed(ourtester) == Counter()
    result.stdout.fnmatch_lines(["mlexp reuse: 3 of 3 runs reused*"])


@pytest.mark.parametrize(
    ("args", "ini", "message"),
    [
        (
            [],
            "mlexp_reuse = maybe",
            "ini mlexp_reuse: invalid value 'maybe' for reuse; accepted: true/false, on/off, "
            "yes/no, 1/0",
        ),
    ],
)
def test_bad_settings_say_what_is_accepted(
    ourtester: pytest.Pytester, args: list[str], ini: str, message: str
) -> None:
    ourtester.makeini(f"[pytest]\n{ini}\n")
    ourtester.makepyfile(test_x="def experiment_x(mlflow_run):\n    pass\n")
    result = session(ourtester, *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{message}*"])


@pytest.mark.parametrize(
    ("marker", "message"),
    [
        ("reuse='no'", "reuse must be True or False, got 'no'"),
        ("inputs=3", "inputs must be a glob or a list of globs from the rootdir, e.g. "),
        ("input_context=''", "input_context must be a non-empty string"),
    ],
)
def test_bad_marker_arguments_say_what_is_accepted(
    ourtester: pytest.Pytester, marker: str, message: str
) -> None:
    ourtester.makepyfile(
        test_x=f"import pytest\n\n@pytest.mark.mlexp({marker})\n"
        "def experiment_x(mlflow_run):\n    pass\n"
    )
    result = session(ourtester)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*@pytest.mark.mlexp on test_x.py::experiment_x: {message}*"])
    assert not (ourtester.path / "mlflow.db").exists()
