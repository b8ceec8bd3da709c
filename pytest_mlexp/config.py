"""The tracking configuration: one frozen value, resolved once per session.

Precedence, highest first: command-line flags, MLflow's environment
variables, ini / ``[tool.pytest.ini_options]`` keys, an ``mlexp.yaml`` file,
built-in defaults.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

import pytest

from .redaction import redact_uri

#: Environment variable that fixes the session id, so that several pytest
#: invocations (CI shards, reruns) group their runs together.
SESSION_ID_ENV = "MLEXP_SESSION_ID"

DEFAULT_CONFIG_FILE = "mlexp.yaml"
DEFAULT_STORE_FILE = "mlflow.db"
DEFAULT_ARTIFACT_DIR = "mlruns"

#: Keys accepted in ``mlexp.yaml``.
YAML_KEYS: tuple[str, ...] = (
    "tracking_uri",
    "experiment",
    "tags",
    # lineage.py, artifacts.py, autolog.py
    "lineage",
    "artifacts",
    "artifact_roots",
    "artifact_patterns",
    "artifact_exclude",
    "artifact_max_size",
    "autolog",
    # html_report.py
    "html",
    # gate.py
    "baseline",
    "baseline_file",
    "tolerance",
    "tolerances",
    "directions",
    # grid.py, journal.py
    "best_metric",
    "on_tracking_error",
)

_DB_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql")
_SERVER_SCHEMES = ("http", "https", "databricks")
ACCEPTED_URI_FORMS = (
    "sqlite:///path/to/mlflow.db, http(s)://host:port, "
    "postgresql://user@host/db, mysql://user@host/db, mssql://user@host/db, databricks"
)


@dataclass(frozen=True)
class TrackingConfig:
    """Where and how runs are tracked; available as the ``tracking_config`` fixture."""

    tracking_uri: str
    experiment: str
    tags: Mapping[str, str]
    rootdir: Path
    session_id: str
    #: Artifact location for experiments the plugin creates (sqlite stores
    #: only; servers choose their own).
    artifact_location: str | None = None
    #: Where each resolved value came from, e.g. ``{"tracking_uri": "--mlexp-tracking-uri"}``.
    sources: Mapping[str, str] = field(default_factory=dict)

    @property
    def display_uri(self) -> str:
        """The tracking URI with credentials removed, safe to print or log."""
        return redact_uri(self.tracking_uri)

    @property
    def is_server(self) -> bool:
        return urlsplit(self.tracking_uri).scheme in ("http", "https")

    @property
    def is_embedded(self) -> bool:
        return urlsplit(self.tracking_uri).scheme == "sqlite"


def from_pytest_config(config: pytest.Config) -> TrackingConfig:
    """Resolve the tracking configuration from every source, or raise ``UsageError``."""
    rootdir = Path(config.rootpath)
    yaml_source, yaml_values = settings_file(config)
    sources: dict[str, str] = {}

    found = lookup(
        config, option="mlexp_tracking_uri", env="MLFLOW_TRACKING_URI", key="tracking_uri"
    )
    if found is None:
        uri = f"sqlite:///{rootdir / DEFAULT_STORE_FILE}"
        sources["tracking_uri"] = "default"
    else:
        uri, sources["tracking_uri"] = str(found[0]), found[1]
        from_file = found[1].startswith(("ini", yaml_source))
        uri = _check_uri(uri, found[1], rootdir if from_file else None)

    found = lookup(
        config, option="mlexp_experiment", env="MLFLOW_EXPERIMENT_NAME", key="experiment"
    )
    if found is None:
        experiment = rootdir.name or "Default"
        sources["experiment"] = "default"
    else:
        experiment, sources["experiment"] = str(found[0]).strip(), found[1]

    # Tags merge across sources; a higher source wins per key.
    tags: dict[str, str] = {}
    tags.update(_yaml_tags(yaml_source, yaml_values))
    tags.update(parse_tags(config.getini("mlexp_tags"), "ini mlexp_tags"))
    tags.update(parse_tags(config.getoption("mlexp_tags") or [], "--mlexp-tag"))

    return TrackingConfig(
        tracking_uri=uri,
        experiment=experiment,
        tags=MappingProxyType(tags),
        rootdir=rootdir,
        session_id=_session_id(config),
        artifact_location=_artifact_location(uri),
        sources=MappingProxyType(sources),
    )


_SETTINGS_FILE_KEY = pytest.StashKey[tuple[str, Mapping[str, Any]]]()


def settings_file(config: pytest.Config) -> tuple[str, Mapping[str, Any]]:
    """The settings file's name and contents (empty if there is none), read once per session."""
    cached = config.stash.get(_SETTINGS_FILE_KEY, None)
    if cached is None:
        cached = config.stash[_SETTINGS_FILE_KEY] = _load_yaml(config, Path(config.rootpath))
    return cached


