"""System metrics: MLflow's CPU and memory samples logged in every run, while it runs."""

from __future__ import annotations

import sys
import threading

import pytest

from conftest import logged_metrics
from pytest_mlexp.runs import usage
from pytest_mlexp.settings.system_metrics import resolve_system_metrics

#: The project's default store exists before each session (conftest ``_premade_store``).
PREMADE_STORE = True

EXPERIMENT = "demo"

#: A quick item, one busy for 0.6 s, one that fails its first attempt, a plain test.
PROJECT = """
import time
from pathlib import Path

def experiment_quick(mlflow_run):
    mlflow_run.log_metric("acc", 0.9)

def experiment_busy(mlflow_run):
    end = time.monotonic() + 0.6
    while time.monotonic() < end:
        sum(range(1000))
    mlflow_run.log_metric("acc", 0.8)

def experiment_flaky(mlflow_run):
    marker = Path(__file__).parent / "attempted"
    mlflow_run.log_metric("acc", 0.7)
    if not marker.exists():
        marker.write_text("once")
        raise RuntimeError("flaky data loader")

def test_plain():
    pass
"""

#: MLflow's metrics of every machine (GPU ones only with pynvml and a GPU).
CPU_AND_MEMORY = {
    "system/cpu_utilization_percentage",
    "system/system_memory_usage_megabytes",
    "system/system_memory_usage_percentage",
}

ARGS = ("--mlexp-experiment", EXPERIMENT, "-p", "no:randomly", "--mlexp-lineage=none")


def system_metrics(run):  # type: ignore[no-untyped-def]
    """MLflow's samples of the machine: not what every run records it used (``runs.usage``)."""
    return {key for key in run.data.metrics if key.startswith("system/")} - set(usage.METRICS)


def monitors() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "SystemMetricsMonitor"]


def test_every_run_samples_while_it_runs_and_none_without_the_flag(
    ourtester, client, read_runs, monkeypatch
) -> None:
    # MLflow's own settings win over pytest-mlexp's (1 s, a step every 5 samples).
    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "0.1")
    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLES_BEFORE_LOGGING", "2")
    ourtester.makepyfile(PROJECT)
    result = ourtester.runpytest(*ARGS, "--mlexp-system-metrics", "--reruns", "1")
    assert result.parseoutcomes() == {"passed": 4, "rerun": 1}
    # The terminal shows the experiment's metrics, not the machine's.
    result.stdout.fnmatch_lines(["experiment_quick  FINISHED * acc=0.9  *"])
    result.stdout.no_fnmatch_line("*system/*")
    assert monitors() == []  # every monitor finished with its run

    runs = read_runs(EXPERIMENT)
    by_name = {(r.info.run_name, r.data.tags["mlexp.outcome"]): r for r in runs}
    assert sorted(by_name) == [
        ("experiment_busy", "passed"),
        ("experiment_flaky", "passed"),
        ("experiment_flaky", "rerun"),  # each attempt its own run, its own samples
        ("experiment_quick", "passed"),
    ]
    for run in runs:
        assert system_metrics(run) >= CPU_AND_MEMORY, run.info.run_name
        history = client.get_metric_history(run.info.run_id, "system/cpu_utilization_percentage")
        # Logged before the run ended: the last samples are not lost with the thread.
        assert max(m.timestamp for m in history) <= run.info.end_time
        assert [m.step for m in history] == list(range(len(history)))
    busy = by_name[("experiment_busy", "passed")]
    steps = client.get_metric_history(busy.info.run_id, "system/system_memory_usage_megabytes")
    assert len(steps) >= 2  # a step every 0.2 s over 0.6 s (MLflow alone: 10 s), and the last
    assert all(m.value > 0 for m in steps)
    quick = by_name[("experiment_quick", "passed")]
    assert quick.data.metrics["acc"] == 0.9

    result = ourtester.runpytest(*ARGS, "-k", "quick")
    result.assert_outcomes(passed=1, deselected=3)
    latest = max(read_runs(EXPERIMENT), key=lambda r: r.info.start_time)
    assert latest.info.run_name == "experiment_quick"
    assert system_metrics(latest) == set()
    assert logged_metrics(latest) == {"acc": 0.9}


