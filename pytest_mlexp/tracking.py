"""Everything that talks to MLflow. The only module that imports ``mlflow``.

It is imported lazily, when the first tracked item of a session is about to
run, so that pytest runs without experiments never pay for it.
"""

from __future__ import annotations

import contextlib
import math
import numbers
import os
import re
import time
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import mlflow
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import RESOURCE_ALREADY_EXISTS, ErrorCode
from mlflow.tracking import MlflowClient
from mlflow.utils.validation import MAX_PARAM_VAL_LENGTH, MAX_TAG_VAL_LENGTH

from .config import TrackingConfig, sqlite_path
from .locks import machine_lock
from .store import unreachable_reason
from .warning_types import MlexpWarning

# MLflow's per-request limits for log_batch.
_MAX_BATCH_METRICS = 1000
_MAX_BATCH_PARAMS = 100
_MAX_BATCH_TAGS = 100
_MAX_BATCH_ENTITIES = 1000
#: Buffered values are sent at least this often while a run is going.
FLUSH_INTERVAL_SECONDS = 10.0

_INVALID_KEY_CHARS = re.compile(r"[^A-Za-z0-9_\-. /]")


class TrackingUnavailable(Exception):
    """The tracking store could not be opened; the message says what to check."""


class Tracker:
    """One per process: the client, the experiments in use, and run creation."""

    def __init__(self, settings: TrackingConfig) -> None:
        self.settings = settings
        self.client = MlflowClient(tracking_uri=settings.tracking_uri)
        self._experiment_ids: dict[str, str] = {}

    @classmethod
    def open(cls, settings: TrackingConfig) -> Tracker:
        """Connect to the store, creating an embedded one safely; or raise TrackingUnavailable."""
        # The fluent API (mlflow.log_metric, autolog) must write where we do.
        mlflow.set_tracking_uri(settings.tracking_uri)
        os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
        if settings.is_server:
            _check_server(settings)
        with _store_lock(settings), warnings.catch_warnings():
            # MLflow's sqlite store uses SQLAlchemy APIs that 2.x deprecates:
            # not the user's concern.
            warnings.filterwarnings("ignore", category=DeprecationWarning, module="sqlalchemy")
            warnings.filterwarnings("ignore", category=DeprecationWarning, module="mlflow")
            tracker = cls(settings)
            try:
                tracker.experiment_id(settings.experiment)
            except MlflowException as exc:
                raise TrackingUnavailable(
                    f"cannot use tracking store {settings.display_uri} "
                    f"(from {settings.sources.get('tracking_uri', 'default')}): {exc.message}"
                ) from None
        return tracker

    def experiment_id(self, name: str) -> str:
        """Id of the experiment ``name``, created on first use."""
        if name not in self._experiment_ids:
            self._experiment_ids[name] = self._get_or_create_experiment(name)
        return self._experiment_ids[name]

    def _get_or_create_experiment(self, name: str) -> str:
        experiment = self.client.get_experiment_by_name(name)
        if experiment is not None:
            if experiment.lifecycle_stage == "deleted":
                raise TrackingUnavailable(
                    f"experiment {name!r} is deleted in {self.settings.display_uri}; restore it "
                    "(mlflow experiments restore) or choose another name with --mlexp-experiment"
                )
            return str(experiment.experiment_id)
        location = None
        if self.settings.artifact_location:
            location = f"{self.settings.artifact_location}/{_slug(name)}"
        try:
            return str(self.client.create_experiment(name, artifact_location=location))
        except MlflowException as exc:
            # Another process created it first.
            if exc.error_code != ErrorCode.Name(RESOURCE_ALREADY_EXISTS):
                raise
            experiment = self.client.get_experiment_by_name(name)
            assert experiment is not None
            return str(experiment.experiment_id)

    def start_run(
        self, *, experiment: str, run_name: str, tags: Mapping[str, str]
    ) -> ExperimentRun:
        """Create a run and make it the fluent API's active run."""
        tags = {k: _cut(v, MAX_TAG_VAL_LENGTH) for k, v in tags.items()}
        try:
            experiment_id = self.experiment_id(experiment)
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
            # A spooling client (journal.py) keeps the run for `mlexp sync`, or re-raises.
            offline_run = getattr(self.client, "offline_run", None)
            if offline_run is None:
                raise
            return ExperimentRun(self.client, offline_run(exc, experiment, run_name, tags), "")
        return ExperimentRun(self.client, active.info.run_id, experiment_id)

    def end_run(self, run: ExperimentRun, status: str) -> None:
        """Send what is buffered and close the run with ``status``, fluent stack included."""
        try:
            run.flush()
        finally:
            # Close fluent runs the user's code left open above ours, then ours.
            while (active := mlflow.active_run()) is not None:
                if active.info.run_id == run.run_id:
                    try:
                        mlflow.end_run(status)
                    except Exception:
                        # The fluent stack is popped: a spooling client may keep the end.
                        if not getattr(self.client, "spools", False):
                            raise
                        self.client.set_terminated(run.run_id, status)
                    break
                mlflow.end_run("KILLED" if status == "KILLED" else "FINISHED")
            else:
                self.client.set_terminated(run.run_id, status)

    def run_url(self, run: ExperimentRun) -> str | None:
        """The run's page in the tracking UI, for server URIs."""
        if not self.settings.is_server:
            return None
        base = self.settings.display_uri.rstrip("/")
        return f"{base}/#/experiments/{run.experiment_id}/runs/{run.run_id}"


