"""The gate on a search as a whole: its best trial's metrics, under the function's test id.

Trials are not judged one by one (a search explores, and most of its trials
are worse than its best). At session end, once the parent run holds its best
trial (``completion``), the best trial's metrics (the objective among them)
are checked against the function's ``expect=`` bounds and compared with the
baseline of the function's test id (``experiment_x.py::experiment_svm``): the
best trial of an earlier session's search in the store, or the baseline
file's entry. The verdict goes on the parent run; a failing search fails the
session, as a repeated cell does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from ..backend import tags as T
from ..backend.search import search_runs
from ..gate import rules as rules_module
from ..gate.baselines import Baseline, is_safe_value
from ..gate.markers import project_rules, rules_from_json
from ..gate.markers import rules_to_json as cell_rules_to_json
from ..gate.rules import FAILING, Bound, Rules
from ..gate.verdicts import NO_BASELINE, failure_line, how_to_record, verdict_of, verdict_tags
from ..runs.summary import Verdict

if TYPE_CHECKING:
    from ..backend.client import Backend
    from ..gate.session_end import GateOutcome
    from ..runs.summary import RunSummary


def rules_to_json(rules: Rules) -> dict[str, Any]:
    """The rules a search's best trial is judged by, bounds included, for the run summary."""
    data = cell_rules_to_json(rules)
    data["bounds"] = {m: [asdict(b) for b in bounds] for m, bounds in rules.bounds.items()}
    return data


def judge_searches(
    session_id: str, results: Sequence[RunSummary], backend: Backend, outcome: GateOutcome
) -> bool:
    """Judge the best trial of each search of the session; True if one failed."""
    settings = outcome.settings
    searches: dict[str, tuple[str, str, dict[str, Any] | None]] = {}
    for result in results:
        groups = result.groups
        if groups is not None and groups.search and groups.search_run_id:
            searches.setdefault(
                groups.search, (groups.search_run_id, result.experiment, result.cell_rules)
            )
    failed = False
    file_entries: dict[str, dict[str, float]] | None = None
    for function, (run_id, experiment, raw_rules) in searches.items():
        rules = _rules(raw_rules, settings)
        if not (settings.compares or settings.update or settings.promote or rules.bounds):
            continue
        try:
            baseline = None
            if settings.baseline_file is not None:
                from ..gate.baselines import read_file

                if file_entries is None:
                    file_entries = read_file(settings.baseline_file)
                entry = file_entries.get(function)
                baseline = Baseline(entry, settings.file_label) if entry is not None else None
            elif settings.spec is not None:
                baseline = _store_baseline(backend, settings.spec, session_id, experiment, function)
            verdict = _judge(backend, settings, function, run_id, rules, baseline)
        except Exception as exc:
            from ..redaction import redact_text

            outcome.cell_error = (
                f"could not judge search {function} in {backend.display_uri}: "
                f"{type(exc).__name__}: {redact_text(str(exc))[:300]}"
            )
            failed = True
            continue
        failed = failed or not verdict.passed
        outcome.verdicts.append(verdict)
    return failed


# -- internals ------------------------------------------------------------------------------


def _rules(raw: Mapping[str, Any] | None, settings: Any) -> Rules:
    if raw is None:
        return project_rules(settings)
    rules = rules_from_json(raw)
    bounds = raw.get("bounds") or {}
    return Rules(
        bounds=MappingProxyType(
            {str(m): tuple(Bound(**b) for b in values) for m, values in bounds.items()}
        ),
        tolerances=rules.tolerances,
        directions=rules.directions,
        default_tolerance=rules.default_tolerance,
    )


def _judge(
    backend: Backend,
    settings: Any,
    function: str,
    run_id: str,
    rules: Rules,
    baseline: Baseline | None,
) -> Verdict:
    client = backend.client
    parent = client.get_run(run_id)
    best_id = parent.data.tags.get(T.BEST_RUN_ID)
    problem = None
    metrics: dict[str, float] = {}
    if best_id is None:
        problem = f"no trial of search {function} completed: there is no best trial to judge"
    else:
        metrics = dict(client.get_run(best_id).data.metrics)
    rows = rules_module.compare(metrics, baseline.metrics if baseline else None, rules)
    verdict = verdict_of(rows, settings.compares, baseline)
    failing = [row for row in rows if row.verdict in FAILING]
    if verdict == NO_BASELINE and settings.require and problem is None:
        problem = (
            f"no baseline for search {function} in {settings.source} "
            f"(--mlexp-require-baseline). Record one first: {how_to_record(settings)}"
        )
    tags = verdict_tags(verdict, baseline)
    if failing:
        tags[T.ERROR] = failure_line(failing)[:500]
    elif problem:
        tags[T.ERROR] = problem[:500]
    passed = not failing and problem is None
    if settings.promote and passed:
        tags[T.PROMOTED] = "true"
    if not passed:
        tags[T.OUTCOME] = "failed"  # never the "latest" baseline of a later session
    backend.log_batch(run_id, tags=list(tags.items()))
    if not passed:
        client.set_terminated(run_id, "FAILED")
    return Verdict(
        nodeid=function,
        verdict=verdict,
        source=baseline.source if baseline else None,
        rows=rows,
        metrics=metrics,
        passed=passed,
        cell_run_id=run_id,
        repeats=parent.data.tags.get(T.TRIALS, "?"),
        problem=problem,
        search=True,
    )


def _store_baseline(
    backend: Backend, spec: Any, session_id: str, experiment: str, function: str
) -> Baseline | None:
    """The best trial of the latest earlier search of ``function`` matching ``spec``."""
    client = backend.client
    if spec.kind == "run":
        runs = [client.get_run(run_id) for run_id in spec.run_ids]
        mine = [r for r in runs if r.data.tags.get(T.SEARCH) == function] or runs[:1]
        return _baseline(mine[0], "run") if mine else None
    query = spec.filter_string(session_id) + f" and tags.`{T.KIND}` = '{T.KIND_SEARCH}'"
    if is_safe_value(function):
        query += f" and tags.`{T.SEARCH}` = '{function}'"
    newest_first = search_runs(
        client,
        [backend.experiment_id(experiment)],
        query,
        order_by=["attributes.start_time DESC"],
    )
    for run in newest_first:
        if run.data.tags.get(T.SEARCH) == function:
            return _baseline(run, str(spec))
    return None


def _baseline(run: Any, label: str) -> Baseline:
    """A search parent's best trial metrics (``best.<metric>``), or a plain run's metrics."""
    metrics = dict(run.data.metrics)
    if run.data.tags.get(T.KIND) == T.KIND_SEARCH:
        metrics = {
            key[len(T.BEST_PREFIX) :]: value
            for key, value in metrics.items()
            if key.startswith(T.BEST_PREFIX)
        }
    run_id = str(run.info.run_id)
    return Baseline(metrics, f"run {run_id} ({label})", run_id)
