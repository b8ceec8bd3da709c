"""Where the MLflow UI shows a session's runs: a link per experiment, and the view it opens.

MLflow 3.17's UI opens an experiment on its GenAI overview, and its runs table
shows no param or metric column until the user picks them. Two things of the
UI's own fix that:

- the query ``workflowType=machine_learning`` opens the runs table in
  "Model training" mode (``backend.uris.runs_table_link``);
- a saved view (the "Views" menu above the table) is an experiment tag
  ``mlflow.sharedViewState.<key>`` holding the columns, their order and
  widths, the filter and the sort; ``viewStateShareKey=<key>`` in the link
  opens the table in it.

The plugin keeps one saved view per experiment, named ``pytest-mlexp``,
refreshed at every session's end with the params and metrics its runs logged,
and the ``best.*`` metrics their grid and search parents logged (parents log
no other metric a member has, so their rows would show ``-`` everywhere).
Once a session of ``mlexp reproduce`` wrote it, the view keeps a column of the
``mlexp.reproduces`` tag beside the run's name: a reproduction's row shows the
run it reproduces, an ordinary run's row is empty.
"""

from __future__ import annotations

import base64
import json
import time
import zlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..backend import tags as T
from ..backend import uris

if TYPE_CHECKING:
    from ..backend.client import Backend
    from ..runs.summary import RunSummary
    from ..settings import TrackingConfig

#: The saved view's key (tag ``mlflow.sharedViewState.mlexp``) and the name the menu shows.
VIEW_KEY = "mlexp"
VIEW_NAME = "pytest-mlexp"
#: Runs that are not experiments (the HTML report's run) carry this tag; the view hides them.
HIDE_FILTER = f"tags.`{T.REPORT}` IS NULL"
#: The column of the tag ``mlexp reproduce`` puts on its runs: what tells them apart.
REPRODUCES_COLUMN = f"tags.`{T.REPRODUCES}`"
#: At most this many param and metric columns each.
MAX_COLUMNS = 25
#: Pixels: wide enough for ``experiment_classifier[0.1-logreg]`` and a parent's stamp.
RUN_NAME_WIDTH = 340


def runs_links(
    backend: Backend, tracking: TrackingConfig, results: Sequence[RunSummary]
) -> dict[str, str]:
    """Experiment name -> a link to its runs table in the saved view; none without a UI.

    The view is written on the way; if that fails, the link opens the plain table.
    """
    base = backend.ui_base or (uris.LOCAL_UI_BASE if tracking.is_embedded else None)
    if base is None:
        return {}
    links = {}
    for name in sorted({r.experiment for r in results}):
        experiment_id = backend.experiment_id(name)
        runs = [r for r in results if r.experiment == name]
        try:
            save_view(backend, experiment_id, runs, reproductions=T.REPRODUCES in tracking.tags)
            view: str | None = VIEW_KEY
        except Exception:
            view = None
        link = uris.runs_table_link(base, experiment_id, view)
        assert link is not None
        links[name] = link
    return links


def save_view(
    backend: Backend,
    experiment_id: str,
    runs: Sequence[RunSummary],
    *,
    reproductions: bool = False,
) -> None:
    """Write (or refresh) the experiment's ``pytest-mlexp`` view: these runs' params and metrics.

    With ``reproductions`` (runs of ``mlexp reproduce``), or when the view
    already has it, the view shows the ``mlexp.reproduces`` column.
    """
    params = _keys(r.params for r in runs)
    metrics = _keys(r.metrics for r in runs)
    metrics += best_metrics(runs)
    key = T.SAVED_VIEW_PREFIX + VIEW_KEY
    experiment = backend.client.get_experiment(experiment_id)
    created = None
    existing = (experiment.tags or {}).get(key)
    before: dict[str, Any] = {}
    if existing:
        try:
            before = read_view_state(existing)
            created = int(json.loads(existing)["createdAt"])
        except (ValueError, KeyError, TypeError, zlib.error):
            before, created = {}, None
    reproductions = reproductions or REPRODUCES_COLUMN in before.get("selectedColumns", ())
    state = view_state(params, metrics, reproductions=reproductions)
    if before == state:
        return
    backend.client.set_experiment_tag(experiment_id, key, view_tag_value(VIEW_NAME, state, created))


