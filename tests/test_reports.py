"""Reports and plots: the session's HTML report, and ``mlexp report/compare/runs`` on real stores.

HTML reports are opened in headless Chromium (Debian's ``chromium``, driven by
playwright's bundled driver): the console must stay free of errors and the
plots must be drawn.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import struct
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from mlflow.tracking import MlflowClient

from pytest_mlexp import cli

EXPERIMENT = "demo"

#: The project's default store exists before each session (conftest ``_premade_store``).
PREMADE_STORE = True

GRID = """
import pytest

@pytest.mark.parametrize("model", ["forest", "<b>logreg</b>"])
@pytest.mark.parametrize("lr", [0.001, 0.01, 0.1])
def experiment_train(mlflow_run, model, lr):
    for step in range(5):
        mlflow_run.log_metric("loss", (1 + lr) / (step + 1), step=step)
    # auc: a change of one test sample, which must not fill its plot.
    return {"acc": 0.8 + lr - (0.05 if model == "forest" else 0.0), "f1": 0.7 + lr,
            "auc": 0.97 + lr / 100}

@pytest.mark.parametrize("alpha", [0.1, 1.0, 10.0])
def experiment_ridge(mlflow_run, alpha):
    if alpha == 10.0:
        raise AssertionError("diverged")
    mlflow_run.log_metric("r2", 1 / (1 + alpha))
    # As the regression gate tags a judged run.
    mlflow_run.set_tags({
        "mlexp.regression": "regressed" if alpha > 0.5 else "passed",
        "mlexp.baseline.source": "baseline.yaml",
    })
