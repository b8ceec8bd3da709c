"""The regression gate: fails an experiment whose metrics break a bound or fall behind a baseline.

Registered by ``plugin.py`` as ``mlexp-gate``. After an experiment function
returns, its run's metrics are read back from the store (so ``mlflow.log_*``
and autolog count) and judged by ``regression.compare``; the item fails
itself with a table when a metric regressed. Verdicts travel to the
controller on call reports (``report.mlexp_regression``), which prints the
summary, writes the markdown report and refreshes the baseline file.

Repeated experiments (``repeats=``/``seeds=``) are gated per cell, not per
seed: each repeat is judged only by its ``expect=`` bounds, and at session
end, once ``grid.py`` has logged each cell run's mean and ``<metric>.std``,
the controller compares the means with the cell's baseline (see
``judge_cells``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import pytest

from . import regression
from .baselines import (
    ACCEPTED_SPECS,
    PROMOTED_TAG,
    Baseline,
    BaselineSpec,
    parse_spec,
)
from .config import TrackingConfig, lookup, settings_file
from .grid import SEED_PARAM, cell_nodeid, repeat_seeds
from .regression import FAILING, Row, RuleError, Rules, Tolerance
from .session import PLUGIN_NAME, RUN_KEY, MlexpSession, is_tracked

if TYPE_CHECKING:
    from .tracking import ExperimentRun

#: Name of the gate in pytest's plugin manager.
GATE_NAME = "mlexp-gate"

#: Marker keyword arguments the gate reads.
MARKER_KWARGS = ("expect", "tolerance", "direction")

RULES_KEY = pytest.StashKey[Rules]()
VERDICT_KEY = pytest.StashKey[dict[str, Any]]()
#: On a repeat: its cell's test id and the rules (as JSON) the cell's mean is judged by.
CELL_KEY = pytest.StashKey[dict[str, Any]]()

# Item verdicts.
PASSED = "passed"
IMPROVED = "improved"
REGRESSED = "regressed"
NO_BASELINE = "no-baseline"


def add_options(group: Any, parser: pytest.Parser) -> None:
    group.addoption(
        "--mlexp-baseline",
        dest="mlexp_baseline",
        metavar="SPEC",
        default=None,
        help="Compare each experiment's metrics with a run from the store: latest, "
        "branch:NAME, promoted, tag:KEY=VALUE, session:ID or run:ID.",
    )
    group.addoption(
        "--mlexp-baseline-file",
        dest="mlexp_baseline_file",
        metavar="PATH",
        default=None,
        help="Compare with the metrics in this YAML file (test id -> metrics).",
    )
    group.addoption(
        "--mlexp-update-baseline",
        dest="mlexp_update_baseline",
        action="store_true",
        default=False,
        help="Write this session's metrics into the baseline file instead of comparing.",
    )
    group.addoption(
        "--mlexp-require-baseline",
        dest="mlexp_require_baseline",
        action="store_true",
        default=False,
        help="Fail experiments that have no baseline (default: pass with a note).",
    )
    group.addoption(
        "--mlexp-promote-baseline",
        dest="mlexp_promote_baseline",
        action="store_true",
        default=False,
        help="Tag this session's passed runs as the baseline (--mlexp-baseline promoted).",
    )
    group.addoption(
        "--mlexp-tolerance",
        dest="mlexp_tolerance",
        metavar="TOL",
        default=None,
        # argparse formats help with %: every literal % is doubled.
        help=f"How much worse than the baseline a metric may get (default "
        f"{regression.DEFAULT_TOLERANCE_TEXT.replace('%', '%%')}): "
        "0.01, 2%%, '2 std', '0.01 or 2%%'.",
    )
    group.addoption(
        "--mlexp-report-md",
        dest="mlexp_report_md",
        metavar="PATH",
        default=None,
        help="Write the metric verdicts as a markdown table (also appended to "
        "$GITHUB_STEP_SUMMARY when set).",
    )
    parser.addini("mlexp_baseline", "Baseline runs to compare with (see --mlexp-baseline).")
    parser.addini("mlexp_baseline_file", "Baseline file to compare with (test id -> metrics).")
    parser.addini("mlexp_require_baseline", "Fail experiments that have no baseline.", type="bool")
    parser.addini("mlexp_tolerance", "Default tolerance for every metric, e.g. 1% or 0.01.")
    parser.addini(
        "mlexp_tolerances", "Tolerance per metric, one METRIC=TOL a line.", type="linelist"
    )
    parser.addini(
        "mlexp_directions",
        "Direction per metric, one METRIC=up|down|ignore a line.",
        type="linelist",
    )


@dataclass(frozen=True)
class GateSettings:
    """The gate's resolved settings (CLI > ini > mlexp.yaml > default)."""

    spec: BaselineSpec | None = None
    baseline_file: Path | None = None
    #: The baseline file as shown: relative to the rootdir when inside it.
    file_label: str = ""
    update: bool = False
    require: bool = False
    promote: bool = False
    report_md: Path | None = None
    default_tolerance: Tolerance = regression.DEFAULT_TOLERANCE
    tolerances: Mapping[str, Tolerance] = field(default_factory=dict)
    directions: Mapping[str, str] = field(default_factory=dict)

    @property
    def compares(self) -> bool:
        """A baseline source is given and this session compares with it."""
        return self.spec is not None or (self.baseline_file is not None and not self.update)

    @property
    def source(self) -> str:
        if self.spec is not None:
            return f"--mlexp-baseline {self.spec}"
        return self.file_label


