"""Grids: one parent run per parametrized experiment, repeats with seeds, stale-run sweeping.

Run hierarchy in a session (``mlflow.parentRunId`` links each level)::

    experiment_ridge                 grid parent (tag mlexp.kind=grid)
    ├── experiment_ridge[0.1]        one run per cell
    └── experiment_ridge[1.0]

and with ``@pytest.mark.mlexp(repeats=3)`` (or ``seeds=[...]``)::

    experiment_ridge                 grid parent
    └── experiment_ridge[0.1]        cell run (mlexp.kind=cell): mean as <metric>,
        ├── experiment_ridge[0.1-seed0]        standard deviation as <metric>.std
        ├── experiment_ridge[0.1-seed1]        one run per repeat
        └── experiment_ridge[0.1-seed2]

Group runs (grid parents and cell runs) are found or created by the process
that runs the first item needing them, by a tag that hashes the session id
and the group's key: xdist workers and CI shards sharing ``MLEXP_SESSION_ID``
find the same parent. A file lock serializes the search-then-create on one
machine; across machines a second search resolves races by keeping the
oldest run. Group runs stay RUNNING while the grid runs, and are completed
(counts, best cell, mean and std) by the controller at session end, from the
children read back from the store.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import socket
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .config import TrackingConfig, lookup
from .locks import machine_lock
from .redaction import redact_text
from .session import PLUGIN_NAME, marker_options

if TYPE_CHECKING:
    from .session import MlexpSession
    from .tracking import Tracker

#: Metrics whose best value is the highest / the lowest, by name token.
MAX_WORDS = frozenset(
    (
        *("accuracy", "acc", "f1", "auc", "roc", "precision", "recall", "r2", "score"),
        *("map", "ndcg", "iou", "dice", "bleu", "rouge", "top1", "top5", "sharpe"),
    )
)
MIN_WORDS = frozenset(
    (
        *("loss", "rmse", "mae", "mse", "mape", "error", "err", "logloss", "perplexity"),
        *("latency", "time", "wer", "cer"),
    )
)
SEED_PARAM = "seed"
_SEED_ID = re.compile(r"(?:-|\[)seed\d+\]$")


@dataclass(frozen=True)
class BestSpec:
    """Which metric decides a grid's best cell, and in which direction."""

    metric: str | None
    direction: str | None = None  # "max" or "min"; None: guessed from the name

    @classmethod
    def parse(cls, text: str | None, source: str) -> BestSpec:
        """``"r2"``, ``"loss:min"`` or ``"score:max"``; empty: the first metric."""
        if not text:
            return cls(None)
        name, _, direction = str(text).strip().partition(":")
        direction = direction.strip().lower()
        if not name.strip() or direction not in ("", "max", "min"):
            raise pytest.UsageError(
                f"{source}: bad best metric {text!r}; expected NAME, NAME:max or NAME:min, "
                "e.g. r2 or val_loss:min"
            )
        return cls(name.strip(), direction or None)

    def __str__(self) -> str:
        if self.metric is None:
            return ""
        return f"{self.metric}:{self.direction}" if self.direction else self.metric


def direction_of(metric: str) -> str:
    """``min`` for loss-like names (loss, rmse, mae, mse, error...), else ``max``."""
    tokens = [t for t in re.split(r"[^a-z0-9]+", metric.lower()) if t]
    if any(t in MIN_WORDS for t in tokens):
        return "min"
    return "max"


def pick_best(
    cells: Sequence[Mapping[str, Any]], spec: BestSpec
) -> tuple[Mapping[str, Any], str, str] | None:
    """The best passed cell, the metric and the direction used; None if nothing is comparable.

    ``cells`` are dicts with ``metrics``; without a named metric, the first
    metric of the first cell that has one decides.
    """
    metric = spec.metric
    if metric is None:
        metric = next((next(iter(c["metrics"])) for c in cells if c["metrics"]), None)
        if metric is None:
            return None
    direction = spec.direction or direction_of(metric)
    scored = [
        c
        for c in cells
        if isinstance(c["metrics"].get(metric), int | float)
        and not math.isnan(c["metrics"][metric])
    ]
    if not scored:
        return None
    sign = 1.0 if direction == "max" else -1.0
    best = max(scored, key=lambda c: sign * float(c["metrics"][metric]))
    return best, metric, direction


