"""Grids: parent runs, best cell, repeats, xdist equality, dead runs marked KILLED."""

from __future__ import annotations

import re
import sqlite3
import tempfile

import pytest

from conftest import logged_metrics

#: The project's default store exists before each session (conftest ``_premade_store``).
PREMADE_STORE = True
#: Lineage and outputs are not what grids are about: sessions without them cost less.
LIGHT = ("--mlexp-lineage", "none", "--mlexp-artifacts", "off")

GRID = """
import pytest

@pytest.mark.parametrize("alpha", [0.1, 1.0, 10.0])
def experiment_ridge(mlflow_run, alpha):
    mlflow_run.log_metric("rmse", alpha * 2)
    return {"r2": 1 / (1 + alpha)}

@pytest.mark.mlexp(best="r2")
@pytest.mark.parametrize("alpha", [0.1, 1.0])
@pytest.mark.parametrize("fit", [True, False])
def experiment_named(alpha, fit):
    if alpha > 0.5 and not fit:
        raise AssertionError("diverged")
    return {"rmse": alpha, "r2": alpha + fit}

def experiment_plain():
    return {"x": 1}
"""


def base_name(run) -> str:  # type: ignore[no-untyped-def]
    """A run's name without the session stamp group runs carry (``experiment_x · 11-28 ...``)."""
    return str(run.info.run_name).split(" · ")[0]


def by_name(runs):  # type: ignore[no-untyped-def]
    return {base_name(run): run for run in runs}


def test_best_metric_from_ini_with_direction(ourtester, read_runs) -> None:
    ourtester.makeini("[pytest]\nmlexp_best_metric = score:min\n")
    ourtester.makepyfile(
        experiment_grid="""
        import pytest

        @pytest.mark.parametrize("k", [1, 2, 3])
        def experiment_k(k):
            return {"acc": k, "score": 10 - k}
        """
    )
    ourtester.runpytest(*LIGHT).assert_outcomes(passed=3)
    parent = by_name(read_runs(ourtester.path.name, groups=True))["experiment_k"]
    assert parent.data.params == {"best.k": "3"}
    assert parent.data.tags["mlexp.best_direction"] == "min"


def test_bad_best_metric_is_a_usage_error(ourtester) -> None:
    ourtester.makepyfile(experiment_a="def experiment_a():\n    pass\n")
    result = ourtester.runpytest("--mlexp-best-metric", "r2:up")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*bad best metric 'r2:up'; expected NAME, NAME:max or NAME:min, e.g. r2 or val_loss:min"]
    )


@pytest.mark.parametrize(
    ("marker", "message"),
    [
        ("repeats=3", "*the function must take a 'seed' argument*"),
        ("repeats=0", "*repeats must be a positive integer, got 0"),
        ("seeds=[]", "*seeds must be a non-empty list, got []"),
    ],
)
def test_bad_repeats_are_usage_errors(ourtester, marker: str, message: str) -> None:
    ourtester.makepyfile(
        experiment_rep=f"""
        import pytest

        @pytest.mark.mlexp({marker})
        def experiment_rep():
            pass
        """
    )
    result = ourtester.runpytest()
    assert result.ret in (pytest.ExitCode.USAGE_ERROR, pytest.ExitCode.INTERRUPTED)
    (result.stderr if result.ret == pytest.ExitCode.USAGE_ERROR else result.stdout).fnmatch_lines(
        [message]
    )


def _store_view(runs) -> list[tuple]:  # type: ignore[no-untyped-def,type-arg]
    """What a user sees: every run, its status, params, metrics and its parent's name."""
    names = {run.info.run_id: base_name(run) for run in runs}
    return sorted(
        (
            base_name(run),
            run.info.status,
            tuple(sorted(run.data.params.items())),
            tuple(sorted(logged_metrics(run).items())),
            names.get(run.data.tags.get("mlflow.parentRunId", "")),
        )
        for run in runs
    )


def _summary_lines(text: str) -> list[str]:
    """Terminal summary lines, without run ids, timings and experiment ids."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if re.match(r"=+ mlexp: ", line))
    end = next(i for i, line in enumerate(lines) if i > start and line.startswith("=="))
    return [
        re.sub(
            r"/experiments/\d+/",
            "/experiments/<n>/",
            re.sub(r"[0-9a-f]{32}", "<id>", _durations(line)),
        ).strip("= ")
        for line in lines[start:end]
    ]


def _durations(line: str) -> str:
    """What the runs used (``mlexp used: ... 0.41 s wall, 0.38 s CPU``), without the timings."""
    return re.sub(r"\b[0-9.]+ (s|min|h) (wall|CPU)\b", r"<time> \2", line)


REPEATS = """
import pytest