"""

#: Runs in GRID: 6 train cells, 3 ridge cells.
GRID_RUNS = 9
#: Faster sessions: reports are under test, not lineage or artifact discovery.
QUIET = ("-p", "no:randomly", "--mlexp-lineage", "none", "--mlexp-artifacts", "off")


# -- helpers ---------------------------------------------------------------------------------


@dataclass
class Opened:
    """What the browser saw of a page."""

    errors: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    page: Any = None


SELECTORS = {
    "plots": ".js-plotly-plot",
    "svg": ".js-plotly-plot .main-svg",
    "points": ".js-plotly-plot .scatterlayer .point",
    "parcoords": ".js-plotly-plot .parcoords",
    "rows": "table.runs tbody tr",
    "links": "table.runs td.name a",
}


@pytest.fixture
def open_page(browser: Any) -> Iterator[Any]:
    """``open_page(path)``: load a report offline; console errors and element counts."""
    pages = []

    def open_(path: Path) -> Opened:
        opened = Opened()
        page = browser.new_page(viewport={"width": 1300, "height": 900})
        pages.append(page)
        # Offline: any request leaving the file is refused and would show as an error.
        page.route(
            re.compile(r"^(?!file:|data:|blob:|about:)"),
            lambda route: (opened.errors.append(f"request {route.request.url}"), route.abort()),
        )
        page.on("console", lambda m: opened.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda exc: opened.errors.append(f"page error: {exc}"))
        page.goto(path.as_uri(), wait_until="load")
        page.wait_for_timeout(300)
        opened.counts = {name: page.locator(css).count() for name, css in SELECTORS.items()}
        opened.page = page
        return opened

    yield open_
    for page in pages:
        page.close()


@pytest.fixture
def mlexp(capsys: pytest.CaptureFixture[str]):  # type: ignore[no-untyped-def]
    """``mlexp(*args)``: run the ``mlexp`` command in-process; (exit code, stdout, stderr)."""

    def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = cli.main(list(args))
        out, err = capsys.readouterr()
        return code, out, err

    return run


def run_grid(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    pytester.makepyfile(experiment_grid=GRID)
    result = pytester.runpytest("--mlexp-experiment", EXPERIMENT, *QUIET, *args)
    result.assert_outcomes(passed=GRID_RUNS - 1, failed=1)
    return result


def session_of(result: pytest.RunResult) -> str:
    """The session id the header line shows."""
    found = re.search(r"^mlexp: tracking .*, session (\S+)$", result.stdout.str(), re.M)
    assert found is not None, result.stdout.str()
    return found.group(1)


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


# -- the session report: --mlexp-html ----------------------------------------------------------


def test_session_report_under_xdist_renders_offline(
    ourtester, client, read_runs, open_page, monkeypatch
):
    """The session's report, opened and photographed in Chromium."""
    # Two GPUs visible to the workers, as Ray or Slurm would assign them.
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    result = run_grid(ourtester, "-n", "2", "--mlexp-html=reports/session.html")
    path = ourtester.path / "reports" / "session.html"
    result.stdout.fnmatch_lines([f"mlexp: HTML report of {GRID_RUNS} runs written to {path}"])
    # Only the controller writes it.
    assert result.stdout.str().count("HTML report of") == 1

    text = path.read_text(encoding="utf-8")
    from plotly.offline import get_plotlyjs

    plotlyjs = get_plotlyjs()
    assert text.count(plotlyjs) == 1, "plotly.js is inlined once"
    rest = text.replace(plotlyjs, "")
    assert "<script src" not in rest
    assert "cdn" not in rest
    assert "https://" not in rest
    # Values from the store are escaped, never markup.
    assert "<b>logreg</b>" not in text
    assert "&lt;b&gt;logreg&lt;/b&gt;" in text

    runs = read_runs(EXPERIMENT, groups=True)
    items = [r for r in runs if "mlexp.kind" not in r.data.tags]
    sessions = [r for r in runs if r.data.tags.get("mlexp.kind") == "session"]
    assert len(items) == GRID_RUNS
    (session_run,) = sessions
    session_id = items[0].data.tags["mlexp.session_id"]
    # Named and tagged as what it is, not an experiment; the UI's filter hides it.
    assert session_run.info.run_name.startswith("HTML report · ")
    assert session_run.data.tags["mlexp.report"] == "html"
    assert "Not an experiment" in session_run.data.tags["mlflow.note.content"]
    assert session_run.data.tags["mlexp.session_id"] == session_id
    hidden = client.search_runs(
        [session_run.info.experiment_id], "tags.`mlexp.report` IS NULL", max_results=1000
    )
    assert {r.info.run_id for r in hidden} == {r.info.run_id for r in runs} - {
        session_run.info.run_id
    }
    assert session_run.info.status == "FINISHED"
    assert [a.path for a in client.list_artifacts(session_run.info.run_id)] == ["session.html"]
    assert all(r.info.status != "RUNNING" for r in runs)
    used = usage_recorded(client, items, runs)
    # What each function's runs used, totalled from what each worker's runs recorded.
    result.stdout.fnmatch_lines(
        [
            *[
                f"mlexp used: experiment_grid.py::{function}: {text}"
                for function, text in reversed(used.items())  # as collected: train, ridge
            ],
            "mlexp used in all: 9 runs: * wall, * CPU, * GPU-hours",
        ]
    )

    opened = open_page(path)
    assert opened.errors == []
    counts = opened.counts
    # experiment_train: metrics by lr and model, parallel coordinates, loss per step;
    # experiment_ridge: r2 by alpha (its failed cell logged no metric).
    assert counts["plots"] == 4
    assert counts["svg"] >= 4
    assert counts["parcoords"] == 1
    # 6 train cells x 4 metrics x 2 params, and 2 ridge cells; 6 runs x 5 steps of loss.
    assert counts["points"] == 6 * 4 * 2 + 2 + 6 * 5
    assert counts["rows"] == GRID_RUNS
    assert counts["links"] == 0, "a sqlite store has no UI to link to"
    baseline = opened.page.locator("td.baseline")
    assert baseline.all_inner_texts() == [
        "passed\nvs baseline.yaml",
        "regressed\nvs baseline.yaml",
    ]
    assert opened.page.locator("th", has_text="gate").count() == 1
    failed = opened.page.locator("td.status.failed")
    assert failed.count() == 1
    assert failed.get_attribute("title") == "AssertionError: diverged"

    # What a person sees: a long page whose plots are drawn, not empty frames.
    shot = opened.page.screenshot(full_page=True)
    width, height = png_size(shot)
    assert width == 1300
    assert height > 2000, "the table and the four plots make a long page"
    plot = opened.page.locator(".js-plotly-plot").first.screenshot()
    assert len(plot) > 8_000, "an empty white frame compresses to a few hundred bytes"
    (ourtester.path / "report.png").write_bytes(shot)
    check_reads_as_a_data_scientist_expects(opened.page)
    # In the report, a line above each function's table (ridge, then train).
    assert opened.page.locator("p.usage").all_inner_texts() == [
        f"Used: {text}" for text in used.values()
    ]


