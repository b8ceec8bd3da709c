"""An opened tracking store: its ``MlflowClient``, its experiments, and batched writes.

Opened two ways. A pytest session opens the configured store with
``Backend.for_session``, creating an embedded sqlite store (and the
experiment) when it does not exist yet. The ``mlexp`` command opens it with
``Backend.for_reading``, which never creates anything and says what is
missing instead. Both probe a server's ``/health`` first, so a dead server
is one clear line, not minutes of retries.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import logging
import os
import re
import shlex
import sys
import time
import warnings
import weakref
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.error import HTTPError, URLError
from urllib.request import Request, urlopen

from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import RESOURCE_ALREADY_EXISTS, ErrorCode
from mlflow.tracking import MlflowClient
from mlflow.utils.validation import MAX_PARAM_VAL_LENGTH, MAX_TAG_VAL_LENGTH

from ..redaction import redact_uri
from . import tags as T
from . import uris
from .errors import StoreError, one_line
from .locks import machine_lock

# MLflow's per-request limits for log_batch.
MAX_BATCH_METRICS = 1000
MAX_BATCH_PARAMS = 100
MAX_BATCH_TAGS = 100
MAX_BATCH_ENTITIES = 1000
#: Longest param and tag values MLflow keeps.
MAX_PARAM_LENGTH = MAX_PARAM_VAL_LENGTH
MAX_TAG_LENGTH = MAX_TAG_VAL_LENGTH

#: Bounded defaults for MLflow's HTTP retries (its own allow minutes per request).
#: A value the user exported wins.
HTTP_RETRY_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0.5",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
}

#: MLflow's loggers that announce a new store's tables at INFO level.
STORE_CREATION_LOGGERS = ("mlflow.store.db.utils", "alembic.runtime.migration")

#: (key, value, timestamp in ms, step)
MetricValue = tuple[str, float, int, int]


class Backend:
    """One opened store: the client, where its URI came from, and its experiments by name."""

    def __init__(
        self, client: Any, uri: str, source: str, artifact_location: str | None = None
    ) -> None:
        #: An ``MlflowClient``, or the spool's stand-in for one (``spool.client``).
        self.client = client
        self.uri = uri
        #: Where the URI came from, e.g. ``ini mlexp_tracking_uri`` or ``default``.
        self.source = source
        #: Artifact root for experiments created here (sqlite stores; servers choose their own).
        self.artifact_location = artifact_location
        self._experiment_ids: dict[str, str] = {}

    # -- opening ---------------------------------------------------------------------------

    @classmethod
    def for_session(
        cls, uri: str, source: str, *, artifact_location: str | None, experiment: str
    ) -> Backend:
        """Open the store a pytest session writes to, creating it and ``experiment`` if needed.

        The fluent API (``mlflow.log_*``, autolog) is pointed at the same store.
        A URI pytest-mlexp cannot use raises ``pytest.UsageError`` naming ``source``.
        """
        import mlflow

        try:
            # Settings keep a URI as given until a tracked item needs the store: a
            # session without experiments never stops for it.
            uri = uris.check_uri(uri)
        except uris.UnsupportedUri as exc:
            import pytest

            raise pytest.UsageError(f"{source}: {exc}") from None
        shown = f"{redact_uri(uri)} (from {source})"
        if uris.is_server(uri):
            for name, value in HTTP_RETRY_DEFAULTS.items():
                os.environ.setdefault(name, value)
            reason = unreachable_reason(uri)
            if reason is not None:
                raise StoreError(
                    f"tracking server {shown} is unreachable: {reason}. Check that "
                    "`mlflow server` is running and the host and port are right, "
                    "or unset it to log to the embedded store."
                )
        mlflow.set_tracking_uri(uri)
        os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
        _exit_without_collecting()
        with _creation_lock(uri), quiet_store_warnings(), quiet_store_creation():
            created = _create_wal_store(uri)
            if created or _is_wal(uri):
                _sync_at_checkpoints(uri)  # before the client opens its connections
            backend = cls(MlflowClient(tracking_uri=uri), uri, source, artifact_location)
            try:
                backend.experiment_id(experiment)
            except MlflowException as exc:
                raise StoreError(f"cannot use tracking store {shown}: {one_line(exc)}") from None
        return backend

    @classmethod
    def for_reading(cls, uri: str, source: str) -> Backend:
        """Open an existing store to read, never creating one; ``StoreError`` says what is wrong."""
        shown = f"{redact_uri(uri)} (from {source})"
        kind = uris.scheme(uri)
        if kind == "sqlite":
            path = uris.sqlite_path(uri)
            if path is not None and not path.is_file():
                hint = (
                    "run some experiments with pytest first, or "
                    if source == "default"
                    else "check the path, or "
                )
                raise StoreError(
                    f"no MLflow store at {shown}: {path} does not exist; {hint}"
                    "point at a store with --tracking-uri or MLFLOW_TRACKING_URI"
                )
        elif kind in ("http", "https"):
            reason = unreachable_reason(uri)
            if reason is not None:
                raise StoreError(
                    f"tracking server {shown} is unreachable: {reason}; "
                    "check that `mlflow server` is running and the host and port are right"
                )
        elif kind in ("", "file"):
            folder = Path(uri.split("://", 1)[1] if kind else uri)
            if not folder.is_dir():
                raise StoreError(f"no MLflow store at {shown}: {folder} is not a folder")
        _exit_without_collecting()
        with quiet_store_warnings():
            try:
                client = MlflowClient(tracking_uri=uri)
                # Reach the store now, so a wrong URI fails here with one clear line.
                client.search_experiments(max_results=1)
            except Exception as exc:
                prefix = "" if isinstance(exc, MlflowException) else f"{type(exc).__name__}: "
                raise StoreError(
                    f"cannot read the MLflow store {shown}: {prefix}{one_line(exc)}"
                ) from None
        return cls(client, uri, source)

    # -- what it is ----------------------------------------------------------------------

    @property
    def spools(self) -> bool:
        """Whether the client keeps what a lost server cannot take (``spool.client``)."""
        return callable(getattr(self.client, "offline_run", None))

    def is_spooled(self, run_id: str) -> bool:
        """Whether the run went to the spool's journal because the server was lost."""
        check = getattr(self.client, "is_spooled", None)
        return bool(check(run_id)) if callable(check) else False

    def created_in_journal(self, run_id: str | None) -> bool:
        """Whether the run was created in the spool's journal: the server has no such run yet."""
        view = getattr(self.client, "offline_view", None)
        return bool(run_id) and callable(view) and view(run_id) is not None

    @property
    def display_uri(self) -> str:
        """The URI with credentials removed, safe to print or log."""
        return redact_uri(self.uri)

    @property
    def ui_base(self) -> str | None:
        """The UI's base URL, without credentials, for a server; ``None`` otherwise."""
        return uris.ui_base(self.uri)

    def run_link(self, experiment_id: str, run_id: str) -> str | None:
        """The run's page in the UI; ``None`` for a run that exists only in the spool's journal.

        Such a run has no experiment id yet, and ``mlexp sync`` gives it another run id.
        """
        if not experiment_id:
            return None
        return uris.run_link(self.ui_base, experiment_id, run_id)

    def experiment_link(self, experiment_id: str) -> str | None:
        return uris.experiment_link(self.ui_base, experiment_id)

    def model_version_link(self, name: str, version: str) -> str | None:
        return uris.model_version_link(self.ui_base, name, version)

    # -- experiments -----------------------------------------------------------------------

    def experiment_id(self, name: str) -> str:
        """The id of experiment ``name``, created (beside the store, for sqlite) on first use."""
        if name not in self._experiment_ids:
            self._experiment_ids[name] = self._get_or_create_experiment(name)
        return self._experiment_ids[name]

    def _get_or_create_experiment(self, name: str) -> str:
        experiment = self.client.get_experiment_by_name(name)
        if experiment is not None:
            if experiment.lifecycle_stage == "deleted":
                # This interpreter's mlflow: `mlflow` is on PATH only in an activated virtualenv.
                mlflow_command = [sys.executable, "-m", "mlflow", "experiments", "restore"]
                restore = shlex.join(
                    [*mlflow_command, "--experiment-id", str(experiment.experiment_id)]
                )
                raise StoreError(
                    f"experiment {name!r} is deleted in {self.display_uri}; restore it "
                    f"({restore}) or choose another name with --mlexp-experiment"
                )
            self._mark_model_development(experiment)
            return str(experiment.experiment_id)
        location = None
        if self.artifact_location:
            location = f"{self.artifact_location}/{slug(name)}"
        try:
            return str(
                self.client.create_experiment(
                    name,
                    artifact_location=location,
                    tags={T.EXPERIMENT_KIND: T.KIND_MODEL_DEVELOPMENT},
                )
            )
        except MlflowException as exc:
            # Another process created it first.
            if exc.error_code != ErrorCode.Name(RESOURCE_ALREADY_EXISTS):
                raise
            experiment = self.client.get_experiment_by_name(name)
            assert experiment is not None
            return str(experiment.experiment_id)

    def _mark_model_development(self, experiment: Any) -> None:
        """Tag an existing experiment as model training, unless it says what it is already.

        MLflow 3's UI reads ``mlflow.experimentKind``; a value someone set is kept.
        """
        if T.EXPERIMENT_KIND in (experiment.tags or {}):
            return
        # Only how the UI opens it: a user may log runs, yet not be allowed to tag it.
        with contextlib.suppress(MlflowException):
            self.client.set_experiment_tag(
                experiment.experiment_id, T.EXPERIMENT_KIND, T.KIND_MODEL_DEVELOPMENT
            )

    def find_experiment(self, name: str) -> Any:
        """The active experiment ``name``; ``StoreError`` listing the others when there is none."""
        experiment = self.client.get_experiment_by_name(name)
        if experiment is None or experiment.lifecycle_stage == "deleted":
            known = [e.name for e in self.experiments()]
            listed = ", ".join(repr(n) for n in known[:20]) or "none"
            raise StoreError(
                f"no experiment named {name!r} in {self.display_uri}; experiments there: {listed}"
            )
        return experiment

    def experiments(self) -> list[Any]:
        """The store's active experiments."""
        return list(self.client.search_experiments(max_results=10_000))

    # -- writes ----------------------------------------------------------------------------

    def log_batch(
        self,
        run_id: str,
        metrics: Sequence[MetricValue] = (),
        params: Sequence[tuple[str, str]] = (),
        tags: Sequence[tuple[str, str]] = (),
    ) -> None:
        """Send values in as few ``log_batch`` requests as MLflow's limits allow (usually one)."""
        entities = (
            [Metric(k, v, ts, step) for k, v, ts, step in metrics],
            [Param(k, v) for k, v in params],
            [RunTag(k, v) for k, v in tags],
        )
        for batch in _batches(*entities):
            self.client.log_batch(run_id, **batch)


