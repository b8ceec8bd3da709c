"""Whether MLflow's system metrics (CPU, memory, GPU) are logged with every run."""

from __future__ import annotations

import pytest

from .sources import bool_setting, lookup

#: MLflow's own switch for ``mlflow.start_run``; pytest-mlexp honours it for its runs.
MLFLOW_ENV = "MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING"
#: What installs psutil, which MLflow's monitors need.
EXTRA_HINT = "pip install 'pytest-mlexp[system-metrics]'"


def resolve_system_metrics(config: pytest.Config) -> bool:
    """``--mlexp-system-metrics``, MLflow's ``MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING``, ini
    ``mlexp_system_metrics``, yaml ``system_metrics``; off by default.

    Raises ``UsageError`` when on without psutil, in every process at its start
    (the xdist controller too), so no item runs without its metrics.
    """
    option, key = "mlexp_system_metrics", "system_metrics"
    enabled = bool_setting(config, option, key, False, env=MLFLOW_ENV)
    if enabled:
        try:
            import psutil  # noqa: F401
        except ImportError:
            found = lookup(config, option=option, env=MLFLOW_ENV, key=key)
            source = found[1] if found is not None else option
            raise pytest.UsageError(
                f"{source}: MLflow's system metrics need psutil, which is not installed; "
                f"{EXTRA_HINT}"
            ) from None
    return enabled