def usage_recorded(client: MlflowClient, items: list[Any], runs: list[Any]) -> dict[str, str]:
    """Each run's wall time, CPU time and GPU-hours, read back; per function, as printed."""
    from pytest_mlexp.reports.usage import duration, significant

    totals: dict[str, list[float]] = {}
    for run in items:
        system = {k: v for k, v in run.data.metrics.items() if k.startswith("system/")}
        assert set(system) == {
            "system/wall_time_seconds",
            "system/cpu_time_seconds",
            "system/gpu_count",
            "system/gpu_hours",
        }
        wall, cpu = system["system/wall_time_seconds"], system["system/cpu_time_seconds"]
        assert wall > 0
        assert cpu > 0
        assert system["system/gpu_count"] == 2
        assert system["system/gpu_hours"] == pytest.approx(2 * wall / 3600)
        # One value, at step 0: not a history.
        assert len(client.get_metric_history(run.info.run_id, "system/gpu_hours")) == 1
        function = run.data.tags["mlexp.nodeid"].split("::")[1].split("[")[0]
        total = totals.setdefault(function, [0, 0.0, 0.0, 0.0])
        for index, value in enumerate((1, wall, cpu, system["system/gpu_hours"])):
            total[index] += value
    # Group runs (grid parents, the report's run) record none: their members do.
    for run in runs:
        if "mlexp.kind" in run.data.tags:
            assert not [key for key in run.data.metrics if key.startswith("system/")]
    return {
        function: f"{int(count)} runs: {duration(wall)} wall, {duration(cpu)} CPU, "
        f"{significant(gpu)} GPU-hours"
        for function, (count, wall, cpu, gpu) in sorted(totals.items())
    }


def check_reads_as_a_data_scientist_expects(page: Any) -> None:
    """The report's plots and table, as drawn in Chromium: each fix of issue 31 checked."""
    grid = page.evaluate(
        """() => {
          const g = [...document.querySelectorAll('.plot.grid .js-plotly-plot')]
            .find(plot => plot._fullLayout.xaxis2);  // experiment_train's: lr and model
          const axes = {};
          for (const [key, axis] of Object.entries(g._fullLayout)) {
            if (/^[xy]axis\\d*$/.test(key)) axes[key] = {type: axis.type, range: axis.range};
          }
          return {axes, traces: g._fullData.map(t => ({
            x: t.xaxis.replace('x', 'xaxis'), y: t.yaxis.replace('y', 'yaxis'),
            mode: t.mode, values: t.y}))};
        }"""
    )
    axes, traces = grid["axes"], grid["traces"]
    # Columns: lr, model. lr (0.001, 0.01, 0.1) on a log axis; model's categories unjoined.
    assert axes["xaxis"]["type"] == "log"
    assert axes["xaxis2"]["type"] == "category"
    for trace in traces:
        x_type = axes[trace["x"]]["type"]
        assert trace["mode"] == ("markers" if x_type == "category" else "lines+markers")
    # No metric's y range is tighter than 5% of its values: auc's 0.001 spread stays small.
    for trace in traces:
        low, high = axes[trace["y"]]["range"]
        values = trace["values"]
        assert high - low >= 0.05 * max(abs(v) for v in values) - 1e-9
        spread = max(values) - min(values)
        if spread < 0.01 * max(abs(v) for v in values):  # auc: a tiny change looks tiny
            assert spread <= 0.25 * (high - low), (trace, low, high)

    # Parallel coordinates: every tick, the axis ends included, at most 4 significant digits.
    ticks = page.locator(".parcoords .tick text").all_text_contents()
    assert ticks
    assert not [t for t in ticks if re.search(r"\d\.?\d{5,}", t.replace(",", ""))], ticks

    # A legend says which headers are metrics and which params; the headers sort the table.
    acc = page.locator("span.metric", has_text=re.compile("^acc$"))
    table = page.locator("table.runs", has=acc)  # experiment_train's
    legend = page.locator("p.legend").first
    assert legend.is_visible()
    assert "metrics" in legend.inner_text()
    assert "params" in legend.inner_text()
    header = table.locator("th", has=acc)
    header.click()
    assert header.get_attribute("aria-sort") == "ascending"
    column = header.evaluate("th => th.cellIndex")
    values = [
        float(v) for v in table.locator(f"tbody td:nth-child({column + 1})").all_inner_texts()
    ]
    assert len(values) == 6
    assert values == sorted(values)
    header.click()
    assert header.get_attribute("aria-sort") == "descending"

    # Every column can be scrolled into view, uncovered by the run's name or the gate
    # column held in place: on a wide screen and on a phone.
    assert headers_covered(page) == []
    page.set_viewport_size({"width": 390, "height": 900})
    assert headers_covered(page) == []
    # On a phone (390 px) the table scrolls sideways; scrolled to its right end, the
    # gate column covers no param header.
    ridge = page.locator("table.runs.verdicts")
    scrolled = ridge.evaluate(
        "t => { const box = t.parentElement; box.scrollLeft = box.scrollWidth;"
        " return box.scrollLeft; }"
    )
    assert scrolled > 0, "the table is wider than a phone"
    heads = ridge.locator("thead th")
    last_param, gate = heads.nth(heads.count() - 2).bounding_box(), heads.last.bounding_box()
    assert last_param is not None
    assert gate is not None
    assert last_param["x"] + last_param["width"] <= gate["x"] + 1, (last_param, gate)