@pytest.mark.mlexp(repeats=3)
@pytest.mark.parametrize("lr", [0.1, 0.2])
def experiment_rep(seed, lr):
    return {"acc": lr + seed / 10}

@pytest.mark.mlexp(seeds=[7, 11])
def experiment_single(seed):
    return {"loss": seed}
"""


def _check_grid_parents_counts_and_best_cells(runs, result) -> None:  # type: ignore[no-untyped-def]
    """GRID's parents, counts and best cells, in the store and in the summary."""
    runs = by_name(runs)
    assert {name for name in runs if name.startswith(("experiment_ridge", "experiment_named"))} == {
        "experiment_ridge",
        *(f"experiment_ridge[{alpha}]" for alpha in ("0.1", "1.0", "10.0")),
        "experiment_named",
        *(f"experiment_named[{fit}-{alpha}]" for fit in (True, False) for alpha in ("0.1", "1.0")),
    }
    parent = runs["experiment_ridge"]
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["mlexp.kind"] == "grid"
    assert parent.data.tags["mlexp.grid_size"] == "3"
    assert parent.data.metrics["mlexp.passed"] == 3
    # No best metric named: the first one returned, r2 (not rmse, logged first), is maximized.
    assert parent.data.tags["mlexp.best_metric"] == "r2"
    assert parent.data.tags["mlexp.best_direction"] == "max"
    assert parent.data.tags["mlexp.best_run_id"] == runs["experiment_ridge[0.1]"].info.run_id
    assert parent.data.params == {"best.alpha": "0.1"}
    assert parent.data.metrics["best.r2"] == pytest.approx(1 / 1.1)
    for alpha in ("0.1", "1.0", "10.0"):
        child = runs[f"experiment_ridge[{alpha}]"]
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id

    named = runs["experiment_named"]
    assert named.info.status == "FAILED", "a failed cell fails the grid's parent"
    assert named.data.tags["mlexp.passed"] == "3"
    assert named.data.tags["mlexp.failed"] == "1"
    assert named.data.tags["mlexp.best_metric"] == "r2"
    assert named.data.tags["mlexp.best_direction"] == "max"
    assert named.data.params == {"best.alpha": "1.0", "best.fit": "True"}
    assert named.data.metrics["best.r2"] == 2.0

    plain = runs["experiment_plain"]
    assert "mlflow.parentRunId" not in plain.data.tags
    assert not any(run.info.status == "RUNNING" for run in runs.values())
    result.stdout.fnmatch_lines(
        [
            "mlexp grid experiment_grid.py::experiment_ridge: 3 cells, 3 passed, 0 failed; "
            "best r2=0.9091 (max, guessed, returned) at experiment_ridge[[]0.1[]] "
            "[[]alpha=0.1[]]; parent run *",
            "mlexp grid experiment_grid.py::experiment_named: 4 cells, 3 passed, 1 failed; "
            "best r2=2 (max, guessed, best= marker) at experiment_named[[]True-1.0[]]*",
        ]
    )


def _check_repeats_make_a_cell_run_with_mean_and_std(runs) -> None:  # type: ignore[no-untyped-def]
    """REPEATS: a cell run per lr with the repeats' mean and std, under the grid's parent."""
    runs = by_name(runs)
    parent = runs["experiment_rep"]
    cell = runs["experiment_rep[0.1]"]
    assert cell.data.tags["mlexp.kind"] == "cell"
    assert cell.data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert cell.data.tags["mlexp.repeats"] == "3"
    assert cell.data.params == {"lr": "0.1"}
    assert cell.data.metrics["acc"] == pytest.approx(0.2)
    assert cell.data.metrics["acc.std"] == pytest.approx(0.1)
    assert cell.info.status == "FINISHED"
    for seed in range(3):
        repeat = runs[f"experiment_rep[0.1-seed{seed}]"]
        assert repeat.data.tags["mlflow.parentRunId"] == cell.info.run_id
        assert repeat.data.params == {"lr": "0.1", "seed": str(seed)}
    assert parent.data.tags["mlexp.grid_size"] == "2"
    assert parent.data.params == {"best.lr": "0.2"}
    assert parent.data.metrics["best.acc"] == pytest.approx(0.3)

    single = runs["experiment_single"]
    assert "mlflow.parentRunId" not in single.data.tags
    assert logged_metrics(single) == {"loss": 9.0, "loss.std": pytest.approx(2.828427, rel=1e-5)}
    assert runs["experiment_single[seed1]"].data.params == {"seed": "11"}