class ExperimentRun:
    """The item's own MLflow run; what the ``mlflow_run`` fixture returns.

    Params, metrics and tags are buffered and sent with one ``log_batch``
    per flush: when the run ends, when 1,000 values are waiting, every
    ten seconds while values keep coming, or on ``flush()``.
    """

    def __init__(self, client: MlflowClient, run_id: str, experiment_id: str) -> None:
        self.client = client
        self.run_id = run_id
        self.experiment_id = experiment_id
        #: Latest value of every metric logged through this handle.
        self.metrics: dict[str, float] = {}
        #: Every param logged through this handle, as sent.
        self.params: dict[str, str] = {}
        self._metrics: list[Metric] = []
        self._params: list[Param] = []
        self._tags: dict[str, str] = {}
        self._last_flush = time.monotonic()
        #: Local files and folders uploaded with ``log_artifact`` (discovery skips them).
        self.logged_paths: set[Path] = set()
        #: Where ``output_dir`` is made; set by artifact discovery when the run starts.
        self.output_location: Path | None = None

    def __repr__(self) -> str:
        return f"<ExperimentRun {self.run_id}>"

    # -- params ---------------------------------------------------------------

    def log_param(self, key: str, value: Any) -> None:
        """Log one param. Params are immutable: logging a key again with another value raises."""
        key = _valid_key(key, "param")
        text = _param_text(key, value)
        previous = self.params.get(key)
        if previous == text:
            return
        if previous is not None:
            raise ValueError(
                f"param {key!r} is already logged as {previous!r}; MLflow params cannot change. "
                "Log the new value under another key, or as a metric."
            )
        self.params[key] = text
        self._params.append(Param(key, text))
        self._maybe_flush()

    def log_params(self, params: Mapping[str, Any]) -> None:
        for key, value in params.items():
            self.log_param(key, value)

    # -- metrics --------------------------------------------------------------

    def log_metric(
        self, key: str, value: float, step: int | None = None, timestamp: int | None = None
    ) -> None:
        """Log one metric value, optionally at a ``step`` of training."""
        key = _valid_key(key, "metric")
        if not isinstance(value, numbers.Real):
            raise TypeError(f"metric {key!r} must be a number, got {type(value).__name__}")
        number = float(value)
        if math.isnan(number) or math.isinf(number):
            warnings.warn(
                MlexpWarning(f"metric {key!r} is {number}; it is logged, but check the experiment"),
                stacklevel=2,
            )
        self.metrics[key] = number
        self._metrics.append(
            Metric(key, number, timestamp or int(time.time() * 1000), int(step or 0))
        )
        self._maybe_flush()

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        timestamp = int(time.time() * 1000)
        for key, value in metrics.items():
            self.log_metric(key, value, step=step, timestamp=timestamp)

    # -- tags -----------------------------------------------------------------

    def set_tag(self, key: str, value: Any) -> None:
        self._tags[key] = _cut(str(value), MAX_TAG_VAL_LENGTH)
        self._maybe_flush()

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        for key, value in tags.items():
            self.set_tag(key, value)

    # -- artifacts (sent at once) ----------------------------------------------

    def log_artifact(
        self, local_path: str | os.PathLike[str], artifact_path: str | None = None
    ) -> None:
        """Upload a file or directory now."""
        path = Path(local_path)
        self.logged_paths.add(path.resolve())
        if path.is_dir():
            self.client.log_artifacts(self.run_id, str(path), artifact_path)
        else:
            self.client.log_artifact(self.run_id, str(path), artifact_path)

    @property
    def output_dir(self) -> Path:
        """A fresh folder of this run's own: every file saved in it is uploaded at the end."""
        if self.output_location is None:
            raise RuntimeError("output_dir needs pytest-mlexp's artifacts plugin, not active here")
        self.output_location.mkdir(parents=True, exist_ok=True)
        return self.output_location

    def log_dict(self, dictionary: Mapping[str, Any], artifact_file: str) -> None:
        """Save a dict as a JSON or YAML artifact (by the file's extension)."""
        self.client.log_dict(self.run_id, dict(dictionary), artifact_file)

    def log_text(self, text: str, artifact_file: str) -> None:
        self.client.log_text(self.run_id, text, artifact_file)

    def log_figure(self, figure: Any, artifact_file: str) -> None:
        """Save a matplotlib or plotly figure as an artifact."""
        self.client.log_figure(self.run_id, figure, artifact_file)

    # -- sending ---------------------------------------------------------------

    @property
    def pending(self) -> int:
        return len(self._metrics) + len(self._params) + len(self._tags)

    def flush(self) -> None:
        """Send every buffered param, metric and tag now."""
        metrics, params = self._metrics, self._params
        tags = [RunTag(k, v) for k, v in self._tags.items()]
        self._metrics, self._params, self._tags = [], [], {}
        self._last_flush = time.monotonic()
        for batch in _batches(metrics, params, tags):
            self.client.log_batch(self.run_id, **batch)

    def _maybe_flush(self) -> None:
        if (
            len(self._metrics) >= _MAX_BATCH_METRICS
            or len(self._params) >= _MAX_BATCH_PARAMS
            or len(self._tags) >= _MAX_BATCH_TAGS
            or time.monotonic() - self._last_flush > FLUSH_INTERVAL_SECONDS
        ):
            self.flush()


