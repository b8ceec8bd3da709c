"""The gate on repeated cells by a confidence bound: noise passes, regressions fail, few seeds tell.

Each cell's metric is drawn per seed from a normal distribution (a seeded
generator, so every draw is reproducible); the draw changes from session to
session with ``DRAW``, as the noise of a real experiment does.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
import yaml
from test_shards import CONFTEST, run_two_shards

from pytest_mlexp.gate.bounds import INCONCLUSIVE, REGRESSED, Sample, judge, seeds_needed

PREMADE_STORE = True
EXPERIMENT = "confidence"

#: Cells ``experiment_noisy[draw1]``, ``[draw2]`` and ``[old]`` (nothing changes but the
#: noise), ``[worse]`` (drops by 0.03 when ``REGRESS`` is set), 3 seeds each, noise 0.001
#: (0.125% of the metric); and ``experiment_few``: 2 seeds of noise 0.05.
CELLS = """
import os, random
import pytest

DRAW = os.environ.get("DRAW", "0")

def noise(*key, sigma):
    return random.Random("-".join(map(str, (DRAW, *key)))).gauss(0, sigma)

@pytest.mark.mlexp(repeats=3)
@pytest.mark.parametrize("cell", ["draw1", "draw2", "old", "worse"])
def experiment_noisy(seed, cell):
    drop = 0.03 if cell == "worse" and os.environ.get("REGRESS") else 0.0
    return {"accuracy": 0.80 - drop + noise(cell, seed, sigma=0.001)}

@pytest.mark.mlexp(repeats=2)
def experiment_few(seed):
    return {"accuracy": 0.80 + noise("few", seed, sigma=0.05)}
"""
NOISY = "experiment_cells.py::experiment_noisy"
FEW = "experiment_cells.py::experiment_few"


def test_the_bound_is_welchs() -> None:
    """The interval is the one of scipy's Welch test, one-sided on each side."""
    from scipy import stats

    now, before = [0.79, 0.80, 0.77, 0.81], [0.80, 0.83, 0.82]
    current = Sample(sum(now) / 4, stats.tstd(now), 4)
    baseline = Sample(sum(before) / 3, stats.tstd(before), 3)
    interval = judge(current, baseline, 0.005, up=True, confidence=0.95)
    welch = stats.ttest_ind(now, before, equal_var=False, alternative="less")
    high = welch.confidence_interval(0.95).high
    assert interval.high == pytest.approx(high)
    low = stats.ttest_ind(now, before, equal_var=False, alternative="greater")
    assert interval.low == pytest.approx(low.confidence_interval(0.95).low)
    assert interval.verdict == INCONCLUSIVE
    # Were the means and spreads what they are, that many seeds a side would decide.
    needed = seeds_needed(interval.difference, current.std, baseline.std, 0.005, 0.95)
    assert interval.needed == needed
    assert needed is not None
    assert 4 < needed < 100
    assert "seeds a side to decide" in str(interval)
    # Lower is better: the same values judge the other way.
    assert judge(baseline, current, 0.0, up=False).low == pytest.approx(interval.low)
    # Shown as the tables show a change, current - baseline, whatever the direction.
    down = judge(current, baseline, 0.005, up=False)
    assert down.change == pytest.approx((interval.low, interval.high))
    assert str(down).startswith(str(interval).split("]")[0])
    assert judge(Sample(0.7, 0.01, 5), Sample(0.8, 0.01, 5), 0.01, up=True).verdict == REGRESSED


def test_the_sequential_rule_keeps_its_level_over_every_look_and_metric() -> None:
    """Seeds on demand: a level a look, strict first (Wang-Tsiatis), Holm over the metrics."""
    from pytest_mlexp.gate.rules import Rules, compare_cell
    from pytest_mlexp.gate.sequential import Design, holm, look_levels

    design = Design(5, 20)
    assert design.looks == (5, 10, 15, 20)
    assert [design.batch_of(i) for i in (0, 4, 5, 9, 10, 19)] == [0, 0, 1, 1, 2, 3]
    assert look_levels(0.05, (5,), 5) == (0.05,)
    against_5 = look_levels(0.05, design.looks, 5)
    against_20 = look_levels(0.05, design.looks, 20)
    # Strict at the first look, laxer at each later one, the last below 0.05 (the looks
    # together keep 90% of it); more than Bonferroni's 0.0125 at the last looks, where
    # the seeds can use it.
    for levels in (against_5, against_20):
        assert 0.002 < levels[0] < levels[1] < levels[2] < levels[3] < 0.045
        assert levels[3] > 0.0125
    # A bigger baseline shares less noise between the looks, so each look gets less.
    assert all(big < small for big, small in zip(against_20, against_5, strict=True))
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    rules = Rules(directions={"accuracy": "up", "f1": "up"}, first_seeds=5, seed_budget=20)
    now = {"accuracy": 0.8, "accuracy.std": 0.002, "accuracy.n": 10, "f1": 0.7, "f1.std": 0.01}
    before = {**now, "accuracy.n": 5, "f1": 0.75, "f1.n": 5}
    rows = compare_cell({**now, "f1.n": 10}, before, rules)
    assert [row.verdict for row in rows] == ["passed", "REGRESSED"]
    assert rows[0].interval_text.endswith(
        f"n 10/5, look 2 of 4 at {against_5[1]:.4g} (Wang-Tsiatis), Holm over 2 metrics"
    )
    # Without a budget, today's single look at 95%.
    fixed = compare_cell({**now, "f1.n": 10}, before, Rules(directions=rules.directions))
    assert fixed[0].interval_text.endswith("95%, n 10/5")