def headers_covered(page: Any) -> list[str]:
    """The run tables' headers that, scrolled to the middle of their table's box, are covered."""
    return page.evaluate(
        """() => [...document.querySelectorAll('table.runs')].flatMap(table => {
          const box = table.parentElement;
          table.scrollIntoView({block: 'center'});
          return [...table.tHead.rows[0].cells].filter(th => {
            box.scrollLeft = th.offsetLeft - (box.clientWidth - th.offsetWidth) / 2;
            const r = th.getBoundingClientRect();
            return !th.contains(document.elementFromPoint(r.x + r.width / 2, r.y + r.height / 2));
          }).map(th => th.textContent);
        })"""
    )


def test_report_path_from_ini_is_relative_to_rootdir(ourtester):
    ourtester.makeini("[pytest]\nmlexp_html = out/report.html\n")
    ourtester.makepyfile(experiment_one="def experiment_one(): return {'acc': 0.5}")
    sub = ourtester.mkdir("sub")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(sub)
        result = ourtester.runpytest("-p", "no:randomly", str(ourtester.path))
    result.assert_outcomes(passed=1)
    assert (ourtester.path / "out" / "report.html").is_file()
    assert not (sub / "out").exists()


def test_report_that_cannot_be_written_is_said_and_loses_nothing(ourtester, read_runs):
    ourtester.makepyfile(experiment_one="def experiment_one(): return {'acc': 0.5}")
    blocker = ourtester.path / "blocker"
    blocker.write_text("a file where a folder should be")
    result = ourtester.runpytest("--mlexp-experiment", EXPERIMENT, f"--mlexp-html={blocker}/r.html")
    result.assert_outcomes(passed=1)
    assert result.ret == 0
    result.stdout.fnmatch_lines([f"mlexp: could not write the HTML report {blocker}/r.html: *"])
    (run,) = read_runs(EXPERIMENT)
    assert run.info.status == "FINISHED"


@pytest.mark.fresh_store
def test_no_report_without_tracked_runs(ourtester):
    ourtester.makepyfile(test_plain="def test_plain(): pass")
    result = ourtester.runpytest("--mlexp-html=report.html", "-p", "no:randomly")
    result.assert_outcomes(passed=1)
    assert not (ourtester.path / "report.html").exists()
    assert not (ourtester.path / "mlflow.db").exists()
    assert "HTML report" not in result.stdout.str()


@pytest.mark.fresh_store
def test_report_path_that_is_a_directory_is_refused(ourtester):
    ourtester.makepyfile(experiment_one="def experiment_one(): pass")
    ourtester.mkdir("reports")
    result = ourtester.runpytest("--mlexp-html=reports")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["ERROR: --mlexp-html: 'reports' is a directory; give the path of the HTML file*"]
    )
    assert not (ourtester.path / "mlflow.db").exists()


