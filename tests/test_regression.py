"""The regression gate end to end: bounds, baselines from the store and from a file, reports."""

from __future__ import annotations

import shlex
import shutil
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from pytest_mlexp import cli
from pytest_mlexp.directions import guess_direction
from pytest_mlexp.gate.rules import (
    Bound,
    RuleError,
    Rules,
    Tolerance,
    compare,
    judged,
    parse_bounds,
    parse_tolerance,
    recorded,
)

EXPERIMENT = "gate"
NODE = "experiment_model.py::experiment_model"
#: Lineage and outputs are not what the gate is about: sessions without them cost less.
LIGHT = ("--mlexp-lineage", "none", "--mlexp-artifacts", "off")


@pytest.fixture
def run_gate(empty_store: Path, ourtester: pytest.Pytester):  # type: ignore[no-untyped-def]
    if not (ourtester.path / "mlflow.db").exists():
        shutil.copy(empty_store, ourtester.path / "mlflow.db")

    def run(*args: str) -> pytest.RunResult:
        return ourtester.runpytest(
            "--mlexp-experiment", EXPERIMENT, "-p", "no:randomly", *LIGHT, *args
        )  # fmt: skip

    return run


def escaped(pattern: str) -> str:
    """``pattern`` for ``fnmatch_lines``, with brackets taken literally."""
    return pattern.replace("[", "[[]")


@pytest.fixture
def model(ourtester: pytest.Pytester):  # type: ignore[no-untyped-def]
    """``model(a=..., b=...)`` writes a two-cell experiment whose accuracy is given per cell.

    ``rmse`` goes through ``mlflow.log_metric`` (the fluent API), ``accuracy``
    through the returned dict.
    """

    def write(marker: str = "", extra: str = "", **accuracy: float) -> None:
        ourtester.makepyfile(
            experiment_model=f"""
            import mlflow
            import pytest

            ACCURACY = {accuracy!r}

            {marker}
            @pytest.mark.parametrize("cell", sorted(ACCURACY))
            def experiment_model(mlflow_run, cell):
                mlflow.log_metric("rmse", 1 - ACCURACY[cell])
                {extra}
                return {{"accuracy": ACCURACY[cell]}}
            """
        )

    return write


def by_node(runs):  # type: ignore[no-untyped-def]
    return {r.data.tags["mlexp.nodeid"]: r for r in runs}


def session_runs(read_runs, result):  # type: ignore[no-untyped-def]
    """The runs of the session that printed ``result``, by test id."""
    line = next(x for x in result.outlines if x.startswith("mlexp: tracking"))
    session = line.rsplit("session ", 1)[1].strip()
    return by_node(r for r in read_runs(EXPERIMENT) if r.data.tags["mlexp.session_id"] == session)


def test_worse_model_fails_the_right_item_with_a_table(model, run_gate, read_runs):
    model(a=0.90, b=0.80)
    first = run_gate("--mlexp-baseline", "latest")
    first.assert_outcomes(passed=2)
    first.stdout.fnmatch_lines(
        [
            "*mlexp: metric gate against --mlexp-baseline latest*",
            f"no baseline for 2 tests (passed unchecked): {NODE}[[]a[]], {NODE}[[]b[]]",
            "0 of 2 items have a baseline (--mlexp-baseline latest): 2 no-baseline",
        ]
    )
    baseline = session_runs(read_runs, first)

    model(a=0.81, b=0.80)
    second = run_gate("--mlexp-baseline", "latest")
    second.assert_outcomes(passed=1, failed=1)
    base_a = baseline[f"{NODE}[a]"].info.run_id
    second.stdout.fnmatch_lines(
        [
            "*_ experiment_model[[]a[]] _*",
            f"mlexp: 2 metrics out of bounds against baseline run {base_a} (latest)",
            "",
            "metric    baseline  current  change           allowed            verdict",
            "accuracy  0.9       0.81     -0.09 (-10.00%)  >= 0.891 (tol 1%)  REGRESSED",
            "rmse      0.1       0.19     +0.09 (+90.00%)  <= 0.101 (tol 1%)  REGRESSED",
            "",
            "accuracy regressed: 0.9 -> 0.81, change -0.09 (-10.00%), allowed >= 0.891 (tol 1%);*",
            "*mlexp: metric gate against --mlexp-baseline latest*",
            f"REGRESSED  {NODE}[[]a[]]: accuracy regressed: 0.9 -> 0.81*",
            f"REGRESSED  {NODE}[[]a[]]: rmse regressed: 0.1 -> 0.19*",
            "2 of 2 items have a baseline (--mlexp-baseline latest): 1 regressed, 1 passed",
        ]
    )
    assert f"{NODE}[b]" not in second.stdout.str().split("short test summary")[1]
    runs = session_runs(read_runs, second)
    failed, passed = runs[f"{NODE}[a]"], runs[f"{NODE}[b]"]
    assert failed.info.status == "FAILED"
    assert failed.data.tags["mlexp.regression"] == "regressed"
    assert failed.data.tags["mlexp.baseline.run_id"] == base_a
    assert failed.data.tags["mlexp.error"].startswith("accuracy regressed: 0.9 -> 0.81, change")
    assert "\n" not in failed.data.tags["mlexp.error"]
    assert passed.info.status == "FINISHED"
    assert passed.data.tags["mlexp.regression"] == "passed"
    assert passed.data.tags["mlexp.baseline.run_id"] == baseline[f"{NODE}[b]"].info.run_id

    # The failed run is not a baseline: the next session still compares with the first.
    third = run_gate("--mlexp-baseline", "latest")
    third.assert_outcomes(passed=1, failed=1)
    third.stdout.fnmatch_lines([f"*against baseline run {base_a} (latest)"])