def test_a_look_judges_the_metrics_the_session_end_judges() -> None:
    """A look mid-session reads the cell's rules as the session's end does: a training curve
    (logged at several steps, not returned; ``mlexp.histories``) and the cell's mean against
    ``expect=`` are not judged, so they cannot stop or prolong the cell."""
    from mlflow.entities import Run, RunData, RunInfo, RunTag

    from pytest_mlexp.gate.rules import Bound, Rules, compare_cell
    from pytest_mlexp.gate.sequential_runs import look_rules

    def seed_run(end: int, histories: str) -> Run:
        info = RunInfo(
            run_id=f"r{end}", experiment_id="0", user_id="", status="FINISHED",
            start_time=0, end_time=end, lifecycle_stage="active",
        )  # fmt: skip
        return Run(info, RunData(tags=[RunTag("mlexp.histories", histories)]))

    item = Rules(
        directions={"accuracy": "up"},
        bounds={"accuracy": (Bound(">=", 0.9),)},
        first_seeds=5,
        seed_budget=20,
    )
    # The loss curve is noisy: judged, it would leave the cell undecided.
    now = {"accuracy": 0.8, "accuracy.std": 0.0001, "accuracy.n": 5}
    now |= {"loss": 0.3, "loss.std": 0.2, "loss.n": 5}
    before = {**now, "loss": 0.31}
    rules = look_rules(item, [seed_run(2, "loss"), seed_run(1, "loss")])
    assert not rules.judges("loss")
    assert not rules.bounds
    rows = compare_cell(now, before, rules)
    assert [(row.metric, row.verdict) for row in rows] == [("accuracy", "passed")]
    # The item's own rules would judge both, and fail the cell's mean against expect=.
    assert {row.metric for row in compare_cell(now, before, item)} == {"accuracy", "loss"}


