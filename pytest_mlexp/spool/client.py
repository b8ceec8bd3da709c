"""A stand-in for ``MlflowClient`` that sends while it can and spools once the server is lost.

The first request that fails as a lost connection (``backend.errors.is_transient``:
by type and HTTP status, once MLflow's bounded retries are spent) marks the
server lost for the rest of the session: every later write goes straight to
the journal, every later read fails at once (``ServerLost``), and no request
waits through MLflow's retries again. At the session's end one probe of the
server decides whether the session replays its journal itself (``spool.rejoin``).
"""

from __future__ import annotations

import functools
import json
import shlex
import sys
import time
import uuid
import warnings
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ..backend import tags as T
from ..backend.errors import ServerLost, is_transient
from ..warning_types import MlexpWarning
from .journal import Journal


class SpoolingClient:
    """Wraps an ``MlflowClient``: a write that fails for good goes to the journal.

    Once a run has spooled one operation, all of its later writes are spooled
    too, so the journal keeps them in order. Once the server has failed, it is
    not asked again (``lost``) until ``resume``.
    """

    def __init__(self, client: Any, journal: Journal) -> None:
        self._client = client
        self.journal = journal
        self._offline: dict[str, str] = {}  # run id -> journal id
        #: Runs created in the journal: (run name, start time, tags), for ``offline_view``.
        self._created: dict[str, tuple[str, int, dict[str, str]]] = {}
        self._warned = False
        #: The server failed as a lost connection: nothing is sent to it again.
        self.lost = False
        #: How it failed first (the exception's type), for the warning.
        self._reason = ""

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        if name.startswith("_") or not callable(attribute):
            return attribute
        return self._guarded(attribute)

    @property
    def unwrapped(self) -> Any:
        """The ``MlflowClient`` this client wraps: what replaying a journal sends through."""
        return self._client

    def _guarded(self, call: Callable[..., Any]) -> Callable[..., Any]:
        """``call`` (a read, or a write the spool cannot keep), not sent once the server is lost."""

        @functools.wraps(call)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            self.check()
            try:
                return call(*args, **kwargs)
            except Exception as exc:
                self.failed(exc)
                raise

        return guarded

    def check(self) -> None:
        """Raise what MLflow raises for a lost connection, without a request, once ``lost``."""
        if self.lost:
            raise lost_error(self.journal.tracking_uri)

    def failed(self, exc: BaseException) -> None:
        """A request failed with ``exc``: a lost connection marks the server ``lost``."""
        if not self.lost and is_transient(exc):
            self.mark_lost(type(exc).__name__)

    def mark_lost(self, reason: str) -> None:
        """Send nothing to the server for the rest of the session (``resume`` undoes it)."""
        self.lost = True
        self._reason = self._reason or reason

    def resume(self, replayed: Iterable[str]) -> None:
        """The server answers again and the journals of runs ``replayed`` were sent: use it."""
        self.lost = False
        for run_id in replayed:
            self._offline.pop(run_id, None)
            self._created.pop(run_id, None)

    def is_spooled(self, run_id: str) -> bool:
        """Whether the run went to the journal as the server was lost (``Backend.is_spooled``)."""
        return run_id in self._offline

    def offline_run(
        self, exc: BaseException, experiment: str, run_name: str, tags: Mapping[str, str]
    ) -> str:
        """A run id for a run the server could not create; raises ``exc`` if it is not transient."""
        if not is_transient(exc):
            raise exc
        self.failed(exc)
        local_id = uuid.uuid4().hex
        self._warn()
        self._offline[local_id] = local_id
        start_time = int(time.time() * 1000)
        all_tags = {**tags, T.JOURNAL_ID: local_id}
        self._created[local_id] = (run_name, start_time, all_tags)
        self.journal.append(
            local_id,
            {
                "op": "create",
                "experiment": experiment,
                "run_name": run_name,
                "tags": all_tags,
                "start_time": start_time,
            },
        )
        return local_id

    def offline_view(self, run_id: str) -> Any:
        """An MLflow ``Run`` standing for a run created in the journal, or ``None``.

        The fluent API keeps it as the active run, so that ``mlflow.log_*``
        and autolog write into the journal with the item's run.
        """
        if run_id not in self._created:
            return None
        from mlflow.entities import Run, RunData, RunInfo, RunTag

        run_name, start_time, tags = self._created[run_id]
        info = RunInfo(
            run_id=run_id,
            experiment_id="",
            user_id=tags.get(T.USER, ""),
            status="RUNNING",
            start_time=start_time,
            end_time=None,
            lifecycle_stage="active",
            artifact_uri=None,
            run_name=run_name,
        )
        return Run(info, RunData(tags=[RunTag(k, v) for k, v in tags.items()]))

    def write(
        self,
        run_id: str,
        op: dict[str, Any] | Callable[[], dict[str, Any]],
        send: Callable[[], object],
    ) -> None:
        """Send now, or (the server being lost) append ``op`` to the run's journal.

        ``op`` may be a function, for entries that copy files only when spooled.
        Used by this client and by the fluent API's store (``spool.store``).
        """
        if run_id not in self._offline:
            if not self.lost:
                try:
                    send()
                    return
                except Exception as exc:
                    if not is_transient(exc):
                        raise
                    self.failed(exc)
            self._warn()
            self._offline[run_id] = run_id
            self.journal.append(run_id, {"op": "attach", "run_id": run_id})
        self.journal.append(self._offline[run_id], op() if callable(op) else op)

    def _warn(self) -> None:
        if not self._warned:
            self._warned = True
            warnings.warn(
                MlexpWarning(
                    f"tracking server {self.journal.tracking_uri} lost ({self._reason}); "
                    f"spooling runs to {self.journal.root}; replay them with "
                    f"`{shlex.join([sys.executable, '-m', 'pytest_mlexp', 'sync'])}`"
                ),
                stacklevel=3,
            )

    # -- the writes ExperimentRun and Tracker make --------------------------------

    def log_batch(self, run_id: str, metrics: Any = (), params: Any = (), tags: Any = ()) -> None:
        op = {
            "op": "batch",
            "metrics": [[m.key, m.value, m.timestamp, m.step] for m in metrics],
            "params": [[p.key, p.value] for p in params],
            "tags": [[t.key, t.value] for t in tags],
        }
        self.write(
            run_id,
            op,
            lambda: self._client.log_batch(run_id, metrics=metrics, params=params, tags=tags),
        )

    def set_tag(self, run_id: str, key: str, value: Any) -> None:
        op = {"op": "batch", "metrics": [], "params": [], "tags": [[key, str(value)]]}
        self.write(run_id, op, lambda: self._client.set_tag(run_id, key, value))

    def set_terminated(
        self, run_id: str, status: str | None = None, end_time: int | None = None
    ) -> None:
        op = {
            "op": "terminate",
            "status": status or "FINISHED",
            "end_time": end_time or int(time.time() * 1000),
        }
        self.write(run_id, op, lambda: self._client.set_terminated(run_id, status, end_time))

    def log_text(self, run_id: str, text: str, artifact_file: str) -> None:
        op = {"op": "text", "text": text, "artifact_file": artifact_file}
        try:
            self.write(run_id, op, lambda: self._client.log_text(run_id, text, artifact_file))
        finally:
            _forget_artifact_repository(run_id)

    def log_dict(self, run_id: str, dictionary: Any, artifact_file: str) -> None:
        if run_id not in self._offline and not self.lost:
            try:
                self._client.log_dict(run_id, dictionary, artifact_file)
                return
            except Exception as exc:
                if not is_transient(exc):
                    raise
                self.failed(exc)
            finally:
                _forget_artifact_repository(run_id)
        import yaml

        if artifact_file.endswith((".yaml", ".yml")):
            text = yaml.safe_dump(dictionary)
        else:
            text = json.dumps(dictionary, indent=2)
        self.log_text(run_id, text, artifact_file)

    def log_artifact(self, run_id: str, local_path: str, artifact_path: str | None = None) -> None:
        self.keep_artifact(
            run_id,
            local_path,
            artifact_path,
            directory=False,
            send=lambda: self._client.log_artifact(run_id, local_path, artifact_path),
        )

    def log_artifacts(self, run_id: str, local_dir: str, artifact_path: str | None = None) -> None:
        self.keep_artifact(
            run_id,
            local_dir,
            artifact_path,
            directory=True,
            send=lambda: self._client.log_artifacts(run_id, local_dir, artifact_path),
        )

    def keep_artifact(
        self,
        run_id: str,
        local: str,
        artifact_path: str | None,
        *,
        directory: bool,
        send: Callable[[], object],
    ) -> None:
        """Upload a file (or a folder) with ``send``, or keep a copy in the run's journal.

        Also the fluent API's uploads (``spool.store.SpoolingArtifacts``).
        """

        def op() -> dict[str, Any]:
            kept = self.journal.keep_file(self._offline[run_id], local)
            return {
                "op": "artifact",
                "path": kept,
                "artifact_path": artifact_path,
                "dir": directory,
            }

        try:
            self.write(run_id, op, send)
        finally:
            _forget_artifact_repository(run_id)


def lost_error(tracking_uri: str) -> Exception:
    """What a request to a server lost earlier raises instead of being sent.

    An ``MlflowException`` caused by a connection error (``ServerLost``), as
    MLflow raises it when its retries are spent: callers handle both alike.
    """
    from mlflow.exceptions import MlflowException

    error = MlflowException(
        f"tracking server {tracking_uri} was lost earlier in this session: not asked again"
    )
    error.__cause__ = ServerLost(tracking_uri)
    return error


def _forget_artifact_repository(run_id: str) -> None:
    """MLflow caches a run's artifact repository for every client of the process.

    One cached by the session's client (the server's) would take the fluent
    API's next upload past the spool: the next upload asks its store again.
    """
    from ..backend import mlflow_internals

    mlflow_internals.forget_artifact_repository(run_id)