def test_xdist_gives_the_same_runs_parents_and_summary_completed_by_the_controller(
    ourtester, client, runs_of, monkeypatch, tmp_path
) -> None:
    """Grids' parents and repeats' cells; under xdist, the same runs, parents and summary.

    The summaries reach the controller with the workers' reports, by no file: it
    completes the grids (no file is left in the system's temporary folder either).
    """
    ourtester.makepyfile(experiment_grid=GRID, experiment_rep=REPEATS)
    serial = ourtester.runpytest(
        "-p", "no:randomly", "-n", "0", "--mlexp-experiment", "serial", *LIGHT
    )  # fmt: skip
    serial.assert_outcomes(passed=15, failed=1)
    serial_runs = runs_of(client, "serial", groups=True)
    _check_grid_parents_counts_and_best_cells(serial_runs, serial)
    _check_repeats_make_a_cell_run_with_mean_and_std(serial_runs)
    # The workers' (environment) and this controller's (in-process) temporary folder.
    system_tmp = tmp_path / "system-tmp"
    system_tmp.mkdir()
    with monkeypatch.context() as patched:
        patched.setenv("TMPDIR", str(system_tmp))
        patched.setattr(tempfile, "tempdir", str(system_tmp))
        parallel = ourtester.runpytest(
            "-p", "no:randomly", "-n", "2", "--mlexp-experiment", "xdist", *LIGHT
        )  # fmt: skip
    parallel.assert_outcomes(passed=15, failed=1)
    # No second copy of the summaries through files (the artifacts' markers are removed).
    assert list(system_tmp.iterdir()) == []
    xdist_view = _store_view(runs_of(client, "xdist", groups=True))
    assert xdist_view == _store_view(serial_runs)
    assert len([v for v in xdist_view if v[0] == "experiment_ridge"]) == 1
    serial_lines = _summary_lines(serial.stdout.str())
    assert serial_lines == [
        line.replace("'xdist'", "'serial'") for line in _summary_lines(parallel.stdout.str())
    ]
    assert len(serial_lines) > 13
    parallel.stdout.fnmatch_lines(
        [
            "mlexp grid experiment_grid.py::experiment_ridge: 3 cells, 3 passed, 0 failed; "
            "best r2=0.9091 (max, guessed, returned) at experiment_ridge?0.1? ?alpha=0.1?; "
            "parent run *",
            "then open: http://127.0.0.1:5000/#/experiments/*viewStateShareKey=mlexp",
        ]
    )
    parent = by_name(runs_of(client, "xdist", groups=True))["experiment_ridge"]
    assert parent.info.status == "FINISHED"
    assert parent.data.params == {"best.alpha": "0.1"}
    assert parent.data.tags["mlexp.grid_size"] == "3"


@pytest.mark.fresh_store
def test_four_workers_share_a_new_sqlite_store(ourtester, client, runs_of) -> None:
    ourtester.makepyfile(
        experiment_many="""
        import pytest

        @pytest.mark.parametrize("i", range(24))
        def experiment_many(mlflow_run, i):
            mlflow_run.log_params({f"p{j}": j for j in range(5)})
            return {"m": i}

        @pytest.mark.mlexp(experiment="second")
        @pytest.mark.parametrize("i", range(12))
        def experiment_other(i):
            return {"m": i}
        """
    )
    result = ourtester.runpytest("-n", "4", *LIGHT)
    result.assert_outcomes(passed=36)
    assert "database is locked" not in result.stdout.str() + result.stderr.str()
    runs = runs_of(client, ourtester.path.name, groups=True)
    names = [run.info.run_name for run in runs]
    assert len(names) == len(set(names)) == 25
    assert all(run.info.status == "FINISHED" for run in runs)
    assert len(runs_of(client, "second", groups=True)) == 13
    with sqlite3.connect(ourtester.path / "mlflow.db") as db:
        experiments = [row[0] for row in db.execute("select name from experiments")]
    assert sorted(experiments) == sorted({"Default", ourtester.path.name, "second"})


KILLER = """
import os, signal, pytest

@pytest.mark.parametrize("i", range(4))
def experiment_crash(i, tmp_path_factory):
    if i == 2:
        os.kill(os.getpid(), signal.SIGKILL)
    return {"m": i}
"""


def test_killed_worker_runs_are_marked_killed_by_the_controller(ourtester, read_runs) -> None:
    ourtester.makepyfile(experiment_crash=KILLER)
    result = ourtester.runpytest("-p", "no:randomly", "-n", "2", *LIGHT)
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(["mlexp: marked 1 run KILLED whose process had died: *"])
    runs = by_name(read_runs(ourtester.path.name, groups=True))
    assert runs["experiment_crash[2]"].info.status == "KILLED"
    assert runs["experiment_crash[2]"].data.tags["mlexp.outcome"] == "interrupted"
    parent = runs["experiment_crash"]
    assert parent.info.status == "KILLED"
    assert parent.data.tags["mlexp.killed"] == "1"
    assert not any(run.info.status == "RUNNING" for run in runs.values())


