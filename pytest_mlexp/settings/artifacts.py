"""Artifact discovery: whether it is on, the roots it watches, its patterns and size cap."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from .sources import base_dir, bool_setting, list_setting, size_setting

#: Uploaded when a root holds a new or changed file matching one of these.
DEFAULT_PATTERNS = (
    "*.h5", "*.pkl", "*.joblib", "*.model", "*.png", "*.json",
    "*.keras", "*.pt", "*.pth", "*.onnx", "*.safetensors", "*.pickle",
    "*.svg", "*.html", "*.csv",
)  # fmt: skip
DEFAULT_MAX_SIZE = 100 * 2**20


@dataclass(frozen=True)
class DiscoverySettings:
    enabled: bool
    roots: tuple[Path, ...]
    patterns: tuple[str, ...]
    exclude: tuple[str, ...]
    max_size: int


def resolve_discovery(config: pytest.Config) -> DiscoverySettings:
    """Discovery's settings, or ``UsageError`` for a root that is not a directory or a bad size."""
    rootdir = Path(config.rootpath)
    roots: list[Path] = [rootdir]
    found = list_setting(config, "mlexp_artifact_roots", "artifact_roots")
    if found is not None:
        items, source = found
        base = base_dir(source, config)
        roots = [] if [i.lower() for i in items] == ["none"] else [base / i for i in items]
        for root in roots:
            if not root.is_dir():
                raise pytest.UsageError(
                    f"{source}: artifact root {str(root)!r} is not a directory; give "
                    "existing directories, or none to watch only tmp_path and output_dir"
                )
    patterns = list_setting(config, "mlexp_artifact_patterns", "artifact_patterns")
    exclude = list_setting(config, "mlexp_artifact_exclude", "artifact_exclude")
    return DiscoverySettings(
        enabled=bool_setting(config, "mlexp_artifacts", "artifacts", True),
        roots=tuple(dict.fromkeys(r.resolve() for r in roots)),
        patterns=tuple(patterns[0]) if patterns else DEFAULT_PATTERNS,
        exclude=tuple(exclude[0]) if exclude else (),
        max_size=size_setting(
            config, "mlexp_artifact_max_size", "artifact_max_size", DEFAULT_MAX_SIZE
        ),
    )
