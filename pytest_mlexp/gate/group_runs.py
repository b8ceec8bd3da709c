"""The gate on group runs: a repeated cell by its means, a search by its best trial, a grid
marked ``gate="best"`` by its best cell (the whole grid's, ``groups.whole``).

Their members are not judged one by one against a baseline (a repeat is one
draw of noise; most of a search's trials are worse than its best). At session
end, once the group runs are complete (``groups.completion``), each is judged
by ``gate.judge``, as an item is, under
its test id (the cell's node id, the search's function) against its baseline:
the same kind of group run of an earlier session in the store, or the
baseline file's entry. The verdict goes on the group run; a failing group
fails the session.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from ..backend import tags as T
from ..backend.search import search_runs
from ..redaction import redact_text
from ..runs.summary import Verdict
from ..settings.gate import BEST
from . import rules as rules_module
from .baselines import Baseline, is_safe_value
from .judge import judge
from .markers import project_rules, rules_from_json
from .markers import rules_to_json as cell_rules_to_json
from .rules import Bound, Rules
from .verdicts import (
    failure_line,
    gate_tags,
    seed_notes,
    verdict_tags,
    with_counts,
)

if TYPE_CHECKING:
    from ..backend.client import Backend
    from ..runs.summary import RunSummary
    from ..settings.gate import GateSettings


@dataclass(frozen=True)
class _Kind:
    """How the gate reads one kind of group run."""

    kind: str
    #: How messages name it.
    label: str
    #: The tag holding its test id on the group run.
    key_tag: str
    #: The tag counting its members, shown with its verdict.
    count_tag: str


_KINDS = {
    T.KIND_CELL: _Kind(T.KIND_CELL, "repeated cell", T.CELL, T.REPEATS),
    T.KIND_SEARCH: _Kind(T.KIND_SEARCH, "search", T.SEARCH, T.TRIALS),
    # Only a grid marked gate="best": by its best cell, like a search.
    T.KIND_GRID: _Kind(T.KIND_GRID, "grid", T.GRID, T.GRID_SIZE),
}
#: Judged by their best member.
_BY_BEST = frozenset({T.KIND_SEARCH, T.KIND_GRID})


@dataclass(frozen=True)
class _Target:
    kind: _Kind
    nodeid: str
    run_id: str
    experiment: str
    rules: Rules


@dataclass
class Judgment:
    """What the gate decided on the session's group runs."""

    verdicts: list[Verdict] = field(default_factory=list)
    #: A group run failed its gate (or could not be judged).
    failed: bool = False
    #: Why a group run could not be judged, if so.
    error: str | None = None
    #: The group runs that could not be judged: run id -> why (``gate.group_reports``
    #: fails one of their items with it).
    unjudged: dict[str, str] = field(default_factory=dict)
    #: The test ids of the grids judged by their best cell (``gate="best"``).
    grids: set[str] = field(default_factory=set)


def rules_to_json(rules: Rules) -> dict[str, Any]:
    """The rules a group run is judged by, bounds included, for the run summary."""
    return cell_rules_to_json(rules, bounds=True)


def judge_groups(
    session_id: str,
    results: Sequence[RunSummary],
    store: Callable[[], Backend],
    settings: GateSettings,
) -> Judgment:
    """Judge the session's repeated cells and searches, each against its baseline.

    ``store`` opens the store: only called when there is a group run to judge.
    """
    judgment = Judgment()
    targets = _targets(results, settings)
    if not targets:
        return judgment
    backend = store()
    try:
        baselines = _baselines(backend, settings, session_id, targets)
    except Exception as exc:
        judgment.error = _could_not("the group runs", backend, exc)
        judgment.failed = True
        judgment.unjudged = dict.fromkeys((t.run_id for t in targets), judgment.error)
        return judgment
    for target in targets:
        try:
            verdict = _judge(backend, settings, target, baselines.get((target.kind, target.nodeid)))
        except Exception as exc:
            judgment.error = _could_not(f"{target.kind.label} {target.nodeid}", backend, exc)
            judgment.failed = True
            judgment.unjudged[target.run_id] = judgment.error
            continue
        if verdict is not None:
            judgment.failed = judgment.failed or not verdict.passed
            judgment.verdicts.append(verdict)
            if target.kind.kind == T.KIND_GRID:
                judgment.grids.add(target.nodeid)
    return judgment


def cell_baseline(
    backend: Backend, settings: GateSettings, session_id: str, nodeid: str, experiment: str
) -> Baseline | None:
    """The store's baseline of the repeated cell ``nodeid`` (for seeds on demand)."""
    target = _Target(_KINDS[T.KIND_CELL], nodeid, "", experiment, project_rules(settings))
    return _baselines(backend, settings, session_id, [target]).get((target.kind, nodeid))


# -- internals ------------------------------------------------------------------------------


def _could_not(what: str, backend: Backend, exc: Exception) -> str:
    return (
        f"could not judge {what} in {backend.display_uri}: "
        f"{type(exc).__name__}: {redact_text(str(exc))[:300]}"
    )


