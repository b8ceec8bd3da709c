"""Where baseline metrics come from: runs in the tracking store, or a YAML file in git.

Also the promotion of a session's runs to be the baseline (``mlexp promote``).
``mlflow`` is imported only by the functions that query the store.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..backend import tags as T
from ..backend.search import search_runs
from ..settings.baselines import ACCEPTED_SPECS as ACCEPTED_SPECS
from ..settings.baselines import BaselineSpec as BaselineSpec
from ..settings.baselines import is_safe_value as is_safe_value
from ..settings.baselines import parse_spec as parse_spec

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

FILE_HEADER = (
    "# Baseline metrics for pytest-mlexp: test id -> metric -> value.\n"
    "# Refresh with `pytest --mlexp-baseline-file PATH --mlexp-update-baseline`.\n"
)


@dataclass(frozen=True)
class Baseline:
    """The metrics an item is compared with, and where they came from."""

    metrics: Mapping[str, float]
    #: e.g. ``run 1f2e... (latest)`` or ``experiments/baseline.yaml``.
    source: str
    run_id: str | None = None


def from_store(
    client: MlflowClient,
    spec: BaselineSpec,
    *,
    session_id: str,
    experiment_ids: Iterable[str],
    nodeids: Iterable[str],
    cells: bool = False,
) -> dict[str, Baseline]:
    """The baseline run of every test id in ``nodeids`` that has one, in as few queries as possible.

    One ``search_runs`` (paged, newest first) covers all tests of the session;
    paging stops as soon as every test has its run. With ``cells``, the test
    ids are those of repeated cells and the runs are cell runs (tag
    ``mlexp.kind=cell``, test id in ``mlexp.cell``), holding each metric's mean.
    """
    wanted = set(nodeids)
    key_tag = T.CELL if cells else T.NODEID
    if spec.kind == "run":
        return _explicit_runs(client, spec, wanted, key_tag)
    ids = sorted(set(experiment_ids))
    if not ids or not wanted:
        return {}
    found: dict[str, Baseline] = {}
    filter_string = spec.filter_string(session_id)
    if cells:
        filter_string += f" and tags.`{T.KIND}` = '{T.KIND_CELL}'"
    if len(wanted) == 1:
        (only,) = wanted
        if is_safe_value(only):
            filter_string += f" and tags.`{key_tag}` = '{only}'"
    newest_first = search_runs(client, ids, filter_string, order_by=["attributes.start_time DESC"])
    for run in newest_first:
        nodeid = run.data.tags.get(key_tag)
        if nodeid in wanted and nodeid not in found:
            found[nodeid] = _baseline(run, str(spec))
            if len(found) == len(wanted):
                break
    return found


def read_runs(client: Any, run_ids: Sequence[str]) -> list[Any]:
    """The runs ``--mlexp-baseline run:ID[,ID...]`` names; ``ValueError`` for one it cannot read."""
    from mlflow.exceptions import MlflowException

    runs = []
    for run_id in run_ids:
        try:
            runs.append(client.get_run(run_id))
        except MlflowException as exc:
            raise ValueError(f"baseline run {run_id!r} cannot be read: {exc.message}") from None
    return runs


def _explicit_runs(
    client: MlflowClient, spec: BaselineSpec, wanted: set[str], key_tag: str
) -> dict[str, Baseline]:
    runs = read_runs(client, spec.run_ids)
    if len(runs) == 1:
        # One run: the baseline of every test of the session, whatever its test id.
        return {nodeid: _baseline(runs[0], "run") for nodeid in wanted}
    found = {}
    for run in runs:
        nodeid = run.data.tags.get(key_tag)
        if nodeid in wanted:
            found[nodeid] = _baseline(run, "run")
    return found


def _baseline(run: Any, label: str) -> Baseline:
    run_id = str(run.info.run_id)
    return Baseline(dict(run.data.metrics), f"run {run_id} ({label})", run_id)


# -- the YAML file ------------------------------------------------------------------


def read_file(path: Path) -> dict[str, dict[str, float]]:
    """Test id -> metrics from a baseline file; ``ValueError`` naming what is wrong."""
    import yaml

    if not path.exists():
        return {}
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise ValueError(
            f"{path}: expected a mapping of test id -> metrics, got {type(data).__name__}"
        )
    entries: dict[str, dict[str, float]] = {}
    for nodeid, metrics in data.items():
        if not isinstance(metrics, Mapping):
            raise ValueError(f"{path}: {nodeid}: expected a mapping of metric -> number")
        entries[str(nodeid)] = {}
        for name, value in metrics.items():
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{path}: {nodeid}: metric {name!r} is not a number: {value!r}")
            entries[str(nodeid)][str(name)] = float(value)
    return entries


def write_file(path: Path, entries: Mapping[str, Mapping[str, float]]) -> None:
    """Write test id -> metrics with sorted keys, so the file diffs well in git."""
    import yaml

    data = {nodeid: dict(sorted(entries[nodeid].items())) for nodeid in sorted(entries)}
    text = yaml.safe_dump(data, sort_keys=True, default_flow_style=False, allow_unicode=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(FILE_HEADER + text, encoding="utf-8")
    os.replace(tmp, path)


def from_file(
    path: Path, entries: Mapping[str, Mapping[str, float]], nodeid: str
) -> Baseline | None:
    metrics = entries.get(nodeid)
    return None if metrics is None else Baseline(metrics, str(path))


# -- promotion -------------------------------------------------------------------


def promote_session(client: MlflowClient, session_id: str, experiment_ids: list[str]) -> list[str]:
    """Tag the passed runs of ``session_id`` as the baseline; returns their run ids."""
    spec = BaselineSpec("session", session_id)
    promoted = []
    for run in search_runs(client, experiment_ids, spec.filter_string("")):
        client.set_tag(run.info.run_id, T.PROMOTED, "true")
        promoted.append(str(run.info.run_id))
    return promoted
