"""Invisible without experiments: a plain test suite sees no trace of the plugin.

The plugin loads in every pytest run of an environment where it is installed.
A session that collects no tracked item prints nothing more than pytest does,
refuses no setting it does not use, and writes nothing, in the project or in
the temp directory.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from conftest import logged_metrics

PLAIN_SUITE = {
    "test_numbers": """
        import pytest

        def test_adds():
            assert 1 + 1 == 2

        @pytest.mark.parametrize("n", [1, 2, 3])
        def test_positive(n):
            assert n > 0

        def test_fails():
            assert 2 * 2 == 5
    """,
    "test_skips": """
        import pytest

        @pytest.mark.skip(reason="not today")
        def test_later():
            pass
    """,
}


#: A conftest writing, per process, which of the plugin's parts hook into each item's run or
#: report (``hooks-<controller|gw0>.txt``): none in a session without experiments; and
#: whether it imported ``pytest_mlexp.pipeline`` (``pipeline-<role>.txt``): only once
#: collection found tracked items (in-process, earlier sessions may have imported it).
PER_ITEM_HOOKS_CONFTEST = """
import os
import sys

HOOKS = (
    "pytest_runtest_protocol", "pytest_runtest_logstart", "pytest_runtest_setup",
    "pytest_runtest_call", "pytest_runtest_teardown", "pytest_runtest_makereport",
    "pytest_runtest_logreport", "pytest_runtest_logfinish", "pytest_report_teststatus",
)

def pytest_sessionfinish(session):
    manager = session.config.pluginmanager
    found = set()
    for name in HOOKS:
        for impl in getattr(manager.hook, name).get_hookimpls():
            module = getattr(impl.plugin, "__module__", None) or impl.plugin.__name__
            if module.startswith("pytest_mlexp"):
                found.add(manager.get_name(impl.plugin))
    role = getattr(session.config, "workerinput", {}).get("workerid", "controller")
    with open(os.path.join(str(session.config.rootpath), f"hooks-{role}.txt"), "w") as f:
        f.write("\\n".join(sorted(found)))
    with open(os.path.join(str(session.config.rootpath), f"pipeline-{role}.txt"), "w") as f:
        f.write(str("pytest_mlexp.pipeline" in sys.modules))
"""


def per_item_hooks(folder: Path, role: str = "controller") -> list[str]:
    """The plugin's parts that hooked into each item in process ``role`` of the last session."""
    return (folder / f"hooks-{role}.txt").read_text().split()


def masked(output: str) -> str:
    """pytest's output without what differs between two runs: timings, and mlexp in the plugins."""
    output = re.sub(r"\bin \d+\.\d+s\b", "in <time>", output)
    return re.sub(r"^(plugins: .*)\bmlexp-[^,\s]+(, )?", r"\1", output, flags=re.M)


#: What pytester itself keeps in the project folder of a subprocess run.
PYTESTER_FILES = ("stdout", "stderr", "runpytest-")


def files_under(root: Path) -> set[str]:
    found = {str(path.relative_to(root)) for path in root.rglob("*")}
    return {name for name in found if not name.startswith(PYTESTER_FILES)}


def mlexp_locks(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.glob("mlexp-*.lock"))


@pytest.fixture
def private_tmpdir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """A temp directory of the pytest sessions under test's own, to see what they leave there."""
    folder = tmp_path_factory.mktemp("system-tmp")
    monkeypatch.setenv("TMPDIR", str(folder))
    return folder


@pytest.mark.parametrize(
    ("uri", "xdist"),
    [
        ("ftp://host/runs", []),  # a scheme MLflow has no store for
        ("file:./mlruns", ["-n", "1"]),  # MLflow 3's deprecated file store
        ("sqlite:///never/created.db", []),
    ],
    ids=["ftp", "file-xdist", "sqlite"],
)
def test_plain_suite_prints_and_writes_nothing(ourtester, monkeypatch, private_tmpdir, uri, xdist):
    """Serially and under xdist: neither the controller nor a worker checks an unused setting."""
    ourtester.makepyfile(**PLAIN_SUITE)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    before = files_under(ourtester.path)

    args = ["-p", "no:randomly", "-p", "no:cacheprovider", "-rA", *xdist]
    without = ourtester.runpytest_subprocess(*args, "-p", "no:mlexp")
    with_plugin = ourtester.runpytest_subprocess(*args)

    assert without.ret == with_plugin.ret == pytest.ExitCode.TESTS_FAILED
    with_plugin.assert_outcomes(passed=4, failed=1, skipped=1)
    assert "mlexp" not in without.stdout.str()  # the plugin really was left out
    assert masked(with_plugin.stdout.str()) == masked(without.stdout.str())
    assert with_plugin.stderr.str() == without.stderr.str() == ""
    # No store, no folder, no lock: in the project, and in the temp directory.
    assert files_under(ourtester.path) == before
    assert mlexp_locks(private_tmpdir) == []
    assert not any(private_tmpdir.iterdir())