def lookup(
    config: pytest.Config,
    *,
    option: str,
    env: str | None = None,
    key: str | None = None,
) -> tuple[Any, str] | None:
    """The first value set for a setting, and where it came from.

    Looks at the command-line option with dest ``option`` (flag
    ``--option-with-dashes``), the environment variable ``env``, the ini key
    named like ``option``, then ``key`` in the settings file. Empty values
    count as unset. Returns ``None`` when no source sets it.
    """
    value = config.getoption(option)
    if value not in (None, "", []):
        return value, "--" + option.replace("_", "-")
    if env is not None and os.environ.get(env, "").strip():
        return os.environ[env].strip(), env
    ini_value = config.getini(option)
    if ini_value not in (None, "", []):
        return (ini_value.strip() if isinstance(ini_value, str) else ini_value), f"ini {option}"
    if key is not None:
        source, values = settings_file(config)
        if values.get(key) is not None:
            return _yaml_scalar(source, values, key), f"{source} {key}"
    return None


def parse_tags(lines: Iterable[str], source: str) -> dict[str, str]:
    """Parse ``KEY=VALUE`` strings; raise ``UsageError`` naming the source for a bad one."""
    tags: dict[str, str] = {}
    for line in lines:
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise pytest.UsageError(
                f"{source}: malformed tag {line!r}; expected KEY=VALUE, e.g. team=vision"
            )
        tags[key.strip()] = value.strip()
    return tags


def _session_id(config: pytest.Config) -> str:
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None and "mlexp_session_id" in workerinput:
        return str(workerinput["mlexp_session_id"])
    from_env = os.environ.get(SESSION_ID_ENV, "").strip()
    if from_env:
        return from_env
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}"


def _check_uri(uri: str, source: str, relative_to: Path | None) -> str:
    uri = uri.strip()
    scheme = urlsplit(uri).scheme.lower()
    base_scheme = scheme.split("+", 1)[0]
    if base_scheme == "file":
        if os.environ.get("MLFLOW_ALLOW_FILE_STORE", "").lower() == "true":
            return uri
        raise pytest.UsageError(
            f"{source}: the file store {redact_uri(uri)!r} is deprecated in MLflow 3 and refused "
            "unless MLFLOW_ALLOW_FILE_STORE=true; use sqlite:///path/to/mlflow.db instead"
        )
    if base_scheme not in _DB_SCHEMES + _SERVER_SCHEMES:
        shown = f"scheme {scheme!r}" if scheme else "no scheme"
        raise pytest.UsageError(
            f"{source}: unsupported tracking URI {redact_uri(uri)!r} ({shown}); "
            f"accepted forms: {ACCEPTED_URI_FORMS}"
        )
    if base_scheme == "sqlite" and relative_to is not None:
        path = uri.split(":///", 1)[1] if ":///" in uri else ""
        if path and not path.startswith("/") and path != ":memory:":
            uri = f"{scheme}:///{relative_to / path}"
    return uri


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI; ``None`` for other URIs and in-memory ones."""
    if urlsplit(uri).scheme.split("+", 1)[0] != "sqlite" or ":///" not in uri:
        return None
    path = uri.split(":///", 1)[1].split("?", 1)[0]
    if not path or path == ":memory:":
        return None
    return Path(path)


def _artifact_location(uri: str) -> str | None:
    """Keep a sqlite store's artifacts beside its database, as MLflow does in the cwd."""
    path = sqlite_path(uri)
    if path is None:
        return None
    return (path.resolve().parent / DEFAULT_ARTIFACT_DIR).as_uri()


def _load_yaml(config: pytest.Config, rootdir: Path) -> tuple[str, Mapping[str, Any]]:
    explicit = config.getoption("mlexp_config") or str(config.getini("mlexp_config")).strip()
    path = Path(explicit) if explicit else rootdir / DEFAULT_CONFIG_FILE
    if explicit and not path.is_absolute():
        path = (Path.cwd() if config.getoption("mlexp_config") else rootdir) / path
    if not path.exists():
        if explicit:
            raise pytest.UsageError(
                f"--mlexp-config: {path} does not exist; give the path of an mlexp YAML file"
            )
        return path.name, {}
    import yaml

    try:
        values = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise pytest.UsageError(f"{path}: not valid YAML: {exc}") from None
    if values is None:
        return path.name, {}
    if not isinstance(values, Mapping):
        raise pytest.UsageError(
            f"{path}: expected a mapping of settings at the top level, got {type(values).__name__}"
        )
    unknown = sorted(str(key) for key in values if key not in YAML_KEYS)
    if unknown:
        raise pytest.UsageError(
            f"{path}: unknown key {unknown[0]!r}; accepted keys: {', '.join(YAML_KEYS)}"
        )
    return path.name, values


def _yaml_scalar(source: str, values: Mapping[str, Any], key: str) -> str | int | float | bool:
    value = values[key]
    if not isinstance(value, str | int | float | bool):
        raise pytest.UsageError(
            f"{source}: {key} must be a single value, got {type(value).__name__}"
        )
    return value


def _yaml_tags(source: str, values: Mapping[str, Any]) -> dict[str, str]:
    tags = values.get("tags")
    if tags is None:
        return {}
    if not isinstance(tags, Mapping):
        raise pytest.UsageError(
            f"{source}: tags must be a mapping of KEY: VALUE, got {type(tags).__name__}"
        )
    return {str(key): str(value) for key, value in tags.items()}
