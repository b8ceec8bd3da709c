"""The journal between the fluent API (``mlflow.log_*``, autolog) and a tracking server.

Under ``--mlexp-on-tracking-error spool`` with a server, the session points
the fluent API at ``mlexp-spool+http(s)://host:port``. MLflow finds the store
for that scheme through its public tracking-store plugin entry point
(``mlflow.tracking_store`` in pyproject.toml): ``SpoolingStore``, MLflow's own
REST store for ``http(s)://host:port`` whose writes go through the session's
``SpoolingClient``. While the server answers, every call is sent as before;
once it is lost, the params, metrics, tags and run ends that the experiment
or autolog log are appended to the run's journal with ``mlflow_run``'s, in
the order they were made, and ``mlexp sync`` replays them.

Outside such a session (a subprocess inheriting ``MLFLOW_TRACKING_URI``), the
store only sends. Files that the fluent API uploads while the server is lost
(``mlflow.log_artifact``, autolog's models) are not kept: save them in
``mlflow_run.output_dir`` to have them spooled.
"""

# MLflow's REST store is untyped: calling it from typed code is what this module does.
# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

from mlflow.entities import Metric, Param, Run, RunInfo, RunStatus, RunTag
from mlflow.store.tracking.rest_store import RestStore
from mlflow.utils.credentials import get_default_host_creds

if TYPE_CHECKING:
    from .client import SpoolingClient

#: Put before ``http(s)://`` in the fluent API's tracking URI while a session spools.
SCHEME_PREFIX = "mlexp-spool+"

#: The spool of this process's pytest session, when it has one.
_active: SpoolingClient | None = None


def route_fluent_api(spool: SpoolingClient, uri: str) -> None:
    """Point the fluent API at ``uri`` through the spool (``uri`` is an ``http(s)://`` server)."""
    import mlflow

    global _active
    _active = spool
    mlflow.set_tracking_uri(SCHEME_PREFIX + uri)


def spooling_store(store_uri: str, artifact_uri: str | None = None, **_: Any) -> SpoolingStore:
    """The store MLflow builds for ``mlexp-spool+http(s)://`` URIs (the entry point)."""
    server = store_uri[len(SCHEME_PREFIX) :] if store_uri.startswith(SCHEME_PREFIX) else store_uri
    return SpoolingStore(server)


class SpoolingStore(RestStore):
    """MLflow's REST store for a server, its writes spooled once the server is lost."""

    def __init__(self, server_uri: str) -> None:
        super().__init__(partial(get_default_host_creds, server_uri))
        self.server_uri = server_uri

    def _write(self, run_id: str, op: dict[str, Any], send: Any) -> Any:
        if _active is None:
            return send()
        _active.write(run_id, op, send)
        return None

    def log_metric(self, run_id: str, metric: Metric) -> Any:
        op = batch_op(metrics=[metric])
        return self._write(run_id, op, lambda: RestStore.log_metric(self, run_id, metric))

    def log_param(self, run_id: str, param: Param) -> Any:
        op = batch_op(params=[param])
        return self._write(run_id, op, lambda: RestStore.log_param(self, run_id, param))

    def set_tag(self, run_id: str, tag: RunTag) -> Any:
        op = batch_op(tags=[tag])
        return self._write(run_id, op, lambda: RestStore.set_tag(self, run_id, tag))

    def log_batch(self, run_id: str, metrics: Any, params: Any, tags: Any) -> Any:
        op = batch_op(metrics, params, tags)
        return self._write(
            run_id, op, lambda: RestStore.log_batch(self, run_id, metrics, params, tags)
        )

    def update_run_info(
        self, run_id: str, run_status: Any, end_time: Any, run_name: Any = None
    ) -> Any:
        status = run_status if isinstance(run_status, str) else RunStatus.to_string(run_status)
        if status == "RUNNING":
            return RestStore.update_run_info(self, run_id, run_status, end_time, run_name)
        op = {"op": "terminate", "status": status, "end_time": end_time or now_ms()}
        return self._write(
            run_id,
            op,
            lambda: RestStore.update_run_info(self, run_id, run_status, end_time, run_name),
        )

    def get_run(self, run_id: str) -> Run:
        if _active is not None and _active.spooled(run_id):
            offline = _active.offline_view(run_id)
            if offline is not None:
                return offline  # type: ignore[no-any-return]
        run: Run = RestStore.get_run(self, run_id)
        location = _on_server(run.info.artifact_uri, self.server_uri)
        if location == run.info.artifact_uri:
            return run
        info = run.info
        return Run(
            RunInfo(
                run_id=info.run_id,
                experiment_id=info.experiment_id,
                user_id=info.user_id,
                status=info.status,
                start_time=info.start_time,
                end_time=info.end_time,
                lifecycle_stage=info.lifecycle_stage,
                artifact_uri=location,
                run_name=info.run_name,
            ),
            run.data,
            run.inputs,
            run.outputs,
        )

    def get_logged_model(self, model_id: str, allow_deleted: bool = False) -> Any:
        # Where autolog's and log_model's files go: a location of its own, on the server.
        model = RestStore.get_logged_model(self, model_id, allow_deleted)
        model.artifact_location = _on_server(model.artifact_location, self.server_uri) or ""
        return model


def batch_op(metrics: Any = (), params: Any = (), tags: Any = ()) -> dict[str, Any]:
    """The journal's ``batch`` operation for MLflow entities."""
    return {
        "op": "batch",
        "metrics": [[m.key, m.value, m.timestamp, m.step] for m in metrics],
        "params": [[p.key, p.value] for p in params],
        "tags": [[t.key, t.value] for t in tags],
    }


def now_ms() -> int:
    import time

    return int(time.time() * 1000)


def _on_server(location: str | None, server_uri: str) -> str | None:
    """An ``mlflow-artifacts:`` location resolved against the server, as ``http(s)``.

    MLflow resolves such locations against the tracking URI, which must be
    ``http(s)``; the fluent API's is ``mlexp-spool+http(s)``.
    """
    if not location or not location.startswith("mlflow-artifacts:"):
        return location
    from mlflow.store.artifact.mlflow_artifacts_repo import MlflowArtifactsRepository

    return str(MlflowArtifactsRepository.resolve_uri(location, server_uri))