def configure(config: pytest.Config, settings: TrackingConfig) -> None:
    """Register the regression gate (it judges only items with bounds or a baseline)."""
    config.pluginmanager.register(RegressionGate(config, gate_settings(config)), GATE_NAME)


def gate_settings(config: pytest.Config) -> GateSettings:
    """Resolve the gate's settings, or raise ``UsageError`` naming the source and the value."""
    rootdir = Path(config.rootpath)
    spec = None
    found = lookup(config, option="mlexp_baseline", key="baseline")
    if found is not None:
        try:
            spec = parse_spec(str(found[0]))
        except ValueError as exc:
            raise pytest.UsageError(f"{found[1]}: {exc}; accepted: {ACCEPTED_SPECS}") from None
    baseline_file = None
    found_file = lookup(config, option="mlexp_baseline_file", key="baseline_file")
    if found_file is not None:
        baseline_file = Path(str(found_file[0]))
        if not baseline_file.is_absolute():
            base = Path.cwd() if found_file[1].startswith("--") else rootdir
            baseline_file = base / baseline_file
    if found is not None and found_file is not None:
        raise pytest.UsageError(
            f"{found[1]} and {found_file[1]} are two baseline sources; give only one "
            "(the store with --mlexp-baseline, or a file with --mlexp-baseline-file)"
        )
    update = bool(config.getoption("mlexp_update_baseline"))
    if update and baseline_file is None:
        raise pytest.UsageError(
            "--mlexp-update-baseline: no baseline file to write; "
            "give one with --mlexp-baseline-file PATH"
        )
    default = regression.DEFAULT_TOLERANCE
    found_tol = lookup(config, option="mlexp_tolerance", key="tolerance")
    if found_tol is not None:
        default = _tolerance(found_tol[0], found_tol[1])
    source, yaml_values = settings_file(config)
    tolerances = {
        **_yaml_mapping(yaml_values, "tolerances", source, _tolerance),
        **_ini_pairs(config, "mlexp_tolerances", _tolerance),
    }
    directions = {
        **_yaml_mapping(yaml_values, "directions", source, _direction),
        **_ini_pairs(config, "mlexp_directions", _direction),
    }
    report_md = config.getoption("mlexp_report_md")
    return GateSettings(
        spec=spec,
        baseline_file=baseline_file,
        update=update,
        require=bool(config.getoption("mlexp_require_baseline"))
        or bool(config.getini("mlexp_require_baseline")),
        promote=bool(config.getoption("mlexp_promote_baseline")),
        file_label=_display_path(baseline_file, rootdir) if baseline_file else "",
        report_md=Path(report_md).absolute() if report_md else None,
        default_tolerance=default,
        tolerances=MappingProxyType(tolerances),
        directions=MappingProxyType(directions),
    )


