"""The fluent API's active run, kept on the item's run so ``mlflow.log_*`` and autolog land in it.

pytest-mlexp writes through an ``MlflowClient`` and a run id; the fluent
stack is kept in step only for the user's own ``mlflow.*`` calls.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import mlflow

from . import mlflow_internals
from .client import MAX_TAG_LENGTH
from .tags import PARENT_RUN_ID

if TYPE_CHECKING:
    from mlflow.entities import Run

    from .client import Backend


def start_run(
    backend: Backend, *, experiment: str, run_name: str, tags: Mapping[str, str]
) -> tuple[str, str]:
    """Create a run and make it the fluent API's active run; its run id and experiment id.

    When the server is lost and the spool keeps runs (``--mlexp-on-tracking-error
    spool``), the run is created in the journal instead, with an experiment id of ``""``.
    """
    tags = {key: cut(value, MAX_TAG_LENGTH) for key, value in tags.items()}
    try:
        experiment_id = backend.experiment_id(experiment)
        active = mlflow.start_run(
            experiment_id=experiment_id,
            run_name=run_name,
            tags=tags,
            # A run the user's code left active must not swallow ours: ours is nested in it.
            nested=mlflow.active_run() is not None,
            log_system_metrics=False,
        )
    except Exception as exc:
        if not backend.spools:
            raise
        outer = mlflow.active_run()
        if outer is not None:
            tags = {**tags, PARENT_RUN_ID: outer.info.run_id}
        local_id = backend.client.offline_run(exc, experiment, run_name, tags)
        # mlflow.log_* and autolog write into the journal with the item's own values.
        _activate_offline(local_id, backend.client.offline_view(local_id))
        return local_id, ""
    return str(active.info.run_id), experiment_id


def _activate_offline(run_id: str, run: Run) -> None:
    """Make a run that exists only in the journal the fluent API's active run.

    With the fluent API routed through the spool (a server), the store answers
    for the run and ``mlflow.start_run(run_id=...)`` resumes it. Otherwise
    nothing can answer for it: it goes onto MLflow's stack of active runs as
    ``mlflow.start_run`` puts it there (``mlflow_internals``).
    """
    try:
        mlflow.start_run(
            run_id=run_id, nested=mlflow.active_run() is not None, log_system_metrics=False
        )
    except Exception:
        mlflow_internals.push_active_run(run)


def end_run(backend: Backend, run_id: str, status: str) -> None:
    """Close the run with ``status``, and any fluent run the user's code left open above it."""
    while (active := mlflow.active_run()) is not None:
        if active.info.run_id == run_id:
            try:
                mlflow.end_run(status)
            except Exception:
                # The fluent stack is popped: a spooling client keeps the end for `mlexp sync`.
                if not backend.spools:
                    raise
                backend.client.set_terminated(run_id, status)
            return
        mlflow.end_run("KILLED" if status == "KILLED" else "FINISHED")
    backend.client.set_terminated(run_id, status)


def cut(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, ending in ``...`` when cut."""
    return text if len(text) <= limit else text[: limit - 3] + "..."
