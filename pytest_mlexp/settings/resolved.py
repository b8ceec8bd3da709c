"""Every feature's settings for one session, resolved together into one frozen value.

The plugin resolves them when a tracked item is about to use them (``runs.session``),
the ``mlexp`` command when it reads the project; ``settings/__init__`` names them
without importing this module, so that a session without experiments never loads it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from .artifacts import DiscoverySettings, resolve_discovery
from .autolog import resolve_autolog
from .cluster import ClusterSettings, resolve_cluster
from .gate import GateSettings, resolve_gate
from .grids import resolve_best
from .lineage import resolve_lineage
from .models import RegisterSettings, resolve_register
from .params import ParamsSettings, resolve_params
from .reports import resolve_figures, resolve_html
from .reuse import ReuseSettings, resolve_reuse
from .search import SearchSettings, resolve_search
from .spool import resolve_policy
from .system_metrics import resolve_system_metrics
from .tracking import TrackingConfig, resolve_tracking

if TYPE_CHECKING:
    from ..directions import BestSpec


@dataclass(frozen=True)
class Settings:
    """Every feature's settings for one session, kept in ``config.stash``."""

    tracking: TrackingConfig
    #: Lineage parts logged with every run: code, git, env.
    lineage: frozenset[str]
    artifacts: DiscoverySettings
    autolog: bool
    #: The session-wide metric picking a grid's best cell (``None``: each grid's first).
    best: BestSpec | None
    gate: GateSettings
    #: ``fail`` or ``spool`` when the tracking server is lost.
    on_tracking_error: str
    #: Where the session's HTML report goes, if anywhere.
    html: Path | None
    #: The params file and the ``--mlexp-set`` overrides of its values.
    params: ParamsSettings
    #: Where the Optuna studies of searches are stored.
    search: SearchSettings
    #: Registering the best cell's model at session end.
    register: RegisterSettings
    #: Reusing unchanged experiments' runs (``--mlexp-reuse``) and the declared inputs.
    reuse: ReuseSettings
    #: The cluster running the items (``--mlexp-ray``, ``--mlexp-slurm``) and each item's resources.
    cluster: ClusterSettings
    #: Logging MLflow's system metrics (CPU, memory, GPU) with every run.
    system_metrics: bool
    #: How HTML figures load plotly.js: ``inline`` or ``cdn``.
    figures: str


def resolve(config: pytest.Config) -> Settings:
    """Every setting, or ``pytest.UsageError`` naming the source, the key and the accepted forms."""
    return Settings(
        tracking=resolve_tracking(config),
        lineage=resolve_lineage(config),
        artifacts=resolve_discovery(config),
        autolog=resolve_autolog(config),
        best=resolve_best(config),
        gate=resolve_gate(config),
        on_tracking_error=resolve_policy(config),
        html=resolve_html(config),
        params=resolve_params(config),
        search=resolve_search(config),
        register=resolve_register(config),
        reuse=resolve_reuse(config),
        cluster=resolve_cluster(config),
        system_metrics=resolve_system_metrics(config),
        figures=resolve_figures(config),
    )
