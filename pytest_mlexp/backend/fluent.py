"""The fluent API's active run, kept on the item's run so ``mlflow.log_*`` and autolog land in it.

pytest-mlexp writes through an ``MlflowClient`` and a run id; the fluent
stack is kept in step only for the user's own ``mlflow.*`` calls.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import mlflow

from .client import MAX_TAG_LENGTH

if TYPE_CHECKING:
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
        # A run the user's code left active must not swallow ours.
        nested = mlflow.active_run() is not None
        active = mlflow.start_run(
            experiment_id=experiment_id,
            run_name=run_name,
            tags=tags,
            nested=nested,
            log_system_metrics=False,
        )
    except Exception as exc:
        from ..spool.client import SpoolingClient

        if not isinstance(backend.client, SpoolingClient):
            raise
        return backend.client.offline_run(exc, experiment, run_name, tags), ""
    return str(active.info.run_id), experiment_id


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