def _exit_without_collecting() -> None:
    """At this process's exit, close its sqlite stores, then skip CPython's last collection.

    At exit CPython walks every object the process holds, looking for
    cycles; after importing MLflow (pandas, pyarrow, SQLAlchemy) that walk
    takes about 0.7 s, in every pytest process and every ``mlexp`` command.
    ``gc.freeze`` takes the objects out of that walk; they are still freed by
    reference counting. What the walk used to close by the way, the sqlite
    stores' connections, is closed first, so that SQLite folds its write-ahead
    log back into the store's file (no ``mlflow.db-wal`` is left beside it).
    Registered once per process; MLflow's own exit handler (ending an active
    fluent run), registered when it was imported, runs after this one.
    """
    global _EXIT_REGISTERED
    if not _EXIT_REGISTERED:
        _EXIT_REGISTERED = True
        atexit.register(_exit_quickly)


_EXIT_REGISTERED = False


def _exit_quickly() -> None:
    for engine in list(_SQLITE_ENGINES):
        with contextlib.suppress(Exception):
            engine.dispose()
    gc.freeze()


def unreachable_reason(uri: str, timeout: float = 10.0) -> str | None:
    """Why the tracking server at ``uri`` does not answer, or ``None`` if it does.

    Probes ``/health`` without the URI's credentials; any HTTP answer, even a
    refusal, means the server is there (MLflow itself would retry for minutes).
    """
    try:
        with urlopen(Request(uris.health_url(uri)), timeout=timeout) as response:
            response.read()
    except HTTPError:
        return None
    except (URLError, OSError) as exc:
        return str(getattr(exc, "reason", exc))
    return None