def test_report_on_a_server_links_runs_and_is_an_artifact(
    ourtester, mlflow_server, mlexp, open_page
):
    result = run_grid(
        ourtester, "--mlexp-tracking-uri", mlflow_server.url, "--mlexp-html", "report.html"
    )
    result.stdout.fnmatch_lines([f"mlexp: HTML report of {GRID_RUNS} runs written to *"])
    server = MlflowClient(tracking_uri=mlflow_server.url)
    session_id = session_of(result)
    runs = server.search_runs(
        [server.get_experiment_by_name(EXPERIMENT).experiment_id],
        filter_string=f"tags.`mlexp.session_id` = '{session_id}'",
    )
    items = [r for r in runs if "mlexp.kind" not in r.data.tags]
    (session_run,) = [r for r in runs if r.data.tags.get("mlexp.kind") == "session"]
    assert len(items) == GRID_RUNS

    text = (ourtester.path / "report.html").read_text(encoding="utf-8")
    for run in items:
        url = f"{mlflow_server.url}/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}"
        assert f"href='{url}'" in text
    # The artifact is the same report, reachable from the UI.
    downloaded = server.download_artifacts(
        session_run.info.run_id, "report.html", str(ourtester.path / "dl")
    )
    assert Path(downloaded).read_text(encoding="utf-8").count("mlexp-plot-") == text.count(
        "mlexp-plot-"
    )
    opened = open_page(ourtester.path / "report.html")
    assert opened.errors == []
    assert opened.counts["links"] == GRID_RUNS

    # The same store, read after the fact.
    code, out, err = mlexp("runs", "--tracking-uri", mlflow_server.url, "--session", session_id)
    assert (code, err) == (0, "")
    assert f"{GRID_RUNS} runs in all experiments (none is named " in out
    assert f") of {mlflow_server.url}" in out


# -- mlexp report -------------------------------------------------------------------------------