def test_killed_session_runs_are_marked_killed_by_the_next_session(
    ourtester, client, runs_of
) -> None:
    ourtester.makepyfile(experiment_crash=KILLER)
    # A process of its own: the experiment kills the process pytest runs in (kill -9).
    killed = ourtester.runpytest_subprocess("-p", "no:randomly", *LIGHT)
    assert killed.ret == -9
    running = [
        r for r in runs_of(client, ourtester.path.name, groups=True) if r.info.status == "RUNNING"
    ]
    assert sorted(base_name(r) for r in running) == ["experiment_crash", "experiment_crash[2]"]

    ourtester.makepyfile(experiment_crash="def experiment_next():\n    return {'m': 1}\n")
    result = ourtester.runpytest(*LIGHT)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["mlexp: marked 2 runs KILLED whose process had died: *"])
    statuses = {
        base_name(r): r.info.status for r in runs_of(client, ourtester.path.name, groups=True)
    }
    assert statuses["experiment_crash[2]"] == "KILLED"
    assert statuses["experiment_crash"] == "KILLED"
    assert "RUNNING" not in statuses.values()


SESSIONS_IN_ONE_MINUTE = """
import pytest

@pytest.mark.parametrize("alpha", [0.1, 1.0])
def experiment_ridge(mlflow_run, alpha):
    return {"r2": 1 / (1 + alpha)}

@pytest.mark.mlexp(repeats=2)
def experiment_seeded(mlflow_run, seed):
    return {"r2": 0.5 + seed / 10}
"""


def test_sessions_started_in_the_same_minute_name_their_group_runs_apart(
    ourtester, read_runs, monkeypatch
) -> None:
    """A top-level group run's name has its session's start to the second."""
    ourtester.makepyfile(experiment_minute=SESSIONS_IN_ONE_MINUTE)
    # Default session ids (start time, random suffix), 40 s apart in the same minute.
    for session in ("20261207-043201-0a1b2c3d", "20261207-043241-4e5f6a7b"):
        monkeypatch.setenv("MLEXP_SESSION_ID", session)
        result = ourtester.runpytest("-p", "no:randomly", *LIGHT)
        result.assert_outcomes(passed=4)
    runs = read_runs(ourtester.path.name, groups=True)
    grids = sorted(r.info.run_name for r in runs if r.data.tags.get("mlexp.kind") == "grid")
    assert grids == [
        "experiment_ridge · 12-07 04:32:01",
        "experiment_ridge · 12-07 04:32:41",
    ]
    # A repeated experiment without a grid: its cell run is the top-level group run.
    cells = sorted(r.info.run_name for r in runs if r.data.tags.get("mlexp.kind") == "cell")
    assert cells == [
        "experiment_seeded · 12-07 04:32:01",
        "experiment_seeded · 12-07 04:32:41",
    ]


CTRL_C_GRID = """
import pytest

@pytest.mark.parametrize("i", range(3))
def experiment_grid(mlflow_run, i):
    mlflow_run.log_metric("score", i)
    if i == 2:
        raise KeyboardInterrupt  # Ctrl-C while this cell runs
"""


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_ctrl_c_closes_the_grid_parent_killed_with_its_counts(
    ourtester, read_runs, workers
) -> None:
    ourtester.makepyfile(experiment_grid=CTRL_C_GRID)
    # In-process, pytester would raise the inner session's Ctrl-C in this test.
    result = ourtester.runpytest(
        "-p", "no:randomly", "--mlexp-lineage", "none", "--mlexp-artifacts", "off", *workers,
        no_reraise_ctrlc=True,
    )  # fmt: skip
    assert result.ret == pytest.ExitCode.INTERRUPTED
    runs = by_name(read_runs(ourtester.path.name, groups=True))
    assert runs["experiment_grid[2]"].info.status == "KILLED"
    # Under xdist, the other worker's cell may be cut short too.
    passed = sum(runs[f"experiment_grid[{i}]"].info.status == "FINISHED" for i in (0, 1))
    killed = 3 - passed
    result.stdout.fnmatch_lines(
        [
            f"mlexp grid experiment_grid.py::experiment_grid: 3 cells, {passed} passed, "
            f"0 failed, {killed} killed;*"
        ]
    )
    parent = runs["experiment_grid"]
    assert parent.info.status == "KILLED"
    assert parent.data.tags["mlexp.killed"] == str(killed)
    assert parent.data.metrics["mlexp.cells"] == 3
    assert parent.data.metrics["mlexp.passed"] == passed
