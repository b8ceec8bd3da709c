"""Running the items on a cluster (``--mlexp-ray``, ``--mlexp-slurm``) and what each reserves."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from .options import RAY_ENV as RAY_ENV  # re-exported: the names users and the cli know
from .options import SLURM_ENV as SLURM_ENV
from .sources import lookup, parse_tags, yaml_mapping

#: What ``--mlexp-slurm`` takes to mean "on, in the cluster's default partition".
SLURM_ON = ("on", "true", "yes", "1", "default")
SLURM_OFF = ("off", "false", "no", "0")


@dataclass(frozen=True)
class SlurmSettings:
    """Where and how the items' Slurm jobs are submitted."""

    #: ``None``: the cluster's default partition.
    partition: str | None = None
    #: sbatch options for every job (submitit's names: ``time`` in minutes, ``account``,
    #: ``qos``, ``constraint``...; any other sbatch option by its long name).
    options: Mapping[str, Any] = field(default_factory=dict)
    #: Where the switch came from, for messages (``--mlexp-slurm``, ``ini mlexp_slurm``...).
    source: str = "--mlexp-slurm"


@dataclass(frozen=True)
class ClusterSettings:
    """Where the session's items run, and the resources reserved per item unless marked."""

    #: ``auto``, ``HOST:PORT`` or ``ray://HOST:10001``; ``None``: not on Ray.
    address: str | None = None
    #: Resources per item by neutral name (``GPU``, ``CPU``, ``memory``, custom names).
    resources: Mapping[str, Any] = field(default_factory=dict)
    #: ``--mlexp-slurm``: the items run as Slurm jobs; ``None``: not on Slurm.
    slurm: SlurmSettings | None = None

    @property
    def backend(self) -> str | None:
        """``ray``, ``slurm``, or ``None`` when the items run here, as usual."""
        if self.address is not None:
            return "ray"
        return "slurm" if self.slurm is not None else None


def resolve_cluster(config: pytest.Config) -> ClusterSettings:
    """``--mlexp-ray`` (env ``MLEXP_RAY``, ini ``mlexp_ray``, yaml ``ray``), ``--mlexp-slurm``
    (env ``MLEXP_SLURM``, ini ``mlexp_slurm``, yaml ``slurm``) and the resources.
    """
    found = lookup(config, option="mlexp_ray", env=RAY_ENV, key="ray")
    address = str(found[0]).strip() or None if found is not None else None
    slurm = _slurm(config)
    if address is not None and slurm is not None:
        raise pytest.UsageError(
            f"{found[1] if found else '--mlexp-ray'} and {slurm.source}: the items run on one "
            "cluster; choose Ray or Slurm"
        )
    return ClusterSettings(address=address, resources=_default_resources(config), slurm=slurm)


def cluster_requested(config: pytest.Config) -> bool:
    """Whether a cluster backend is asked for, reading only its switches (cheap, at configure)."""
    found = lookup(config, option="mlexp_ray", env=RAY_ENV, key="ray")
    if found is not None and str(found[0]).strip():
        return True
    found = lookup(config, option="mlexp_slurm", env=SLURM_ENV, key="slurm")
    return found is not None and str(found[0]).strip().lower() not in ("", *SLURM_OFF)


def _slurm(config: pytest.Config) -> SlurmSettings | None:
    found = lookup(config, option="mlexp_slurm", env=SLURM_ENV, key="slurm")
    if found is None:
        return None
    value, source = str(found[0]).strip(), found[1]
    if value.lower() in SLURM_OFF:
        return None
    partition = None if value.lower() in SLURM_ON else value
    lines = config.getini("mlexp_slurm_options")
    if lines:
        options: Mapping[str, Any] = parse_tags(lines, "ini mlexp_slurm_options")
    else:
        options, _ = yaml_mapping(config, "slurm_options", "a mapping of SBATCH_OPTION: VALUE")
    return SlurmSettings(partition=partition, options=dict(options), source=source)


def _default_resources(config: pytest.Config) -> Mapping[str, Any]:
    lines = config.getini("mlexp_resources")
    if lines:
        return parse_tags(lines, "ini mlexp_resources")
    values, _ = yaml_mapping(config, "resources", "a mapping of RESOURCE: AMOUNT")
    return dict(values)
