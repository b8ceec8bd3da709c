"""Running the items on a Ray cluster (``--mlexp-ray``) and what each item reserves there."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from .sources import lookup, parse_tags, yaml_mapping

#: The environment variable naming the cluster, like ``--mlexp-ray``.
RAY_ENV = "MLEXP_RAY"


@dataclass(frozen=True)
class ClusterSettings:
    """Where the session's items run, and the resources reserved per item unless marked."""

    #: ``auto``, ``HOST:PORT`` or ``ray://HOST:10001``; ``None``: this machine, as usual.
    address: str | None = None
    #: Ray resources per item (``num_gpus``, ``num_cpus``, ``memory``, custom names).
    resources: Mapping[str, Any] = field(default_factory=dict)


def resolve_cluster(config: pytest.Config) -> ClusterSettings:
    """``--mlexp-ray`` (env ``MLEXP_RAY``, ini ``mlexp_ray``, yaml ``ray``) and the resources."""
    found = lookup(config, option="mlexp_ray", env=RAY_ENV, key="ray")
    address = str(found[0]).strip() or None if found is not None else None
    return ClusterSettings(address=address, resources=_default_resources(config))


def _default_resources(config: pytest.Config) -> Mapping[str, Any]:
    lines = config.getini("mlexp_resources")
    if lines:
        return parse_tags(lines, "ini mlexp_resources")
    values, _ = yaml_mapping(config, "resources", "a mapping of RESOURCE: AMOUNT")
    return dict(values)