def best_metrics(runs: Sequence[RunSummary]) -> list[str]:
    """``best.<metric>`` for the metrics of grid cells and search trials: what their parents log."""
    members = [
        r for r in runs if r.groups is not None and (r.groups.grid_run_id or r.groups.search_run_id)
    ]
    return [T.BEST_PREFIX + key for key in _keys(r.metrics for r in members)]


def view_state(
    params: Sequence[str], metrics: Sequence[str], *, reproductions: bool = False
) -> dict[str, Any]:
    """The runs table's state as the UI saves it: metrics then params after the run's name.

    With ``reproductions``, the ``mlexp.reproduces`` tag's column comes first.
    """
    param_columns = [f"params.`{key}`" for key in params[:MAX_COLUMNS]]
    plain = [key for key in metrics if not key.startswith(T.BEST_PREFIX)][:MAX_COLUMNS]
    best = [key for key in metrics if key.startswith(T.BEST_PREFIX)][:MAX_COLUMNS]
    # Each member metric next to its parents' best.<metric>: a collapsed grid's row
    # shows its best value where its cells show theirs.
    ordered = []
    for key in plain:
        ordered.append(key)
        if T.BEST_PREFIX + key in best:
            ordered.append(T.BEST_PREFIX + key)
    ordered += [key for key in best if key not in ordered]
    metric_columns = [f"metrics.`{key}`" for key in ordered]
    tag_columns = [REPRODUCES_COLUMN] if reproductions else []
    return {
        "searchFilter": HIDE_FILTER,
        "orderByKey": "attributes.start_time",
        "orderByAsc": False,
        "startTime": "ALL",
        "lifecycleFilter": "Active",
        "datasetsFilter": [],
        "modelVersionFilter": "All Runs",
        "selectedColumns": [
            "attributes.`Source`",
            *tag_columns,
            *metric_columns,
            *param_columns,
        ],
        "columnOrder": [
            "attributes.`Run Name`",
            "runDateAndNestInfo",
            *tag_columns,
            *metric_columns,
            *param_columns,
            "duration",
            "attributes.`Source`",
        ],
        "columnWidths": {"attributes.`Run Name`": RUN_NAME_WIDTH},
        "runsHiddenMode": "FIRST_10_RUNS",
        "viewMaximized": False,
        "runListHidden": False,
        "isAccordionReordered": False,
        "useGroupedValuesInCharts": True,
        "hideEmptyCharts": True,
        "groupBy": None,
        "groupsExpanded": {},
    }


def view_tag_value(name: str, state: dict[str, Any], created: int | None = None) -> str:
    """A saved view's tag value: its name, times, and the state deflated as the UI writes it."""
    now = int(time.time() * 1000)
    packed = base64.b64encode(zlib.compress(json.dumps(state).encode())).decode()
    record = {
        "name": name,
        "createdAt": created or now,
        "updatedAt": now,
        "state": f"deflate;{packed}",
    }
    return json.dumps(record)


def read_view_state(value: str) -> dict[str, Any]:
    """The state inside a saved view's tag value (the inverse of ``view_tag_value``)."""
    packed = json.loads(value)["state"].removeprefix("deflate;")
    return json.loads(zlib.decompress(base64.b64decode(packed)))  # type: ignore[no-any-return]


def _keys(mappings: Any) -> list[str]:
    """Keys in first-seen order across mappings."""
    seen: dict[str, None] = {}
    for mapping in mappings:
        seen.update(dict.fromkeys(mapping))
    return list(seen)
