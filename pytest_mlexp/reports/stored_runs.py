"""Runs read back from a store, as reports and the ``mlexp`` command show them."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..backend import tags as T
from ..backend.errors import StoreError, one_line
from ..backend.search import search_runs, tag_equals

if TYPE_CHECKING:
    from ..backend.client import Backend

#: Most runs read for one report or table.
MAX_RUNS = 10_000


@dataclass
class StoredRun:
    """One run as reports and commands show it."""

    run_id: str
    name: str
    experiment_id: str
    experiment: str
    status: str
    start_time: int
    params: dict[str, str]
    metrics: dict[str, float]
    tags: dict[str, str]
    #: Metric histories by key, as ``(step, value)`` pairs; filled for reports.
    histories: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    url: str | None = None
    #: Ids of the MLflow models the run logged (its outputs), e.g. ``m-1f2e...``.
    models: list[str] = field(default_factory=list)
    #: The page of the model version registered from this run (servers only).
    registered_url: str | None = None
    #: The registered version's aliases as the registry holds them now (``current_aliases``);
    #: ``None``: not read, the alias tagged at registration is shown.
    aliases: list[str] | None = None

    @property
    def outcome(self) -> str:
        return self.tags.get(T.OUTCOME, "")

    @property
    def nodeid(self) -> str:
        return self.tags.get(T.NODEID, "")

    @property
    def session_id(self) -> str:
        return self.tags.get(T.SESSION_ID, "")

    @property
    def group(self) -> str:
        """The experiment function a grid cell belongs to: its node id without ``[...]``."""
        return strip_params(self.nodeid or self.name)

    @property
    def verdict(self) -> str:
        """The gate's verdict on the run (passed, improved, regressed, no-baseline), or ``""``."""
        return self.tags.get(T.VERDICT, "")

    @property
    def baseline_source(self) -> str:
        """Where the gate's baseline came from, or ``""``."""
        return self.tags.get(T.BASELINE_SOURCE, "")

    @property
    def registered(self) -> str:
        """``churn-clf v3 @candidate`` when pytest-mlexp registered the run's model, else ``""``."""
        name = self.tags.get(T.REGISTERED_MODEL)
        if not name:
            return ""
        version = self.tags.get(T.REGISTERED_VERSION, "?")
        aliases = self.aliases
        if aliases is None:
            tagged = self.tags.get(T.REGISTERED_ALIAS)
            aliases = [tagged] if tagged else []
        return f"{name} v{version}" + "".join(f" @{alias}" for alias in aliases)

    @property
    def step_metrics(self) -> list[str]:
        """Metrics logged at more than one step."""
        return sorted(key for key, points in self.histories.items() if len(points) > 1)


def strip_params(name: str) -> str:
    """``experiment_a.py::experiment_ridge[0.1-x]`` -> ``experiment_a.py::experiment_ridge``."""
    return re.sub(r"\[.*\]$", "", name)


def search(
    backend: Backend,
    experiments: Sequence[Any],
    filter_string: str = "",
    *,
    max_results: int = MAX_RUNS,
    include_containers: bool = False,
) -> list[StoredRun]:
    """Runs of ``experiments`` matching MLflow's search syntax, newest first.

    Group runs that hold other runs' results (grid parents, the session's
    report run) are left out unless ``include_containers``.
    """
    from mlflow.exceptions import MlflowException

    names = {str(e.experiment_id): str(e.name) for e in experiments}
    runs: list[StoredRun] = []
    found = search_runs(
        backend.client,
        names,
        filter_string,
        order_by=["attributes.start_time DESC"],
        # Ask for a few more: container runs are dropped below.
        page_size=min(1000, max_results + 10),
    )
    try:
        for run in found:
            if include_containers or run.data.tags.get(T.KIND) not in T.CONTAINER_KINDS:
                runs.append(stored_run(backend, run, names))
                if len(runs) >= max_results:
                    break
    except MlflowException as exc:
        raise StoreError(f"cannot search runs ({filter_string!r}): {one_line(exc)}") from None
    return runs


def session_filter(session_id: str) -> str:
    return tag_equals(T.SESSION_ID, session_id)


def current_aliases(backend: Backend, runs: Iterable[StoredRun]) -> None:
    """Set each registered run's ``aliases`` to its model version's aliases in the registry now.

    The alias tagged on the run at registration may have moved since (to a
    newer version); a version the registry no longer holds shows none.
    """
    from mlflow.exceptions import MlflowException

    looked: dict[tuple[str, str], list[str]] = {}
    for run in runs:
        name, version = run.tags.get(T.REGISTERED_MODEL), run.tags.get(T.REGISTERED_VERSION)
        if not name or not version:
            continue
        if (name, version) not in looked:
            try:
                found = backend.client.get_model_version(name, version)
                looked[name, version] = sorted(found.aliases or [])
            except MlflowException:
                looked[name, version] = []
        run.aliases = looked[name, version]


def load_histories(backend: Backend, runs: Iterable[StoredRun]) -> None:
    """Fill each run's metric histories, read in bulk (``backend.histories``)."""
    from ..backend.histories import metric_histories

    runs = list(runs)
    # A reused run (--mlexp-reuse) holds final values only: its histories are its source's.
    sources = {r.run_id: r.tags.get(T.REUSED_FROM) or r.run_id for r in runs}
    histories = metric_histories(
        backend, [(sources[r.run_id], key) for r in runs for key in r.metrics]
    )
    for run in runs:
        for key in run.metrics:
            points = histories.get((sources[run.run_id], key), [])
            run.histories[key] = sorted(
                (step, value) for step, value, _ in points if math.isfinite(value)
            )


def stored_run(backend: Backend, run: Any, experiments: Mapping[str, str]) -> StoredRun:
    """An MLflow ``Run`` as reports show it; ``experiments`` maps ids to names."""
    info, data = run.info, run.data
    experiment_id = str(info.experiment_id)
    return StoredRun(
        run_id=str(info.run_id),
        name=str(info.run_name or info.run_id),
        experiment_id=experiment_id,
        experiment=experiments.get(experiment_id, experiment_id),
        status=str(info.status),
        start_time=int(info.start_time or 0),
        params=dict(data.params),
        # MLflow's system metrics are the machine's: the UI's "System metrics" tab shows them.
        metrics={
            k: float(v)
            for k, v in data.metrics.items()
            if not k.startswith(T.SYSTEM_METRICS_PREFIX)
        },
        tags=dict(data.tags),
        url=backend.run_link(experiment_id, str(info.run_id)),
        models=[
            str(output.model_id)
            for output in (getattr(getattr(run, "outputs", None), "model_outputs", None) or [])
        ],
        registered_url=(
            backend.model_version_link(
                data.tags[T.REGISTERED_MODEL], data.tags.get(T.REGISTERED_VERSION, "")
            )
            if T.REGISTERED_MODEL in data.tags
            else None
        ),
    )