@pytest.fixture
def session(ourtester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    ourtester.makepyfile(experiment_cells=CELLS)

    def run(*args: str, draw: int = 0, regress: bool = False) -> pytest.RunResult:
        monkeypatch.setenv("DRAW", str(draw))
        if regress:
            monkeypatch.setenv("REGRESS", "1")
        else:
            monkeypatch.delenv("REGRESS", raising=False)
        return ourtester.runpytest(
            "--mlexp-experiment",
            EXPERIMENT,
            "-p",
            "no:randomly",
            "--mlexp-lineage=none",
            "--mlexp-artifacts=off",
            *args,
        )

    return run


def cell_runs(read_runs):  # type: ignore[no-untyped-def]
    """The newest cell run of each cell's test id."""
    runs = read_runs(EXPERIMENT, groups=True)
    cells = [r for r in runs if r.data.tags.get("mlexp.kind") == "cell"]
    newest = {}
    for run in sorted(cells, key=lambda r: r.info.start_time):
        newest[run.data.tags["mlexp.cell"]] = run
    return newest


def test_noise_passes_a_regression_fails_few_seeds_are_inconclusive(session, ourtester, read_runs):  # type: ignore[no-untyped-def]
    recorded = session("--mlexp-baseline-file", "b.yaml", "--mlexp-update-baseline")
    assert recorded.ret == pytest.ExitCode.OK
    recorded.stdout.fnmatch_lines(
        [
            "5 repeated cells recorded into the baseline file b.yaml (means, spreads and seeds): "
            "5 passed",
            "baseline file b.yaml: 5 tests updated",
        ]
    )
    entries = yaml.safe_load((ourtester.path / "b.yaml").read_text())
    assert entries[f"{NOISY}[draw1]"]["accuracy.n"] == 3
    assert entries[FEW]["accuracy.n"] == 2
    # A baseline file written before seeds were recorded: no n, the means alone judge it.
    del entries[f"{NOISY}[old]"]["accuracy.n"]
    (ourtester.path / "b.yaml").write_text(yaml.safe_dump(entries))

    # Other noise, nothing else changed, and one real regression; on two xdist workers,
    # the controller judges each cell over the seeds of both.
    result = session(
        "--mlexp-baseline-file", "b.yaml", "--mlexp-report-md", "report.md", "-n", "2",
        "--junitxml", "xdist.xml", draw=1, regress=True,
    )  # fmt: skip
    result.assert_outcomes(passed=13, failed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    # The regressed cell fails as its last seed, in JUnit XML too (reports from the workers).
    suite = ET.parse(ourtester.path / "xdist.xml").find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures")) == ("14", "1")
    (failed,) = [case for case in suite.iter("testcase") if case.find("failure") is not None]
    assert failed.get("name") == "experiment_noisy[worse-seed2]"
    assert str(failed.find("failure").get("message")).startswith(  # type: ignore[union-attr]
        f"repeated cell {NOISY}[worse] (mean of 3 repeats"
    )
    result.stdout.fnmatch_lines(
        [
            f"REGRESSED  {NOISY}[[]worse]: accuracy regressed: *, interval [[]*] 95%, n 3/3",
            f"INCONCLUSIVE {FEW}: accuracy inconclusive: *, n 2/2, ~* seeds a side to decide",
            "repeated cells against their baseline:",
            # Better beyond the noise (the lower bound above 0): improved, a pass.
            f"{NOISY}[[]draw1]  accuracy  * +0.001661 * [[]+0.000925*] 95%, n 3/3 * improved",
            f"{NOISY}[[]draw2]  accuracy  * [[]-0.001858, +0.00031*] 95%, n 3/3 * passed",
            f"{NOISY}[[]old]  * mean rule, n 3/? (baseline without seeds) *passed",
            "1 inconclusive repeated cell: * it does not fail the session "
            "(--mlexp-gate-strict would); run more seeds to decide",
            "repeated cells judged by their means, not a confidence bound (baseline without "
            "seeds): their baseline has no seed counts and spreads*",
            "*5 repeated cells by the confidence bound over seeds or by the mean: "
            "1 regressed, 1 inconclusive, 1 improved, 2 passed",
        ]
    )
    cells = cell_runs(read_runs)
    worse, few = cells[f"{NOISY}[worse]"], cells[FEW]
    assert worse.data.tags["mlexp.regression"] == "regressed"
    assert worse.data.tags["mlexp.gate.rule"] == "bound"
    assert worse.data.tags["mlexp.regression.interval"].startswith("accuracy [")
    assert worse.info.status == "FAILED"
    assert cells[f"{NOISY}[draw1]"].data.tags["mlexp.regression"] == "improved"
    assert cells[f"{NOISY}[draw2]"].data.tags["mlexp.regression"] == "passed"
    assert cells[f"{NOISY}[draw2]"].data.tags["mlexp.regression.interval"] == (
        "accuracy [-0.001858, +0.0003101] 95%, n 3/3"
    )
    assert cells[f"{NOISY}[old]"].data.tags["mlexp.gate.rule"] == "mean"
    assert few.data.tags["mlexp.regression"] == "inconclusive"
    # Not a failure, unless strict.
    assert few.info.status == "FINISHED"
    assert few.data.tags["mlexp.outcome"] == "passed"
    report = (ourtester.path / "report.md").read_text()
    rows = [line for line in report.splitlines() if line.startswith("| `")]
    assert "REGRESSED" in rows[0]
    assert "INCONCLUSIVE" in rows[1]
    assert "seeds a side to decide" in rows[1]

    # Other noise again, strict: the noisy cells pass, the inconclusive cell fails the session.
    strict = session(
        "--mlexp-baseline-file", "b.yaml", "-k", "draw or few", "--mlexp-gate-strict",
        "--mlexp-html", "report.html", "--junitxml", "junit.xml", draw=3,
    )  # fmt: skip
    strict.assert_outcomes(passed=7, failed=1)
    assert strict.ret == pytest.ExitCode.TESTS_FAILED
    strict.stdout.fnmatch_lines(
        [
            f"mlexp: repeated cell {FEW} is inconclusive (--mlexp-gate-strict): *",
            "*3 repeated cells by the confidence bound over seeds*: 1 inconclusive, *",
        ]
    )
    cells = cell_runs(read_runs)
    assert cells[f"{NOISY}[draw2]"].data.tags["mlexp.regression"] == "passed"
    assert cells[FEW].info.status == "FAILED"
    assert cells[FEW].data.tags["mlexp.outcome"] == "failed"
    # The HTML report's verdict column shows the interval too.
    html = (ourtester.path / "report.html").read_text()
    interval = cells[FEW].data.tags["mlexp.regression.interval"]
    assert interval.endswith("n 2/2, ~44 seeds a side to decide")
    assert f"<span class='interval' title='gate: bound'>{interval}</span>" in html
    # JUnit XML: the cell is no test case; its verdict is a property of the suite.
    suite = ET.parse(ourtester.path / "junit.xml").find("testsuite")
    assert suite is not None
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert props[f"mlexp.cell {FEW}"] == f"inconclusive: {interval}"
    # Strict, the inconclusive cell fails as its last seed: a failed test case with its message.
    assert suite.get("failures") == "1"
    (failed,) = [case for case in suite.iter("testcase") if case.find("failure") is not None]
    assert str(failed.get("name")).startswith("experiment_few[")
    message = failed.find("failure").get("message")  # type: ignore[union-attr]
    assert message.startswith(f"repeated cell {FEW} (mean of 2 repeats, cell run ")
    assert "inconclusive" in message.splitlines()[0]


SHARDED = """
import os
import pytest

SHARD = os.environ["SHARD"]

@pytest.mark.mlexp(seeds=[0, 1, 2] if SHARD == "A" else [3, 4, 5])
def experiment_sharded(mlflow_run, seed):
    mlflow_run.log_metric("accuracy", 0.70 + 0.002 * seed)
"""
SHARDED_CELL = "experiment_sharded.py::experiment_sharded"


def test_ci_shards_judge_the_cell_over_every_shards_seeds(ourtester, read_runs, tmp_path):  # type: ignore[no-untyped-def]
    ourtester.makepyfile(experiment_sharded=SHARDED)
    ourtester.makeconftest(CONFTEST)
    ourtester.makeini(
        "[pytest]\nmlexp_baseline_file = b.yaml\nmlexp_confidence = 90%\nmlexp_artifacts = off\n"
    )
    # The six seeds' mean and std, as a baseline of 6 seeds.
    entry = {"accuracy": 0.705, "accuracy.std": 0.0037417, "accuracy.n": 6}
    (ourtester.path / "b.yaml").write_text(yaml.safe_dump({SHARDED_CELL: entry}))
    run_two_shards(ourtester.path, tmp_path, "ci-build-22")
    runs = read_runs(ourtester.path.name, groups=True)
    (cell,) = [r for r in runs if r.data.tags.get("mlexp.kind") == "cell"]
    assert cell.data.tags["mlexp.repeats"] == "6"
    assert cell.data.tags["mlexp.regression"] == "passed"
    # Judged once every shard's seeds were in: n 6 now, against 6 in the file; at the
    # confidence of the ini file.
    assert cell.data.tags["mlexp.regression.interval"].endswith("90%, n 6/6")


def test_bad_gate_settings_stop_the_session(ourtester):  # type: ignore[no-untyped-def]
    ourtester.makepyfile(
        experiment_one="""
        import pytest

        @pytest.mark.mlexp(repeats=2, confidence=2)
        def experiment_one(seed):
            return {"accuracy": 0.9}
        """
    )
    result = ourtester.runpytest("--mlexp-gate", "median")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["ERROR: --mlexp-gate: unknown gate 'median'; accepted: bound (a one-sided confidence "
         "bound over the seeds) or mean (the means alone)"]
    )  # fmt: skip
    result = ourtester.runpytest("--mlexp-confidence", "1.5")
    result.stderr.fnmatch_lines(
        ["ERROR: --mlexp-confidence: bad confidence '1.5'; accepted: a level from 0.5 to below "
         "1, such as 0.95 or '95%'"]
    )  # fmt: skip
    result = ourtester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["ERROR: @pytest.mark.mlexp on experiment_one.py::experiment_one[[]seed*]: confidence: "
         "bad confidence 2; accepted: *"]
    )  # fmt: skip
    result = ourtester.runpytest("--mlexp-seed-budget", "1")
    result.stderr.fnmatch_lines(
        ["ERROR: --mlexp-seed-budget: bad seed budget '1'; accepted: a number of seeds of 2 or "
         "more, such as 20"]
    )  # fmt: skip
