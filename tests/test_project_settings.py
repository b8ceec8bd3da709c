"""The ``mlexp`` command reads the project's settings exactly as pytest does.

A project configured only in ``pyproject.toml``, and one configured only in
``mlexp.yaml``, run their experiments with pytest; every subcommand, run
from the rootdir and from a subfolder, then finds the same store and
experiment without being told.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from conftest import logged_metrics
from pytest_mlexp.spool.journal import Journal

GRID = """
import pytest

@pytest.mark.parametrize("alpha", [0.1, 1.0])
def experiment_ridge(mlflow_run, alpha):
    return {"r2": 1 / (1 + alpha)}
"""

PYPROJECT = """
[tool.pytest.ini_options]
mlexp_tracking_uri = "sqlite:///custom.db"
mlexp_experiment = "churn"
# Other plugins' options are none of the command's business.
addopts = ["-p", "no:randomly", "-p", "no:cacheprovider"]
"""

MLEXP_YAML = """
tracking_uri: sqlite:///stores/yaml.db
experiment: churn-yaml
"""


@pytest.fixture(params=["pyproject", "mlexp.yaml"])
def project(
    request: pytest.FixtureRequest, pytester: pytest.Pytester, empty_store: Path
) -> tuple[Path, str, str]:
    """A project whose store and experiment are set in one place only; (root, db, experiment)."""
    if request.param == "pyproject":
        pytester.makepyprojecttoml(PYPROJECT)
        store, experiment = "custom.db", "churn"
    else:
        pytester.makeini("[pytest]\n")
        pytester.makefile(".yaml", mlexp=MLEXP_YAML)
        (pytester.path / "stores").mkdir()
        store, experiment = "stores/yaml.db", "churn-yaml"
    # The configured store's tables exist (creating them is most of a session's time).
    shutil.copy(empty_store, pytester.path / store)
    (pytester.path / "experiments").mkdir()
    (pytester.path / "experiments" / "experiment_ridge.py").write_text(GRID)
    (pytester.path / "sub" / "deeper").mkdir(parents=True)
    pytester.runpytest("-p", "no:randomly").assert_outcomes(passed=2)
    assert not (pytester.path / "mlflow.db").exists(), "the default store was used"
    return pytester.path, store, experiment


def test_every_subcommand_reads_the_configured_store_from_the_rootdir_and_a_subfolder(
    project, tmp_path, monkeypatch, mlexp
):
    """One session's runs; runs, report, compare, promote and sync find them unaided.

    Then flags and the environment win over the project's settings.
    """
    root, store, experiment = project
    for where in (".", "sub/deeper"):
        runs_report_compare(root, root / where, store, experiment, mlexp)
    promote(root, store, experiment, mlexp)
    sync(root, store, experiment, mlexp)
    flags_and_environment_win(root, tmp_path, monkeypatch, mlexp)


def runs_report_compare(root: Path, cwd: Path, store: str, experiment: str, mlexp) -> None:  # type: ignore[no-untyped-def]
    runs = mlexp(cwd, "runs")
    assert runs.returncode == 0, runs.stderr
    assert runs.stdout.startswith(
        f"2 runs in experiment {experiment!r} of sqlite:///{root / store}"
    )
    assert "experiment_ridge[0.1]" in runs.stdout
    assert "experiment_ridge[1.0]" in runs.stdout

    report = mlexp(cwd, "report", "-o", "report.html")
    assert report.returncode == 0, report.stderr
    assert report.stdout.startswith("mlexp report: wrote report.html: 2 runs in 1 experiment")
    assert "experiment_ridge[0.1]" in (cwd / "report.html").read_text()

    compare = mlexp(cwd, "compare", "experiment_ridge[0.1]", "experiment_ridge[1.0]")
    assert compare.returncode == 0, compare.stderr
    assert f"experiment  {experiment}" in compare.stdout
    assert "alpha  0.1  1.0  changed" in compare.stdout


def promote(root: Path, store: str, experiment: str, mlexp) -> None:  # type: ignore[no-untyped-def]
    """``mlexp promote`` from a subfolder tags the session in the configured store."""
    client = MlflowClient(f"sqlite:///{root / store}")
    (run, *_) = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    session = run.data.tags["mlexp.session_id"]

    promoted = mlexp(root / "sub", "promote", "--session", session)
    assert promoted.returncode == 0, promoted.stderr
    assert promoted.stdout == f"promoted 2 runs of session {session} to baseline\n"
    tagged = client.search_runs(
        [client.get_experiment_by_name(experiment).experiment_id],
        "tags.`mlexp.baseline` = 'true'",
    )
    assert len(tagged) == 2


def sync(root: Path, store: str, experiment: str, mlexp) -> None:  # type: ignore[no-untyped-def]
    """``mlexp sync`` from a subfolder replays the project's journal into the configured store."""
    journal = Journal(root / ".mlexp" / "journal", "http://lost.example:5000")
    started = int(time.time() * 1000)
    journal.append(
        "abc123",
        {
            "op": "create",
            "experiment": experiment,
            "run_name": "experiment_spooled",
            "tags": {"mlexp.journal_id": "abc123"},
            "start_time": started,
        },
    )
    journal.append(
        "abc123",
        {"op": "batch", "metrics": [["r2", 0.5, started, 0]], "params": [], "tags": []},
    )
    journal.append("abc123", {"op": "terminate", "status": "FINISHED", "end_time": started})

    synced = mlexp(root / "sub" / "deeper", "sync")
    assert synced.returncode == 0, synced.stdout + synced.stderr
    assert synced.stdout.endswith(
        f"mlexp sync: replayed 1 runs, 0 left in {root / '.mlexp' / 'journal'}\n"
    )
    client = MlflowClient(f"sqlite:///{root / store}")
    (run,) = client.search_runs(
        [client.get_experiment_by_name(experiment).experiment_id],
        "attributes.run_name = 'experiment_spooled'",
    )
    assert (run.info.status, logged_metrics(run)) == ("FINISHED", {"r2": 0.5})


def flags_and_environment_win(root: Path, tmp_path: Path, monkeypatch, mlexp) -> None:  # type: ignore[no-untyped-def]
    missing = tmp_path / "elsewhere.db"
    flagged = mlexp(root, "runs", "--tracking-uri", f"sqlite:///{missing}")
    assert flagged.returncode == 2
    assert f"(from --tracking-uri): {missing} does not exist" in flagged.stderr
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{missing}")
    from_env = mlexp(root, "runs")
    assert from_env.returncode == 2
    assert "(from MLFLOW_TRACKING_URI)" in from_env.stderr


def test_a_broken_project_setting_is_one_line(pytester, mlexp):
    pytester.makefile(".yaml", mlexp="trackin_uri: sqlite:///x.db\n")
    pytester.makeini("[pytest]\n")
    result = mlexp(pytester.path, "runs")
    assert result.returncode == 2
    assert result.stderr.startswith("mlexp runs: error: ")
    assert "unknown key 'trackin_uri'" in result.stderr
    assert len(result.stderr.splitlines()) == 1
