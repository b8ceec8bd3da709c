"""``ExperimentRun``: the item's own MLflow run, what the ``mlflow_run`` fixture returns."""

from __future__ import annotations

import math
import numbers
import os
import re
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ..backend.client import (
    MAX_BATCH_METRICS,
    MAX_BATCH_PARAMS,
    MAX_BATCH_TAGS,
    MAX_PARAM_LENGTH,
    MAX_TAG_LENGTH,
    MetricValue,
)
from ..backend.fluent import cut
from ..warning_types import MlexpWarning

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

    from ..backend.client import Backend

#: Buffered values are sent at least this often while a run is going.
FLUSH_INTERVAL_SECONDS = 10.0

_INVALID_KEY_CHARS = re.compile(r"[^A-Za-z0-9_\-. /]")


class SearchTrial(Protocol):
    """The trial of a search a run is (set by the search feature): it hears the run's steps."""

    def observe(self, key: str, value: float, step: int) -> None:
        """A metric logged at a step: an intermediate value for the search's pruner."""

    def should_prune(self) -> bool:
        """Whether the trial should stop now."""


class ModelLogger(Protocol):
    """Logs a model to a run with its flavor (installed by the models feature)."""

    def __call__(
        self,
        run: ExperimentRun,
        model: Any,
        *,
        name: str,
        input_example: Any,
        signature: Any,
        flavor_kwargs: dict[str, Any],
    ) -> Any: ...