def test_improvement_passes_and_is_listed(model, run_gate, read_runs):
    model(a=0.80)
    run_gate().assert_outcomes(passed=1)
    model(a=0.90)
    result = run_gate("--mlexp-baseline", "latest")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            f"improved   {NODE}[[]a[]]: accuracy improved: 0.8 -> 0.9, change +0.1 (+12.50%)*",
            f"improved   {NODE}[[]a[]]: rmse improved: 0.2 -> 0.1, change -0.1 (-50.00%)*",
            "1 of 1 items have a baseline (--mlexp-baseline latest): 1 improved",
        ]
    )
    run = session_runs(read_runs, result)[f"{NODE}[a]"]
    assert run.data.tags["mlexp.regression"] == "improved"


def test_branch_and_tag_baselines_pick_the_matching_run(model, run_gate, read_runs):
    model(a=0.90)
    # branch:NAME takes runs from a clean tree (lineage's git tags; set here by hand).
    clean = ("--mlexp-tag", "mlexp.git.dirty=false")
    main = run_gate(
        "--mlexp-tag", "mlflow.source.git.branch=main", *clean, "--mlexp-tag", "gold=yes"
    )
    main.assert_outcomes(passed=1)
    main_run = session_runs(read_runs, main)[f"{NODE}[a]"].info.run_id
    model(a=0.50)
    run_gate("--mlexp-tag", "mlflow.source.git.branch=feature").assert_outcomes(passed=1)

    model(a=0.60)
    # Against the latest run (feature, 0.5) this would be an improvement; against main
    # (0.9) it is a regression; the same with the tag.
    for spec in ("branch:main", "tag:gold=yes"):
        result = run_gate("--mlexp-baseline", spec)
        result.assert_outcomes(failed=1)
        result.stdout.fnmatch_lines([f"*against baseline run {main_run} ({spec})"])


def test_promoted_baseline_by_flag_and_by_command(
    model, run_gate, read_runs, ourtester, capsys, store_uri
):
    model(a=0.90)
    promoted = run_gate("--mlexp-promote-baseline")
    promoted.assert_outcomes(passed=1)
    first = session_runs(read_runs, promoted)[f"{NODE}[a]"]
    assert first.data.tags["mlexp.baseline"] == "true"
    model(a=0.70)
    later = run_gate()
    later.assert_outcomes(passed=1)
    second = session_runs(read_runs, later)[f"{NODE}[a]"]
    assert "mlexp.baseline" not in second.data.tags

    model(a=0.71)
    result = run_gate("--mlexp-baseline", "promoted")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([f"*against baseline run {first.info.run_id} (promoted)"])

    session = second.data.tags["mlexp.session_id"]
    uri = store_uri(ourtester.path)
    capsys.readouterr()
    code = cli.main(["promote", "--session", session, "--tracking-uri", uri])
    assert (code, capsys.readouterr().out) == (
        0,
        f"promoted 1 runs of session {session} to baseline\n",
    )
    assert cli.main(["promote", "--session", "nope", "--tracking-uri", uri]) == 1
    assert "no passed run of session nope" in capsys.readouterr().out

    result = run_gate("--mlexp-baseline", "promoted")
    result.assert_outcomes(passed=1)
    run = session_runs(read_runs, result)[f"{NODE}[a]"]
    assert run.data.tags["mlexp.baseline.run_id"] == second.info.run_id


def test_explicit_run_is_the_baseline_of_any_test(model, run_gate, read_runs):
    model(a=0.90)
    reference = session_runs(read_runs, run_gate())[f"{NODE}[a]"].info.run_id
    model(b=0.85)  # another test id: compared with the one run given
    result = run_gate("--mlexp-baseline", f"run:{reference}")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([f"*against baseline run {reference} (run)"])
    bad = run_gate("--mlexp-baseline", "run:0123456789abcdef")
    bad.assert_outcomes(failed=1)
    bad.stdout.fnmatch_lines(["mlexp: baseline run '0123456789abcdef' cannot be read:*"])