def _tolerance(value: Any, where: str) -> Tolerance:
    try:
        return regression.parse_tolerance(value)
    except RuleError as exc:
        raise pytest.UsageError(
            f"{where}: {exc}; accepted forms: {regression.ACCEPTED_TOLERANCES}"
        ) from None


def _direction(value: Any, where: str) -> str:
    try:
        return regression.parse_direction(value)
    except RuleError as exc:
        raise pytest.UsageError(
            f"{where}: {exc}; accepted: {regression.ACCEPTED_DIRECTIONS}"
        ) from None


def _yaml_mapping(values: Mapping[str, Any], key: str, source: str, parse: Any) -> dict[str, Any]:
    raw = values.get(key)
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise pytest.UsageError(
            f"{source}: {key} must be a mapping of metric: value, got {type(raw).__name__}"
        )
    return {str(metric): parse(value, f"{source} {key}.{metric}") for metric, value in raw.items()}


def _ini_pairs(config: pytest.Config, name: str, parse: Any) -> dict[str, Any]:
    pairs = {}
    for line in config.getini(name):
        metric, sep, value = str(line).partition("=")
        if not sep or not metric.strip():
            raise pytest.UsageError(
                f"ini {name}: malformed line {line!r}; expected METRIC=VALUE, e.g. accuracy=0.01"
            )
        pairs[metric.strip()] = parse(value.strip(), f"ini {name} {metric.strip()}")
    return pairs


# -- marker rules -----------------------------------------------------------------


def item_rules(item: pytest.Item, settings: GateSettings) -> Rules:
    """The item's rules: project settings, then module and function markers, closest winning."""
    where = f"@pytest.mark.mlexp on {item.nodeid}"
    bounds: dict[str, tuple[regression.Bound, ...]] = {}
    tolerances = dict(settings.tolerances)
    directions = dict(settings.directions)
    default = settings.default_tolerance
    for marker in reversed(list(item.iter_markers("mlexp"))):
        expect = marker.kwargs.get("expect")
        if expect is not None:
            if not isinstance(expect, Mapping):
                raise pytest.UsageError(
                    f"{where}: expect must be a dict of metric -> expression such as "
                    f"expect={{'accuracy': '>= 0.9'}}, got {expect!r}"
                )
            for metric, expression in expect.items():
                try:
                    bounds[str(metric)] = regression.parse_bounds(expression)
                except RuleError as exc:
                    raise pytest.UsageError(
                        f"{where}: expect[{metric!r}]: {exc}; accepted forms: "
                        f"{regression.ACCEPTED_BOUNDS}"
                    ) from None
        tolerance = marker.kwargs.get("tolerance")
        if tolerance is not None:
            per_metric = isinstance(tolerance, Mapping) and not set(tolerance) <= {
                "abs",
                "rel",
                "std",
            }
            if not per_metric:
                default = _tolerance(tolerance, f"{where}: tolerance")
            else:
                for metric, value in tolerance.items():
                    parsed = _tolerance(value, f"{where}: tolerance[{metric!r}]")
                    if metric == "*":
                        default = parsed
                    else:
                        tolerances[str(metric)] = parsed
        direction = marker.kwargs.get("direction")
        if direction is not None:
            if not isinstance(direction, Mapping):
                raise pytest.UsageError(
                    f"{where}: direction must be a dict of metric -> 'up' | 'down' | 'ignore' "
                    f"such as direction={{'throughput': 'up'}}, got {direction!r}"
                )
            for metric, value in direction.items():
                directions[str(metric)] = _direction(value, f"{where}: direction[{metric!r}]")
    return Rules(
        bounds=MappingProxyType(bounds),
        tolerances=MappingProxyType(tolerances),
        directions=MappingProxyType(directions),
        default_tolerance=default,
    )