@pytest.mark.cold_workers  # a worker's own start is the subject: no warm imports
def test_a_bad_setting_stops_only_a_session_that_uses_it(ourtester):
    """Serially, under -v and under xdist a plain suite runs; an experiment meets the refusal.

    The plain suite's items and reports pass no hook of the plugin's, in any process.
    """
    ourtester.makepyfile(**PLAIN_SUITE)
    ourtester.makeconftest(PER_ITEM_HOOKS_CONFTEST)
    for args in (["-v"], ["-n", "1"]):
        plain = ourtester.runpytest("-p", "no:randomly", "--mlexp-figures", "svg", *args)
        plain.assert_outcomes(passed=4, failed=1, skipped=1)
        plain.stdout.no_fnmatch_line("mlexp: *")
        assert "svg" not in plain.stdout.str() + plain.stderr.str()
        assert per_item_hooks(ourtester.path) == []
    assert per_item_hooks(ourtester.path, "gw0") == []
    # A cold worker's own process: the pipeline is imported for tracked items only.
    assert (ourtester.path / "pipeline-gw0.txt").read_text() == "False"

    ourtester.makepyfile(experiment_tiny="def experiment_tiny(mlflow_run):\n    pass\n")
    result = ourtester.runpytest("-p", "no:randomly", "--mlexp-figures", "svg")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["ERROR: --mlexp-figures: invalid value 'svg' for figures; accepted: inline *or cdn *"]
    )
    result.stdout.no_fnmatch_line("*passed*")  # refused before any test ran
    assert not (ourtester.path / "mlflow.db").exists()


def test_verbose_plain_suite_shows_the_tracking_line(ourtester, monkeypatch):
    ourtester.makepyfile(**PLAIN_SUITE)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "file:./mlruns")
    result = ourtester.runpytest("-p", "no:randomly", "-v")
    result.assert_outcomes(passed=4, failed=1, skipped=1)
    result.stdout.fnmatch_lines(["mlexp: tracking file:./mlruns (MLFLOW_TRACKING_URI), *"])
    assert not (ourtester.path / "mlruns").exists()


def test_refused_uri_stops_a_session_with_an_experiment(ourtester, monkeypatch, private_tmpdir):
    ourtester.makepyfile(**PLAIN_SUITE)
    ourtester.makepyfile(
        experiment_tiny="""
        def experiment_tiny(mlflow_run):
            mlflow_run.log_metric("m", 1.0)
        """
    )
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "file:./mlruns")
    result = ourtester.runpytest("-p", "no:randomly")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: MLFLOW_TRACKING_URI: the file store 'file:./mlruns' is deprecated in "
            "MLflow 3 and refused unless MLFLOW_ALLOW_FILE_STORE=true; use sqlite:///*"
        ]
    )
    result.stdout.no_fnmatch_line("*passed*")  # refused before any test ran
    assert not (ourtester.path / "mlruns").exists()
    assert not (ourtester.path / "mlflow.db").exists()


def test_tracked_session_prints_the_line_after_collection_and_leaves_no_lock(
    ourtester, private_tmpdir, read_runs
):
    ourtester.makepyfile(**PLAIN_SUITE)
    ourtester.makeconftest(PER_ITEM_HOOKS_CONFTEST)
    ourtester.makepyfile(
        experiment_tiny="""
        def experiment_tiny(mlflow_run):
            mlflow_run.log_metric("m", 1.0)
        """
    )
    result = ourtester.runpytest_subprocess("-p", "no:randomly", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=5, failed=1, skipped=1)
    # Registered once collection found the experiment (pipeline.on_tracked, pipeline.activate).
    hooked = {"mlexp-group-reports", "mlexp-reports", "mlexp-runs", "mlexp-seed-status"}
    assert hooked <= set(per_item_hooks(ourtester.path))
    assert (ourtester.path / "pipeline-controller.txt").read_text() == "True"
    result.stdout.fnmatch_lines(
        [
            "collected 7 items",
            f"mlexp: tracking sqlite:///{ourtester.path}/mlflow.db (default), "
            f"experiment '{ourtester.path.name}', figures inline, session *",
            "",
            "experiment_tiny.py .*",
        ]
    )
    # MLflow's table-creation lines, printed by a fresh process's logging, stay out of it.
    output = result.stdout.str() + result.stderr.str()
    assert "Creating initial MLflow database tables" not in output
    assert "Updating database tables" not in output
    # The process closed its store at exit: SQLite folded the write-ahead log back into it.
    assert sorted(p.name for p in ourtester.path.glob("mlflow.db*")) == ["mlflow.db"]
    (run,) = read_runs(ourtester.path.name)
    assert logged_metrics(run) == {"m": 1.0}
    # The store's creation lock was taken (an embedded store) and removed after use.
    assert mlexp_locks(private_tmpdir) == []