def test_baseline_file_is_written_sorted_and_compared(model, run_gate, ourtester, read_runs):
    model(b=0.80, a=0.90)
    update = run_gate("--mlexp-baseline-file", "baseline.yaml", "--mlexp-update-baseline")
    update.assert_outcomes(passed=2)
    # It says what the session did: a baseline file was given, and written.
    update.stdout.fnmatch_lines(
        [
            "2 of 2 items recorded into the baseline file baseline.yaml: 2 passed",
            "baseline file baseline.yaml: 2 tests updated",
        ]
    )
    path = ourtester.path / "baseline.yaml"
    text = path.read_text()
    assert text.startswith("# Baseline metrics for pytest-mlexp")
    assert yaml.safe_load(text) == {
        f"{NODE}[a]": {"accuracy": 0.9, "rmse": pytest.approx(0.1)},
        f"{NODE}[b]": {"accuracy": 0.8, "rmse": pytest.approx(0.2)},
    }
    assert text.index("[a]") < text.index("[b]")
    assert text.index("accuracy") < text.index("rmse")
    # Rewriting the same results gives the same bytes: diffs show only real changes.
    run_gate("--mlexp-baseline-file", "baseline.yaml", "--mlexp-update-baseline")
    assert path.read_text() == text

    model(a=0.90, b=0.70)
    result = run_gate("--mlexp-baseline-file", "baseline.yaml")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        ["mlexp: 2 metrics out of bounds against baseline baseline.yaml", "*REGRESSED*"]
    )
    run = session_runs(read_runs, result)[f"{NODE}[b]"]
    assert run.data.tags["mlexp.baseline.source"] == "baseline.yaml"
    assert "mlexp.baseline.run_id" not in run.data.tags

    # Refreshing with -k keeps the other tests' entries; failed tests keep their old values.
    model(a=0.95, b=0.70, marker="@pytest.mark.mlexp(expect={'accuracy': '> 0.75'})")
    run_gate("--mlexp-baseline-file", "baseline.yaml", "--mlexp-update-baseline", "-k", "a")
    entries = yaml.safe_load(path.read_text())
    assert entries[f"{NODE}[a]"]["accuracy"] == 0.95
    assert entries[f"{NODE}[b]"]["accuracy"] == 0.8


def test_missing_baseline_passes_with_a_note_unless_required(model, run_gate, ourtester):
    (ourtester.path / "baseline.yaml").write_text(f"{NODE}[a]:\n  accuracy: 0.9\n  rmse: 0.1\n")
    model(a=0.90, b=0.5)
    result = run_gate("--mlexp-baseline-file", "baseline.yaml")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines([f"no baseline for 1 test (passed unchecked): {NODE}[[]b[]]"])
    required = run_gate("--mlexp-baseline-file", "baseline.yaml", "--mlexp-require-baseline")
    required.assert_outcomes(passed=1, failed=1)
    required.stdout.fnmatch_lines(
        [
            f"mlexp: no baseline for {NODE}[[]b[]] in baseline.yaml (--mlexp-require-baseline)."
            f" Record one first: {sys.executable} -m pytest --mlexp-baseline-file "
            "*/baseline.yaml --mlexp-update-baseline"
        ]
    )


def test_metric_in_baseline_but_not_logged_fails(model, run_gate, ourtester):
    (ourtester.path / "baseline.yaml").write_text(
        f"{NODE}[a]:\n  accuracy: 0.9\n  rmse: 0.1\n  f1: 0.8\n  accuracy.std: 0.01\n"
    )
    model(a=0.90)
    result = run_gate("--mlexp-baseline-file", "baseline.yaml")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "mlexp: 1 metric out of bounds against baseline baseline.yaml",
            "*",
            "metric*",
            "accuracy  0.9 *passed",
            "f1        0.8       -        -   * logged             MISSING",
            "rmse      0.1 *passed",
            "",
            "f1 not logged (baseline 0.8)",
        ]
    )


def test_bounds_fail_without_any_baseline(model, run_gate, read_runs):
    model(
        a=0.9, b=0.6, marker="@pytest.mark.mlexp(expect={'accuracy': '>= 0.7', 'rmse': '< 0.35'})"
    )
    result = run_gate()
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "mlexp: 2 metrics out of bounds",
            "",
            "metric    baseline  current  change  allowed        verdict",
            "accuracy  -         0.6      -       expect >= 0.7  FAILED",
            "rmse      -         0.4      -       expect < 0.35  FAILED",
            "",
            "accuracy = 0.6, expect >= 0.7; rmse = 0.4, expect < 0.35",
        ]
    )
    runs = session_runs(read_runs, result)
    assert runs[f"{NODE}[b]"].data.tags["mlexp.regression"] == "regressed"
    assert runs[f"{NODE}[a]"].data.tags["mlexp.regression"] == "passed"


