"""The regression gate on repeated cells: the mean of the seeds is compared, at session end."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

EXPERIMENT = "repeats-gate"
CELL = "experiment_cell.py::experiment_cell[0.1]"
LIGHT = ("--mlexp-lineage", "none", "--mlexp-artifacts", "off")


@pytest.fixture
def run_gate(empty_store: Path, ourtester: pytest.Pytester):  # type: ignore[no-untyped-def]
    shutil.copy(empty_store, ourtester.path / "mlflow.db")

    def run(*args: str) -> pytest.RunResult:
        # Lineage and artifact discovery are not this file's subject: off, for the suite's time.
        return ourtester.runpytest(
            "--mlexp-experiment", EXPERIMENT, "-p", "no:randomly", *LIGHT, *args
        )

    return run


@pytest.fixture
def cell_model(ourtester: pytest.Pytester):  # type: ignore[no-untyped-def]
    """``cell_model(base, marker)``: one cell, 3 seeds, accuracy base, base+0.01, base+0.02.

    The cell's mean is base + 0.01 and its standard deviation 0.01.
    """

    def write(base: float, marker: str = "") -> None:
        ourtester.makepyfile(
            experiment_cell=f"""
            import pytest

            @pytest.mark.mlexp(repeats=3{marker})
            @pytest.mark.parametrize("lr", [0.1])
            def experiment_cell(seed, lr):
                return {{"accuracy": {base} + 0.01 * seed}}
            """
        )

    return write


def escaped(pattern: str) -> str:
    return pattern.replace("[", "[[]")


def cells_and_repeats(read_runs):  # type: ignore[no-untyped-def]
    """The cell runs (oldest first) and the repeat runs of the experiment."""
    runs = read_runs(EXPERIMENT, groups=True)
    cells = sorted(
        (r for r in runs if r.data.tags.get("mlexp.kind") == "cell"),
        key=lambda r: r.info.start_time,
    )
    repeats = [r for r in runs if "mlexp.kind" not in r.data.tags]
    return cells, repeats


def test_cell_mean_is_gated_against_the_latest_cell_run(cell_model, run_gate, read_runs):
    cell_model(0.8)
    first = run_gate("--mlexp-baseline", "latest")
    first.assert_outcomes(passed=3)
    assert first.ret == pytest.ExitCode.OK
    first.stdout.fnmatch_lines([escaped(f"no baseline for 1 test (passed unchecked): {CELL}")])
    (recorded,), repeats = cells_and_repeats(read_runs)
    assert recorded.data.tags["mlexp.regression"] == "no-baseline"
    assert recorded.data.metrics["accuracy"] == pytest.approx(0.81)
    # Seeds are not compared one by one.
    assert len(repeats) == 3
    assert not any("mlexp.regression" in r.data.tags for r in repeats)

    cell_model(0.7)  # mean 0.71 against 0.81: worse beyond the noise of 3 seeds a side
    worse = run_gate("--mlexp-baseline", "latest")
    # Every seed ran fine: the cell fails the session, as its last seed (gate.group_reports).
    worse.assert_outcomes(passed=2, failed=1)
    worse.stdout.fnmatch_lines([escaped(f"FAILED {CELL[:-1]}-seed2] - repeated cell*")])
    assert worse.ret == pytest.ExitCode.TESTS_FAILED
    worse.stdout.fnmatch_lines(
        [
            escaped(f"REGRESSED  {CELL}: accuracy regressed: 0.81 -> 0.71, change -0.1 (-12.35%)*"),
            escaped(f"repeated cell {CELL} (mean of 3 repeats, cell run *) fails the session:"),
            f"mlexp: 1 metric out of bounds against baseline run {recorded.info.run_id} (latest)",
            "accuracy  0.81 *0.71 *-0.1 (-12.35%)*change >= -0.0081 (tol 1%)*"
            "[[]-0.1174, -0.08259] 95%, n 3/3*REGRESSED",
            "1 repeated cell by the confidence bound over seeds: 1 regressed",
        ]
    )
    # The first session judged against a store baseline says what its seeds can decide.
    worse.stdout.fnmatch_lines(
        [
            f"{escaped(CELL)}: baseline run {recorded.info.run_id} (latest), first used: "
            "accuracy: spread 0.01 over 3 seeds; 3 seeds decide changes >= 0.0*; "
            "the tolerance 0.0081 needs about * seeds a side"
        ]
    )
    _, regressed = cells_and_repeats(read_runs)[0]
    assert regressed.data.tags["mlexp.regression"] == "regressed"
    assert regressed.data.tags["mlexp.baseline.run_id"] == recorded.info.run_id
    assert regressed.data.tags["mlexp.error"].startswith("accuracy regressed: 0.81 -> 0.71")
    # By the bound: the store's cell run gives the baseline's seeds (tag mlexp.repeats_passed).
    assert regressed.data.tags["mlexp.gate.rule"] == "bound"
    assert (
        regressed.data.tags["mlexp.regression.interval"]
        == "accuracy [-0.1174, -0.08259] 95%, n 3/3"
    )
    # A regressed cell is failed, so it never becomes the "latest" baseline.
    assert regressed.info.status == "FAILED"
    assert regressed.data.tags["mlexp.outcome"] == "failed"

    # The old rule, gate="mean": the means alone, whatever the seeds. Mean 0.795: 0.015
    # below 0.81, more than 1% but within 2 std (2 x 0.01); the bound would not decide it
    # with 3 seeds a side. (The marker's rules reaching the controller from xdist workers:
    # test_an_undecided_cell_runs_more_seeds_until_the_gate_decides, its seed budget.)
    cell_model(0.785, ', tolerance="2 std", gate="mean"')
    noisy = run_gate("--mlexp-baseline", "latest")
    noisy.assert_outcomes(passed=3)
    assert noisy.ret == pytest.ExitCode.OK
    noisy.stdout.fnmatch_lines(["1 repeated cell by the mean over seeds: 1 passed"])
    assert "first used" not in noisy.stdout.str()  # once: the regressed session used it
    latest = cells_and_repeats(read_runs)[0][-1]
    assert latest.data.tags["mlexp.regression"] == "passed"
    assert latest.data.tags["mlexp.baseline.run_id"] == recorded.info.run_id
    assert latest.info.status == "FINISHED"
    assert latest.data.tags["mlexp.gate.rule"] == "mean"
    assert latest.data.tags["mlexp.regression.interval"] == "accuracy mean rule, n 3/3"


def test_baseline_file_holds_cell_means_and_gates_them(cell_model, run_gate, ourtester, read_runs):
    cell_model(0.8)
    update = run_gate(
        "--mlexp-baseline-file", "b.yaml", "--mlexp-update-baseline", "--mlexp-promote-baseline"
    )
    assert update.ret == pytest.ExitCode.OK
    update.stdout.fnmatch_lines(["baseline file b.yaml: 1 test updated"])
    entries = yaml.safe_load((ourtester.path / "b.yaml").read_text())
    assert list(entries) == [CELL]  # the cell's test id, no seed ids
    assert entries[CELL]["accuracy"] == pytest.approx(0.81)
    assert entries[CELL]["accuracy.std"] == pytest.approx(0.01)
    assert entries[CELL]["accuracy.n"] == 3  # the seeds behind the mean, for the bound

    cell_model(0.7, ', expect={"accuracy": ">= 0.5"}')  # bounds still hold per seed
    worse = run_gate("--mlexp-baseline-file", "b.yaml", "--mlexp-report-md", "report.md")
    worse.assert_outcomes(passed=2, failed=1)
    assert worse.ret == pytest.ExitCode.TESTS_FAILED
    worse.stdout.fnmatch_lines(
        [
            escaped(f"REGRESSED  {CELL}: accuracy regressed: 0.81 -> 0.71*"),
            "mlexp: 1 metric out of bounds against baseline b.yaml",
            "3 repeats by their expect= bounds; "
            "1 repeated cell by the confidence bound over seeds: 1 regressed, 3 passed",
        ]
    )
    cells, repeats = cells_and_repeats(read_runs)
    report = (ourtester.path / "report.md").read_text()
    # Text as is (no &lt;); no link to a sqlite store's runs, which no pull request reaches.
    assert f"| `{CELL}` | accuracy | 0.81 | 0.71 |" in report
    assert "127.0.0.1" not in report
    interval = "[-0.1174, -0.08259] 95%, n 3/3"
    assert f"| `change >= -0.0081 (tol 1%)` | {interval} | **REGRESSED** |" in report
    assert "&lt;" not in report
    assert cells[0].data.tags["mlexp.baseline"] == "true"  # promoted with the first session
    assert "mlexp.baseline" not in cells[-1].data.tags
    assert cells[-1].data.tags["mlexp.regression"] == "regressed"
    assert cells[-1].data.tags["mlexp.baseline.source"] == "b.yaml"
    # The seeds met their bound and were not compared with the baseline.
    session = cells[-1].data.tags["mlexp.session_id"]
    latest = [r for r in repeats if r.data.tags["mlexp.session_id"] == session]
    assert [r.data.tags.get("mlexp.regression") for r in latest] == ["passed"] * 3


def test_cell_without_baseline_fails_when_required(cell_model, run_gate):
    cell_model(0.8)
    result = run_gate("--mlexp-baseline-file", "b.yaml", "--mlexp-require-baseline")
    result.assert_outcomes(passed=2, failed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [escaped(f"mlexp: no baseline for repeated cell {CELL} in b.yaml (--mlexp-require-*")]
    )


#: Seeds on demand, 3 first seeds and a budget of 9 (looks at 3, 6 and 9 seeds). Each
#: seed's accuracy is 0.80 + an offset: ``calm`` spreads by 0.0005, ``noisy`` by 0.005.
#: With ``FLAKY`` set, noisy's extra seed 4 fails its first attempt.
ON_DEMAND = """
import os
from pathlib import Path
import pytest

