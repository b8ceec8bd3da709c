"""Tracking URIs: what kind of store one names, its sqlite file, and links into the MLflow UI.

Links never carry credentials, so that they open as printed.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

from ..redaction import redact_uri

DEFAULT_STORE_FILE = "mlflow.db"
DEFAULT_ARTIFACT_DIR = "mlruns"

DB_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql")
SERVER_SCHEMES = ("http", "https", "databricks")
ACCEPTED_URI_FORMS = (
    "sqlite:///path/to/mlflow.db, http(s)://host:port, "
    "postgresql://user@host/db, mysql://user@host/db, mssql://user@host/db, databricks"
)


class UnsupportedUri(ValueError):
    """A tracking URI pytest-mlexp cannot use; the message says why and what is accepted."""


def scheme(uri: str) -> str:
    """The URI's scheme without a driver: ``postgresql+psycopg://`` -> ``postgresql``."""
    return urlsplit(uri).scheme.lower().split("+", 1)[0]


def is_server(uri: str) -> bool:
    """An ``http(s)://`` tracking server."""
    return scheme(uri) in ("http", "https")


def is_embedded(uri: str) -> bool:
    """A local sqlite store, written directly by this process."""
    return scheme(uri) == "sqlite"


def check_uri(uri: str, relative_to: Path | None = None, *, reading: bool = False) -> str:
    """``uri`` if pytest-mlexp can use it, a relative sqlite path anchored at ``relative_to``.

    Raises ``UnsupportedUri`` for an unknown scheme, or for MLflow 3's deprecated
    file store unless ``MLFLOW_ALLOW_FILE_STORE=true`` or the store is only read.
    """
    uri = uri.strip()
    base = scheme(uri)
    if base == "file" or (reading and not base):
        if reading or os.environ.get("MLFLOW_ALLOW_FILE_STORE", "").lower() == "true":
            return uri
        raise UnsupportedUri(
            f"the file store {redact_uri(uri)!r} is deprecated in MLflow 3 and refused "
            "unless MLFLOW_ALLOW_FILE_STORE=true; use sqlite:///path/to/mlflow.db instead"
        )
    if base not in DB_SCHEMES + SERVER_SCHEMES:
        full = urlsplit(uri).scheme.lower()
        shown = f"scheme {full!r}" if full else "no scheme"
        raise UnsupportedUri(
            f"unsupported tracking URI {redact_uri(uri)!r} ({shown}); "
            f"accepted forms: {ACCEPTED_URI_FORMS}"
        )
    if base == "sqlite" and relative_to is not None:
        path = uri.split(":///", 1)[1] if ":///" in uri else ""
        if path and not path.startswith("/") and path != ":memory:":
            uri = f"{urlsplit(uri).scheme}:///{relative_to / path}"
    return uri


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI; ``None`` for other URIs and in-memory ones."""
    if scheme(uri) != "sqlite" or ":///" not in uri:
        return None
    path = uri.split(":///", 1)[1].split("?", 1)[0]
    if not path or path == ":memory:":
        return None
    return Path(path)


def default_store_uri(rootdir: Path) -> str:
    """The embedded store of a project: ``sqlite:///<rootdir>/mlflow.db``."""
    return f"sqlite:///{rootdir / DEFAULT_STORE_FILE}"


def artifact_location(uri: str) -> str | None:
    """Where a sqlite store keeps artifacts: ``mlruns/`` beside its database, as MLflow does."""
    path = sqlite_path(uri)
    if path is None:
        return None
    return (path.resolve().parent / DEFAULT_ARTIFACT_DIR).as_uri()


# -- links into the MLflow UI ----------------------------------------------------------


def ui_base(uri: str) -> str | None:
    """The tracking UI's base URL, credentials removed, for ``http(s)`` URIs; else ``None``."""
    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https"):
        return None
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path.rstrip("/"), "", ""))


def experiment_link(base: str | None, experiment_id: str) -> str | None:
    """The experiment's page, or ``None`` without a UI base."""
    if base is None:
        return None
    return f"{base}/#/experiments/{experiment_id}"


#: Where ``mlflow ui`` listens unless told otherwise.
LOCAL_UI_BASE = "http://127.0.0.1:5000"
LOCAL_UI_PORT = 5000


def runs_table_link(base: str | None, experiment_id: str, view: str | None = None) -> str | None:
    """The experiment's runs table, in the UI's model-training mode, optionally in a saved view.

    MLflow 3's UI opens an experiment on its GenAI overview unless the link asks
    for ``workflowType=machine_learning``; ``viewStateShareKey`` picks a saved view.
    """
    if base is None:
        return None
    query = "workflowType=machine_learning" + (f"&viewStateShareKey={view}" if view else "")
    return f"{base}/#/experiments/{experiment_id}/runs?{query}"


def run_link(base: str | None, experiment_id: str, run_id: str) -> str | None:
    """The run's page, or ``None`` without a UI base."""
    if base is None:
        return None
    return f"{base}/#/experiments/{experiment_id}/runs/{run_id}"


def model_version_link(base: str | None, name: str, version: str) -> str | None:
    """A registered model version's page, or ``None`` without a UI base."""
    if base is None:
        return None
    return f"{base}/#/models/{quote(name, safe='')}/versions/{version}"


def health_url(uri: str) -> str:
    """The server's ``/health`` endpoint, without the URI's credentials."""
    parts = urlsplit(uri)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path.rstrip("/") + "/health", "", ""))