def test_mlexp_runs_lists_and_filters_and_mlexp_report_rebuilds_the_session_report(
    ourtester, mlexp, open_page, read_runs, monkeypatch
):
    result = run_grid(ourtester, "--mlexp-html=session.html")
    session_id = session_of(result)

    # -- mlexp runs, on the first session's store
    runs = read_runs(EXPERIMENT)
    monkeypatch.chdir(ourtester.mkdir("sub"))  # the project's store is found from below too

    code, out, err = mlexp("runs")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    # pytest here would log to the experiment named after the rootdir, which does not exist.
    assert lines[0] == (
        f"{GRID_RUNS} runs in all experiments (none is named {ourtester.path.name!r}) "
        f"of sqlite:///{ourtester.path}/mlflow.db"
    )
    assert lines[1].split() == ["RUN", "ID", "NAME", "STATUS", "STARTED", "PARAMS", "METRICS"]
    assert len(lines) == 2 + GRID_RUNS + 1
    # The session's HTML report is a run of its own (--mlexp-html), left out as the grids are.
    assert lines[-1] == "(3 group runs (2 grids, 1 session report) not listed: " \
        "mlexp runs --parents lists them)"  # fmt: skip
    by_id = {line.split()[0]: line for line in lines[2:-1]}
    assert set(by_id) == {r.info.run_id for r in runs}
    failed = next(r for r in runs if r.info.run_name == "experiment_ridge[10.0]")
    assert by_id[failed.info.run_id].split()[1:3] == ["experiment_ridge[10.0]", "FAILED"]
    cell = next(r for r in runs if r.info.run_name == "experiment_train[0.1-forest]")
    assert by_id[cell.info.run_id].split()[-6:] == [
        "lr=0.1", "model=forest", "acc=0.85", "auc=0.971", "f1=0.8", "loss=0.22",
    ]  # fmt: skip

    code, out, _ = mlexp("runs", "--experiment", EXPERIMENT, "--filter", "metrics.acc > 0.8")
    assert code == 0
    names = sorted(line.split()[1] for line in out.splitlines()[2:])
    assert names == [
        "experiment_train[0.001-<b>logreg</b>]",
        "experiment_train[0.01-<b>logreg</b>]",
        "experiment_train[0.1-<b>logreg</b>]",
        "experiment_train[0.1-forest]",
    ]
    assert out.splitlines()[0].endswith("(metrics.acc > 0.8)")

    code, out, _ = mlexp("runs", "--max", "2")
    assert code == 0
    assert len(out.splitlines()) == 2 + 2 + 2
    assert out.splitlines()[-2] == (
        "(newest 2 shown; more runs match: raise --max or narrow --filter)"
    )

    code, out, err = mlexp("runs", "--filter", "metrics.acc >> 1")
    assert code == 2
    assert out == ""
    assert err.startswith("mlexp runs: error: cannot search runs ('metrics.acc >> 1'): ")
    assert len(err.splitlines()) == 1

    code, _, err = mlexp("runs", "--experiment", "nope")
    assert code == 2
    assert err.startswith("mlexp runs: error: no experiment named 'nope'")
    monkeypatch.chdir(ourtester.path)

    # -- mlexp report, after a later session
    # A later session, reusing the 7 cells that passed unregressed: they cost nothing now.
    later = run_grid(ourtester, "--mlexp-reuse")
    reused = "reused, which cost nothing this session (what they used is on the runs they copy)"
    later.stdout.fnmatch_lines(
        [
            f"mlexp used: experiment_grid.py::experiment_train: 6 runs; 6 {reused}",
            "mlexp used: experiment_grid.py::experiment_ridge: 3 runs, 2 executed: "
            f"* wall, * CPU, no GPU; 1 {reused}",
            f"mlexp used in all: 9 runs, 2 executed: * wall, * CPU, no GPU; 7 {reused}",
        ]
    )
    # A reused run records no usage of its own, nor its source's: only executed runs do.
    later_runs = [
        run
        for run in read_runs(EXPERIMENT)
        if run.data.tags["mlexp.session_id"] == session_of(later)
    ]
    assert (
        sorted(
            ("mlexp.reused_from" in run.data.tags, "system/wall_time_seconds" in run.data.metrics)
            for run in later_runs
        )
        == [(False, True)] * 2 + [(True, False)] * 7
    )

    code, out, err = mlexp("report", "--session", session_id, "-o", "again.html")
    assert (code, err) == (0, "")
    assert out == (
        f"mlexp report: wrote again.html: {GRID_RUNS} runs in 1 experiment (session {session_id})\n"
    )
    session = (ourtester.path / "session.html").read_text(encoding="utf-8")
    again = (ourtester.path / "again.html").read_text(encoding="utf-8")
    strip = re.compile(r"generated [0-9: -]+")
    assert strip.sub("", session) == strip.sub("", again)

    # No selection: the latest session.
    code, out, _ = mlexp("report")
    assert code == 0
    assert f"{GRID_RUNS} runs in 1 experiment (session " in out
    assert session_id not in out
    assert (ourtester.path / "mlexp-report.html").is_file()

    # A whole experiment: both sessions, told apart by a session column.
    code, out, _ = mlexp("report", "--experiment", EXPERIMENT, "-o", "all.html")
    assert code == 0
    assert f"{2 * GRID_RUNS} runs in 1 experiment (experiment {EXPERIMENT})" in out
    opened = open_page(ourtester.path / "all.html")
    assert opened.errors == []
    assert opened.counts["rows"] == 2 * GRID_RUNS
    # A table per experiment function (two), each with its session column.
    assert opened.page.locator("table.runs th", has_text="session").count() == 2
    # Over two sessions, the reused runs are told apart, with no "this session".
    used = opened.page.locator("p.usage").all_inner_texts()
    assert len(used) == 2
    for text, runs, executed in zip(used, (6, 12), (5, 6), strict=True):  # ridge, train
        assert re.fullmatch(
            rf"Used: {runs} runs, {executed} executed: [0-9.]+ s wall, [0-9.]+ s CPU, no GPU; "
            rf"{runs - executed} reused, which cost nothing \(what they used is on the runs "
            r"they copy\)",
            text,
        ), text

    # Filtered with MLflow's search syntax.
    code, out, _ = mlexp(
        "report", "--experiment", EXPERIMENT, "--filter", "metrics.acc > 0.8", "-o", "f.html"
    )
    assert code == 0
    assert "8 runs in 1 experiment" in out  # 4 a session

    # Mistakes: one line, exit code 2, nothing written.
    (ourtester.path / "mlexp-report.html").unlink()
    code, out, err = mlexp("report", "--session", "no-such-session")
    assert code == 2
    assert out == ""
    assert err == (
        "mlexp report: error: no runs match (session no-such-session) in "
        f"sqlite:///{ourtester.path}/mlflow.db\n"
    )
    code, _, err = mlexp("report", "--experiment", "nope")
    assert code == 2
    assert err.startswith("mlexp report: error: no experiment named 'nope' in sqlite:///")
    assert "experiments there: 'demo'" in err
    assert not (ourtester.path / "mlexp-report.html").exists()