def cell_nodeid(nodeid: str) -> str:
    """The node id of a repeat's cell: ``f[0.1-seed2]`` -> ``f[0.1]``, ``f[seed2]`` -> ``f``."""
    match = _SEED_ID.search(nodeid)
    if match is None:
        return nodeid
    return nodeid[: match.start()] + ("]" if match.group().startswith("-") else "")


def group_tag(session_id: str, kind: str, key: str) -> str:
    """The value of ``mlexp.group`` shared by every process looking for the same group run."""
    return hashlib.sha1(f"{session_id}\0{kind}\0{key}".encode()).hexdigest()[:24]


def host_name() -> str:
    return socket.gethostname()


def process_alive(pid: int) -> bool:
    """Whether ``pid`` is a live process on this machine (zombies count as dead)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


@dataclass
class ItemGroups:
    """The group runs of one item, put on its run summary."""

    grid: str | None = None
    grid_run_id: str | None = None
    cell: str | None = None
    cell_run_id: str | None = None
    best: str = ""


GROUPS_KEY = pytest.StashKey[ItemGroups]()


def add_options(group: Any, parser: pytest.Parser) -> None:
    group.addoption(
        "--mlexp-best-metric",
        dest="mlexp_best_metric",
        metavar="NAME[:max|min]",
        default=None,
        help="Metric that picks a grid's best cell (default: the first metric; "
        "direction guessed from the name, e.g. loss/rmse: min, r2/accuracy: max).",
    )
    parser.addini("mlexp_best_metric", "Metric that picks a grid's best cell.", default="")


def configure(config: pytest.Config, settings: TrackingConfig) -> None:
    config.pluginmanager.register(GridPlugin(config, settings), "mlexp-grid")


class GridPlugin:
    """Registered as ``mlexp-grid``; runs in the controller and in every xdist worker."""

    def __init__(self, config: pytest.Config, settings: TrackingConfig) -> None:
        self.config = config
        self.settings = settings
        found = lookup(config, option="mlexp_best_metric", key="best_metric")
        self.best = BestSpec.parse(*(found if found else (None, "")))
        workerinput = getattr(config, "workerinput", None)
        #: The controller's pid: group runs belong to it, as they outlive workers.
        self.owner_pid = int((workerinput or {}).get("mlexp_controller_pid", os.getpid()))
        self._groups: dict[str, str] = {}  # group tag -> run id, in this process
        self._order: dict[str, int] = {}  # node id -> collection index

    # -- xdist -----------------------------------------------------------------

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        node.workerinput["mlexp_controller_pid"] = os.getpid()

    # -- collection: repeats ---------------------------------------------------

    @pytest.hookimpl(trylast=True)
    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        seeds = repeat_seeds(metafunc.definition)
        if seeds is None:
            return
        if SEED_PARAM not in metafunc.fixturenames:
            raise pytest.UsageError(
                f"@pytest.mark.mlexp(repeats/seeds) on {metafunc.definition.nodeid}: the "
                f"function must take a {SEED_PARAM!r} argument to receive each repeat's seed"
            )
        metafunc.parametrize(SEED_PARAM, seeds, ids=[f"seed{i}" for i in range(len(seeds))])

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        self._order = {item.nodeid: index for index, item in enumerate(items)}

    # -- run creation ----------------------------------------------------------

    def pytest_mlexp_run_tags(self, item: pytest.Item) -> dict[str, str]:
        tags = {"mlexp.host": host_name(), "mlexp.pid": str(os.getpid())}
        callspec = getattr(item, "callspec", None)
        if callspec is None:
            return tags
        options = marker_options(item)
        repeated = repeat_seeds(item) is not None and SEED_PARAM in callspec.params
        grid_params = {
            k: v for k, v in callspec.params.items() if not (repeated and k == SEED_PARAM)
        }
        groups = ItemGroups(
            best=str(
                BestSpec.parse(options.get("best"), "mark") if options.get("best") else self.best
            )
        )
        experiment = str(options.get("experiment") or self.settings.experiment)
        function_id = item.nodeid.split("[", 1)[0]
        base_tags = {
            **self.settings.tags,
            **{str(k): str(v) for k, v in options.get("tags", {}).items()},
            "mlexp.grid": function_id,
        }
        if grid_params:
            groups.grid = function_id
            groups.grid_run_id = self._group(
                item,
                experiment,
                "grid",
                function_id,
                getattr(item, "originalname", item.name),
                {**base_tags, "mlexp.best_metric": groups.best},
            )
            tags["mlexp.grid"] = function_id
            tags["mlflow.parentRunId"] = groups.grid_run_id
        if repeated:
            cell = cell_nodeid(item.nodeid)
            cell_tags = {**base_tags, "mlexp.cell": cell}
            if groups.grid_run_id is not None:
                cell_tags["mlflow.parentRunId"] = groups.grid_run_id
            groups.cell = cell
            groups.cell_run_id = self._group(
                item, experiment, "cell", cell, cell.rpartition("::")[2], cell_tags
            )
            tags["mlexp.cell"] = cell
            tags["mlflow.parentRunId"] = groups.cell_run_id
        item.stash[GROUPS_KEY] = groups
        return tags

    def _group(
        self,
        item: pytest.Item,
        experiment: str,
        kind: str,
        key: str,
        name: str,
        tags: Mapping[str, str],
    ) -> str:
        group = group_tag(self.settings.session_id, kind, key)
        if group not in self._groups:
            session: MlexpSession = self.config.pluginmanager.getplugin(PLUGIN_NAME)
            source = str(session._standard_tags(item)["mlflow.source.name"])
            all_tags = {
                **tags,
                "mlexp.kind": kind,
                "mlexp.group": group,
                "mlexp.session_id": self.settings.session_id,
                "mlexp.host": host_name(),
                "mlexp.pid": str(self.owner_pid),
                "mlflow.source.name": source,
                "mlflow.source.type": "LOCAL",
                "mlflow.runName": name,
            }
            self._groups[group] = find_or_create_group(
                session.tracker, experiment, group, all_tags, self.settings
            )
        return self._groups[group]

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
        report: pytest.TestReport = yield
        summary = getattr(report, "mlexp_run", None)
        if summary is not None:
            # xdist workers all collect the same items: the controller sorts by this.
            summary["index"] = self._order.get(item.nodeid, len(self._order))
        groups = item.stash.get(GROUPS_KEY, None)
        if summary is not None and groups is not None:
            summary.update(
                grid=groups.grid,
                grid_run_id=groups.grid_run_id,
                cell=groups.cell,
                cell_run_id=groups.cell_run_id,
                best=groups.best,
            )
        return report

    # -- session end (controller) -------------------------------------------------

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if hasattr(self.config, "workerinput"):
            return
        mlexp: MlexpSession | None = self.config.pluginmanager.get_plugin(PLUGIN_NAME)
        if mlexp is None or not mlexp.results:
            return
        # The summary lists runs in collection order, with or without xdist.
        mlexp.results.sort(key=lambda r: int(r.get("index", 1 << 30)))
        from .tracking import TrackingUnavailable

        try:
            tracker = mlexp.tracker
        except (pytest.UsageError, TrackingUnavailable):
            return
        try:
            self.swept = sweep_dead_runs(tracker, {str(r["experiment"]) for r in mlexp.results})
            self.grids = complete_groups(tracker, mlexp.results, self.best)
        except Exception as exc:
            # A lost server: the next session's sweep closes what is left RUNNING.
            self.grids = [
                f"mlexp: could not complete grid parents in {self.settings.display_uri}: "
                f"{type(exc).__name__}: {redact_text(str(exc))[:300]}"
            ]

    @pytest.hookimpl(trylast=True)
    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if hasattr(self.config, "workerinput"):
            return
        swept = getattr(self, "swept", [])
        for summary in getattr(self, "grids", []):
            terminalreporter.write_line(summary)
        if swept:
            terminalreporter.write_line(
                f"mlexp: marked {len(swept)} runs KILLED whose process had died: "
                + ", ".join(swept[:5])
                + (" ..." if len(swept) > 5 else "")
            )


def repeat_seeds(item: Any) -> list[Any] | None:
    """The seeds of a repeated experiment (``repeats=N`` -> 0..N-1), or None."""
    options = marker_options(item)
    repeats, seeds = options.get("repeats"), options.get("seeds")
    where = f"@pytest.mark.mlexp on {item.nodeid}"
    if seeds is not None:
        if isinstance(seeds, str | bytes) or not isinstance(seeds, Sequence) or not seeds:
            raise pytest.UsageError(f"{where}: seeds must be a non-empty list, got {seeds!r}")
        if repeats is not None and repeats != len(seeds):
            raise pytest.UsageError(
                f"{where}: repeats={repeats!r} disagrees with {len(seeds)} seeds; give one of them"
            )
        return list(seeds)
    if repeats is None:
        return None
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise pytest.UsageError(f"{where}: repeats must be a positive integer, got {repeats!r}")
    return list(range(repeats))


# -- talking to the store (mlflow is imported by the tracker's client) ---------------------


def _search_group(tracker: Tracker, experiment_id: str, group: str) -> list[Any]:
    runs = tracker.client.search_runs(
        [experiment_id], filter_string=f"tags.`mlexp.group` = '{group}'", max_results=50
    )
    return sorted(runs, key=lambda r: (r.info.start_time or 0, r.info.run_id))


def find_or_create_group(
    tracker: Tracker,
    experiment: str,
    group: str,
    tags: Mapping[str, str],
    settings: TrackingConfig,
) -> str:
    """The id of the group run tagged ``mlexp.group=group``, created if no process made it yet."""
    experiment_id = tracker.experiment_id(experiment)
    # Serialize the processes of this machine looking for the same group run.
    with machine_lock("group", settings.tracking_uri, group):
        found = _search_group(tracker, experiment_id, group)
        if found:
            return str(found[0].info.run_id)
        run = tracker.client.create_run(
            experiment_id, tags=dict(tags), run_name=tags.get("mlflow.runName")
        )
        # Another machine (a CI shard) may have raced us: everyone keeps the oldest.
        found = _search_group(tracker, experiment_id, group)
        keep = str(found[0].info.run_id) if found else run.info.run_id
        if keep != run.info.run_id:
            tracker.client.delete_run(run.info.run_id)
        return keep


def _search_all(tracker: Tracker, experiment_ids: list[str], filter_string: str) -> list[Any]:
    runs: list[Any] = []
    token = None
    while True:
        page = tracker.client.search_runs(
            experiment_ids, filter_string=filter_string, max_results=1000, page_token=token
        )
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def sweep_dead_runs(tracker: Tracker, experiments: set[str]) -> list[str]:
    """Mark KILLED the RUNNING runs of this machine whose recorded process is gone.

    Only runs tagged with this host and a pid that no longer runs are
    touched: other people's live sessions on a shared server are safe.
    """
    experiment_ids = [tracker.experiment_id(name) for name in sorted(experiments)]
    host = host_name().replace("'", "")
    running = _search_all(
        tracker,
        experiment_ids,
        f"attributes.status = 'RUNNING' and tags.`mlexp.host` = '{host}'",
    )
    swept = []
    for run in running:
        pid = run.data.tags.get("mlexp.pid", "")
        if pid.isdigit() and not process_alive(int(pid)):
            tracker.client.set_tag(run.info.run_id, "mlexp.outcome", "interrupted")
            tracker.client.set_terminated(run.info.run_id, "KILLED")
            swept.append(run.info.run_id)
    return swept


def complete_groups(
    tracker: Tracker, results: Sequence[Mapping[str, Any]], default_best: BestSpec
) -> list[str]:
    """Fill and close the session's cell runs, then its grid parents; one line per grid."""
    cells = {r["cell_run_id"]: r for r in results if r.get("cell_run_id")}
    grids = {r["grid_run_id"]: r for r in results if r.get("grid_run_id")}
    for run_id in cells:
        _complete_cell(tracker, run_id)
    lines = []
    for run_id, example in grids.items():
        best = BestSpec.parse(example.get("best"), "best") if example.get("best") else default_best
        if best.metric is None:
            # "The first metric": as the experiment logged it, not as the store lists it.
            first = next(
                (k for r in results if r.get("grid_run_id") == run_id for k in r["metrics"]), None
            )
            best = BestSpec(first)
        lines.append(_complete_grid(tracker, run_id, example, best))
    return lines


