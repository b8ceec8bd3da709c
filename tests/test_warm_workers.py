"""Inner xdist sessions' workers are forked warm, and fresh where it matters (warm_workers.py)."""

from __future__ import annotations

import json
import os

import pytest
from warm_workers import warm_start

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
            },
            file,
        )
"""


def test_a_worker_is_forked_warm_with_this_sessions_process_state(ourtester, monkeypatch):
    """The worker is the zygote's child, with mlflow loaded, and this test's cwd, env and path."""
    ourtester.makepyfile(test_where=WORKER)
    where = ourtester.path / "where.json"
    monkeypatch.setenv("WHERE", str(where))
    monkeypatch.setenv("PYTHONWARNINGS", "ignore::ResourceWarning")
    ourtester.runpytest("-p", "no:randomly", "-n", "1").assert_outcomes(passed=1)

    seen = json.loads(where.read_text())
    assert seen["parent"] == warm_start.pid != os.getpid()
    assert seen["mlflow"]  # a warm library (a plain suite's cold worker never imports it)
    assert seen["plugin"]  # loaded by the worker's own pytest
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