@pytest.mark.parametrize(
    ("marker", "message"),
    [
        (
            "expect={'accuracy': '=> 0.9'}",
            "expect['accuracy']: bad expression '=> 0.9'; accepted forms: '>= 0.9', '> 0.9', "
            "'<= 0.5', '< 0.5', or several joined by 'and' ('>= 0.2 and < 1')",
        ),
        (
            "expect={'accuracy': 0.9}",
            "expect['accuracy']: expected a string such as '>= 0.9', got 0.9; accepted forms: *",
        ),
        ("expect=['accuracy >= 0.9']", "expect must be a dict of metric -> expression such as*"),
        (
            "tolerance={'rmse': '2 pct'}",
            "tolerance['rmse']: bad tolerance '2 pct'; accepted forms: 0.01 (absolute), '2%' *",
        ),
        ("tolerance=-0.1", "tolerance: bad tolerance -0.1 (must be finite and not negative)*"),
        (
            "direction={'speed': 'fast'}",
            "direction['speed']: bad direction 'fast'; accepted: 'up'*",
        ),
        ("judge=[1]", "judge: expected metric names, comma-separated or a list, such as *"),
    ],
)
def test_bad_marker_values_stop_the_session(ourtester, marker, message):
    ourtester.makepyfile(
        experiment_bad=f"""
        import pytest

        @pytest.mark.mlexp({marker})
        def experiment_bad():
            return {{"accuracy": 1.0}}
        """
    )
    # Collection alone must catch it (in process: mlflow is not needed for that).
    result = ourtester.runpytest_inprocess("--collect-only")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [escaped(f"ERROR: @pytest.mark.mlexp on experiment_bad.py::experiment_bad: {message}")]
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--mlexp-baseline", "newest"],
            "ERROR: --mlexp-baseline: unknown baseline 'newest'; accepted: latest (*",
        ),
        (
            ["--mlexp-update-baseline"],
            "ERROR: --mlexp-update-baseline: no baseline file to write; give one with*",
        ),
        (
            ["--mlexp-baseline", "latest", "--mlexp-baseline-file", "b.yaml"],
            "ERROR: --mlexp-baseline and --mlexp-baseline-file are two baseline sources*",
        ),
        (
            ["--mlexp-tolerance", "1 percent"],
            "ERROR: --mlexp-tolerance: bad tolerance '1 percent'*",
        ),
        (["--mlexp-judge", ","], "ERROR: --mlexp-judge: names no metric; e.g. accuracy, val_loss"),
    ],
)
def test_bad_options_stop_the_session(ourtester, args, message):
    ourtester.makepyfile(experiment_x="def experiment_x(): pass")
    result = ourtester.runpytest_inprocess("--collect-only", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


def test_project_settings_and_bad_baseline_file(ourtester, model, run_gate):
    ourtester.makeini(
        """
        [pytest]
        mlexp_baseline_file = baseline.yaml
        mlexp_tolerances =
            accuracy = 0.2
        mlexp_directions =
            rmse = ignore
        """
    )
    (ourtester.path / "baseline.yaml").write_text(f"{NODE}[a]:\n  accuracy: 0.9\n  rmse: 0.0\n")
    model(a=0.75)
    result = run_gate()
    result.assert_outcomes(passed=1)
    # The marker's tolerance overrides the ini's.
    model(a=0.75, marker="@pytest.mark.mlexp(tolerance={'accuracy': '10%'})")
    result = run_gate()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["accuracy  0.9       0.75     -0.15 (-16.67%)  >= 0.81 (tol 10%)*"]
    )

    (ourtester.path / "baseline.yaml").write_text(f"{NODE}[a]:\n  accuracy: high\n")
    result = run_gate()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            f"ERROR: --mlexp-baseline-file: */baseline.yaml: {NODE}[[]a[]]: "
            "metric 'accuracy' is not a number: 'high'"
        ]
    )


def test_tolerance_scales_with_the_std_of_repeats(ourtester, run_gate):
    (ourtester.path / "baseline.yaml").write_text(
        "experiment_noisy.py::experiment_noisy:\n  accuracy: 0.9\n  accuracy.std: 0.02\n"
    )

    def noisy(std: float) -> None:
        ourtester.makepyfile(
            experiment_noisy=f"""
            import pytest

            @pytest.mark.mlexp(tolerance={{"accuracy": {{"abs": 0.01, "std": 2}}}})
            def experiment_noisy(mlflow_run):
                mlflow_run.set_tag("mlexp.repeats", "5")
                return {{"accuracy": 0.87, "accuracy.std": {std}}}
            """
        )

    noisy(0.02)  # allowed: 2 x 0.02 = 0.04
    run_gate("--mlexp-baseline-file", "baseline.yaml").assert_outcomes(passed=1)
    (ourtester.path / "baseline.yaml").write_text(
        "experiment_noisy.py::experiment_noisy:\n  accuracy: 0.9\n  accuracy.std: 0.005\n"
    )
    noisy(0.004)  # allowed: max(0.01, 2 x 0.005)
    result = run_gate("--mlexp-baseline-file", "baseline.yaml")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["accuracy  0.9 *>= 0.89 (tol 0.01 or 2 std)  REGRESSED"])