def test_ini_yaml_and_mlflows_own_switch(ourtester, monkeypatch) -> None:
    assert resolve_system_metrics(ourtester.parseconfig()) is False
    assert resolve_system_metrics(ourtester.parseconfig("--mlexp-system-metrics")) is True
    ourtester.makefile(".yaml", mlexp="system_metrics: true\n")
    assert resolve_system_metrics(ourtester.parseconfig()) is True
    ourtester.makeini("[pytest]\nmlexp_system_metrics = off\n")  # the ini before the yaml
    assert resolve_system_metrics(ourtester.parseconfig()) is False
    monkeypatch.setenv("MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING", "true")
    assert resolve_system_metrics(ourtester.parseconfig()) is True
    ourtester.makeini("[pytest]\nmlexp_system_metrics = sometimes\n")
    monkeypatch.delenv("MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING")
    with pytest.raises(pytest.UsageError, match="ini mlexp_system_metrics: invalid value"):
        resolve_system_metrics(ourtester.parseconfig())


def test_without_psutil_the_session_stops_before_anything_runs(
    ourtester, client, monkeypatch
) -> None:
    ourtester.makepyfile(PROJECT)
    ourtester.makefile(".yaml", mlexp="system_metrics: yes\n")
    # `import psutil` fails in every process of the session (xdist's workers too).
    ourtester.makeconftest("import sys\n\nsys.modules['psutil'] = None\n")
    for workers in ([], ["-n", "2"]):  # under xdist, the session stops before anything runs
        with monkeypatch.context() as patch:
            patch.setitem(sys.modules, "psutil", None)
            result = ourtester.runpytest(*ARGS, *workers)
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        result.stderr.fnmatch_lines(
            [
                "ERROR: mlexp.yaml system_metrics: MLflow's system metrics need psutil, which is "
                "not installed; pip install 'pytest-mlexp[system-metrics]'"
            ]
        )
    # An MLflow that cannot load its monitors stops the session the same way.
    ourtester.path.joinpath("conftest.py").unlink()
    with monkeypatch.context() as patch:
        patch.setitem(sys.modules, "mlflow.system_metrics.system_metrics_monitor", None)
        result = ourtester.runpytest(*ARGS)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: --mlexp-system-metrics: MLflow's system metrics cannot be loaded "
            "(*Error: *); pip install 'pytest-mlexp[[]system-metrics]'"
        ]
    )
    assert client.search_runs([e.experiment_id for e in client.search_experiments()]) == []


#: A cell of two repeats: its run averages its repeats' metrics.
REPEATED = """
import pytest

@pytest.mark.mlexp(repeats=2)
def experiment_repeated(mlflow_run, seed):
    mlflow_run.log_metric("acc", 0.5)
"""


def test_the_gate_reuse_and_cells_leave_the_machines_metrics_out(ourtester, read_runs) -> None:
    ourtester.makepyfile(PROJECT)
    ourtester.makepyfile(experiment_repeated=REPEATED)
    select = ("-k", "quick or repeated", "--mlexp-system-metrics")
    ourtester.runpytest(*ARGS, *select).assert_outcomes(passed=3, deselected=3)
    (cell,) = [r for r in read_runs(EXPERIMENT, groups=True) if "mlexp.kind" in r.data.tags]
    assert cell.data.metrics == {"acc": 0.5, "acc.std": 0.0}  # not the machine's means
    # The baseline run's system/ metrics are the machine's: not judged (MISSING), not copied.
    result = ourtester.runpytest(*ARGS, "-k", "quick", "--mlexp-system-metrics",
                                 "--mlexp-baseline", "latest", "--mlexp-reuse")  # fmt: skip
    result.assert_outcomes(passed=1, deselected=5)
    result.stdout.no_fnmatch_line("*system/*")
    first, reused = sorted(
        (r for r in read_runs(EXPERIMENT) if r.info.run_name == "experiment_quick"),
        key=lambda r: r.info.start_time,
    )
    assert reused.data.tags["mlexp.reused_from"] == first.info.run_id
    assert system_metrics(first) >= CPU_AND_MEMORY
    assert reused.data.metrics == {"acc": 0.9}  # executed nothing: sampled nothing