OFFSETS = [-1, 0, 1] * 3

@pytest.mark.mlexp(repeats=(3, 9))
@pytest.mark.parametrize("noise", [0.0005, 0.005], ids=["calm", "noisy"])
def experiment_cell(seed, noise):
    if os.environ.get("FLAKY") and seed == 4 and noise == 0.005 and not Path("flaked").exists():
        Path("flaked").touch()
        raise RuntimeError("a flaky first attempt")
    return {"accuracy": 0.80 + noise * OFFSETS[seed]}
"""
CALM, NOISY = (
    "experiment_cell.py::experiment_cell[calm]",
    "experiment_cell.py::experiment_cell[noisy]",
)


def session_seeds(read_runs, cell: str) -> tuple[list[int], list[int]]:  # type: ignore[no-untyped-def]
    """The seeds of ``cell`` in the latest session: all of them, and those reused."""
    cells, repeats = cells_and_repeats(read_runs)
    session = cells[-1].data.tags["mlexp.session_id"]
    mine = [
        r
        for r in repeats
        if r.data.tags["mlexp.session_id"] == session and r.data.tags["mlexp.cell"] == cell
    ]
    reused = [r for r in mine if "mlexp.reused_from" in r.data.tags]
    return (
        sorted(int(r.data.params["seed"]) for r in mine),
        sorted(int(r.data.params["seed"]) for r in reused),
    )


def test_an_undecided_cell_runs_more_seeds_until_the_gate_decides(  # type: ignore[no-untyped-def]
    run_gate, ourtester, read_runs, monkeypatch
):
    """``repeats=(3, 9)``: a baseline being recorded runs its whole budget; then the calm
    cell decides at 3 seeds, the noisy one runs 3 more."""
    ourtester.makepyfile(experiment_cell=ON_DEMAND)
    monkeypatch.setenv("FLAKY", "1")
    recorded = run_gate(
        "--mlexp-baseline-file", "b.yaml", "--mlexp-update-baseline", "--reruns", "1"
    )
    monkeypatch.delenv("FLAKY")
    # Both cells record all 9 seeds, however little the calm one's first seeds spread: a
    # baseline that stopped on a lucky small spread would understate the noise (an extra
    # seed failed, then passed on its rerun: it counts once).
    assert recorded.parseoutcomes() == {"passed": 18, "rerun": 1}
    assert "skipped" not in recorded.stdout.str()
    recorded.stdout.fnmatch_lines(["experiment_cell.py *R* [[]100%]"])
    recorded.stdout.fnmatch_lines(
        [
            f"{escaped(NOISY)}: accuracy: spread 0.00433 over 9 seeds; 9 seeds decide changes "
            ">= 0.00*; the tolerance 0.008 needs about * seeds a side",
            "baseline file b.yaml: 2 tests updated",
        ]
    )
    entries = yaml.safe_load((ourtester.path / "b.yaml").read_text())
    assert entries[CALM]["accuracy.n"] == entries[NOISY]["accuracy.n"] == 9
    noisy = next(c for c in cells_and_repeats(read_runs)[0] if c.data.tags["mlexp.cell"] == NOISY)
    assert noisy.data.tags["mlexp.repeats"] == "9"
    assert noisy.data.tags["mlexp.reruns"] == "1"

    # Against it, on two xdist workers, reusing the unchanged seeds' runs.
    result = run_gate(
        "--mlexp-baseline-file", "b.yaml", "-n", "2", "--mlexp-reuse", "--mlexp-html", "r.html"
    )  # fmt: skip
    # 3 calm seeds, 6 noisy ones; the 9 seeds not needed count nowhere, shown nowhere.
    result.assert_outcomes(passed=9)
    assert result.ret == pytest.ExitCode.OK
    assert "skipped" not in result.stdout.str()
    result.stdout.fnmatch_lines(
        [
            f"{escaped(NOISY)}  accuracy *, n 6/9, look 2 of 3 at * (Wang-Tsiatis) * passed",
            f"{escaped(NOISY)}: passed after 6 seeds (3 + 3: inconclusive at 3)",
            "*2 repeated cells by the confidence bound over seeds: 2 passed",
        ]
    )
    # The extra seeds are tracked runs of the same cell, the next seeds; reused as the others.
    assert session_seeds(read_runs, CALM) == ([0, 1, 2], [0, 1, 2])
    assert session_seeds(read_runs, NOISY) == ([0, 1, 2, 3, 4, 5], [0, 1, 2, 3, 4, 5])
    cells, _ = cells_and_repeats(read_runs)
    latest = {c.data.tags["mlexp.cell"]: c for c in cells}  # oldest first: the newest wins
    assert latest[NOISY].data.tags["mlexp.repeats"] == "6"
    # Its members are its first seeds, which always run: registration's "all repeats ran".
    assert latest[NOISY].data.tags["mlexp.members"] == "3"
    assert latest[NOISY].data.tags["mlexp.regression"] == "passed"
    interval = latest[NOISY].data.tags["mlexp.regression.interval"]
    assert "n 6/9, look 2 of 3" in interval
    assert latest[CALM].data.tags["mlexp.repeats"] == "3"
    # The HTML report: the cell's interval, its seeds and the look that decided.
    html = (ourtester.path / "r.html").read_text()
    assert f"<span class='interval' title='gate: bound'>{interval}</span>" in html

    # A reproduction (mlexp reproduce --session passes the seeds that ran, and this tag)
    # runs every seed it is given: none is "decided by its earlier seeds".
    reproduced = run_gate(
        "-k", "noisy and (seed3 or seed4 or seed5)", "--mlexp-tag", "mlexp.reproduces=s"
    )  # fmt: skip
    reproduced.assert_outcomes(passed=3)


def test_the_params_file_sets_a_functions_seed_budget(ourtester: pytest.Pytester) -> None:
    """``seed_budget:`` in a function's section gives its ``repeats=3`` cells a budget: every
    seed of it is collected, the extra ones after all other items; a budget not above the
    first seeds stops the session at collection, naming the file's line."""
    folder = ourtester.path / "experiments"
    folder.mkdir()
    (folder / "experiment_pair.py").write_text(
        "import pytest\n\n"
        "@pytest.mark.mlexp(repeats=3)\n"
        "def experiment_a(seed):\n    return {'accuracy': 0.8}\n\n"
        "@pytest.mark.mlexp(repeats=2)\n"
        "def experiment_b(seed):\n    return {'accuracy': 0.8}\n"
    )
    params = folder / "params.yaml"
    params.write_text("experiment_a:\n  seed_budget: 6\n")
    result = ourtester.runpytest("-p", "no:randomly", "experiments", "--collect-only", "-q")
    a, b = (
        "experiments/experiment_pair.py::experiment_a",
        "experiments/experiment_pair.py::experiment_b",
    )
    assert [line for line in result.outlines if "::" in line] == [
        *(f"{a}[seed{i}]" for i in range(3)),
        *(f"{b}[seed{i}]" for i in range(2)),
        *(f"{a}[seed{i}]" for i in range(3, 6)),
    ]
    params.write_text("experiment_a:\n  seed_budget: 3\n")
    result = ourtester.runpytest("-p", "no:randomly", "experiments", "--collect-only", "-q")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(
        ["experiments/params.yaml:2: experiment_a.seed_budget: 3 must be more than the 3 first "
         "seeds of repeats=3"]
    )  # fmt: skip