def _targets(results: Sequence[RunSummary], settings: GateSettings) -> list[_Target]:
    """The group runs of the session the gate has something to do with, in order."""
    found: dict[tuple[_Kind, str], tuple[str, str, Mapping[str, Any] | None]] = {}
    for result in results:
        refs = result.groups
        if refs is None:
            continue
        by_best = (result.cell_rules or {}).get("gate") == BEST
        for kind, nodeid, run_id in (
            (_KINDS[T.KIND_CELL], refs.cell, refs.cell_run_id),
            (_KINDS[T.KIND_SEARCH], refs.search, refs.search_run_id),
            (_KINDS[T.KIND_GRID], refs.grid if by_best else None, refs.grid_run_id),
        ):
            if not (nodeid and run_id):
                continue
            known = found.setdefault((kind, nodeid), (run_id, result.experiment, None))
            if known[2] is None and result.cell_rules is not None:
                found[(kind, nodeid)] = (known[0], known[1], result.cell_rules)
    targets = []
    # Cells first, then searches, each in the order of the session's items.
    for (kind, nodeid), (run_id, experiment, raw) in sorted(
        found.items(), key=lambda entry: list(_KINDS.values()).index(entry[0][0])
    ):
        rules = _rules(raw, settings)
        if settings.compares or settings.update or settings.promote or rules.bounds:
            targets.append(_Target(kind, nodeid, run_id, experiment, rules))
    return targets


def _rules(raw: Mapping[str, Any] | None, settings: GateSettings) -> Rules:
    if raw is None:
        return project_rules(settings)
    rules = rules_from_json(raw)
    bounds = raw.get("bounds") or {}
    return replace(
        rules,
        bounds=MappingProxyType(
            {str(m): tuple(Bound(**b) for b in values) for m, values in bounds.items()}
        ),
    )


def _judge(
    backend: Backend, settings: GateSettings, target: _Target, baseline: Baseline | None
) -> Verdict | None:
    """Judge one group run and tag it with the verdict; None if there was nothing to judge."""
    client = backend.client
    run = client.get_run(target.run_id)
    label = f"{target.kind.label} {target.nodeid}"
    problem = None
    metrics: dict[str, float] = {}
    if target.kind.kind == T.KIND_CELL:
        if run.info.status != "FINISHED":
            return None  # a repeat failed (its item failed) or the cell was not completed
        if not (settings.compares or settings.update):
            client.set_tag(target.run_id, T.PROMOTED, "true")  # --mlexp-promote only
            return None
        metrics = with_counts(dict(run.data.metrics), run.data.tags.get(T.REPEATS_PASSED))
    else:
        best_id = run.data.tags.get(T.BEST_RUN_ID)
        if best_id is None:
            member = "trial" if target.kind.kind == T.KIND_SEARCH else "cell"
            problem = f"no {member} of {label} completed: there is no best {member} to judge"
        else:
            best_run = client.get_run(best_id)
            if target.kind.kind == T.KIND_GRID:
                best_run = _whole_grid_best(client, run, best_run, settings)
                if best_run is None:
                    return None  # run in part, without the runs of the cells left out
            metrics = dict(best_run.data.metrics)
    judged = judge(
        label,
        metrics,
        baseline,
        target.rules,
        settings,
        compares=settings.compares,
        means=target.kind.kind == T.KIND_CELL,
        problem=problem,
    )
    rows, verdict, failing, problem = judged.rows, judged.verdict, judged.failing, judged.problem
    # Asked before this cell's own verdict tags name the baseline.
    first_used = baseline if _first_use(client, run, baseline, settings) else None
    tags = verdict_tags(verdict, baseline) | gate_tags(rows)
    if failing:
        tags[T.ERROR] = failure_line(failing)[:500]
    elif problem:
        tags[T.ERROR] = problem[:500]
    passed = not failing and problem is None
    if settings.promote and passed:
        tags[T.PROMOTED] = "true"
    if not passed:
        # Like a failed item: never the "latest" baseline of a later session.
        tags[T.OUTCOME] = "failed"
    elif target.kind.kind == T.KIND_GRID and run.info.status == "FINISHED" and not _in_part(run):
        # A grid parent has no outcome of its own: a passed one is a later baseline (not one
        # the session ran in part: its best.<metric> values are its part's).
        tags[T.OUTCOME] = "passed"
    backend.log_batch(target.run_id, tags=list(tags.items()))
    if not passed:
        client.set_terminated(target.run_id, "FAILED")
    return Verdict(
        nodeid=target.nodeid,
        verdict=verdict,
        source=baseline.source if baseline else None,
        rows=rows,
        metrics=rules_module.judged(metrics, target.rules),
        passed=passed,
        cell_run_id=target.run_id,
        repeats=run.data.tags.get(target.kind.count_tag, ""),
        problem=problem,
        search=target.kind.kind in _BY_BEST,
        notes=seed_notes(
            target.nodeid,
            verdict,
            rows,
            metrics,
            target.rules,
            recording=settings.update,
            first_used=first_used,
        )
        if target.kind.kind == T.KIND_CELL
        else [],
    )


