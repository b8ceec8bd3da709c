"""``--mlexp-keep-models K``: at session end, keep the models of each grid's or search's best K.

A grid of 20 cells or a search of 40 trials that logs a model per member
writes 20 or 40 models a session, when only the best few are ever looked at
again. With ``K`` set, once the session's group runs are completed (their
best member and ranking metric known, ``mlexp.best_metric``), the members are
ranked by that metric and, for every member below the best ``K`` (and every
member that failed or has no value), each MLflow 3 logged model the run
output (``LoggedModel``, ``models:/m-...``) loses:

- its artifacts (the model's files, at the model's artifact location),
  deleted through MLflow's artifact repository;
- its entity, deleted with ``MlflowClient.delete_logged_model`` (MLflow
  marks it deleted; ``mlflow gc`` removes the rows for good).

A run a model version was registered from (any registered model, any
session) keeps its models, whatever its rank. A repeated cell is ranked by
its mean; its repeats' models go or stay together. The runs themselves,
their params, metrics and other artifacts are kept.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from ..backend import tags as T
from ..backend.search import search_runs, tag_equals

if TYPE_CHECKING:
    from ..backend.client import Backend


@dataclass
class Pruned:
    """What ``keep_best_models`` removed."""

    #: Logged model ids removed, by the run that logged them.
    models: dict[str, list[str]] = field(default_factory=dict)
    #: Bytes of the removed models' files, when their artifacts are local.
    size: int = 0
    #: Groups ranked (grids and searches of the session with a best member).
    groups: int = 0
    #: Models kept although ranked below K: a version was registered from their run.
    registered: int = 0

    @property
    def count(self) -> int:
        return sum(len(ids) for ids in self.models.values())

    def line(self, keep: int) -> str:
        """The terminal's line: ``mlexp: --mlexp-keep-models 1: removed 5 models ...``."""
        head = f"mlexp: --mlexp-keep-models {keep}: "
        if not self.count:
            return head + f"no model to remove in {self.groups} grids and searches"
        size = f" ({_bytes(self.size)})" if self.size else ""
        kept = f"; kept {self.registered} of registered runs" if self.registered else ""
        return (
            head + f"removed {self.count} logged models{size} of {len(self.models)} runs "
            f"below the best {keep} of {self.groups} grids and searches{kept}"
        )


def keep_best_models(
    backend: Backend, experiment_ids: Iterable[str], session_id: str, keep: int
) -> Pruned:
    """Remove the logged models of every member below the best ``keep`` of the session's groups."""
    names = list(experiment_ids)
    client = backend.client
    parents = list(
        search_runs(
            client,
            names,
            tag_equals(T.SESSION_ID, session_id) + f" and tags.`{T.BEST_METRIC}` != ''",
        )
    )
    pruned = Pruned()
    registered = _registered_runs(client)
    for parent in parents:
        if parent.data.tags.get(T.KIND) not in (T.KIND_GRID, T.KIND_SEARCH):
            continue
        pruned.groups += 1
        metric = parent.data.tags[T.BEST_METRIC]
        sign = -1.0 if parent.data.tags.get(T.BEST_DIRECTION) == "min" else 1.0
        members = _children(client, names, parent.info.run_id)
        ranked = sorted(members, key=lambda run: _score(run, metric, sign), reverse=True)
        for member in ranked[keep:]:
            holders = [member]
            if member.data.tags.get(T.KIND) == T.KIND_CELL:
                holders = _children(client, names, member.info.run_id)
            for run in holders:
                models = _model_ids(run)
                if not models:
                    continue
                if run.info.run_id in registered or T.REGISTERED_MODEL in run.data.tags:
                    pruned.registered += len(models)
                    continue
                for model_id in models:
                    freed = _remove(client, model_id)
                    if freed is not None:
                        pruned.size += freed
                        pruned.models.setdefault(run.info.run_id, []).append(model_id)
    return pruned


def _score(run: Any, metric: str, sign: float) -> float:
    """Higher is better; failed members and members without the metric rank last."""
    value = run.data.metrics.get(metric)
    if run.info.status != "FINISHED" or value is None or not math.isfinite(float(value)):
        return -math.inf
    return sign * float(value)


def _children(client: Any, names: list[str], parent_id: str) -> list[Any]:
    query = tag_equals(T.PARENT_RUN_ID, parent_id)
    return [run for run in search_runs(client, names, query) if run.info.run_id != parent_id]


def _model_ids(run: Any) -> list[str]:
    outputs = getattr(getattr(run, "outputs", None), "model_outputs", None) or []
    return [str(output.model_id) for output in outputs]


def _registered_runs(client: Any) -> set[str]:
    """Runs any model version was registered from: their models are never removed."""
    runs = set()
    for version in client.search_model_versions(max_results=10_000):
        if version.run_id:
            runs.add(str(version.run_id))
    return runs


def _remove(client: Any, model_id: str) -> int | None:
    """Delete a logged model's artifacts and mark it deleted; the bytes freed, if local.

    ``None`` when it is gone already (an earlier pass removed it).
    """
    from mlflow.exceptions import MlflowException
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    try:
        model = client.get_logged_model(model_id)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise
    location = str(model.artifact_location)
    size = _local_size(location)
    repository: Any = get_artifact_repository(location)
    repository.delete_artifacts()
    if location.startswith("file:"):
        # The model's own folder (``models/m-...``), left empty.
        folder = Path(unquote(urlsplit(location).path)).parent
        with contextlib.suppress(OSError):
            folder.rmdir()
    client.delete_logged_model(model_id)
    return size


def _local_size(location: str) -> int:
    if not location.startswith("file:") and "://" in location:
        return 0
    path = (
        Path(unquote(urlsplit(location).path)) if location.startswith("file:") else Path(location)
    )
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += (Path(root) / name).stat().st_size
            except OSError:
                continue
    return total


def _bytes(size: int) -> str:
    return f"{size / 1e6:.1f} MB" if size >= 1e6 else f"{size / 1e3:.0f} kB"