def _children(tracker: Tracker, run_id: str) -> list[Any]:
    run = tracker.client.get_run(run_id)
    return _search_all(tracker, [run.info.experiment_id], f"tags.`mlflow.parentRunId` = '{run_id}'")


def _status_of(statuses: Sequence[str]) -> str:
    if "FAILED" in statuses:
        return "FAILED"
    if "KILLED" in statuses or "RUNNING" in statuses:
        return "KILLED"
    return "FINISHED"


def _complete_cell(tracker: Tracker, run_id: str) -> None:
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.utils.validation import MAX_PARAM_VAL_LENGTH

    repeats = _children(tracker, run_id)
    passed = [r for r in repeats if r.info.status == "FINISHED"]
    values: dict[str, list[float]] = {}
    for run in passed:
        for key, value in run.data.metrics.items():
            values.setdefault(key, []).append(float(value))
    now = _now_ms()
    metrics = []
    for key, series in values.items():
        metrics.append(Metric(key, statistics.fmean(series), now, 0))
        spread = statistics.stdev(series) if len(series) > 1 else 0.0
        metrics.append(Metric(f"{key}.std", spread, now, 0))
    existing = tracker.client.get_run(run_id).data.params
    params = {}
    if repeats:
        params = {
            k: v[:MAX_PARAM_VAL_LENGTH]
            for k, v in repeats[0].data.params.items()
            if k != SEED_PARAM and k not in existing
        }
    status = _status_of([r.info.status for r in repeats])
    tags = {
        "mlexp.repeats": str(len(repeats)),
        "mlexp.repeats_passed": str(len(passed)),
        "mlexp.outcome": "passed" if status == "FINISHED" else "failed",
    }
    tracker.client.log_batch(
        run_id,
        metrics=metrics,
        params=[Param(k, v) for k, v in params.items()],
        tags=[RunTag(k, v) for k, v in tags.items()],
    )
    tracker.client.set_terminated(run_id, status)


