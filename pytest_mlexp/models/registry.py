"""At session end: register each asking function's best model, when the session passed.

A function asks with ``@pytest.mark.mlexp(register="churn-clf")`` or the
``register`` mapping (ini ``mlexp_register``, ``mlexp.yaml``). Its best cell
is the grid parent's (``mlexp.best_run_id``, set by ``groups.completion`` just
before), a search's best trial (``groups.completion``), the best repeat of a
repeated cell by the same metric, or the function's single run. Its newest
logged model becomes a new version of the registered model, with tags saying
where it comes from and the alias (``candidate`` by default). Nothing is
registered when the gate failed, a cell of the function failed or was left
inconclusive at its seed budget (seeds on demand: registration waits for the
verdict), the session failed, or the best cell logged no model: one line says why. When the best
cell's model already is the newest version (a reused cell, ``--mlexp-reuse``),
no version is added: the alias is set on that version.

Each item counts by its final outcome: an attempt superseded by a rerun
(pytest-rerunfailures) is left out. A search's version carries the verdict
the gate gave the search as a whole (its parent run), not its best trial's.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..backend import tags as T
from ..backend.errors import one_line
from ..backend.search import quote
from ..directions import BestSpec, max_or_min
from ..runs.markers import marker_options

if TYPE_CHECKING:
    import pytest

    from ..backend.client import Backend
    from ..gate.session_end import GateOutcome
    from ..runs.summary import RunSummary
    from ..settings import Settings
    from ..settings.models import RegisterSettings

#: How many of the best cell's metrics become tags of the version.
MAX_METRIC_TAGS = 20
#: MLflow's tag on a logged model listing its registered versions (``mlflow.utils.mlflow_tags``).
MODEL_VERSIONS_TAG = "mlflow.modelVersions"

REGISTERED = "registered"
SKIPPED = "skipped"
ERROR = "error"


@dataclass(frozen=True)
class Registration:
    """What registration did for one function, or why it did nothing: one terminal line."""

    line: str
    #: registered, skipped or error.
    kind: str
    #: The version's page in the tracking UI (servers only).
    url: str | None = None


class NotRegistered(Exception):
    """Why a function's model is not registered; the message completes the terminal line."""


def registered_name(item: pytest.Item, settings: RegisterSettings) -> str:
    """The registered model an item's function registers to: the marker's, else the mapping's."""
    name = marker_options(item).get("register")
    if name:
        return str(name).strip()
    return settings.name_for(function_id(item.nodeid), getattr(item, "originalname", item.name))


def function_id(nodeid: str) -> str:
    """``path.py::experiment_clf[0.1-logreg]`` -> ``path.py::experiment_clf``."""
    return nodeid.split("[", 1)[0]


def register_models(
    backend: Backend,
    results: Sequence[RunSummary],
    settings: Settings,
    gate: GateOutcome | None,
    exitstatus: int,
) -> list[Registration]:
    """Register the best cell's model of each function that asks for it; one line each."""
    register = settings.register
    # An attempt superseded by a rerun (pytest-rerunfailures) is not the item's outcome.
    results = [r for r in results if not r.superseded]
    done = [_unmatched(key, register, results) for key in register.names]
    lines = [line for line in done if line is not None]
    targets: dict[str, list[RunSummary]] = {}
    for result in results:
        if result.register:
            targets.setdefault(function_id(result.nodeid), []).append(result)
    if not targets:
        return lines
    if not register.enabled:
        names = ", ".join(sorted({runs[0].register for runs in targets.values()}))
        return [
            *lines,
            Registration(f"mlexp: nothing registered (--mlexp-no-register): {names}", SKIPPED),
        ]
    from ..gate.verdicts import undecided_cells

    failures = gate_failures(gate)
    undecided = undecided_cells(gate.verdicts) if gate is not None else []
    for function, runs in targets.items():
        name = runs[0].register
        try:
            mine = [cell for cell in undecided if function_id(cell) == function]
            if mine:
                # Seeds on demand ended undecided: no verdict to register by (gate.sequential).
                raise NotRegistered(
                    f"the gate could not decide {', '.join(mine[:3])} within its seed budget "
                    "(inconclusive); raise the budget or the tolerance"
                )
            lines.append(_register(backend, function, runs, settings, failures, exitstatus))
        except NotRegistered as why:
            lines.append(
                Registration(f"mlexp: nothing registered as {name} for {function}: {why}", SKIPPED)
            )
        except Exception as exc:
            lines.append(
                Registration(
                    f"mlexp: could not register {name} for {function} in {backend.display_uri}: "
                    f"{type(exc).__name__}: {one_line(exc)[:300]}",
                    ERROR,
                )
            )
    return lines


