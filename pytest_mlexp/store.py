"""Reading runs back from an MLflow store, for reports and the ``mlexp`` command.

Everything here works on a store after the fact: it never creates one (an
``mlexp`` command pointed at a missing sqlite file says so instead of leaving
an empty database behind). ``mlflow`` is imported only when a store is opened.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.error import HTTPError, URLError
from urllib.parse import urlsplit, urlunsplit
from urllib.request import Request, urlopen

from .config import DEFAULT_STORE_FILE, sqlite_path
from .redaction import redact_text, redact_uri

if TYPE_CHECKING:
    from mlflow.entities import Experiment, Run
    from mlflow.tracking import MlflowClient

#: Files that mark a project's root, as pytest finds its rootdir.
ROOT_MARKERS = ("pyproject.toml", "pytest.ini", "tox.ini", "setup.cfg")

#: Tags set by the plugin core on every run of a tracked item.
NODEID_TAG = "mlexp.nodeid"
SESSION_TAG = "mlexp.session_id"
OUTCOME_TAG = "mlexp.outcome"
#: Runs that hold other runs' results (a session's report, a grid's parent) carry
#: this tag; they are not runs of an item, so reports and tables leave them out.
KIND_TAG = "mlexp.kind"
CONTAINER_KINDS = frozenset({"session", "grid", "parent"})
#: Tags written by regression checks (baselines), shown in reports when present.
REGRESSION_TAG_PREFIX = "mlexp.regression."

#: Most runs read for one report or table.
MAX_RUNS = 10_000


class StoreError(Exception):
    """What the user asked for is not in the store (or the store is not there).

    The message is one line, meant to be printed as it is.
    """


@dataclass(frozen=True)
class Store:
    """An opened tracking store and where its URI came from."""

    client: MlflowClient
    uri: str
    source: str

    @property
    def display_uri(self) -> str:
        return redact_uri(self.uri)

    @property
    def ui_base(self) -> str | None:
        """Base URL of the tracking UI, without credentials, for server stores."""
        return ui_base(self.uri)


@dataclass
class StoredRun:
    """One run as reports and commands show it."""

    run_id: str
    name: str
    experiment_id: str
    experiment: str
    status: str
    start_time: int
    params: dict[str, str]
    metrics: dict[str, float]
    tags: dict[str, str]
    #: Metric histories by key, as ``(step, value)`` pairs; filled for reports.
    histories: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    url: str | None = None

    @property
    def outcome(self) -> str:
        return self.tags.get(OUTCOME_TAG, "")

    @property
    def nodeid(self) -> str:
        return self.tags.get(NODEID_TAG, "")

    @property
    def session_id(self) -> str:
        return self.tags.get(SESSION_TAG, "")

    @property
    def group(self) -> str:
        """The experiment function a grid cell belongs to: its node id without ``[...]``."""
        return strip_params(self.nodeid or self.name)

    @property
    def regression(self) -> dict[str, str]:
        """Regression-check tags (``mlexp.regression.*``) by their short name."""
        return {
            key[len(REGRESSION_TAG_PREFIX) :]: value
            for key, value in sorted(self.tags.items())
            if key.startswith(REGRESSION_TAG_PREFIX)
        }

    @property
    def step_metrics(self) -> list[str]:
        """Metrics logged at more than one step."""
        return sorted(key for key, points in self.histories.items() if len(points) > 1)


def strip_params(name: str) -> str:
    """``experiment_a.py::experiment_ridge[0.1-x]`` -> ``experiment_a.py::experiment_ridge``."""
    return re.sub(r"\[.*\]$", "", name)


# -- finding and opening the store ----------------------------------------------------


def project_root(start: Path | None = None) -> Path:
    """The nearest folder upward holding a pytest config file, else ``start`` (the cwd)."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if any((folder / marker).is_file() for marker in ROOT_MARKERS):
            return folder
    return here


def resolve_uri(option: str | None, cwd: Path | None = None) -> tuple[str, str]:
    """The tracking URI to read and where it came from: the option, the env, the default."""
    if option and option.strip():
        return option.strip(), "--tracking-uri"
    from_env = os.environ.get("MLFLOW_TRACKING_URI", "").strip()
    if from_env:
        return from_env, "MLFLOW_TRACKING_URI"
    return f"sqlite:///{project_root(cwd) / DEFAULT_STORE_FILE}", "default"


def open_store(option: str | None = None) -> Store:
    """Open the store the user points at, or raise ``StoreError`` saying what is wrong."""
    uri, source = resolve_uri(option)
    shown = f"{redact_uri(uri)} (from {source})"
    scheme = urlsplit(uri).scheme.lower().split("+", 1)[0]
    if scheme == "sqlite":
        path = sqlite_path(uri)
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
    elif scheme in ("http", "https"):
        check_server(uri, shown)
    elif scheme in ("", "file"):
        folder = Path(urlsplit(uri).path if scheme else uri)
        if not folder.is_dir():
            raise StoreError(f"no MLflow store at {shown}: {folder} is not a folder")
    import warnings

    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    with warnings.catch_warnings():
        # MLflow's sqlite store uses SQLAlchemy APIs that 2.x deprecates.
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        try:
            client = MlflowClient(tracking_uri=uri)
            # Reach the store now, so a wrong URI fails here with one clear line.
            client.search_experiments(max_results=1)
        except MlflowException as exc:
            raise StoreError(f"cannot read the MLflow store {shown}: {_one_line(exc)}") from None
        except Exception as exc:
            raise StoreError(
                f"cannot read the MLflow store {shown}: {type(exc).__name__}: {_one_line(exc)}"
            ) from None
    return Store(client=client, uri=uri, source=source)