def test_markdown_junit_and_step_summary(model, run_gate, ourtester, monkeypatch):
    summary = ourtester.path / "step-summary.md"
    summary.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    (ourtester.path / "baseline.yaml").write_text(
        f"{NODE}[a]:\n  accuracy: 0.9\n  rmse: 0.1\n{NODE}[b]:\n  accuracy: 0.8\n  rmse: 0.2\n"
    )
    model(a=0.8, b=0.8)
    result = run_gate(
        "--mlexp-baseline-file", "baseline.yaml",
        "--junitxml", "junit.xml",
        "--mlexp-report-md", "reports/metrics.md",
    )  # fmt: skip
    result.assert_outcomes(passed=1, failed=1)
    markdown = (ourtester.path / "reports" / "metrics.md").read_text()
    assert markdown.splitlines()[:6] == [
        "## Model metrics",
        "",
        "2 cells judged against `baseline.yaml`: 1 regressed, 0 improved, 0 without baseline.",
        "",
        "| test | metric | baseline | current | change | allowed | verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    rows = markdown.splitlines()[6:]
    # Regressions first; text as is (no &lt;); a sqlite store's runs have no page a pull
    # request could link to: the report says how to open them instead.
    assert [row.endswith("| **REGRESSED** |") for row in rows[:4]] == [True, True, False, False]
    assert rows[0].startswith(f"| `{NODE}[a]` |")
    assert "`mlflow ui` in the project opens them" in rows[-1]
    assert "127.0.0.1" not in markdown
    assert rows[0].endswith(
        "| accuracy | 0.9 | 0.8 | -0.1 (-11.11%) | `>= 0.891 (tol 1%)` | **REGRESSED** |"
    )
    # Float noise (0.2 vs 1 - 0.8) shows as no change.
    assert rows[3].endswith("| rmse | 0.2 | 0.2 | +0 (+0.00%) | `<= 0.202 (tol 1%)` | passed |")
    assert "&lt;" not in markdown
    assert summary.read_text() == "earlier step\n" + markdown + "\n"

    cases = {
        case.get("name"): case for case in ET.parse(ourtester.path / "junit.xml").iter("testcase")
    }
    props = {p.get("name"): p.get("value") for p in cases["experiment_model[a]"].iter("property")}
    assert props["accuracy"] == "0.8"
    assert props["accuracy.baseline"] == "0.9"
    assert props["mlexp.regression"] == "regressed"
    assert float(props["rmse"]) == pytest.approx(0.2)
    assert cases["experiment_model[a]"].find("failure") is not None
    assert cases["experiment_model[b]"].find("failure") is None


def test_verdicts_from_xdist_workers_reach_the_controller(model, run_gate, ourtester):
    model(a=0.9, b=0.8, c=0.7, d=0.6)
    run_gate("-n", "2", "--mlexp-baseline-file", "b.yaml", "--mlexp-update-baseline")
    assert len(yaml.safe_load((ourtester.path / "b.yaml").read_text())) == 4
    model(a=0.9, b=0.8, c=0.7, d=0.5)
    result = run_gate("-n", "2", "--mlexp-baseline-file", "b.yaml")
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(
        [
            f"REGRESSED  {NODE}[[]d[]]: accuracy regressed: 0.6 -> 0.5*",
            "4 of 4 items have a baseline (b.yaml): 1 regressed, 3 passed",
        ]
    )


# -- the rules, unit by unit ------------------------------------------------------------


def test_parse_bounds_and_tolerances():
    assert parse_bounds(">= 0.2 and < 1") == (Bound(">=", 0.2), Bound("<", 1.0))
    assert parse_bounds("<=1e-3") == (Bound("<=", 0.001),)
    for bad in ("0.9", "== 1", ">= x", ">= 0.2 or < 1", ""):
        with pytest.raises(RuleError, match="bad expression"):
            parse_bounds(bad)
    assert parse_tolerance(0.01) == Tolerance(abs=0.01)
    assert parse_tolerance("2%") == Tolerance(rel=0.02)
    assert parse_tolerance("0.01 or 2 std") == Tolerance(abs=0.01, std=2)
    assert parse_tolerance({"rel": 0.05, "std": 3}) == Tolerance(rel=0.05, std=3)
    for bad in ("2% or 3%", {"absolute": 1}, True, "-1", "1e999"):
        with pytest.raises(RuleError, match="bad tolerance"):
            parse_tolerance(bad)
    assert str(Tolerance(abs=0.01, rel=0.02, std=2)) == "0.01 or 2% or 2 std"


def test_guessed_directions():
    assert [
        guess_direction(m) for m in ("accuracy", "val_accuracy", "test/roc_auc", "r2_again")
    ] == ["up"] * 4
    assert [guess_direction(m) for m in ("loss", "val_rmse", "final-val-mae", "error")] == [
        "down"
    ] * 4
    assert guess_direction("fit_time") is None
    assert guess_direction("latency_ms") is None  # timings are noisy: never guessed
    assert guess_direction("f1_loss") is None  # both: ambiguous, declare it


def test_compare_judges_each_metric():
    rules = Rules(directions={"throughput": "up"}, default_tolerance=Tolerance(abs=0.01))
    rows = compare(
        {"accuracy": 0.95, "loss": 0.52, "throughput": 90.0, "fit_time": 3.0, "new": 1.0},
        {"accuracy": 0.9, "loss": 0.5, "throughput": 100.0, "fit_time": 2.0, "gone": 1.0},
        rules,
    )
    assert [(r.metric, r.verdict) for r in rows] == [
        ("accuracy", "improved"),
        ("fit_time", "not gated"),
        ("gone", "MISSING"),
        ("loss", "REGRESSED"),
        ("throughput", "REGRESSED"),
    ]
    assert rows[3].allowed == "<= 0.51 (tol 0.01)"
    # A NaN never passes.
    (row,) = compare({"accuracy": float("nan")}, {"accuracy": 0.9}, rules)
    assert row.verdict == "REGRESSED"


def test_the_gate_judges_returned_and_once_logged_metrics_and_named_histories():
    metrics = {"accuracy": 0.9, "train_loss": 0.1, "train_loss.std": 0.01, "val_loss": 0.2}
    default = Rules(histories=frozenset({"train_loss", "val_loss"}))
    assert judged(metrics, default) == {"accuracy": 0.9}
    assert recorded(metrics, default) == ["train_loss", "train_loss.std", "val_loss"]
    # Named by a direction, a tolerance or expect=, a history is judged.
    named = Rules(
        histories=frozenset({"train_loss", "val_loss"}),
        directions={"val_loss": "down"},
        bounds={"train_loss": parse_bounds("< 1")},
    )
    assert recorded(metrics, named) == []
    # judge= names them all: anything else is recorded, expect= bounds still judged.
    explicit = Rules(judge=frozenset({"val_loss"}), bounds={"x": parse_bounds("> 0")})
    assert recorded(metrics, explicit) == ["accuracy", "train_loss", "train_loss.std"]
    assert explicit.judges("x")
    rows = compare(metrics, {"accuracy": 1.0, "train_loss": 0.0, "val_loss": 0.2}, default)
    assert [row.metric for row in rows] == ["accuracy"]


def test_the_judged_metrics_are_named_by_flag_ini_or_yaml(ourtester):  # type: ignore[no-untyped-def]
    from pytest_mlexp.settings.gate import resolve_gate

    assert resolve_gate(ourtester.parseconfig()).judge is None
    (ourtester.path / "mlexp.yaml").write_text("judge: [accuracy, f1]\n")
    assert resolve_gate(ourtester.parseconfig()).judge == {"accuracy", "f1"}
    ourtester.makeini("[pytest]\nmlexp_judge = accuracy, val_loss\n")
    assert resolve_gate(ourtester.parseconfig()).judge == {"accuracy", "val_loss"}
    assert resolve_gate(ourtester.parseconfig("--mlexp-judge", "r2")).judge == {"r2"}


def test_a_grid_gated_by_its_best_cell(model, run_gate, read_runs):  # type: ignore[no-untyped-def]
    # Cell b explores (bad on purpose): with gate="best" only the grid's best cell is judged,
    # by the bounds and against the baseline, under the function's test id.
    marker = '@pytest.mark.mlexp(gate="best", best="accuracy", expect={"accuracy": ">= 0.85"})'
    model(marker, a=0.9, b=0.3)
    first = run_gate("--mlexp-baseline", "latest")
    first.assert_outcomes(passed=2)
    assert first.ret == pytest.ExitCode.OK
    first.stdout.fnmatch_lines([f"no baseline for 1 test (passed unchecked): {NODE}"])
    first.stdout.fnmatch_lines(["1 grid by its best cell: 1 no-baseline"])
    parents = [r for r in read_runs(EXPERIMENT, groups=True) if "mlexp.grid_size" in r.data.tags]
    (recorded,) = parents
    assert recorded.data.tags["mlexp.outcome"] == "passed"  # a baseline for later sessions
    assert not any("mlexp.regression" in r.data.tags for r in read_runs(EXPERIMENT))

    model(marker, a=0.8, b=0.3)  # the best cell is worse than the last best: the grid regresses
    worse = run_gate("--mlexp-baseline", "latest")
    worse.assert_outcomes(passed=1, failed=1)
    assert worse.ret == pytest.ExitCode.TESTS_FAILED
    worse.stdout.fnmatch_lines(
        [
            escaped(f"grid {NODE} (best of 2 cells, parent run *) fails the session:"),
            f"mlexp: 3 metrics out of bounds against baseline run {recorded.info.run_id} (latest)",
            "1 grid by its best cell: 1 regressed",
        ]
    )
    runs = read_runs(EXPERIMENT, groups=True)
    (parent,) = [r for r in runs if "mlexp.grid_size" in r.data.tags and r is not recorded
                 and r.info.run_id != recorded.info.run_id]  # fmt: skip
    assert parent.data.tags["mlexp.regression"] == "regressed"
    assert parent.data.tags["mlexp.baseline.run_id"] == recorded.info.run_id
    assert parent.info.status == "FAILED"

    # Selection x the gate: the exploring cell alone is judged by the whole grid's best
    # cell, the other counting by its latest run of this code (not by b's 0.3, under bound).
    model(marker, a=0.95, b=0.3)
    run_gate("--mlexp-baseline", "latest").assert_outcomes(passed=2)
    part = run_gate("--mlexp-baseline", "latest", f"{NODE}[b]")
    part.assert_outcomes(passed=1)
    assert part.ret == pytest.ExitCode.OK
    part.stdout.fnmatch_lines(
        [f"mlexp grid {NODE}: 1 of 2 cells ran this session, *", "1 grid by its best cell: 1 *"]
    )
    newest = max(
        (r for r in read_runs(EXPERIMENT, groups=True) if "mlexp.grid_size" in r.data.tags),
        key=lambda r: r.info.start_time,
    )
    assert newest.data.tags["mlexp.members"] == "2"
    assert newest.data.tags["mlexp.regression"] in ("passed", "improved")
    assert "mlexp.outcome" not in newest.data.tags  # run in part: no later baseline


def test_gate_best_needs_a_grid(ourtester, run_gate):  # type: ignore[no-untyped-def]
    ourtester.makepyfile(
        experiment_one="""
        import pytest

        @pytest.mark.mlexp(gate="best")
        def experiment_one():
            return {"accuracy": 0.9}
        """
    )
    result = run_gate()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["ERROR: @pytest.mark.mlexp on experiment_one.py::experiment_one: gate='best' gates a "
         "grid by its best cell: it needs a parametrized experiment without repeats*"]
    )  # fmt: skip