def gate_failures(gate: GateOutcome | None) -> list[str]:
    """The tests and cells the gate failed in this session (regressions, missing baselines)."""
    if gate is None:
        return []
    from ..gate.verdicts import NO_BASELINE, REGRESSED

    failed = [
        v.nodeid
        for v in gate.verdicts
        if v.verdict == REGRESSED
        or v.problem is not None
        or (gate.settings.require and v.verdict == NO_BASELINE)
    ]
    if gate.cell_error is not None:
        failed.append("repeated cells not judged")
    return failed


def _unmatched(
    key: str, register: RegisterSettings, results: Sequence[RunSummary]
) -> Registration | None:
    for result in results:
        if key in (function_id(result.nodeid), function_id(result.name)):
            return None
    return Registration(
        f"mlexp: register: {key!r} ({register.sources.get(key, 'register')}) matches no "
        "experiment run in this session; give a function's name or node id",
        SKIPPED,
    )


def _register(
    backend: Backend,
    function: str,
    runs: Sequence[RunSummary],
    settings: Settings,
    failures: list[str],
    exitstatus: int,
) -> Registration:
    if failures:
        shown = ", ".join(failures[:3]) + (f" (+{len(failures) - 3})" if len(failures) > 3 else "")
        raise NotRegistered(f"the gate failed ({shown})")
    unfinished = [r for r in runs if r.status != "FINISHED"]
    if unfinished:
        # Named by what happened to them: a killed cell did not fail.
        named = [f"{r.name} {r.status}" for r in unfinished]
        shown = ", ".join(named[:3]) + (f" (+{len(named) - 3})" if len(named) > 3 else "")
        one = len(unfinished) == 1
        raise NotRegistered(f"{'a cell' if one else 'cells'} did not finish ({shown})")
    if exitstatus != 0:
        raise NotRegistered(f"the session failed (exit code {exitstatus})")
    client = backend.client
    best = _best_run(backend, runs, settings)
    model_id, model_name = _newest_model(client, best.run)
    model_run_id = str(best.run.info.run_id)
    reused_from = best.run.data.tags.get(T.REUSED_FROM)
    if model_id is None and reused_from:
        # A reused cell did not execute: its model is the one its source run logged.
        model_id, model_name = _newest_model(client, client.get_run(reused_from))
        model_run_id = reused_from
    best_name = str(best.run.info.run_name)
    if model_id is None:
        raise NotRegistered(
            f"the best cell {best_name} logged no model; log one with mlflow_run.log_model(model)"
        )
    name = runs[0].register
    alias = settings.register.alias
    run_id = str(best.run.info.run_id)
    judged = best.judged or best.run
    newest = _newest_version(client, name)
    if newest is not None and _made_from(newest, model_id):
        # Reused (--mlexp-reuse): the same model once more is no new version.
        version = str(newest.version)
        _point_alias(backend, run_id, name, alias, version)
        return Registration(
            f"mlexp: {name} v{version} @{alias} is already {best_name}'s model; nothing registered",
            SKIPPED,
            backend.model_version_link(name, version),
        )
    version = _create_version(
        client,
        name,
        model_id,
        model_run_id,
        tags=_version_tags(best, judged, settings.tracking.session_id),
        description=_description(best, judged, model_name, settings.tracking.session_id),
    )
    _point_alias(backend, run_id, name, alias, version)
    url = backend.model_version_link(name, version)
    return Registration(
        f"mlexp: registered {name} v{version} @{alias} from {best_name}"
        + (f" {url}" if url else ""),
        REGISTERED,
        url,
    )


def _point_alias(backend: Backend, run_id: str, name: str, alias: str, version: str) -> None:
    """Point ``alias`` of ``name`` at ``version``, and tag the best cell's run with both."""
    backend.client.set_registered_model_alias(name, alias, version)
    backend.log_batch(
        run_id,
        tags=[
            (T.REGISTERED_MODEL, name),
            (T.REGISTERED_VERSION, version),
            (T.REGISTERED_ALIAS, alias),
        ],
    )


@dataclass
class _Best:
    """The run whose model is registered, and how it was chosen."""

    run: Any
    #: e.g. ``accuracy=0.965 (max)``; empty for a single run.
    how: str = ""
    #: How many cells (or a search's trials: ``of="trials"``) it was the best of.
    among: int = 1
    of: str = "cells"
    #: The run the gate judged, when not ``run`` (a repeat's cell run, a search's parent).
    judged: Any = None


