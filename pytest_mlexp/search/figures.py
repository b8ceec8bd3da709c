"""A search's plots for the HTML report: Optuna's optimization history and parameter importances.

The report is built from the store, not from the Optuna storage (which may
be another machine's journal file, or a database the reader cannot reach):
the study is rebuilt in memory from the trial runs (their params and
objective) and the space kept on the search's parent run (``mlexp.search.space``).
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from ..backend import tags as T
from .space import space_from_json

if TYPE_CHECKING:
    from ..backend.client import Backend


class StoredRun(Protocol):
    """What the plots read of a stored run (``reports.stored_runs.StoredRun`` is one)."""

    params: dict[str, str]
    metrics: dict[str, float]
    tags: dict[str, str]

    @property
    def outcome(self) -> str: ...

    @property
    def group(self) -> str: ...


def search_parents(backend: Backend, runs: Sequence[StoredRun]) -> dict[str, list[Any]]:
    """The parent runs of the searches whose trials are among ``runs``, by report group."""
    found: dict[str, list[Any]] = {}
    fetched: dict[str, Any] = {}
    for run in runs:
        parent_id = run.tags.get(T.PARENT_RUN_ID)
        if T.TRIAL not in run.tags or not parent_id:
            continue
        if parent_id not in fetched:
            fetched[parent_id] = backend.client.get_run(parent_id)
            found.setdefault(run.group, []).append(fetched[parent_id])
    return found


def search_figures(
    runs: Sequence[StoredRun], parents: Sequence[Any], render: Callable[[Any, str], str]
) -> list[str]:
    """The plots of each search among ``runs`` as HTML, or a line saying why there are none."""
    try:
        import optuna
    except ImportError:
        return [
            "<p class='meta'>Install pytest-mlexp[search] (Optuna) to see this search's "
            "optimization history and parameter importances.</p>"
        ]
    from .study import quiet

    quiet(optuna)
    shown = []
    for parent in parents:
        trials = [r for r in runs if r.tags.get(T.PARENT_RUN_ID) == parent.info.run_id]
        study = _study(optuna, parent, trials)
        if study is None:
            continue
        complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
        if not complete:
            continue
        name = parent.data.tags.get(T.STUDY, parent.info.run_name)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Optuna's experimental warnings
            history = optuna.visualization.plot_optimization_history(study)
            history.update_layout(title=f"Optimization history: {name}")
            shown.append(render(history, "search-history"))
            if len(complete) >= 2 and len(study.best_trial.params) >= 1:
                try:
                    importances = optuna.visualization.plot_param_importances(study)
                except (ValueError, RuntimeError):
                    continue  # too few or too alike trials to rank the params
                importances.update_layout(title=f"Hyperparameter importances: {name}")
                shown.append(render(importances, "search-importances"))
    return shown


def _study(optuna: Any, parent: Any, trials: Sequence[StoredRun]) -> Any:
    """An in-memory study holding the trials' values, ordered by trial number."""
    tags = parent.data.tags
    space_text, objective = tags.get(T.SPACE), tags.get(T.BEST_METRIC)
    if not space_text or not objective:
        return None
    space = space_from_json(json.loads(space_text))
    distributions = {name: dimension.to_distribution() for name, dimension in space.items()}
    direction = "maximize" if tags.get(T.BEST_DIRECTION) == "max" else "minimize"
    study = optuna.create_study(direction=direction, study_name=tags.get(T.STUDY))
    for run in sorted(trials, key=lambda r: int(r.tags.get(T.TRIAL, "0") or 0)):
        value = run.metrics.get(objective)
        if run.outcome != "passed" or value is None or not math.isfinite(value):
            continue
        try:
            params = {name: space[name].value_of(run.params[name]) for name in space}
        except (KeyError, ValueError):
            continue
        study.add_trial(
            optuna.trial.create_trial(params=params, distributions=distributions, value=value)
        )
    return study