# -- the plugin ---------------------------------------------------------------------


class RegressionGate:
    """Judges every tracked item's metrics once its function has returned."""

    def __init__(self, config: pytest.Config, settings: GateSettings) -> None:
        self.config = config
        self.settings = settings
        #: Verdicts of the session's items (all workers), in the order they arrived.
        self.verdicts: list[dict[str, Any]] = []
        self._store_baselines: dict[str, Baseline] | None = None
        self._store_error: str | None = None
        self._file_entries: dict[str, dict[str, float]] | None = None
        self._updated = 0
        #: Cell test id -> the rules of its repeats (JSON), from call reports.
        self.cell_rules: dict[str, dict[str, Any]] = {}
        self.cell_error: str | None = None

    # -- collection ------------------------------------------------------------

    def pytest_sessionstart(self) -> None:
        if self.settings.baseline_file is not None:
            self._file()  # a broken file stops the session before anything runs

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        for item in items:
            if is_tracked(item):
                item.stash[RULES_KEY] = item_rules(item, self.settings)

    # -- judging --------------------------------------------------------------

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Any:
        result = yield
        item_run = item.stash.get(RUN_KEY, None)
        rules = item.stash.get(RULES_KEY, None)
        if item_run is not None and rules is not None:
            self._judge(item, item_run.run, rules)
        return result

    def _judge(self, item: pytest.Item, run: ExperimentRun, rules: Rules) -> None:
        settings = self.settings
        repeat = is_repeat(item)
        if repeat:
            # The cell's mean is judged at session end; its rules travel to the controller.
            item.stash[CELL_KEY] = {"cell": cell_nodeid(item.nodeid), "rules": rules_to_json(rules)}
        if not (((settings.compares or settings.update) and not repeat) or rules.bounds):
            for name, value in sorted(run.metrics.items()):
                item.user_properties.append((name, value))
            return
        # What reached the store, fluent API and autolog included.
        run.flush()
        metrics = dict(run.client.get_run(run.run_id).data.metrics)
        for name, value in sorted(metrics.items()):
            item.user_properties.append((name, value))
        baseline: Baseline | None = None
        problem = None
        if settings.compares and not repeat:
            baseline, problem = self._baseline(item)
        rows = regression.compare(metrics, baseline.metrics if baseline else None, rules)
        failing = [row for row in rows if row.verdict in FAILING]
        verdict = verdict_of(rows, settings.compares and not repeat, baseline)
        run.set_tags(verdict_tags(verdict, baseline))
        item.user_properties.append(("mlexp.regression", verdict))
        if baseline is not None:
            for name, value in sorted(baseline.metrics.items()):
                item.user_properties.append((f"{name}.baseline", value))
        item.stash[VERDICT_KEY] = {
            "nodeid": item.nodeid,
            "verdict": verdict,
            "source": baseline.source if baseline else None,
            "rows": [row.as_dict() for row in rows],
            "metrics": metrics,
            "repeat": repeat,
        }
        if failing:
            pytest.fail(failure_message(rows, failing, baseline), pytrace=False)
        if verdict == NO_BASELINE and settings.require:
            reason = problem or f"no baseline for {item.nodeid} in {settings.source}"
            pytest.fail(
                f"mlexp: {reason} (--mlexp-require-baseline). Record one first: "
                f"{_how_to_record(settings)}",
                pytrace=False,
            )

    def _baseline(self, item: pytest.Item) -> tuple[Baseline | None, str | None]:
        settings = self.settings
        if settings.baseline_file is not None:
            metrics = self._file().get(item.nodeid)
            if metrics is None:
                return None, None
            return Baseline(metrics, settings.file_label), None
        if self._store_baselines is None:
            self._store_baselines = self._load_store(item.session)
        if self._store_error is not None:
            pytest.fail(f"mlexp: {self._store_error}", pytrace=False)
        return self._store_baselines.get(item.nodeid), None

    def _load_store(self, session: pytest.Session) -> dict[str, Baseline]:
        from .baselines import from_store

        assert self.settings.spec is not None
        core = self.config.pluginmanager.get_plugin(PLUGIN_NAME)
        assert isinstance(core, MlexpSession)
        tracker = core.tracker
        items = [item for item in session.items if is_tracked(item)]
        experiments = {str(_marker_experiment(item) or core.settings.experiment) for item in items}
        try:
            return from_store(
                tracker.client,
                self.settings.spec,
                session_id=core.settings.session_id,
                experiment_ids=[tracker.experiment_id(name) for name in experiments],
                nodeids=[item.nodeid for item in items],
            )
        except ValueError as exc:
            self._store_error = str(exc)
            return {}

    def _file(self) -> dict[str, dict[str, float]]:
        if self._file_entries is None:
            from .baselines import read_file

            assert self.settings.baseline_file is not None
            try:
                self._file_entries = read_file(self.settings.baseline_file)
            except ValueError as exc:
                raise pytest.UsageError(f"--mlexp-baseline-file: {exc}") from None
        return self._file_entries

    # -- reports ---------------------------------------------------------------

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
        report: pytest.TestReport = yield
        if report.when == "call":
            verdict = item.stash.get(VERDICT_KEY, None)
            if verdict is not None:
                report.mlexp_regression = verdict  # type: ignore[attr-defined]
            cell = item.stash.get(CELL_KEY, None)
            if cell is not None:
                report.mlexp_cell = cell  # type: ignore[attr-defined]
        return report

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        verdict = getattr(report, "mlexp_regression", None)
        if verdict is not None and report.when == "call":
            self.verdicts.append({**verdict, "passed": report.passed})
        cell = getattr(report, "mlexp_cell", None)
        if cell is not None and report.when == "call":
            self.cell_rules.setdefault(str(cell["cell"]), cell["rules"])

    def pytest_mlexp_run_ending(
        self, item: pytest.Item, run: ExperimentRun, status: str, outcome: str
    ) -> None:
        if self.settings.promote and outcome == "passed":
            run.set_tag(PROMOTED_TAG, "true")
        verdict = item.stash.get(VERDICT_KEY, None)
        if verdict is not None and verdict["verdict"] == REGRESSED:
            # One line for the run's failure reason, not the whole table.
            failing = [Row.from_dict(r) for r in verdict["rows"] if r["verdict"] in FAILING]
            run.set_tag("mlexp.error", "; ".join(_row_summary(row) for row in failing)[:500])

    # -- session end (controller) ------------------------------------------------

    # trylast: the grid plugin must have logged the cell runs' means first.
    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if hasattr(self.config, "workerinput"):
            return
        if self.settings.compares or self.settings.update or self.settings.promote:
            self._judge_cells(session)
        if self.settings.update:
            self._update_file()
        if self.settings.report_md is not None and self.verdicts:
            text = markdown_report(self.verdicts, self.settings)
            self.settings.report_md.parent.mkdir(parents=True, exist_ok=True)
            self.settings.report_md.write_text(text, encoding="utf-8")
            summary = os.environ.get("GITHUB_STEP_SUMMARY", "").strip()
            if summary:
                with open(summary, "a", encoding="utf-8") as f:
                    f.write(text + "\n")

    def _update_file(self) -> None:
        from .baselines import write_file

        assert self.settings.baseline_file is not None
        entries = dict(self._file())
        updated = 0
        for verdict in self.verdicts:
            if verdict["passed"] and not verdict.get("repeat"):
                entries[verdict["nodeid"]] = dict(verdict["metrics"])
                updated += 1
        if updated:
            write_file(self.settings.baseline_file, entries)
        self._updated = updated

    def _judge_cells(self, session: pytest.Session) -> None:
        """Judge the mean metrics of each repeated cell of the session against its baseline.

        Runs on the controller after ``grid.py`` completed the cell runs (the
        mean exists only once every repeat ran, maybe on several workers). A
        failing cell fails the session, and joins ``self.verdicts``.
        """
        core = self.config.pluginmanager.get_plugin(PLUGIN_NAME)
        if not isinstance(core, MlexpSession):
            return
        cells: dict[str, tuple[str, str]] = {}
        for result in core.results:
            if result.get("cell") and result.get("cell_run_id"):
                cells.setdefault(
                    str(result["cell"]), (str(result["cell_run_id"]), str(result["experiment"]))
                )
        if not cells:
            return
        settings = self.settings
        failed = False
        try:
            client = core.tracker.client
            runs = {cell: client.get_run(run_id) for cell, (run_id, _) in cells.items()}
            store: dict[str, Baseline] = {}
            if settings.spec is not None:
                from .baselines import from_store

                store = from_store(
                    client,
                    settings.spec,
                    session_id=core.settings.session_id,
                    experiment_ids={core.tracker.experiment_id(e) for _, e in cells.values()},
                    nodeids=cells,
                    cells=True,
                )
            for cell, run in runs.items():
                if run.info.status != "FINISHED":
                    continue  # a repeat failed (its item failed) or the cell was not completed
                if not (settings.compares or settings.update):
                    client.set_tag(run.info.run_id, PROMOTED_TAG, "true")  # --mlexp-promote only
                    continue
                if settings.baseline_file is not None:
                    entry = self._file().get(cell)
                    baseline = Baseline(entry, settings.file_label) if entry is not None else None
                else:
                    baseline = store.get(cell)
                verdict = self._judge_cell(cell, run, baseline)
                failed = failed or not verdict["passed"]
                self.verdicts.append(verdict)
        except Exception as exc:
            from .redaction import redact_text

            self.cell_error = (
                f"could not judge the repeated cells in {core.settings.display_uri}: "
                f"{type(exc).__name__}: {redact_text(str(exc))[:300]}"
            )
            failed = True
        if failed and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def _judge_cell(self, cell: str, run: Any, baseline: Baseline | None) -> dict[str, Any]:
        """Compare one cell run's means with its baseline; tag the run with the verdict."""
        from mlflow.entities import RunTag

        settings = self.settings
        raw = self.cell_rules.get(cell)
        rules = rules_from_json(raw) if raw is not None else _project_rules(settings)
        metrics = dict(run.data.metrics)
        rows = regression.compare(metrics, baseline.metrics if baseline else None, rules)
        verdict = verdict_of(rows, settings.compares, baseline)
        failing = [row for row in rows if row.verdict in FAILING]
        tags = verdict_tags(verdict, baseline)
        if failing:
            tags["mlexp.error"] = "; ".join(_row_summary(row) for row in failing)[:500]
        if settings.promote:
            tags[PROMOTED_TAG] = "true"
        problem = None
        if verdict == NO_BASELINE and settings.require:
            problem = (
                f"no baseline for repeated cell {cell} in {settings.source} "
                f"(--mlexp-require-baseline). Record one first: {_how_to_record(settings)}"
            )
        if failing or problem:
            # Like a failed item: never the "latest" baseline of a later session.
            tags["mlexp.outcome"] = "failed"
            tags.pop(PROMOTED_TAG, None)
        run_id = str(run.info.run_id)
        client = self.config.pluginmanager.getplugin(PLUGIN_NAME).tracker.client
        client.log_batch(run_id, tags=[RunTag(k, v) for k, v in tags.items()])
        if failing or problem:
            client.set_terminated(run_id, "FAILED")
        return {
            "nodeid": cell,
            "verdict": verdict,
            "source": baseline.source if baseline else None,
            "rows": [row.as_dict() for row in rows],
            "metrics": metrics,
            "passed": not failing and problem is None,
            "cell_run_id": run_id,
            "repeats": run.data.tags.get("mlexp.repeats", ""),
            "problem": problem,
        }

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if hasattr(self.config, "workerinput"):
            return
        write_summary(terminalreporter, self.verdicts, self.settings, self._updated)
        if self.cell_error is not None:
            terminalreporter.write_line(f"mlexp: {self.cell_error}", red=True)


