"""Where runs go: the tracking URI, the experiment, the tags every run gets, the session id."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

import pytest

from ..backend import uris
from ..redaction import redact_uri
from .session_id import SESSION_ID_ENV as SESSION_ID_ENV
from .session_id import session_id
from .sources import is_from_file, lookup, parse_tags, settings_file, yaml_mapping


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
        return uris.is_server(self.tracking_uri)

    @property
    def is_embedded(self) -> bool:
        return uris.is_embedded(self.tracking_uri)

    @property
    def store_artifact_dir(self) -> Path | None:
        """The embedded store's artifact folder (``<rootdir>/mlruns``), when it is local."""
        location = self.artifact_location
        if not location or not location.startswith("file://"):
            return None
        from urllib.parse import unquote, urlsplit

        return Path(unquote(urlsplit(location).path)).resolve()

    @property
    def uri_source(self) -> str:
        return self.sources.get("tracking_uri", "default")

    @property
    def experiment_configured(self) -> bool:
        """Whether the experiment was set by the user rather than named after the rootdir."""
        return self.sources.get("experiment", "default") != "default"


def resolve_tracking(config: pytest.Config, *, reading: bool = False) -> TrackingConfig:
    """Resolve the tracking configuration from every source, or raise ``UsageError``.

    ``reading``: for a store that is only read (the ``mlexp`` command), which
    may also be an old file store; a URI it cannot use is refused at once.
    Otherwise (a pytest session, serial or xdist, controller or worker) such a
    URI is kept as given and refused when a tracked item opens the store, so
    that sessions without experiments never stop for a setting they do not use.
    """
    rootdir = Path(config.rootpath)
    sources: dict[str, str] = {}

    found = lookup(
        config, option="mlexp_tracking_uri", env="MLFLOW_TRACKING_URI", key="tracking_uri"
    )
    if found is None:
        uri = uris.default_store_uri(rootdir)
        sources["tracking_uri"] = "default"
    else:
        sources["tracking_uri"] = found[1]
        anchor = rootdir if is_from_file(found[1], config) else None
        try:
            uri = uris.check_uri(str(found[0]), anchor, reading=reading)
        except uris.UnsupportedUri as exc:
            if reading:
                raise pytest.UsageError(f"{found[1]}: {exc}") from None
            # A pytest session without experiments never uses it: refused only when a
            # tracked item opens the store (``Backend.for_session`` checks it again).
            uri = str(found[0]).strip()

    found = lookup(
        config, option="mlexp_experiment", env="MLFLOW_EXPERIMENT_NAME", key="experiment"
    )
    if found is None:
        experiment = rootdir.name or "Default"
        sources["experiment"] = "default"
    else:
        experiment, sources["experiment"] = str(found[0]).strip(), found[1]

    # Tags merge across sources; a higher source wins per key.
    yaml_tags, _ = yaml_mapping(config, "tags", "a mapping of KEY: VALUE")
    tags = {str(key): str(value) for key, value in yaml_tags.items()}
    tags.update(parse_tags(config.getini("mlexp_tags"), "ini mlexp_tags"))
    tags.update(parse_tags(config.getoption("mlexp_tags") or [], "--mlexp-tag"))
    settings_file(config)  # a broken settings file stops the session even when unused

    return TrackingConfig(
        tracking_uri=uri,
        experiment=experiment,
        tags=MappingProxyType(tags),
        rootdir=rootdir,
        session_id=session_id(config),
        artifact_location=uris.artifact_location(uri),
        sources=MappingProxyType(sources),
    )