#: Seeds on demand and registration: two functions, ``repeats=(2, 4)`` (looks at 2 and 4
#: seeds), a small model a seed. ``decides`` is undecided at 2 seeds and passes at 4, its
#: best seed an extra one (seed 3); ``undecided`` spreads too much to decide within 4.
REGISTERING = """
import pytest
from sklearn.dummy import DummyClassifier

FAST = {"pip_requirements": ["scikit-learn"]}

def fit(mlflow_run, accuracy):
    mlflow_run.log_model(DummyClassifier().fit([[0], [1]], [0, 1]), **FAST)
    return {"accuracy": accuracy}

@pytest.mark.mlexp(repeats=(2, 4), register="decides")
def experiment_decides(mlflow_run, seed):
    return fit(mlflow_run, 0.80 + 0.002 * [-1, 1, 0, 2][seed])

@pytest.mark.mlexp(repeats=(2, 4), register="undecided")
def experiment_undecided(mlflow_run, seed):
    return fit(mlflow_run, 0.80 + 0.02 * [-1, 1, 0, 2][seed])
"""
DECIDES, UNDECIDED = (
    "experiment_reg.py::experiment_decides",
    "experiment_reg.py::experiment_undecided",
)


def test_registration_waits_for_the_sequential_verdict(run_gate, ourtester, read_runs):  # type: ignore[no-untyped-def]
    """Registered once, at the end, from the whole cell (its extra seeds too); a cell left
    inconclusive at its budget registers nothing."""
    from mlflow import MlflowClient

    ourtester.makepyfile(experiment_reg=REGISTERING)
    entry = {"accuracy": 0.80, "accuracy.std": 0.002, "accuracy.n": 10}
    (ourtester.path / "b.yaml").write_text(yaml.safe_dump({DECIDES: entry, UNDECIDED: entry}))
    result = run_gate("--mlexp-baseline-file", "b.yaml")
    result.assert_outcomes(passed=8)
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(
        [
            f"{DECIDES}: passed after 4 seeds (2 + 2: inconclusive at 2)",
            f"{UNDECIDED}: inconclusive after 4 seeds (2 + 2: inconclusive at 2)",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            escaped("mlexp: registered decides v1 @candidate from experiment_decides[seed3]"),
            f"mlexp: nothing registered as undecided for {UNDECIDED}: the gate could not decide "
            f"{UNDECIDED} within its seed budget (inconclusive); raise the budget or the tolerance",
        ],
        consecutive=False,
    )
    client = MlflowClient(f"sqlite:///{ourtester.path / 'mlflow.db'}")
    (version,) = client.search_model_versions("name = 'decides'")
    assert client.get_model_version_by_alias("decides", "candidate").version == version.version == 1
    # From the best seed of the whole cell, an extra one, judged after its second look.
    source = client.get_run(version.run_id)
    assert source.data.params["seed"] == "3"
    assert source.data.tags["mlexp.cell"] == DECIDES
    cell = client.get_run(source.data.tags["mlflow.parentRunId"])
    assert cell.data.tags["mlexp.repeats"] == "4"
    assert "look 2 of 2" in cell.data.tags["mlexp.regression.interval"]
    assert version.tags["mlexp.regression"] == "passed"
    assert source.data.tags["mlexp.registered_version"] == str(version.version)
    assert client.search_model_versions("name = 'undecided'") == []
    cells, _ = cells_and_repeats(read_runs)
    undecided = next(c for c in cells if c.data.tags["mlexp.cell"] == UNDECIDED)
    assert (undecided.data.tags["mlexp.regression"], undecided.data.tags["mlexp.repeats"]) == (
        "inconclusive",
        "4",
    )
    assert "mlexp.registered_model" not in undecided.data.tags