def unreachable_reason(uri: str, timeout: float = 10.0) -> str | None:
    """Why the tracking server at ``uri`` does not answer, or ``None`` if it does.

    Probes ``/health`` without the URI's credentials; any HTTP answer, even a
    refusal, means the server is there (MLflow itself would retry for minutes).
    """
    parts = urlsplit(uri)
    host = parts.netloc.rpartition("@")[2]
    url = urlunsplit((parts.scheme, host, parts.path.rstrip("/") + "/health", "", ""))
    try:
        with urlopen(Request(url), timeout=timeout) as response:
            response.read()
    except HTTPError:
        return None
    except (URLError, OSError) as exc:
        return str(getattr(exc, "reason", exc))
    return None


def check_server(uri: str, shown: str, timeout: float = 10.0) -> None:
    """Raise ``StoreError`` when the tracking server at ``uri`` does not answer."""
    reason = unreachable_reason(uri, timeout)
    if reason is not None:
        raise StoreError(
            f"tracking server {shown} is unreachable: {reason}; "
            "check that `mlflow server` is running and the host and port are right"
        )


def ui_base(uri: str) -> str | None:
    """The tracking UI's base URL, credentials removed, for ``http(s)`` URIs; else ``None``."""
    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https"):
        return None
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path.rstrip("/"), "", ""))


def run_link(base: str | None, experiment_id: str, run_id: str) -> str | None:
    if base is None:
        return None
    return f"{base}/#/experiments/{experiment_id}/runs/{run_id}"


# -- experiments and runs ---------------------------------------------------------------


def experiment_by_name(store: Store, name: str) -> Experiment:
    experiment = store.client.get_experiment_by_name(name)
    if experiment is None or experiment.lifecycle_stage == "deleted":
        known = [e.name for e in active_experiments(store)]
        listed = ", ".join(repr(n) for n in known[:20]) or "none"
        raise StoreError(
            f"no experiment named {name!r} in {store.display_uri}; experiments there: {listed}"
        )
    return experiment


def active_experiments(store: Store) -> list[Experiment]:
    return list(store.client.search_experiments(max_results=MAX_RUNS))


def search(
    store: Store,
    experiments: Sequence[Experiment],
    filter_string: str = "",
    *,
    max_results: int = MAX_RUNS,
    include_containers: bool = False,
) -> list[StoredRun]:
    """Runs of ``experiments`` matching MLflow's search syntax, newest first."""
    from mlflow.exceptions import MlflowException

    if not experiments:
        return []
    names = {str(e.experiment_id): str(e.name) for e in experiments}
    base = store.ui_base
    runs: list[StoredRun] = []
    page_token = None
    try:
        while len(runs) < max_results:
            page = store.client.search_runs(
                list(names),
                filter_string=filter_string,
                # Ask for a few more: container runs are dropped below.
                max_results=min(1000, max_results - len(runs) + 10),
                order_by=["attributes.start_time DESC"],
                page_token=page_token,
            )
            runs.extend(
                _stored(run, names, base)
                for run in page
                if include_containers or run.data.tags.get(KIND_TAG) not in CONTAINER_KINDS
            )
            page_token = page.token
            if not page_token:
                break
    except MlflowException as exc:
        raise StoreError(f"cannot search runs ({filter_string!r}): {_one_line(exc)}") from None
    return runs[:max_results]


def session_filter(session_id: str) -> str:
    return f"tags.`{SESSION_TAG}` = '{_quote(session_id)}'"


def latest_session(store: Store, experiments: Sequence[Experiment]) -> str:
    """The session id of the most recent run recorded by pytest-mlexp."""
    query = f"tags.`{SESSION_TAG}` != ''"
    runs = search(store, experiments, query, max_results=1, include_containers=True)
    if not runs:
        raise StoreError(f"no runs recorded by pytest-mlexp in {store.display_uri}")
    return runs[0].session_id


def get_run(store: Store, ref: str, experiments: Sequence[Experiment] = ()) -> StoredRun:
    """A run by id, or by name (the latest run of that name)."""
    from mlflow.exceptions import MlflowException

    try:
        run = store.client.get_run(ref)
    except MlflowException:
        run = None
    if run is not None:
        experiment = store.client.get_experiment(run.info.experiment_id)
        names = {str(experiment.experiment_id): str(experiment.name)}
        return _stored(run, names, store.ui_base)
    pool = experiments or active_experiments(store)
    name_filter = f"attributes.run_name = '{_quote(ref)}'"
    by_name = search(store, pool, name_filter, max_results=1, include_containers=True)
    if not by_name:
        raise StoreError(f"no run with id or name {ref!r} in {store.display_uri}")
    return by_name[0]


def load_histories(store: Store, runs: Iterable[StoredRun]) -> None:
    """Fill each run's metric histories (one request per run and metric)."""
    for run in runs:
        for key in run.metrics:
            points = store.client.get_metric_history(run.run_id, key)
            run.histories[key] = sorted(
                (int(m.step), float(m.value)) for m in points if math.isfinite(m.value)
            )


def _stored(run: Run, experiments: Mapping[str, str], base: str | None) -> StoredRun:
    info, data = run.info, run.data
    experiment_id = str(info.experiment_id)
    return StoredRun(
        run_id=str(info.run_id),
        name=str(info.run_name or info.run_id),
        experiment_id=experiment_id,
        experiment=experiments.get(experiment_id, experiment_id),
        status=str(info.status),
        start_time=int(info.start_time or 0),
        params=dict(data.params),
        metrics={k: float(v) for k, v in data.metrics.items()},
        tags=dict(data.tags),
        url=run_link(base, experiment_id, str(info.run_id)),
    )


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")


def _one_line(exc: BaseException) -> str:
    message = str(getattr(exc, "message", None) or exc)
    first = next((line.strip() for line in message.splitlines() if line.strip()), "")
    return redact_text(first)