def _first_use(client: Any, run: Any, baseline: Baseline | None, settings: GateSettings) -> bool:
    """Whether a cell is the first judged against its store baseline (``latest``, ``branch:``...).

    First: no run of the cell's experiment names that baseline run in
    ``mlexp.baseline.run_id`` yet (asked before this cell's own tags are written).
    One query, made only for a repeated cell judged against a cell run of the store.
    """
    if baseline is None or not baseline.run_id or settings.spec is None:
        return False
    if run.data.tags.get(T.KIND) != T.KIND_CELL or not is_safe_value(baseline.run_id):
        return False
    query = f"tags.`{T.BASELINE_RUN_ID}` = '{baseline.run_id}'"
    found = search_runs(client, [run.info.experiment_id], query, page_size=1)
    return next(found, None) is None


def _in_part(grid: Any) -> bool:
    """Whether the session ran only part of the grid's cells."""
    declared, ran = grid.data.tags.get(T.MEMBERS, ""), grid.data.tags.get(T.GRID_SIZE, "")
    return declared.isdigit() and ran.isdigit() and int(ran) < int(declared)


def _whole_grid_best(client: Any, grid: Any, best_run: Any, settings: GateSettings) -> Any:
    """The best cell of the whole grid (``groups.whole``), or None when it is not known."""
    from ..directions import BestSpec
    from ..groups.whole import whole_group_best

    tags = grid.data.tags
    metric, direction = tags.get(T.BEST_METRIC, ""), tags.get(T.BEST_DIRECTION, "")
    spec = BestSpec.parse(f"{metric}:{direction}" if metric and direction else metric)
    ran = int(tags.get(T.GRID_SIZE, "0") or 0)
    return whole_group_best(client, grid, best_run, ran, spec, settings.directions).run


def _baselines(
    backend: Backend, settings: GateSettings, session_id: str, targets: Sequence[_Target]
) -> dict[tuple[_Kind, str], Baseline]:
    """The baseline of each target that has one: the baseline file's entry, else from the store."""
    found: dict[tuple[_Kind, str], Baseline] = {}
    if settings.baseline_file is not None:
        from .baselines import read_file

        entries = read_file(settings.baseline_file)
        for target in targets:
            entry = entries.get(target.nodeid)
            if entry is not None:
                found[(target.kind, target.nodeid)] = Baseline(entry, settings.file_label)
        return found
    spec = settings.spec
    if spec is None:
        return found
    for kind in {target.kind for target in targets}:
        wanted = {t.nodeid for t in targets if t.kind == kind}
        experiments = {t.experiment for t in targets if t.kind == kind}
        for nodeid, baseline in _store_baselines(
            backend, spec, session_id, kind, wanted, experiments
        ).items():
            found[(kind, nodeid)] = baseline
    return found


def _store_baselines(
    backend: Backend,
    spec: Any,
    session_id: str,
    kind: _Kind,
    wanted: set[str],
    experiments: set[str],
) -> dict[str, Baseline]:
    """The newest earlier group run of ``kind`` for each test id in ``wanted`` matching ``spec``."""
    client = backend.client
    if spec.kind == "run":
        from .baselines import read_runs

        runs = read_runs(client, spec.run_ids)
        if len(runs) == 1:
            # One run: the baseline of every group run of the session, whatever its test id.
            return {nodeid: _baseline(runs[0], "run") for nodeid in wanted}
        return {
            run.data.tags[kind.key_tag]: _baseline(run, "run")
            for run in runs
            if run.data.tags.get(kind.key_tag) in wanted
        }
    query = spec.filter_string(session_id) + f" and tags.`{T.KIND}` = '{kind.kind}'"
    if len(wanted) == 1:
        (only,) = wanted
        if is_safe_value(only):
            query += f" and tags.`{kind.key_tag}` = '{only}'"
    experiment_ids = sorted({backend.experiment_id(name) for name in experiments})
    newest_first = search_runs(
        client, experiment_ids, query, order_by=["attributes.start_time DESC"]
    )
    found: dict[str, Baseline] = {}
    for run in newest_first:
        nodeid = run.data.tags.get(kind.key_tag)
        if nodeid in wanted and nodeid not in found:
            found[nodeid] = _baseline(run, str(spec))
            if len(found) == len(wanted):
                break
    return found


def _baseline(run: Any, label: str) -> Baseline:
    """A search parent's best trial's metrics (``best.<metric>``), or a run's own metrics."""
    metrics = dict(run.data.metrics)
    if run.data.tags.get(T.KIND) in _BY_BEST:
        metrics = {
            key[len(T.BEST_PREFIX) :]: value
            for key, value in metrics.items()
            if key.startswith(T.BEST_PREFIX)
        }
    elif run.data.tags.get(T.KIND) == T.KIND_CELL:
        # The seeds behind each mean, for the confidence bound.
        metrics = with_counts(metrics, run.data.tags.get(T.REPEATS_PASSED))
    run_id = str(run.info.run_id)
    return Baseline(metrics, f"run {run_id} ({label})", run_id)