def stringify(value: Any) -> str:
    """A param value as text: plain values as ``str``, other objects by ``repr``."""
    if value is None or isinstance(value, str | bool | numbers.Number):
        return str(value)
    if isinstance(value, list | tuple | dict | set | frozenset):
        return repr(value)
    name = getattr(value, "__name__", None)
    if callable(value) and isinstance(name, str):
        return name
    return repr(value)


def log_returned(run: ExperimentRun, nodeid: str, value: Any) -> None:
    """Log what an experiment returned: numbers as metrics, other values as params."""
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
    for key, item in value.items():
        if isinstance(item, numbers.Real):
            run.log_metric(str(key), float(item))
        else:
            run.log_param(str(key), stringify(item))


def _param_text(key: str, value: Any) -> str:
    text = value if isinstance(value, str) else stringify(value)
    if len(text) > MAX_PARAM_VAL_LENGTH:
        warnings.warn(
            MlexpWarning(
                f"param {key!r} is {len(text)} characters, over MLflow's limit of "
                f"{MAX_PARAM_VAL_LENGTH}; it is logged cut short. Log long values "
                "as an artifact (mlflow_run.log_text) instead."
            ),
            stacklevel=3,
        )
        text = _cut(text, MAX_PARAM_VAL_LENGTH)
    return text


def _valid_key(key: str, kind: str) -> str:
    if not isinstance(key, str) or not key:
        raise ValueError(f"{kind} key must be a non-empty string, got {key!r}")
    if _INVALID_KEY_CHARS.search(key):
        fixed = _INVALID_KEY_CHARS.sub("_", key)
        warnings.warn(
            MlexpWarning(
                f"{kind} key {key!r} has characters MLflow refuses (allowed: letters, digits, "
                f"_ - . space /); it is logged as {fixed!r}"
            ),
            stacklevel=3,
        )
        return fixed
    return key


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "experiment"


def _batches(
    metrics: list[Metric], params: list[Param], tags: list[RunTag]
) -> Iterator[dict[str, Any]]:
    """Split values into requests within MLflow's log_batch limits (usually one)."""
    while metrics or params or tags:
        batch_params, params = params[:_MAX_BATCH_PARAMS], params[_MAX_BATCH_PARAMS:]
        batch_tags, tags = tags[:_MAX_BATCH_TAGS], tags[_MAX_BATCH_TAGS:]
        room = _MAX_BATCH_ENTITIES - len(batch_params) - len(batch_tags)
        cut = min(room, _MAX_BATCH_METRICS)
        batch_metrics, metrics = metrics[:cut], metrics[cut:]
        yield {"metrics": batch_metrics, "params": batch_params, "tags": batch_tags}


def _check_server(settings: TrackingConfig) -> None:
    """Fail fast, with a useful message, when the tracking server does not answer."""
    reason = unreachable_reason(settings.tracking_uri)
    if reason is not None:
        raise TrackingUnavailable(
            f"tracking server {settings.display_uri} "
            f"(from {settings.sources.get('tracking_uri', 'default')}) is unreachable: {reason}. "
            "Check that `mlflow server` is running and the host and port are right, "
            "or unset it to log to the embedded store."
        )


@contextlib.contextmanager
def _store_lock(settings: TrackingConfig) -> Iterator[None]:
    """Serialize creation of an embedded sqlite store across processes (xdist workers).

    Several processes creating the same new sqlite file at once can break its
    schema for good; an existing schema is safe to share.
    """
    path = sqlite_path(settings.tracking_uri)
    if path is None:
        yield
        return
    database = path.resolve()
    database.parent.mkdir(parents=True, exist_ok=True)
    with machine_lock("store", str(database)):
        yield