GROUPS = """
import pytest

@pytest.mark.mlexp(search={"x": "uniform(-5, 5)"}, trials=2, objective="loss:min",
                   sampler="random", seed=0)
def experiment_search(x):
    return {"loss": (x - 1) ** 2 + 1}

@pytest.mark.mlexp(repeats=2)
def experiment_cell(seed):
    return {"accuracy": 0.5 + 0.01 * seed}

@pytest.mark.mlexp(gate="best", best="accuracy")
@pytest.mark.parametrize("cell", ["a", "b"])
def experiment_grid(cell):
    return {"accuracy": {"a": 0.6, "b": 0.5}[cell]}

def experiment_plain():
    return {"accuracy": 0.9}

@pytest.mark.parametrize("depth", [1, 2])
def experiment_worse(depth):
    return {"accuracy": 0.5}
"""

GROUPS_BASELINE = {
    "experiment_groups.py::experiment_search": {"loss": 0.5},
    "experiment_groups.py::experiment_cell": {"accuracy": 0.9},
    "experiment_groups.py::experiment_grid": {"accuracy": 0.9},
    "experiment_groups.py::experiment_plain": {"accuracy": 0.9},
    "experiment_groups.py::experiment_worse[1]": {"accuracy": 0.9},
    "experiment_groups.py::experiment_worse[2]": {"accuracy": 0.9},
}


