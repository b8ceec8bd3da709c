"""What one finished run hands to the rest of the session: a typed summary.

The summary is made in the process that ran the item. Under pytest-xdist it
crosses to the controller with the item's teardown report, as JSON, through
pytest's own ``pytest_report_to_serializable`` / ``pytest_report_from_serializable``
hooks; serially, it never leaves the process. The controller's session-end
work (grid parents, the gate, reports, the terminal) reads only summaries.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from .usage import Usage


@dataclass(frozen=True)
class GroupRefs:
    """The group runs an item's run belongs to: its grid's parent and its repeated cell."""

    grid: str | None = None
    grid_run_id: str | None = None
    cell: str | None = None
    cell_run_id: str | None = None
    #: The metric picking the grid's best cell (``"r2"``, ``"loss:min"``, ``""``): as given,
    #: else this run's default (``runs.metric_values.default_best``) once the run ended.
    best: str = ""
    #: A search's trial: the search's function (its test id) and its parent run.
    search: str | None = None
    search_run_id: str | None = None
    #: Where ``best`` comes from, as the grid line says it: ``returned``, ``best= marker``...
    best_source: str = ""


@dataclass(frozen=True)
class Row:
    """One line of a verdict table (the gate's ``compare`` makes them)."""

    metric: str
    baseline: float | None
    current: float | None
    allowed: str
    verdict: str
    #: ``up`` or ``down`` when the metric's direction was guessed from its name, not configured.
    guessed: str = ""

    @property
    def change(self) -> float | None:
        if self.baseline is None or self.current is None:
            return None
        return self.current - self.baseline

    @property
    def change_text(self) -> str:
        change = self.change
        if change is None or self.baseline is None:
            return "-"
        if abs(change) <= 1e-12 * max(1.0, abs(self.baseline)):
            change = 0.0  # float noise, e.g. 1 - 0.8 against 0.2
        text = f"{change:+.4g}"
        if self.baseline != 0:
            text += f" ({change / abs(self.baseline) * 100:+.2f}%)"
        return text

    def as_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "baseline": self.baseline,
            "current": self.current,
            "allowed": self.allowed,
            "verdict": self.verdict,
            "guessed": self.guessed,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Row:
        return cls(
            str(data["metric"]),
            data["baseline"],
            data["current"],
            str(data["allowed"]),
            str(data["verdict"]),
            str(data.get("guessed", "")),
        )


@dataclass(frozen=True)
class ReuseNote:
    """What ``--mlexp-reuse`` decided for an item, as its run's summary shows it."""

    #: The run whose results the item's run copies, or ``""`` when the item executes.
    reused_from: str = ""
    #: Why the item executes although it ran before (``code changed (helpers.py)``).
    reason: str = ""


@dataclass
class Verdict:
    """The gate's judgment of one item's metrics, or of a repeated cell's means."""

    nodeid: str
    #: passed, improved, regressed or no-baseline.
    verdict: str
    #: Where the baseline came from, e.g. ``run 1f2e... (latest)`` or ``baseline.yaml``.
    source: str | None
    rows: list[Row]
    metrics: dict[str, float]
    #: A repeat of a cell: judged by its bounds only; its cell's mean is judged at the end.
    repeat: bool = False
    #: Whether the item (or the cell) passed; set when its run ends.
    passed: bool = True
    #: For a repeated cell: its run, how many repeats ran, and a reason it failed unjudged.
    cell_run_id: str | None = None
    repeats: str = ""
    problem: str | None = None
    #: A search judged by its best trial: ``cell_run_id`` is its parent, ``repeats`` its trials.
    search: bool = False
    #: Metrics logged as a history and named nowhere: recorded, not judged (``rules.recorded``).
    recorded: list[str] = field(default_factory=list)
    #: A repeated cell's seeds and power, said where they help (``gate.verdicts.seed_notes``).
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["rows"] = [row.as_dict() for row in self.rows]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Verdict:
        return cls(**{**data, "rows": [Row.from_dict(row) for row in data["rows"]]})


@dataclass
class RunSummary:
    """One finished run of a tracked item, as the session's end and the terminal see it."""

    name: str
    nodeid: str
    experiment: str
    #: The MLflow status the run ended with: FINISHED, FAILED or KILLED.
    status: str
    #: pytest's outcome: passed, failed, error, skipped, xfailed, xpassed, interrupted.
    outcome: str
    run_id: str
    params: dict[str, str] = field(default_factory=dict)
    #: The run's value of each metric (``runs.metric_values``), in the order first logged.
    metrics: dict[str, float] = field(default_factory=dict)
    #: The metrics the experiment returned, and those logged as a history (several steps).
    returned: list[str] = field(default_factory=list)
    histories: list[str] = field(default_factory=list)
    #: The run's page in the tracking UI (servers only).
    url: str | None = None
    #: The item's place in collection order, so workers' runs are listed as collected.
    index: int = 1 << 30
    groups: GroupRefs | None = None
    verdict: Verdict | None = None
    #: For a repeat: the rules its cell's mean is judged by (JSON, see ``gate.cells``);
    #: for a search's trial, those its best trial is judged by (``groups.judging``).
    cell_rules: dict[str, Any] | None = None
    #: The server was lost and the run went to the journal for ``mlexp sync``.
    spooled: bool = False
    #: pytest-rerunfailures: the attempt this run is (``outcome`` is ``rerun`` if superseded).
    attempt: int = 1
    #: The registered model the function's best cell becomes a version of (``register=``).
    register: str = ""
    #: ``--mlexp-reuse``: the run whose results this run copies instead of executing.
    reused_from: str = ""
    #: ``--mlexp-reuse``: why this item executed although it ran before (``code changed (a.py)``).
    rerun_reason: str = ""
    #: What the run used (``runs.usage``); ``None`` for a reused run, which executed nothing.
    usage: Usage | None = None

    @property
    def superseded(self) -> bool:
        """An attempt that a rerun replaced: the item is counted by its last attempt."""
        return self.outcome == "rerun"

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["verdict"] = self.verdict.to_json() if self.verdict is not None else None
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunSummary:
        groups = data.get("groups")
        verdict = data.get("verdict")
        usage = data.get("usage")
        return cls(
            **{
                **data,
                "groups": GroupRefs(**groups) if groups is not None else None,
                "verdict": Verdict.from_json(verdict) if verdict is not None else None,
                "usage": Usage(**usage) if usage is not None else None,
            }
        )