def _best_run(backend: Backend, runs: Sequence[RunSummary], settings: Settings) -> _Best:
    """The function's best cell: the grid parent's, the best repeat of a cell, or its run."""
    client = backend.client
    groups = runs[0].groups
    first_metric = next((key for r in runs for key in r.metrics), None)
    spec = BestSpec.parse(groups.best) if groups is not None else BestSpec(None)
    if groups is not None and groups.grid_run_id:
        parent = client.get_run(groups.grid_run_id)
        tags = parent.data.tags
        if parent.info.status != "FINISHED" or tags.get(T.FAILED, "0") != "0":
            raise NotRegistered(
                f"not every cell finished (grid parent {groups.grid_run_id} is "
                f"{parent.info.status}: {tags.get(T.FAILED, '?')} failed, "
                f"{tags.get(T.KILLED, '0')} killed)"
            )
        best_id = tags.get(T.BEST_RUN_ID)
        if not best_id:
            raise NotRegistered(
                "the grid has no best cell (see its line above: name the metric with "
                "@pytest.mark.mlexp(best=...))"
            )
        metric, direction = tags.get(T.BEST_METRIC, ""), tags.get(T.BEST_DIRECTION, "")
        spec = BestSpec.parse(f"{metric}:{direction}" if metric and direction else metric)
        best = _Best(client.get_run(best_id), among=int(tags.get(T.GRID_SIZE, "0") or 0))
        best = _whole_grid(backend, parent, best, spec, settings)
    elif groups is not None and groups.search_run_id:
        # A search's best trial, as its parent holds it (groups.completion, just before).
        parent = client.get_run(groups.search_run_id)
        tags = parent.data.tags
        best_id = tags.get(T.BEST_RUN_ID)
        if not best_id:
            raise NotRegistered(
                f"no trial of the search completed (parent run {parent.info.run_id})"
            )
        metric, direction = tags.get(T.BEST_METRIC, ""), tags.get(T.BEST_DIRECTION, "")
        spec = BestSpec.parse(f"{metric}:{direction}" if metric and direction else metric)
        from ..groups.kinds import ran_in_part

        part = ran_in_part(tags, int(tags.get(T.TRIALS, "0") or 0), "trials")
        if part:
            # Its other trials' results are not this session's study's: no whole best to pick.
            raise NotRegistered(f"only {part}; run the whole search to register its best trial")
        complete = int(tags.get(T.TRIALS_COMPLETE, "0") or 0)
        # The gate judges a search as a whole: its verdict is on the parent, not the trial.
        best = _Best(client.get_run(best_id), among=complete, of="trials", judged=parent)
    elif groups is not None and groups.cell_run_id:
        best = _Best(client.get_run(groups.cell_run_id))
    else:
        best = _Best(client.get_run(runs[0].run_id))
    if best.run.data.tags.get(T.KIND) == T.KIND_CELL:
        best = _best_repeat(backend, best, spec, settings, first_metric)
    if spec.metric is not None and spec.metric in best.run.data.metrics:
        direction = spec.resolve(spec.metric, settings.gate.directions).direction
        value = float(best.run.data.metrics[spec.metric])
        shown = f" ({max_or_min(direction)})" if direction else ""
        best.how = f"{spec.metric}={value:.4g}{shown}"
    return best


def _whole_grid(
    backend: Backend, parent: Any, best: _Best, spec: BestSpec, settings: Settings
) -> _Best:
    """The best cell of the whole grid, when the session ran only part of it (``groups.whole``).

    Never the best of the part that ran; ``NotRegistered`` when a cell left out
    has no earlier passed run of the current code.
    """
    from ..groups.whole import whole_group_best

    if best.run.data.tags.get(T.KIND) == T.KIND_CELL and best.among < int(
        parent.data.tags.get(T.MEMBERS, "0") or 0
    ):
        raise NotRegistered(
            f"only {best.among} of {parent.data.tags[T.MEMBERS]} cells ran this session, and a "
            "repeated cell counts only when it runs; run the whole grid to register its best cell"
        )
    whole = whole_group_best(
        backend.client, parent, best.run, best.among, spec, settings.gate.directions
    )
    if whole.run is None:
        raise NotRegistered(f"{whole.why}; run the whole grid to register its best cell")
    return _Best(whole.run, among=whole.members)


def _best_repeat(
    backend: Backend, cell: _Best, spec: BestSpec, settings: Settings, first: str | None
) -> _Best:
    """A repeated cell's models are its repeats': the best repeat by the grid's metric."""
    from ..groups.best import pick_best
    from ..groups.members import children

    repeats = children(backend, str(cell.run.info.run_id))
    declared = cell.run.data.tags.get(T.MEMBERS, "")
    ran = cell.run.data.tags.get(T.REPEATS, "")
    if declared.isdigit() and ran.isdigit() and int(ran) < int(declared):
        raise NotRegistered(
            f"only {ran} of {declared} repeats of cell {cell.run.info.run_name} ran this session; "
            "run all its repeats to register"
        )
    picked = pick_best(repeats, spec, settings.gate.directions, first)
    if picked.run is None:
        raise NotRegistered(
            f"no best repeat of cell {cell.run.info.run_name} by {picked.metric or 'any metric'}"
        )
    return _Best(picked.run, among=cell.among, judged=cell.run)


