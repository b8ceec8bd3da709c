"""pytest-rerunfailures: every attempt its own run, each item counted once by its last attempt."""

from __future__ import annotations

import pytest

from conftest import logged_metrics

#: The project's default store exists before each session (conftest ``_premade_store``).
PREMADE_STORE = True
#: Lineage and outputs are not what reruns are about: sessions without them cost less.
LIGHT = ("--mlexp-lineage", "none", "--mlexp-artifacts", "off")

#: Cell 1.0 fails its first attempt (after logging the grid's best score) and passes its rerun.
FLAKY_GRID = """
import pytest
from pathlib import Path

@pytest.mark.mlexp(best="score:max")
@pytest.mark.parametrize("alpha", [0.1, 1.0, 10.0])
def experiment_flaky(mlflow_run, alpha):
    marker = Path(__file__).parent / f"attempted-{alpha}"
    if alpha == 1.0 and not marker.exists():
        marker.write_text("once")
        mlflow_run.log_metric("score", 100.0)
        raise RuntimeError("flaky data loader")
    mlflow_run.log_metric("score", alpha)
"""


def outcomes(result):  # type: ignore[no-untyped-def]
    """pytest's counts from the last line (``assert_outcomes`` knows no reruns)."""
    return {k: v for k, v in result.parseoutcomes().items() if k not in ("seconds",)}


def by_name_and_attempt(runs):  # type: ignore[no-untyped-def]
    return {(run.info.run_name, run.data.tags.get("mlexp.attempt")): run for run in runs}


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_a_rerun_cell_is_counted_once_by_its_last_attempt(ourtester, read_runs, workers) -> None:
    ourtester.makepyfile(experiment_flaky=FLAKY_GRID)
    result = ourtester.runpytest("-p", "no:randomly", *LIGHT, "--reruns", "1", *workers)
    assert outcomes(result) == {"passed": 3, "rerun": 1}
    result.stdout.fnmatch_lines(
        [
            "mlexp grid experiment_flaky.py::experiment_flaky: 3 cells, 3 passed, 0 failed "
            "(1 rerun); best score=10 (max, best= marker) at experiment_flaky?10.0? "
            "[[]alpha=10.0]; parent run *",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "mlexp: 1 attempt superseded by a rerun (tagged mlexp.outcome=rerun), each item "
            "counted by its last attempt: experiment_flaky?1.0?"
        ]
    )

    runs = read_runs(ourtester.path.name, groups=True)
    parent = next(r for r in runs if r.data.tags.get("mlexp.kind") == "grid")
    cells = by_name_and_attempt(r for r in runs if r is not parent)
    assert sorted(cells) == [
        ("experiment_flaky[0.1]", "1"),
        ("experiment_flaky[1.0]", "1"),
        ("experiment_flaky[1.0]", "2"),
        ("experiment_flaky[10.0]", "1"),
    ]
    first, last = cells[("experiment_flaky[1.0]", "1")], cells[("experiment_flaky[1.0]", "2")]
    assert first.info.status == "FAILED"
    assert first.data.tags["mlexp.outcome"] == "rerun"
    assert "flaky data loader" in first.data.tags["mlexp.error"]
    assert logged_metrics(first) == {"score": 100.0}
    assert last.info.status == "FINISHED"
    assert last.data.tags["mlexp.outcome"] == "passed"
    assert first.info.run_id != last.info.run_id
    for run in cells.values():
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id

    assert parent.info.status == "FINISHED"
    assert parent.data.tags["mlexp.grid_size"] == "3"
    assert parent.data.tags["mlexp.passed"] == "3"
    assert parent.data.tags["mlexp.failed"] == "0"
    assert parent.data.tags["mlexp.reruns"] == "1"
    best = cells[("experiment_flaky[10.0]", "1")]
    assert parent.data.tags["mlexp.best_run_id"] == best.info.run_id


def test_the_gate_judges_a_rerun_item_by_its_last_attempt(ourtester, read_runs) -> None:
    ourtester.makepyfile(
        experiment_gated="""
        import pytest
        from pathlib import Path

        @pytest.mark.mlexp(expect={"accuracy": ">= 0.7"})
        def experiment_gated(mlflow_run):
            marker = Path(__file__).parent / "attempted"
            first = not marker.exists()
            marker.write_text("once")
            mlflow_run.log_metric("accuracy", 0.1 if first else 0.9)
        """
    )
    result = ourtester.runpytest("-p", "no:randomly", *LIGHT, "--reruns", "2")
    assert outcomes(result) == {"passed": 1, "rerun": 1}
    result.stdout.fnmatch_lines(["1 of 1 items judged by their expect= bounds * 1 passed"])
    runs = by_name_and_attempt(read_runs(ourtester.path.name))
    assert runs[("experiment_gated", "1")].data.tags["mlexp.outcome"] == "rerun"
    assert runs[("experiment_gated", "1")].data.tags["mlexp.regression"] == "regressed"
    assert runs[("experiment_gated", "2")].data.tags["mlexp.outcome"] == "passed"
    assert runs[("experiment_gated", "2")].data.tags["mlexp.regression"] == "passed"


def test_an_item_failing_every_attempt_counts_as_one_failure(ourtester, read_runs) -> None:
    ourtester.makepyfile(
        experiment_broken="""
        import pytest

        @pytest.mark.parametrize("k", [1, 2])
        def experiment_broken(k):
            assert k == 1, "always broken"
        """
    )
    result = ourtester.runpytest("-p", "no:randomly", *LIGHT, "--reruns", "2")
    assert outcomes(result) == {"passed": 1, "failed": 1, "rerun": 2}
    result.stdout.fnmatch_lines(
        [
            "mlexp grid experiment_broken.py::experiment_broken: "
            "2 cells, 1 passed, 1 failed (2 reruns)*"
        ]
    )
    runs = read_runs(ourtester.path.name)
    attempts = sorted(
        (r.data.tags["mlexp.attempt"], r.data.tags["mlexp.outcome"])
        for r in runs
        if r.info.run_name == "experiment_broken[2]"
    )
    assert attempts == [("1", "rerun"), ("2", "rerun"), ("3", "failed")]
