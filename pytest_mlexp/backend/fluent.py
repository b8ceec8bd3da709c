"""The fluent API's active run, kept on the item's run so ``mlflow.log_*`` and autolog land in it.

pytest-mlexp writes through an ``MlflowClient`` and a run id; the fluent
stack is kept in step only for the user's own ``mlflow.*`` calls.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import mlflow

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
        from ..spool.client import SpoolingClient

        if not isinstance(backend.client, SpoolingClient):
            raise
        outer = mlflow.active_run()
        if outer is not None:
            tags = {**tags, PARENT_RUN_ID: outer.info.run_id}
        local_id = backend.client.offline_run(exc, experiment, run_name, tags)
        # mlflow.log_* and autolog write into the journal with the item's own values.
        _activate_offline(backend.client.offline_view(local_id))
        return local_id, ""
    return str(active.info.run_id), experiment_id


def _activate_offline(run: Run) -> None:
    """Put a run that exists only in the journal on top of the fluent API's active runs.

    ``mlflow.start_run(run_id=...)`` would ask the lost server for it, so the
    run goes onto MLflow's stack of active runs as ``mlflow.start_run`` puts
    it there; an MLflow without that stack gets the public call.
    """
    try:
        from mlflow.tracking.fluent import ActiveRun, _active_run_stack

        stack = _active_run_stack.get()  # type: ignore[no-untyped-call]
    except (ImportError, AttributeError):
        # An MLflow without that stack: resume the run through the public API.
        mlflow.start_run(
            run_id=run.info.run_id,
            nested=mlflow.active_run() is not None,
            log_system_metrics=False,
        )
        return
    stack.append(ActiveRun(run))  # type: ignore[no-untyped-call]


def end_run(backend: Backend, run_id: str, status: str) -> None:
    """Close the run with ``status``, and any fluent run the user's code left open above it."""
    while (active := mlflow.active_run()) is not None:
        if active.info.run_id == run_id:
            try:
                mlflow.end_run(status)
            except Exception:
                # The fluent stack is popped: a spooling client keeps the end for `mlexp sync`.
                from ..spool.client import SpoolingClient

                if not isinstance(backend.client, SpoolingClient):
                    raise
                backend.client.set_terminated(run_id, status)
            return
        mlflow.end_run("KILLED" if status == "KILLED" else "FINISHED")
    backend.client.set_terminated(run_id, status)


def cut(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, ending in ``...`` when cut."""
    return text if len(text) <= limit else text[: limit - 3] + "..."