def now_ms() -> int:
    return int(time.time() * 1000)


def slug(name: str) -> str:
    """A name safe in a path: ``churn model/v2`` -> ``churn-model-v2``."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "experiment"


@contextlib.contextmanager
def quiet_store_warnings() -> Iterator[None]:
    """MLflow's sqlite store uses SQLAlchemy APIs that 2.x deprecates: not the user's concern."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, module="sqlalchemy")
        warnings.filterwarnings("ignore", category=DeprecationWarning, module="mlflow")
        yield


@contextlib.contextmanager
def quiet_store_creation() -> Iterator[None]:
    """Keep MLflow's "Creating initial MLflow database tables..." lines out of the terminal.

    Only below WARNING, and only while the store is opened: MLflow's errors still show.
    """
    loggers = [logging.getLogger(name) for name in STORE_CREATION_LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(max(logger.getEffectiveLevel(), logging.WARNING))
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


@contextlib.contextmanager
def _creation_lock(uri: str) -> Iterator[None]:
    """Serialize creation of an embedded sqlite store across processes (xdist workers).

    Several processes creating the same new sqlite file at once can break its
    schema for good; an existing schema is safe to share. The creator holds the
    lock exclusively from before the file exists until its tables are made;
    processes that find the file hold it shared, so they wait for a creation
    in progress but not for each other.
    """
    path = uris.sqlite_path(uri)
    if path is None:
        yield
        return
    database = path.resolve()
    database.parent.mkdir(parents=True, exist_ok=True)
    with machine_lock("store", str(database), shared=database.exists()):
        yield


def _create_wal_store(uri: str) -> bool:
    """Create a new sqlite store's file in WAL mode; False if it exists or is not sqlite.

    In WAL mode readers never wait for a writer, and a commit appends to the
    log instead of rewriting the database and a rollback journal: xdist
    workers and the controller share the file with less waiting. The mode
    is kept in the file, so ``mlflow ui`` and other clients use it too.
    """
    import sqlite3

    path = uris.sqlite_path(uri)
    if path is None or path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(path)
    try:
        connection.execute("PRAGMA journal_mode=WAL")
    finally:
        connection.close()
    return True


def _is_wal(uri: str) -> bool:
    """Whether the sqlite store at ``uri`` is in WAL mode (one made by pytest-mlexp is)."""
    import sqlite3

    path = uris.sqlite_path(uri)
    if path is None or not path.is_file():
        return False
    try:
        connection = sqlite3.connect(path)
        try:
            mode = connection.execute("PRAGMA journal_mode").fetchone()
        finally:
            connection.close()
    except sqlite3.Error:
        return False
    return bool(mode) and str(mode[0]).lower() == "wal"


#: sqlite store files (resolved) whose connections sync at checkpoints only.
_CHECKPOINT_SYNCED: set[str] = set()


def _sync_at_checkpoints(uri: str) -> None:
    """Let this process's connections to a WAL store sync at checkpoints, not at every commit.

    SQLite's ``synchronous=NORMAL`` in WAL mode: the file is never corrupted,
    but the last commits before a power cut (not a crash of the process) may
    be lost. Every run's write would otherwise wait for the disk. Set, as
    SQLAlchemy documents for sqlite pragmas, by a ``connect`` listener on the
    ``Engine`` class, for connections to this store's file only.
    """
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    path = uris.sqlite_path(uri)
    if path is None:
        return
    _CHECKPOINT_SYNCED.add(str(path.resolve()))
    if not event.contains(Engine, "connect", _synchronous_normal):
        event.listen(Engine, "connect", _synchronous_normal)
        event.listen(Engine, "engine_connect", _remember_engine)


#: Engines connected to sqlite stores, closed at exit (``_exit_quickly``).
_SQLITE_ENGINES: weakref.WeakSet[Any] = weakref.WeakSet()


def _remember_engine(connection: Any) -> None:
    if connection.engine.dialect.name == "sqlite":
        _SQLITE_ENGINES.add(connection.engine)


def _synchronous_normal(connection: Any, record: Any) -> None:
    import sqlite3

    if not _CHECKPOINT_SYNCED or not isinstance(connection, sqlite3.Connection):
        return
    files = {row[2] for row in connection.execute("PRAGMA database_list") if row[1] == "main"}
    if files & _CHECKPOINT_SYNCED:
        connection.execute("PRAGMA synchronous=NORMAL")


def _batches(
    metrics: list[Metric], params: list[Param], tags: list[RunTag]
) -> Iterator[dict[str, Any]]:
    """Split values into requests within MLflow's log_batch limits."""
    while metrics or params or tags:
        batch_params, params = params[:MAX_BATCH_PARAMS], params[MAX_BATCH_PARAMS:]
        batch_tags, tags = tags[:MAX_BATCH_TAGS], tags[MAX_BATCH_TAGS:]
        room = MAX_BATCH_ENTITIES - len(batch_params) - len(batch_tags)
        cut = min(room, MAX_BATCH_METRICS)
        batch_metrics, metrics = metrics[:cut], metrics[cut:]
        yield {"metrics": batch_metrics, "params": batch_params, "tags": batch_tags}
