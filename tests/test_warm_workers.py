"""Inner xdist sessions' workers are forked warm, and fresh where it matters (warm_workers.py)."""

from __future__ import annotations

import json
import os

import pytest
import warm_workers

import pytest_mlexp

WORKER = """
import json, os, sys, warnings

def test_where_i_run(tmp_path):
    with open(os.environ["WHERE"], "w") as file:
        json.dump(
            {
                "parent": os.getppid(),
                "cwd": os.getcwd(),
                "home": os.environ["HOME"],
                "path": sys.path[:2],
                "argv": sys.argv,
                "warnoptions": sys.warnoptions,
                "mlflow": "mlflow" in sys.modules,
                "plugin": "pytest_mlexp.plugin" in sys.modules,
                "package": os.path.dirname(sys.modules["pytest_mlexp"].__file__),
            },
            file,
        )
"""


def test_a_worker_is_forked_warm_with_this_sessions_process_state(ourtester, monkeypatch):
    """The worker is the zygote's child, with mlflow loaded, and this test's cwd, env and path.

    The run's own zygote (a cold start by any other test fails that test: ``conftest.py``).
    """
    if warm_workers._START_ENV.get("MLEXP_TESTS_COLD_WORKERS"):
        pytest.skip("MLEXP_TESTS_COLD_WORKERS: every worker is cold, as asked")
    ourtester.makepyfile(test_where=WORKER)
    where = ourtester.path / "where.json"
    monkeypatch.setenv("WHERE", str(where))
    monkeypatch.setenv("PYTHONWARNINGS", "ignore::ResourceWarning")
    zygote = warm_workers.warm_start
    zygote.address()
    child = os.fork()
    if child == 0:  # a forked copy of this process that exits: the zygote is not its to end
        zygote.stop()
        os._exit(0)
    os.waitpid(child, 0)
    ourtester.runpytest("-p", "no:randomly", "-n", "1").assert_outcomes(passed=1)
    seen = json.loads(where.read_text())
    if zygote.cold_reason is not None:  # not this process's copy of the package: cold, by design
        pytest.skip(f"workers are cold here: {zygote.cold_reason}")
    assert seen["parent"] != os.getpid(), zygote.why_cold()  # the zygote's child
    assert seen["parent"] == (zygote.pid or seen["parent"])  # (a worker of -n: the run's zygote)
    assert seen["mlflow"]  # a warm library (a plain suite's cold worker never imports it)
    assert seen["plugin"]  # loaded by the worker's own pytest
    assert seen["package"] == os.path.dirname(pytest_mlexp.__file__)  # this process's copy
    assert seen["cwd"] == seen["home"] == str(ourtester.path)  # pytester's, not the zygote's
    assert seen["argv"] == ["-c"]
    assert seen["warnoptions"] == ["ignore::ResourceWarning"]


@pytest.mark.cold_workers
def test_a_cold_workers_test_gets_a_fresh_interpreter(ourtester, monkeypatch):
    """A plain suite's worker, started by this process: no mlflow (cheap, about 1 s)."""
    ourtester.makepyfile(test_where=WORKER)
    where = ourtester.path / "where.json"
    monkeypatch.setenv("WHERE", str(where))
    ourtester.runpytest("-p", "no:randomly", "-n", "1").assert_outcomes(passed=1)
    seen = json.loads(where.read_text())
    assert seen["parent"] == os.getpid()
    assert not seen["mlflow"]
    assert seen["plugin"]