# -- mlexp runs -----------------------------------------------------------------------------------


def test_missing_store_is_an_error_and_is_not_created(tmp_path, mlexp, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for command in (["runs"], ["report"], ["compare", "a", "b"]):
        code, out, err = mlexp(*command)
        assert code == 2
        assert out == ""
        assert err == (
            f"mlexp {command[0]}: error: no MLflow store at sqlite:///{tmp_path}/mlflow.db "
            f"(from default): {tmp_path}/mlflow.db does not exist; run some experiments with "
            "pytest first, or point at a store with --tracking-uri or MLFLOW_TRACKING_URI\n"
        )
    code, _, err = mlexp("runs", "--tracking-uri", f"sqlite:///{tmp_path}/other.db")
    assert code == 2
    assert f"(from --tracking-uri): {tmp_path}/other.db does not exist; check the path" in err
    code, _, err = mlexp("runs", "--tracking-uri", str(tmp_path / "mlruns"))
    assert code == 2
    assert err.endswith(f"{tmp_path}/mlruns is not a folder\n")
    code, _, err = mlexp("report", "-o", str(tmp_path))
    assert code == 2
    assert (
        err == f"mlexp report: error: -o {tmp_path}: is a directory; give the HTML file to write\n"
    )
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/env.db")
    code, _, err = mlexp("runs")
    assert code == 2
    assert "(from MLFLOW_TRACKING_URI)" in err
    assert list(tmp_path.iterdir()) == []


def test_unreachable_server_is_a_quick_clear_error(mlexp):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # free, and nothing listens once closed
    url = f"http://user:s3cret@127.0.0.1:{port}"
    code, out, err = mlexp("runs", "--tracking-uri", url)
    assert code == 2
    assert out == ""
    assert err.startswith(
        f"mlexp runs: error: tracking server {url.replace('s3cret', '***')} "
        "(from --tracking-uri) is unreachable: "
    )
    assert "s3cret" not in err


def test_ui_links_carry_no_credentials():
    from pytest_mlexp.backend.uris import run_link, ui_base

    base = ui_base("https://bob:hunter2@mlflow.example:5000/mlflow/")
    assert base == "https://mlflow.example:5000/mlflow"
    assert (
        run_link(base, "3", "abc") == "https://mlflow.example:5000/mlflow/#/experiments/3/runs/abc"
    )
    assert ui_base("https://TOKEN@host") == "https://host"
    assert ui_base("sqlite:///x.db") is None


# -- mlexp compare --------------------------------------------------------------------------------

CODE_GRID = """
import pytest

@pytest.mark.parametrize("variant", ["a", "b"])
def experiment_code(mlflow_run, tmp_path, variant):
    src = tmp_path / "src"
    (src / "pkg").mkdir(parents=True)
    (src / "train.py").write_text(f"lr = 0.1\\nmodel = {variant!r}\\nepochs = 3\\n")
    (src / "pkg" / "same.py").write_text("x = 1\\n")
    if variant == "b":
        (src / "pkg" / "extra.py").write_text("added = True\\n")
    mlflow_run.log_artifact(src, "code")
    mlflow_run.log_param("only_" + variant, 1)
    return {"acc": 0.5 if variant == "a" else 0.75, "loss": 0.25}

def experiment_nocode():
    return {"acc": 0.1}
"""


def test_mlexp_compare_shows_deltas_and_diffs_code(ourtester, mlexp, read_runs):
    ourtester.makepyfile(experiment_code=CODE_GRID)
    # Lineage off: the code artifacts are exactly those the experiments log by hand.
    result = ourtester.runpytest("--mlexp-experiment", EXPERIMENT, "--mlexp-lineage", "none")
    result.assert_outcomes(passed=3)
    runs = {r.info.run_name: r for r in read_runs(EXPERIMENT)}
    run_a = runs["experiment_code[a]"].info.run_id

    code, out, err = mlexp("compare", run_a, "experiment_code[b]")
    assert (code, err) == (0, "")
    head, params, metrics, code_part = out.split("\n\n")
    assert head.splitlines()[1].split() == ["name", "experiment_code[a]", "experiment_code[b]"]
    assert head.splitlines()[2].split() == [
        "run", "id", run_a, runs["experiment_code[b]"].info.run_id,
    ]  # fmt: skip
    assert params.splitlines()[2:] == [
        "  only_a   1  -  only one",
        "  only_b   -  1  only one",
        "  variant  a  b  changed",
    ]
    assert metrics.splitlines()[2:] == [
        "  acc   0.5   0.75  +0.25 (+50.0%)",
        "  loss  0.25  0.25  0",
    ]
    assert code_part.rstrip("\n").splitlines() == [
        "code: 2 files in both runs (1 differ), 0 only in A, 1 only in B",
        "--- /dev/null",
        "+++ b/code/pkg/extra.py",
        "@@ -0,0 +1 @@",
        "+added = True",
        "--- a/code/train.py",
        "+++ b/code/train.py",
        "@@ -1,3 +1,3 @@",
        " lr = 0.1",
        "-model = 'a'",
        "+model = 'b'",
        " epochs = 3",
    ]

    code, out, _ = mlexp("compare", run_a, "experiment_nocode")
    assert code == 0
    assert out.rstrip().endswith(
        "code: run B logged no code artifacts (under code/); run A logged 2 files"
    )
    code, out, _ = mlexp("compare", "experiment_nocode", "experiment_nocode")
    assert out.rstrip().endswith("code: neither run logged code artifacts (under code/)")

    code, out, err = mlexp("compare", run_a, "0123456789abcdef0123456789abcdef")
    assert code == 2
    assert out == ""
    assert err == (
        "mlexp compare: error: no run with id or name '0123456789abcdef0123456789abcdef' "
        f"in sqlite:///{ourtester.path}/mlflow.db\n"
    )
    code, _, err = mlexp("compare", run_a, "experiment_code[b]", "--experiment", "nope")
    assert code == 2
    assert "no experiment named 'nope'" in err


# -- the console script ------------------------------------------------------------------------


def test_every_command_has_help_in_the_real_console_script(tmp_path):
    mlexp_script = shutil.which("mlexp", path=os.path.dirname(sys.executable))
    assert mlexp_script is not None, "the mlexp console script is not installed"

    def help_of(*command: str) -> str:
        done = subprocess.run(
            [mlexp_script, *command, "--help"],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    top = help_of()
    for command in ("report", "compare", "runs"):
        assert re.search(rf"^\s+{command}\s+\S", top, re.M), top
    report = help_of("report")
    for flag in ("--experiment NAME", "--session ID", "-o PATH, --output PATH", "--tracking-uri"):
        assert flag in report
    assert "MLFLOW_TRACKING_URI" in report
    compare = help_of("compare")
    assert "RUN_A" in compare
    assert "code/" in compare
    assert "--filter EXPR" in help_of("runs")
    assert list(tmp_path.iterdir()) == []


def test_the_gpus_a_run_holds_as_its_executor_or_cuda_says():
    """``MLEXP_GPUS`` (set by the Ray and Slurm backends) wins over ``CUDA_VISIBLE_DEVICES``."""
    from pytest_mlexp.runs.usage import held_gpus
    from pytest_mlexp.warning_types import MlexpWarning

    assert held_gpus({"MLEXP_GPUS": "0.5", "CUDA_VISIBLE_DEVICES": "0"}) == 0.5
    assert held_gpus({"MLEXP_GPUS": "0", "CUDA_VISIBLE_DEVICES": "0,1"}) == 0
    assert held_gpus({"CUDA_VISIBLE_DEVICES": "0,1"}) == 2
    assert held_gpus({"CUDA_VISIBLE_DEVICES": "GPU-5d1e, GPU-8a2f"}) == 2
    # CUDA stops at the first invalid entry: "-1" hides every device.
    assert held_gpus({"CUDA_VISIBLE_DEVICES": ""}) == 0
    assert held_gpus({"CUDA_VISIBLE_DEVICES": "-1"}) == 0
    assert held_gpus({"CUDA_VISIBLE_DEVICES": "1,-1,0"}) == 1
    with pytest.warns(MlexpWarning, match=r"MLEXP_GPUS='two' is not a number of GPUs"):
        assert held_gpus({"MLEXP_GPUS": "two", "CUDA_VISIBLE_DEVICES": "3"}) == 1