def test_junit_counts_every_failed_group_as_one_of_its_items(
    run_gate, ourtester, read_runs, monkeypatch
):  # type: ignore[no-untyped-def]
    # A search, a repeated cell and a gate="best" grid regress as wholes: each fails as its
    # last passed item, for pytest's last line, the short summary and the JUnit XML alike.
    # (Under xdist, the same road: test_confidence.py's -n 2 session reads its JUnit XML.)
    summary = ourtester.path / "step-summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    ourtester.makepyfile(experiment_groups=GROUPS)
    (ourtester.path / "b.yaml").write_text(yaml.safe_dump(GROUPS_BASELINE))
    result = run_gate(
        "--mlexp-baseline-file", "b.yaml", "--junitxml", "junit.xml",
        "--mlexp-report-md", "metrics.md", "--mlexp-lineage", "none", "--mlexp-artifacts", "off",
    )  # fmt: skip
    # 9 items: 2 trials, 2 repeats, 2 + 2 grid cells and an experiment.
    result.assert_outcomes(passed=4, failed=5)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "FAILED experiment_groups.py::experiment_cell[[]seed1[]] - repeated cell*",
            "FAILED experiment_groups.py::experiment_search[[]trial-1[]] - search*",
            "FAILED experiment_groups.py::experiment_grid[[]b[]] - grid*",
            "*= 5 failed, 4 passed in *",
        ],
        consecutive=False,
    )
    suite = ET.parse(ourtester.path / "junit.xml").getroot().find("testsuite")
    assert suite is not None
    counts = [suite.get(key) for key in ("tests", "failures", "errors")]
    assert counts == ["9", "5", "0"]
    failures = {
        case.get("name"): failure.get("message")
        for case in suite.iter("testcase")
        for failure in case.iter("failure")
    }
    assert len(suite.findall("testcase")) == 9  # each item once
    assert sorted(message.split(" ")[0] for message in failures.values()) == [
        "Failed:", "Failed:", "grid", "repeated", "search",
    ]  # fmt: skip
    assert all("regressed" in message for message in failures.values())
    assert "experiment_grid[b]" in failures
    # What landed in MLflow: the group runs failed, their items' runs as they ran.
    runs = read_runs(EXPERIMENT, groups=True)
    groups = [
        r
        for r in runs
        if "mlexp.kind" in r.data.tags and r.data.tags.get("mlexp.regression") == "regressed"
    ]
    assert sorted(r.data.tags["mlexp.kind"] for r in groups) == ["cell", "grid", "search"]
    assert {r.info.status for r in groups} == {"FAILED"}
    items = [r for r in runs if "mlexp.kind" not in r.data.tags]
    assert sorted(r.info.status for r in items) == ["FAILED"] * 2 + ["FINISHED"] * 7
    # A grid whose every cell regressed says so, not "no comparable metric".
    result.stdout.fnmatch_lines(
        [
            "mlexp grid experiment_groups.py::experiment_worse: 2 cells, 0 passed, 2 failed; "
            "no best accuracy: none of its 2 runs passed (a failed or regressed run is never "
            "the best); parent run *"
        ]
    )
    # The step summary names what it judged as a user sees it.
    assert (
        "1 experiment, 2 cells, 1 repeated cell, 1 search and 1 grid judged against `b.yaml`: "
        "5 regressed" in summary.read_text()
    )