def verdict_of(rows: list[Row], compares: bool, baseline: Baseline | None) -> str:
    """regressed, no-baseline, improved or passed, from a comparison's rows."""
    if any(row.verdict in FAILING for row in rows):
        return REGRESSED
    if compares and baseline is None:
        return NO_BASELINE
    if any(row.verdict == regression.IMPROVED for row in rows):
        return IMPROVED
    return PASSED


def verdict_tags(verdict: str, baseline: Baseline | None) -> dict[str, str]:
    tags = {"mlexp.regression": verdict}
    if baseline is not None:
        tags["mlexp.baseline.source"] = baseline.source
        if baseline.run_id:
            tags["mlexp.baseline.run_id"] = baseline.run_id
    return tags


# -- repeated cells -------------------------------------------------------------------


def is_repeat(item: pytest.Item) -> bool:
    """Whether ``item`` is one seed of a repeated cell (``repeats=``/``seeds=``)."""
    callspec = getattr(item, "callspec", None)
    if callspec is None or SEED_PARAM not in callspec.params:
        return False
    return repeat_seeds(item) is not None


def rules_to_json(rules: Rules) -> dict[str, Any]:
    """The rules a cell's mean is judged by, for a report (bounds stay with each repeat)."""
    return {
        "tolerances": {k: asdict(v) for k, v in rules.tolerances.items()},
        "directions": dict(rules.directions),
        "default": asdict(rules.default_tolerance),
    }


