"""Whether MLflow's system metrics (CPU, memory, GPU) are logged with every run."""

from __future__ import annotations

import pytest

from .sources import bool_setting


def resolve_system_metrics(config: pytest.Config) -> bool:
    """``--mlexp-system-metrics`` (ini ``mlexp_system_metrics``, yaml ``system_metrics``)."""
    return bool_setting(config, "mlexp_system_metrics", "system_metrics", False)