def _newest_model(client: Any, run: Any) -> tuple[str | None, str]:
    """The id and name of the newest model the run logged, or ``(None, "")``."""
    outputs = getattr(run, "outputs", None)
    model_ids = [o.model_id for o in (getattr(outputs, "model_outputs", None) or [])]
    if not model_ids:
        return None, ""
    models = [client.get_logged_model(model_id) for model_id in model_ids]
    newest = max(enumerate(models), key=lambda pair: (pair[1].creation_timestamp or 0, pair[0]))[1]
    return str(newest.model_id), str(newest.name)


def _newest_version(client: Any, name: str) -> Any:
    """The newest version of registered model ``name``, or None."""
    found = client.search_model_versions(
        f"name = '{quote(name)}'", max_results=1, order_by=["version_number DESC"]
    )
    return found[0] if found else None


def _made_from(version: Any, model_id: str) -> bool:
    """Whether model version ``version`` was made from logged model ``model_id``."""
    return bool(
        getattr(version, "model_id", None) == model_id
        or getattr(version, "source", None) == f"models:/{model_id}"
    )


def _version_tags(best: _Best, judged: Any, session_id: str) -> dict[str, str]:
    run_tags, judged_tags = best.run.data.tags, judged.data.tags
    tags = {
        T.SESSION_ID: session_id,
        T.NODEID: run_tags.get(T.NODEID, ""),
        T.VERSION_RUN_NAME: str(best.run.info.run_name),
        T.VERDICT: judged_tags.get(T.VERDICT, "not gated"),
    }
    if T.BASELINE_SOURCE in judged_tags:
        tags[T.BASELINE_SOURCE] = judged_tags[T.BASELINE_SOURCE]
    if T.GIT_COMMIT in run_tags:
        tags[T.VERSION_GIT_COMMIT] = run_tags[T.GIT_COMMIT]
    if T.GIT_DIRTY in run_tags:
        tags[T.GIT_DIRTY] = run_tags[T.GIT_DIRTY]
    if best.how:
        tags[T.VERSION_BEST] = best.how
    # The experiment's metrics; what the run used (system/...) is on the run.
    experiment_metrics = {
        key: value
        for key, value in best.run.data.metrics.items()
        if not key.startswith(T.SYSTEM_METRICS_PREFIX)
    }
    metrics = sorted(experiment_metrics.items())[:MAX_METRIC_TAGS]
    tags.update({T.VERSION_METRIC_PREFIX + key: f"{value:.6g}" for key, value in metrics})
    return {key: value for key, value in tags.items() if value}


def _description(best: _Best, judged: Any, model_name: str, session_id: str) -> str:
    run, tags = best.run, best.run.data.tags
    chosen = (
        f"the best of {best.among} {best.of} by {best.how}"
        if best.among > 1 and best.how
        else "the experiment's run"
    )
    verdict = judged.data.tags.get(T.VERDICT)
    source = judged.data.tags.get(T.BASELINE_SOURCE)
    gate = f"gate: {verdict}" + (f" against {source}" if source else "") if verdict else "not gated"
    commit = tags.get(T.GIT_COMMIT)
    git = ""
    if commit:
        git = f"; git {commit[:12]}" + (" (dirty)" if tags.get(T.GIT_DIRTY) == "true" else "")
    return (
        f"Model '{model_name}' of {run.info.run_name} (run {run.info.run_id}), {chosen}; "
        f"registered by pytest-mlexp session {session_id}; {gate}{git}."
    )


def _create_version(
    client: Any, name: str, model_id: str, run_id: str, tags: dict[str, str], description: str
) -> str:
    """A new version of ``name`` (created if needed) from logged model ``model_id``."""
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import ALREADY_EXISTS, RESOURCE_ALREADY_EXISTS, ErrorCode

    try:
        client.create_registered_model(name)
    except MlflowException as exc:
        exists = (ErrorCode.Name(RESOURCE_ALREADY_EXISTS), ErrorCode.Name(ALREADY_EXISTS))
        if exc.error_code not in exists:
            raise
    version = client.create_model_version(
        name,
        source=f"models:/{model_id}",
        run_id=run_id,
        tags=tags,
        description=description,
        model_id=model_id,
    )
    # As mlflow.register_model does: the logged model's page lists its registered versions.
    logged = client.get_logged_model(model_id)
    listed = json.loads(logged.tags.get(MODEL_VERSIONS_TAG, "[]"))
    listed.append({"name": name, "version": str(version.version)})
    client.set_logged_model_tags(model_id, {MODEL_VERSIONS_TAG: json.dumps(listed)})
    return str(version.version)
