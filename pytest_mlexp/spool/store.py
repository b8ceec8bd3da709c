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

Files go the same way: the runs this store returns have their artifact
location behind ``mlexp-spool+http(s)://``, whose repository
(``SpoolingArtifacts``) uploads while the server answers and keeps the files
in the journal, as ``mlflow_run.log_artifact`` does, once it is lost. So
``mlflow.log_artifact``, ``log_figure``, ``log_dict`` and ``log_text`` are
replayed by ``mlexp sync`` too. Autolog's models (a logged model's own
location) are not kept: log them with ``mlflow_run.log_model`` to have them spooled.

Outside such a session (a subprocess inheriting ``MLFLOW_TRACKING_URI``), the
store only sends.
"""

# MLflow's REST store is untyped: calling it from typed code is what this module does.
# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

from mlflow.entities import Metric, Param, Run, RunData, RunInfo, RunStatus, RunTag
from mlflow.store.artifact.artifact_repo import ArtifactRepository
from mlflow.utils.credentials import get_default_host_creds

from ..backend import mlflow_internals
from ..backend.errors import is_transient
from ..backend.mlflow_internals import RestStore

if TYPE_CHECKING:
    from .client import SpoolingClient

#: Put before ``http(s)://`` in the fluent API's tracking URI while a session spools.
SCHEME_PREFIX = "mlexp-spool+"

#: The spool of this process's pytest session, when it has one.
_active: SpoolingClient | None = None
#: Artifact locations handed to the fluent API (``mlexp-spool+http(s)://...``) -> their run.
_artifact_runs: dict[str, str] = {}
#: Runs the server created or returned in this session (without data): what the
#: fluent API's uploads need of a run once the server is lost.
_known_runs: dict[str, Run] = {}


def route_fluent_api(spool: SpoolingClient, uri: str) -> None:
    """Point the fluent API at ``uri`` through the spool (``uri`` is an ``http(s)://`` server)."""
    import mlflow

    global _active
    _active = spool
    _artifact_runs.clear()  # a new session: the last one's runs are not ours
    _known_runs.clear()
    for scheme in ("http", "https"):
        mlflow_internals.register_artifact_repository(SCHEME_PREFIX + scheme, SpoolingArtifacts)
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

    def _call_endpoint(
        self,
        api: Any,
        json_body: Any = None,
        endpoint: Any = None,
        retry_timeout_seconds: Any = None,
        response_proto: Any = None,
    ) -> Any:
        # Every request of the fluent API (autolog's too): none once the server is lost.
        if _active is None:
            return RestStore._call_endpoint(
                self, api, json_body, endpoint, retry_timeout_seconds, response_proto
            )
        _active.check()
        try:
            return RestStore._call_endpoint(
                self, api, json_body, endpoint, retry_timeout_seconds, response_proto
            )
        except Exception as exc:
            _active.failed(exc)
            raise

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
            if _active is not None and _active.is_spooled(run_id):
                return None  # resumed by mlflow.start_run(run_id=...): nothing to send
            return RestStore.update_run_info(self, run_id, run_status, end_time, run_name)
        op = {"op": "terminate", "status": status, "end_time": end_time or now_ms()}
        return self._write(
            run_id,
            op,
            lambda: RestStore.update_run_info(self, run_id, run_status, end_time, run_name),
        )

    def get_run(self, run_id: str) -> Run:
        if _active is not None and _active.is_spooled(run_id):
            offline = _active.offline_view(run_id)
            if offline is not None:
                # Created in the journal: its files can only be kept there.
                journal_only = f"{self.server_uri}/mlexp-offline/{run_id}/artifacts"
                return _located(offline, _spooled_location(journal_only, run_id))
        try:
            run: Run = RestStore.get_run(self, run_id)
        except Exception as exc:
            # Lost before the run spooled anything: files still go to the journal.
            known = _known_runs.get(run_id)
            if _active is None or known is None or not is_transient(exc):
                raise
            return _located(known, _spooled_location(known.info.artifact_uri, run_id))
        return self._served(run)

    def create_run(
        self, experiment_id: Any, user_id: Any, start_time: Any, tags: Any, run_name: Any
    ) -> Run:
        return self._served(
            RestStore.create_run(self, experiment_id, user_id, start_time, tags, run_name)
        )

    def _served(self, run: Run) -> Run:
        """A run the server returned, its files located for the fluent API (and remembered)."""
        location: str | None = _on_server(run.info.artifact_uri, self.server_uri)
        if _active is not None:
            location = _spooled_location(location, run.info.run_id)
        if location != run.info.artifact_uri:
            run = _located(run, location)
        if _active is not None:
            _known_runs[run.info.run_id] = Run(run.info, RunData())
        return run

    def get_logged_model(self, model_id: str, allow_deleted: bool = False) -> Any:
        # Where autolog's and log_model's files go: a location of its own, on the server.
        model = RestStore.get_logged_model(self, model_id, allow_deleted)
        model.artifact_location = _on_server(model.artifact_location, self.server_uri) or ""
        return model


class SpoolingArtifacts(ArtifactRepository):
    """The artifact repository of ``mlexp-spool+http(s)://`` locations: the fluent API's files.

    Uploads to the server's own repository while it answers; once the run is
    spooled (or the upload finds the server lost), the file is copied into the
    run's journal, as ``mlflow_run``'s files are, and ``mlexp sync`` uploads it.
    Reads go to the server.
    """

    def __init__(
        self,
        artifact_uri: str,
        tracking_uri: str | None = None,
        registry_uri: str | None = None,
        **_: Any,
    ) -> None:
        super().__init__(artifact_uri, tracking_uri, registry_uri)
        self.run_id = _run_of(artifact_uri)
        self.server_location = artifact_uri[len(SCHEME_PREFIX) :]
        self._server: ArtifactRepository | None = None

    @property
    def server(self) -> ArtifactRepository:
        """The server's repository for the same location (``http(s)://``)."""
        if self._server is None:
            from mlflow.store.artifact.artifact_repository_registry import (
                get_artifact_repository,
            )

            self._server = get_artifact_repository(self.server_location)
        return self._server

    def log_artifact(self, local_file: str, artifact_path: str | None = None) -> None:
        self._keep(local_file, artifact_path, directory=False)

    def log_artifacts(self, local_dir: str, artifact_path: str | None = None) -> None:
        self._keep(local_dir, artifact_path, directory=True)

    def _keep(self, local: str, artifact_path: str | None, *, directory: bool) -> None:
        def send() -> None:
            if directory:
                self.server.log_artifacts(local, artifact_path)
            else:
                self.server.log_artifact(local, artifact_path)

        if _active is None or self.run_id is None:
            send()
            return
        _active.keep_artifact(self.run_id, local, artifact_path, directory=directory, send=send)

    def list_artifacts(self, path: str | None = None) -> Any:
        return self.server.list_artifacts(path)

    def _download_file(self, remote_file_path: str, local_path: str) -> None:
        self.server._download_file(remote_file_path, local_path)

    def delete_artifacts(self, artifact_path: str | None = None) -> None:
        self.server.delete_artifacts(artifact_path)


def _spooled_location(location: str | None, run_id: str) -> str | None:
    """``location`` behind ``mlexp-spool+`` when it is on the server (``http(s)://``)."""
    if not location or not location.startswith(("http://", "https://")):
        return location
    spooled = SCHEME_PREFIX + location
    _artifact_runs[spooled] = run_id
    return spooled


def _run_of(artifact_uri: str) -> str | None:
    """The run of a location ``_spooled_location`` made, or of a folder inside one."""
    best = max(
        (known for known in _artifact_runs if artifact_uri.startswith(known)), key=len, default=None
    )
    return None if best is None else _artifact_runs[best]


def _located(run: Run, location: str | None) -> Run:
    """``run`` with its artifact location replaced."""
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