def _complete_grid(
    tracker: Tracker, run_id: str, example: Mapping[str, Any], spec: BestSpec
) -> str:
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.exceptions import MlflowException

    children = _children(tracker, run_id)
    statuses = [r.info.status for r in children]
    passed = statuses.count("FINISHED")
    failed = statuses.count("FAILED")
    killed = len(children) - passed - failed
    cells = [
        {"run": r, "metrics": dict(r.data.metrics), "params": dict(r.data.params)}
        for r in sorted(children, key=lambda r: r.info.run_name or "")
        if r.info.status == "FINISHED"
    ]
    picked = pick_best(cells, spec)
    now = _now_ms()
    tags = {
        "mlexp.grid_size": str(len(children)),
        "mlexp.passed": str(passed),
        "mlexp.failed": str(failed),
        "mlexp.killed": str(killed),
    }
    metrics = [
        Metric("mlexp.cells", len(children), now, 0),
        Metric("mlexp.passed", passed, now, 0),
        Metric("mlexp.failed", failed, now, 0),
    ]
    params: list[Any] = []
    described = "no comparable metric"
    if picked is not None:
        best, metric, direction = picked
        best_run = best["run"]
        tags.update(
            {
                "mlexp.best_run_id": best_run.info.run_id,
                "mlexp.best_run_name": best_run.info.run_name or "",
                "mlexp.best_metric": metric,
                "mlexp.best_direction": direction,
            }
        )
        metrics += [Metric(f"best.{k}", float(v), now, 0) for k, v in best["metrics"].items()]
        params = [Param(f"best.{k}", v) for k, v in best["params"].items()]
        shown = ", ".join(f"{k}={v}" for k, v in best["params"].items() if k != SEED_PARAM)
        described = (
            f"best {metric}={best['metrics'][metric]:.4g} ({direction}) "
            f"at {best_run.info.run_name}" + (f" [{shown}]" if shown and len(shown) < 80 else "")
        )
    tracker.client.log_batch(run_id, metrics=metrics, tags=[RunTag(k, v) for k, v in tags.items()])
    try:
        tracker.client.log_batch(run_id, params=params)
    except MlflowException:
        # A later shard of the same session found another best cell: params are
        # immutable, so the newer best goes to tags.
        tracker.client.log_batch(run_id, tags=[RunTag(f"mlexp.{p.key}", p.value) for p in params])
    tracker.client.set_terminated(run_id, _status_of(statuses))
    name = str(example.get("grid") or run_id)
    return (
        f"mlexp grid {name}: {len(children)} cells, {passed} passed, {failed} failed"
        + (f", {killed} killed" if killed else "")
        + f"; {described}; parent run {run_id}"
    )


def _now_ms() -> int:
    import time

    return int(time.time() * 1000)
