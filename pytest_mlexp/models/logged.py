"""MLflow models logged by an experiment: logged with their flavor, linked to the run's metrics.

``mlflow_run.log_model`` logs through MLflow 3's logged-model API: the model is
a ``LoggedModel`` (``models:/m-...``) that is an output of the item's run, so
the MLflow UI's Model column and the experiment's Models tab show it. MLflow
links the metrics the run holds when the model is logged; the metrics logged
after it (the dict the experiment returns, above all) are linked when the run
ends, by ``link_metrics``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .flavors import flavor_for, log_with_flavor
from .requirements import known_requirements, model_key, remember

if TYPE_CHECKING:
    from ..runs.experiment_run import ExperimentRun


def log_model(
    run: ExperimentRun,
    model: Any,
    *,
    name: str,
    input_example: Any,
    signature: Any,
    flavor_kwargs: dict[str, Any],
) -> Any:
    """Log ``model`` to ``run`` with the flavor of its type; MLflow's ``ModelInfo``."""
    import mlflow

    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"mlflow_run.log_model: name must be a non-empty string, got {name!r}")
    flavor = flavor_for(model)
    active = mlflow.active_run()
    if active is None or active.info.run_id != run.run_id:
        # MLflow's log_model writes to the fluent active run, which the plugin keeps on
        # the item's run: user code left another one open, or the run is only spooled.
        current = "no run" if active is None else f"run {active.info.run_id}"
        raise RuntimeError(
            f"mlflow_run.log_model: MLflow's active run is {current}, not this item's run "
            f"{run.run_id}; end the runs the experiment started (mlflow.end_run()) before "
            "logging the model"
            + (" (the tracking server was lost: models are not spooled)" if active is None else "")
        )
    # The metrics logged so far reach the store first, so MLflow links them to the model.
    run.flush()
    key = model_key(flavor.name, model)
    known = known_requirements(key, flavor_kwargs)
    info = log_with_flavor(
        flavor,
        model,
        name=name,
        input_example=input_example,
        signature=signature,
        flavor_kwargs=flavor_kwargs
        if known is None
        else {**flavor_kwargs, "pip_requirements": known},
    )
    if known is None and key is not None:
        location = run.client.get_logged_model(str(info.model_id)).artifact_location
        remember(key, flavor_kwargs, str(location))
    return info


def link_metrics(client: Any, run_id: str, model_ids: Sequence[str]) -> int:
    """Link the run's latest metric values that are not linked yet to each of ``model_ids``.

    Each value is logged again with its own timestamp and step and the
    model's id: MLflow's stores keep it once in the run's history and add it
    to the model's metrics. Returns how many values were linked.
    """
    from mlflow.entities import Metric

    latest = client.get_run(run_id).data.metrics
    if not latest or not model_ids:
        return 0
    points: dict[str, Any] = {}
    for key in latest:
        history = client.get_metric_history(run_id, key)
        if history:
            points[key] = max(history, key=lambda m: (m.step, m.timestamp))
    linked = 0
    for model_id in model_ids:
        done = {m.key for m in (client.get_logged_model(model_id).metrics or [])}
        metrics = [
            Metric(m.key, m.value, m.timestamp, m.step, model_id=model_id, run_id=run_id)
            for key, m in points.items()
            if key not in done
        ]
        for start in range(0, len(metrics), 1000):
            client.log_batch(run_id, metrics=metrics[start : start + 1000])
        linked += len(metrics)
    return linked