def _workflow_steps() -> list[str]:
    """The ``run:`` steps of the gating guide's GitHub Actions workflow, as written."""
    page = (Path(__file__).resolve().parent.parent / "docs" / "guides" / "gating.md").read_text()
    start = page.index("# .github/workflows/models.yml")
    block = page[start : page.index("```", start)]
    workflow = yaml.safe_load(block)
    return [step["run"].strip() for step in workflow["jobs"]["models"]["steps"] if "run" in step]


def test_the_guides_ci_workflow_runs_in_a_users_project(ourtester, empty_store, monkeypatch):
    # A user's project: experiments/ with a committed baseline, its own requirements.
    shutil.copy(empty_store, ourtester.path / "mlflow.db")
    folder = ourtester.path / "experiments"
    folder.mkdir()
    (folder / "experiment_model.py").write_text(
        "def experiment_model():\n    return {'accuracy': 0.8}\n"
    )
    (folder / "baseline.yaml").write_text(
        "experiments/experiment_model.py::experiment_model:\n  accuracy: 0.9\n"
    )
    (ourtester.path / "requirements.txt").write_text("scikit-learn\n")
    summary = ourtester.path / "step-summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    monkeypatch.delenv("MLEXP_EXPERIMENT_PATHS")
    install, test = _workflow_steps()
    # No network here: the install step is checked, not run. It installs the user's
    # project's requirements and the plugin from PyPI, not this repository.
    assert install.split()[:2] == ["pip", "install"]
    assert "-r requirements.txt" in install
    assert "pytest-mlexp" in install.split()
    assert "-e" not in install.split()
    command = shlex.split(test)
    assert command[0] == "pytest"
    result = ourtester.runpytest(*command[1:])
    # The job fails on the regression, and its reports say so.
    result.assert_outcomes(failed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    suite = ET.parse(ourtester.path / "junit.xml").getroot().find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures")) == ("1", "1")
    markdown = (ourtester.path / "metrics.md").read_text()
    assert "1 experiment judged against `experiments/baseline.yaml`: 1 regressed" in markdown
    assert summary.read_text() == markdown + "\n"


def test_a_group_that_could_not_be_judged_fails_as_one_of_its_items(run_gate, ourtester):
    # The baseline run cannot be read: the cell cannot be judged, and its last seed says so
    # (-x: the failure comes once every seed ran, the session's count agrees).
    ourtester.makepyfile(
        experiment_cell="""
        import pytest

        @pytest.mark.mlexp(repeats=2)
        def experiment_cell(seed):
            return {"accuracy": 0.5}
        """
    )
    missing = "0123456789abcdef0123456789abcdef"
    result = run_gate(
        "--mlexp-baseline", f"run:{missing}", "--junitxml", "junit.xml", "-x",
        "--mlexp-lineage", "none", "--mlexp-artifacts", "off",
    )  # fmt: skip
    result.assert_outcomes(passed=1, failed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    cases = ET.parse(ourtester.path / "junit.xml").iter("testcase")
    (case,) = [c for c in cases if c.find("failure") is not None]
    assert case.get("name") == "experiment_cell[seed1]"
    message = case.find("failure").get("message")  # type: ignore[union-attr]
    assert message.startswith("mlexp: could not judge the group runs in ")
    assert f"baseline run '{missing}' cannot be read" in message