def rules_from_json(data: Mapping[str, Any]) -> Rules:
    return Rules(
        tolerances=MappingProxyType(
            {str(k): Tolerance(**v) for k, v in data.get("tolerances", {}).items()}
        ),
        directions=MappingProxyType(dict(data.get("directions", {}))),
        default_tolerance=Tolerance(**data["default"]),
    )


def _project_rules(settings: GateSettings) -> Rules:
    return Rules(
        tolerances=settings.tolerances,
        directions=settings.directions,
        default_tolerance=settings.default_tolerance,
    )


def _marker_experiment(item: pytest.Item) -> str | None:
    experiment = None
    for marker in reversed(list(item.iter_markers("mlexp"))):
        experiment = marker.kwargs.get("experiment") or experiment
    return experiment


def _display_path(path: Path, rootdir: Path) -> str:
    try:
        return str(path.relative_to(rootdir))
    except ValueError:
        return str(path)


def _how_to_record(settings: GateSettings) -> str:
    if settings.baseline_file is not None:
        return f"pytest --mlexp-baseline-file {settings.baseline_file} --mlexp-update-baseline"
    if settings.spec is not None and settings.spec.kind == "promoted":
        return "pytest --mlexp-promote-baseline on the reference code"
    return "run the experiments once on the reference code"