class ExperimentRun:
    """The item's own MLflow run; what the ``mlflow_run`` fixture returns.

    Params, metrics and tags are buffered and sent with one ``log_batch``
    per flush: when the run ends, when 1,000 values are waiting, every
    ten seconds while values keep coming, or on ``flush()``.
    """

    def __init__(self, backend: Backend, run_id: str, experiment_id: str) -> None:
        self.backend = backend
        self.run_id = run_id
        """The MLflow run id: ``run.client.get_run(run.run_id)`` reads the run back."""
        self.experiment_id = experiment_id
        """The id of the MLflow experiment the run is in."""
        #: Latest value of every metric logged through this handle (highest step, then last).
        self.metrics: dict[str, float] = {}
        #: The metrics the experiment returned, in the order returned (``log_returned``).
        self.returned: dict[str, float] = {}
        #: Per metric logged through this handle: its latest (step, timestamp), and the
        #: metrics logged at more than one step (a history, such as a training curve).
        self.latest_points: dict[str, tuple[int, int]] = {}
        self.histories: set[str] = set()
        #: Every param logged through this handle, as sent.
        self.params: dict[str, str] = {}
        self._metrics: list[MetricValue] = []
        self._params: list[tuple[str, str]] = []
        self._tags: dict[str, str] = {}
        self._last_flush = time.monotonic()
        #: Local files and folders uploaded with ``log_artifact`` (discovery skips them).
        self.logged_paths: set[Path] = set()
        #: Where ``output_dir`` is made; set by artifact discovery when the run starts.
        self.output_location: Path | None = None
        #: The Optuna trial this run is, in a search; set by ``search.plugin``.
        self.search_trial: SearchTrial | None = None
        #: What ``log_model`` calls; installed by the models feature when the run starts.
        self.model_logger: ModelLogger | None = None
        #: Models logged with ``log_model``: name -> MLflow model id (``m-...``).
        self.logged_models: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"<ExperimentRun {self.run_id}>"

    @property
    def client(self) -> MlflowClient:
        """The ``MlflowClient`` of the session's store, for anything not offered here."""
        return self.backend.client  # type: ignore[no-any-return]

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
        self._params.append((key, text))
        self._maybe_flush()

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Log several params, as ``log_param`` does each."""
        for key, value in params.items():
            self.log_param(key, value)

    # -- metrics --------------------------------------------------------------

    def log_metric(
        self, key: str, value: float, step: int | None = None, timestamp: int | None = None
    ) -> None:
        """Log one metric value, optionally at a ``step`` of training."""
        key = _valid_key(key, "metric")
        number = _metric_number(key, value)
        self._record(key, number, int(step or 0), timestamp or int(time.time() * 1000))
        if self.search_trial is not None and step is not None:
            # The objective at a step is an intermediate value for the search's pruner.
            self.search_trial.observe(key, number, int(step))
        self._maybe_flush()

    def _record(self, key: str, value: float, step: int, timestamp: int) -> None:
        """Buffer one value, and keep the metric's latest (highest step, then latest time)."""
        point = (step, timestamp)
        latest = self.latest_points.get(key)
        if latest is not None and latest[0] != step:
            self.histories.add(key)
        if latest is None or point >= latest:
            self.latest_points[key] = point
            self.metrics[key] = value
        self._metrics.append((key, value, timestamp, step))

    def _log_system_metrics(self, metrics: Mapping[str, float]) -> None:
        """Buffer the machine's metrics (``system/...``, step 0): sent with the run's values,
        kept out of ``metrics``, which are the experiment's."""
        now = int(time.time() * 1000)
        self._metrics.extend((key, float(value), now, 0) for key, value in metrics.items())

    def should_prune(self) -> bool:
        """In a search with a pruner: whether this trial should stop now.

        Report the objective at each step first (``log_metric(objective, v, step=s)``);
        when this returns True, return (or ``raise optuna.TrialPruned()``): the trial
        ends as pruned, its run FINISHED with ``mlexp.outcome=pruned``, and pytest
        shows it as skipped. Outside a search it is always False::

            for epoch in range(100):
                mlflow_run.log_metric("val_loss", train_one_epoch(), step=epoch)
                if mlflow_run.should_prune():
                    return
        """
        return self.search_trial is not None and self.search_trial.should_prune()

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Log several metric values at once, optionally at a ``step``."""
        timestamp = int(time.time() * 1000)
        for key, value in metrics.items():
            self.log_metric(key, value, step=step, timestamp=timestamp)

    # -- tags -----------------------------------------------------------------

    def set_tag(self, key: str, value: Any) -> None:
        """Set one tag on the run (a tag, unlike a param, may change)."""
        self._tags[key] = cut(str(value), MAX_TAG_LENGTH)
        self._maybe_flush()

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        """Set several tags, as ``set_tag`` does each."""
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
            raise RuntimeError(
                "output_dir is made by the mlflow_run fixture: request mlflow_run in the "
                "experiment to get one"
            )
        self.output_location.mkdir(parents=True, exist_ok=True)
        return self.output_location

    def log_dict(self, dictionary: Mapping[str, Any], artifact_file: str) -> None:
        """Save a dict as a JSON or YAML artifact (by the file's extension)."""
        self.client.log_dict(self.run_id, dict(dictionary), artifact_file)

    def log_text(self, text: str, artifact_file: str) -> None:
        """Save ``text`` as an artifact file (``notes/summary.md``)."""
        self.client.log_text(self.run_id, text, artifact_file)

    #: How HTML figures load plotly.js: ``inline`` (in every file) or ``cdn`` (from plotly's
    #: CDN); ``--mlexp-figures``, set when the run starts.
    figures: str = "inline"

    def log_figure(self, figure: Any, artifact_file: str) -> None:
        """Save a matplotlib or plotly figure as an artifact.

        A plotly figure saved as ``.html`` carries plotly.js inside (about 4.7 MB),
        so it renders in the MLflow UI's artifact viewer with no network; with
        ``--mlexp-figures cdn`` it loads plotly.js from plotly's CDN instead (a
        few kB a figure, needs the network to render).
        """
        if artifact_file.lower().endswith((".html", ".htm")) and _is_plotly(figure):
            include: str | bool = "cdn" if self.figures == "cdn" else True
            html = figure.to_html(include_plotlyjs=include, full_html=True)
            self.client.log_text(self.run_id, html, artifact_file)
            return
        self.client.log_figure(self.run_id, figure, artifact_file)

    # -- models ----------------------------------------------------------------

    def log_model(
        self,
        model: Any,
        name: str = "model",
        input_example: Any = None,
        signature: Any = None,
        **flavor_kwargs: Any,
    ) -> Any:
        """Log ``model`` as an MLflow Model of this run, with MLflow's flavor for its type.

        scikit-learn, XGBoost, LightGBM, CatBoost, statsmodels, PyTorch,
        TensorFlow/Keras and transformers objects, and ``mlflow.pyfunc.PythonModel``;
        anything else raises ``TypeError`` naming the MLflow function to call
        (nothing is pickled behind your back). The signature is inferred from
        ``input_example`` unless given; ``flavor_kwargs`` go to the flavor's
        ``log_model`` (e.g. ``pip_requirements``). Returns MLflow's ``ModelInfo``
        (``model_uri`` is ``models:/<model id>``). The model is linked to the run's
        metrics, those logged after it included.
        """
        if self.model_logger is None:
            raise RuntimeError(
                "mlflow_run.log_model: models are logged by pytest-mlexp's models feature, "
                "which is not active in this process"
            )
        info = self.model_logger(
            self,
            model,
            name=name,
            input_example=input_example,
            signature=signature,
            flavor_kwargs=flavor_kwargs,
        )
        self.logged_models[name] = str(info.model_id)
        return info

    # -- sending ---------------------------------------------------------------

    @property
    def pending(self) -> int:
        return len(self._metrics) + len(self._params) + len(self._tags)

    def flush(self) -> None:
        """Send every buffered param, metric and tag now."""
        metrics, params, tags = self._metrics, self._params, list(self._tags.items())
        self._metrics, self._params, self._tags = [], [], {}
        self._last_flush = time.monotonic()
        if metrics or params or tags:
            self.backend.log_batch(self.run_id, metrics, params, tags)

    def _maybe_flush(self) -> None:
        if (
            len(self._metrics) >= MAX_BATCH_METRICS
            or len(self._params) >= MAX_BATCH_PARAMS
            or len(self._tags) >= MAX_BATCH_TAGS
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


def _metric_number(key: str, value: Any) -> float:
    """A metric's value as a float; a warning when it is NaN or infinite."""
    if not isinstance(value, numbers.Real):
        raise TypeError(f"metric {key!r} must be a number, got {type(value).__name__}")
    number = float(value)
    if math.isnan(number) or math.isinf(number):
        warnings.warn(
            MlexpWarning(f"metric {key!r} is {number}; it is logged, but check the experiment"),
            stacklevel=3,
        )
    return number


def _is_plotly(figure: Any) -> bool:
    """A plotly figure (told by its class's module, so plotly is not imported to check)."""
    return type(figure).__module__.split(".", 1)[0] == "plotly" and hasattr(figure, "to_html")


def _param_text(key: str, value: Any) -> str:
    text = value if isinstance(value, str) else stringify(value)
    if len(text) > MAX_PARAM_LENGTH:
        warnings.warn(
            MlexpWarning(
                f"param {key!r} is {len(text)} characters, over MLflow's limit of "
                f"{MAX_PARAM_LENGTH}; it is logged cut short. Log long values "
                "as an artifact (mlflow_run.log_text) instead."
            ),
            stacklevel=3,
        )
        text = cut(text, MAX_PARAM_LENGTH)
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