@pytest.mark.cold_workers  # a worker's own start is the subject: no warm imports
def test_refused_uri_stops_an_xdist_session_with_an_experiment(ourtester, monkeypatch):
    """The worker meets the URI when its store opens: the user sees the message, exit 4.

    In this process: xdist's worker is a process of its own either way.
    """
    ourtester.makepyfile(**PLAIN_SUITE)
    ourtester.makepyfile(
        experiment_tiny="""
        def experiment_tiny(mlflow_run):
            mlflow_run.log_metric("m", 1.0)
        """
    )
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "file:./mlruns")
    result = ourtester.runpytest("-p", "no:randomly", "-n", "1", "experiment_tiny.py")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: MLFLOW_TRACKING_URI: the file store 'file:./mlruns' is deprecated in "
            "MLflow 3 and refused unless MLFLOW_ALLOW_FILE_STORE=true; use sqlite:///*"
        ]
    )
    output = result.stdout.str() + result.stderr.str()
    assert "INTERNALERROR" not in output
    result.stdout.no_fnmatch_line("*passed*")  # refused before any test ran
    assert not (ourtester.path / "mlruns").exists()


#: A project as the issue found them: a test module's helper and a stray script named
#: like experiments, one real experiment in ``experiments/``, a conftest at the top.
SCATTERED = {
    "conftest.py": "import pytest\n\n@pytest.fixture\ndef lr():\n    return 0.1\n",
    "tests/test_cfg.py": (
        "def experiment_config():\n"
        "    return {'lr': 0.1}\n\n"
        "def test_cfg(lr):\n"
        "    assert experiment_config()['lr'] == lr\n"
    ),
    "scripts/experiment_script.py": "import sys\n\nsys.exit(2)  # a script, not a module\n",
    "experiments/experiment_e.py": (
        "def experiment_e(mlflow_run, lr):\n    mlflow_run.log_metric('m', lr)\n"
    ),
    "experiments/test_checks.py": (
        "def experiment_check(mlflow_run):\n    pass\n\ndef test_check():\n    pass\n"
    ),
    "other/experiment_named.py": "def experiment_named(mlflow_run):\n    pass\n",
    "studies/experiment_s.py": "def experiment_s(mlflow_run):\n    pass\n",
}


def test_experiments_are_collected_where_the_user_put_them(ourtester, monkeypatch, read_runs):
    """The experiment folders (default ``experiments/``) and files named on the command line.

    What the plugin leaves in the project (the code it logged) is no test module of a
    later run without the plugin.
    """
    monkeypatch.delenv("MLEXP_EXPERIMENT_PATHS")
    for name, text in SCATTERED.items():
        (ourtester.path / name).parent.mkdir(parents=True, exist_ok=True)
        (ourtester.path / name).write_text(text)

    result = ourtester.runpytest("-p", "no:randomly", "--mlexp-artifacts", "off")
    result.assert_outcomes(passed=4)
    runs = read_runs(ourtester.path.name)
    assert [run.info.run_name for run in runs] == ["experiment_check", "experiment_e"]
    assert list(ourtester.path.glob("mlruns/*/*/artifacts/code/experiments/test_checks.py"))

    # The next session without the plugin collects what pytest alone would.
    without = ourtester.runpytest("-p", "no:randomly", "-p", "no:mlexp")
    without.assert_outcomes(passed=2)
    assert without.ret == pytest.ExitCode.OK

    # A folder named on the command line is no experiment folder; a file named is collected.
    named = ourtester.runpytest(
        "--collect-only", "-q", "scripts", "tests", "other/experiment_named.py"
    )
    assert named.ret == pytest.ExitCode.OK
    assert sorted(line for line in named.outlines if "::" in line) == [
        "other/experiment_named.py::experiment_named",
        "tests/test_cfg.py::test_cfg",
    ]
    assert "mlruns" not in named.stdout.str()
    # The folders are a setting.
    elsewhere = ourtester.runpytest("--collect-only", "-q", "-o", "mlexp_experiment_paths=studies")
    assert sorted(line for line in elsewhere.outlines if "::" in line) == [
        "experiments/test_checks.py::test_check",
        "studies/experiment_s.py::experiment_s",
        "tests/test_cfg.py::test_cfg",
    ]