def failure_message(rows: list[Row], failing: list[Row], baseline: Baseline | None) -> str:
    """The item's failure: a headline, the verdict table, and a last line naming the culprits."""
    against = f" against baseline {baseline.source}" if baseline is not None else ""
    noun = "metric" if len(failing) == 1 else "metrics"
    lines = [f"mlexp: {len(failing)} {noun} out of bounds{against}", ""]
    lines.append(regression.format_table(rows))
    lines.append("")
    lines.append("; ".join(_row_summary(row) for row in failing))
    return "\n".join(lines)


def _row_summary(row: Row) -> str:
    if row.verdict == regression.MISSING:
        return f"{row.metric} not logged (baseline {regression.format_number(row.baseline)})"
    if row.baseline is None:
        return f"{row.metric} = {row.current:.4g}, {row.allowed}"
    return (
        f"{row.metric} {row.verdict.lower()}: {row.baseline:.4g} -> {row.current:.4g}, "
        f"change {row.change_text}, allowed {row.allowed}"
    )


def write_summary(
    terminalreporter: Any,
    verdicts: list[dict[str, Any]],
    settings: GateSettings,
    updated: int,
) -> None:
    """The regressions and improvements of the session, and tests without a baseline."""
    if not verdicts:
        return
    title = "mlexp: metric gate"
    if settings.compares:
        title += f" against {settings.source}"
    terminalreporter.write_sep("=", title)
    counts: dict[str, int] = {}
    for verdict in verdicts:
        counts[verdict["verdict"]] = counts.get(verdict["verdict"], 0) + 1
        rows = [Row.from_dict(row) for row in verdict["rows"]]
        for row in rows:
            if row.verdict in FAILING or row.verdict == regression.IMPROVED:
                markup = {"red": True} if row.verdict in FAILING else {"green": True}
                terminalreporter.write_line(
                    f"{row.verdict:<10} {verdict['nodeid']}: {_row_summary(row)}", **markup
                )
    for verdict in verdicts:
        # A repeated cell fails the session, not an item: its table is shown here.
        if verdict.get("cell_run_id") and not verdict["passed"]:
            rows = [Row.from_dict(row) for row in verdict["rows"]]
            failing = [row for row in rows if row.verdict in FAILING]
            terminalreporter.write_line(
                f"repeated cell {verdict['nodeid']} (mean of {verdict['repeats']} repeats, "
                f"cell run {verdict['cell_run_id']}) fails the session:",
                red=True,
            )
            if failing:
                baseline = Baseline({}, verdict["source"]) if verdict["source"] else None
                terminalreporter.write_line(failure_message(rows, failing, baseline))
            if verdict.get("problem"):
                terminalreporter.write_line(f"mlexp: {verdict['problem']}", red=True)
    missing = [v["nodeid"] for v in verdicts if v["verdict"] == NO_BASELINE]
    if missing:
        shown = ", ".join(missing[:5]) + (f" (+{len(missing) - 5})" if len(missing) > 5 else "")
        terminalreporter.write_line(
            f"no baseline for {len(missing)} tests (passed unchecked): {shown}", yellow=True
        )
    keys = (REGRESSED, IMPROVED, PASSED, NO_BASELINE)
    parts = [f"{counts[key]} {key}" for key in keys if counts.get(key)]
    terminalreporter.write_line(f"{len(verdicts)} tests judged: " + ", ".join(parts or ["-"]))
    if settings.update:
        terminalreporter.write_line(f"baseline file {settings.file_label}: {updated} tests updated")


def markdown_report(verdicts: list[dict[str, Any]], settings: GateSettings) -> str:
    """A markdown section for a pull request or ``$GITHUB_STEP_SUMMARY``."""
    regressed = sum(v["verdict"] == REGRESSED for v in verdicts)
    improved = sum(v["verdict"] == IMPROVED for v in verdicts)
    missing = [v["nodeid"] for v in verdicts if v["verdict"] == NO_BASELINE]
    against = f" against `{settings.source}`" if settings.compares else ""
    lines = [
        "## Model metrics",
        "",
        f"{len(verdicts)} experiments judged{against}: {regressed} regressed, {improved} improved, "
        f"{len(missing)} without baseline.",
        "",
    ]
    pairs = [(v["nodeid"], Row.from_dict(row)) for v in verdicts for row in v["rows"]]
    if pairs:
        lines.append(regression.markdown_table(pairs))
    if missing:
        lines.append("No baseline: " + ", ".join(f"`{n}`" for n in missing))
        lines.append("")
    return "\n".join(lines)
