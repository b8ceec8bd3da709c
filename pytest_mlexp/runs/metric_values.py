"""A run's value of each metric: the one definition every reader uses.

The value of a metric is the one the experiment returned, when it returned
it; otherwise the last one logged (the highest step, then the latest time),
whichever API logged it: ``mlflow_run``, ``mlflow.log_metric`` or autolog.

The returned value is logged after the metric's history, at its highest
step and a later time (``log_after_history``), so MLflow's own latest value,
which the UI, the store's searches, ``mlexp runs`` and the reports read, is
that same value. ``read_values`` reads it back with the run's shape: which
metrics were returned, and which were logged as a history (at several steps).
"""

from __future__ import annotations

import numbers
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..backend.tags import SYSTEM_METRICS_PREFIX
from ..warning_types import MlexpWarning

if TYPE_CHECKING:
    from .experiment_run import ExperimentRun


@dataclass(frozen=True)
class MetricValues:
    """A run's metrics as every reader sees them."""

    #: Metric -> its value, in the order first logged.
    values: dict[str, float] = field(default_factory=dict)
    #: The metrics the experiment returned.
    returned: tuple[str, ...] = ()
    #: The metrics logged at several steps (a training curve) and not returned.
    histories: frozenset[str] = frozenset()

    @property
    def once(self) -> tuple[str, ...]:
        """The metrics logged at one step, returned ones aside, in their order."""
        return tuple(
            key for key in self.values if key not in self.histories and key not in self.returned
        )


#: Where the metric picking a grid's best cell comes from, as the grid line says it.
BEST_RETURNED = "returned"
BEST_EXPECT = "expect="
BEST_ONCE = "logged once"
BEST_FIRST = "first logged"
BEST_MARKER = "best= marker"
BEST_PARAMS_FILE = "params file"
BEST_SETTING = "best_metric setting"
#: The defaults, in the order they apply.
DEFAULT_BEST_SOURCES = (BEST_RETURNED, BEST_EXPECT, BEST_ONCE, BEST_FIRST)


def default_best(values: MetricValues, expected: Sequence[str] = ()) -> tuple[str, str] | None:
    """The metric picking the best cell when none is named, and why: ``(metric, source)``.

    The first returned metric, else the first named in ``expect=``, else the
    first logged once (not a training curve's ``train_loss``), else the first logged.
    """
    if values.returned:
        return values.returned[0], BEST_RETURNED
    if expected:
        return str(expected[0]), BEST_EXPECT
    if values.once:
        return values.once[0], BEST_ONCE
    first = next(iter(values.values), None)
    return None if first is None else (first, BEST_FIRST)


def log_after_history(run: ExperimentRun, returned: Mapping[str, float]) -> None:
    """Log the returned metrics as the latest value of each, after what was logged before.

    Each goes at the highest step its metric reached, through any API, with a
    timestamp later than that step's, so MLflow keeps it as the latest value.
    """
    run.returned.update(returned)
    stored: dict[str, tuple[int, int]] = {}
    try:
        stored = {key: (step, ts) for key, (step, _, ts) in _store_points(run).items()}
    except Exception as exc:  # the handle's own steps still order its history
        _warn(run, exc)
    now = int(time.time() * 1000)
    for key, value in returned.items():
        points = [p for p in (run.latest_points.get(key), stored.get(key)) if p is not None]
        step, timestamp = max(points) if points else (0, now - 1)
        # Not an intermediate value for a search's pruner: recorded, not observed.
        run._record(key, value, step, max(now, timestamp + 1))


def log_returned(run: ExperimentRun, nodeid: str, value: Any) -> None:
    """Log what an experiment returned: numbers as metrics, other values as params.

    A returned metric is the run's value of that metric: it is logged after
    everything logged before it, at the highest step of its history and a
    later time, so MLflow's latest value is the returned one too.
    """
    from .experiment_run import _metric_number, _valid_key, stringify

    if value is None:
        return
    if not isinstance(value, Mapping):
        warnings.warn(
            MlexpWarning(
                f"{nodeid} returned {type(value).__name__}, which is not logged; "
                "return a dict of metric names to numbers"
            ),
            stacklevel=1,
        )
        return
    returned: dict[str, float] = {}
    for key, item in value.items():
        if isinstance(item, numbers.Real):
            name = _valid_key(str(key), "metric")
            returned[name] = _metric_number(name, item)
        else:
            run.log_param(str(key), stringify(item))
    if not returned:
        return
    log_after_history(run, returned)


def read_values(run: ExperimentRun) -> MetricValues:
    """The run's metrics now: what reached the store, fluent API and autolog included.

    One read of the store; when it cannot answer (a spooled run it does not
    know), the values logged through ``mlflow_run`` alone.
    """
    steps = {key: point[0] for key, point in run.latest_points.items()}
    values = dict(run.metrics)
    try:
        # The store holds the handle's values too, and those of every other API.
        for key, (step, value, _) in _store_points(run).items():
            if key.startswith(SYSTEM_METRICS_PREFIX):
                continue  # MLflow's monitor samples the machine: not the experiment's metrics
            values[key] = value
            steps[key] = max(step, steps.get(key, step))
    except Exception as exc:
        _warn(run, exc)
    values.update(run.returned)
    returned = tuple(run.returned)
    # Logged at several steps: seen through the handle, or a latest step past the first.
    histories = frozenset(
        key
        for key in values
        if key not in run.returned and (key in run.histories or steps.get(key, 0) > 0)
    )
    return MetricValues(values, returned, histories)


def _store_points(run: ExperimentRun) -> dict[str, tuple[int, float, int]]:
    from ..backend.histories import latest_points

    run.flush()
    return latest_points(run.client, run.run_id)


def _warn(run: ExperimentRun, exc: Exception) -> None:
    warnings.warn(
        MlexpWarning(
            f"could not read the metrics of run {run.run_id} back from the store "
            f"({type(exc).__name__}: {exc}); the values logged through mlflow_run are used"
        ),
        stacklevel=3,
    )
