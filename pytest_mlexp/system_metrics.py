"""System metrics: MLflow's own CPU, memory, disk, network and GPU samples in every run.

Off by default; ``--mlexp-system-metrics`` (ini ``mlexp_system_metrics``, yaml
``system_metrics``, or MLflow's ``MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING``)
switches it on. Each tracked item's run gets one of MLflow's
``SystemMetricsMonitor`` threads, started when the run starts and finished
before it ends, so its last samples are logged and no thread outlives the run.
The metrics are MLflow's (``system/cpu_utilization_percentage``,
``system/system_memory_usage_megabytes``, ``system/gpu_0_utilization_percentage``
with ``pynvml``...), shown in the run's "System metrics" tab of the MLflow UI.
They are named by metric alone, on every machine and cluster node: the UI charts
them across nodes and restarts, and a cluster's run says its node in the tag
``mlexp.cluster.node`` (MLflow's ``MLFLOW_SYSTEM_METRICS_NODE_ID``, when a
user sets it, still puts a node in the names).

Samples go where ``mlflow.log_*`` goes: under ``--mlexp-on-tracking-error
spool`` with a server, through the spool. A sample that cannot be logged is
dropped with MLflow's warning; it never fails the item.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import pytest

from .keys import REUSE_KEY
from .redaction import redact_text
from .settings.system_metrics import EXTRA_HINT

if TYPE_CHECKING:
    from .runs.experiment_run import ExperimentRun

#: Seconds between two samples (MLflow's default is 10, longer than most items).
#: ``MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL`` wins when set.
SAMPLING_INTERVAL = 1.0
#: Samples averaged into each logged step (MLflow's default is 1): a step every 5 s.
#: ``MLFLOW_SYSTEM_METRICS_SAMPLES_BEFORE_LOGGING`` wins when set.
SAMPLES_BEFORE_LOGGING = 5


def load_monitor() -> type[Any]:
    """MLflow's ``SystemMetricsMonitor``, or ``UsageError`` naming the extra to install.

    Settings have checked psutil at the session's start; this is for an MLflow
    that cannot load its monitors all the same.
    """
    try:
        import psutil
        from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor
    except Exception as exc:
        raise pytest.UsageError(
            f"--mlexp-system-metrics: MLflow's system metrics cannot be loaded "
            f"({type(exc).__name__}: {exc}); {EXTRA_HINT}"
        ) from None
    # Its first call answers 0.0: the session's first sample would halve its item's step.
    psutil.cpu_percent()
    # One "Started/Stopping/terminated monitoring" line per item is noise; MLflow's
    # warnings (a sample that could not be logged) still show. A level the user set wins.
    quiet = logging.getLogger("mlflow.system_metrics")
    if quiet.level == logging.NOTSET:
        quiet.setLevel(logging.WARNING)
    return SystemMetricsMonitor


class SystemMetrics:
    """Registered as ``mlexp-system-metrics``: one MLflow monitor per tracked item's run.

    Raises ``UsageError`` when created without psutil (``load_monitor``).
    """

    def __init__(self) -> None:
        self._monitor_class = load_monitor()
        #: run id -> (the item's nodeid, its monitor), while the run is going.
        self._monitors: dict[str, tuple[str, Any]] = {}

    def pytest_mlexp_run_start(self, item: pytest.Item, run: ExperimentRun) -> None:
        reuse = item.stash.get(REUSE_KEY, None)
        if reuse is not None and reuse.reused_from:
            return  # a reused run executes nothing: nothing to measure
        import mlflow

        try:
            monitor = self._monitor_class(
                run.run_id,
                sampling_interval=SAMPLING_INTERVAL,
                samples_before_logging=SAMPLES_BEFORE_LOGGING,
                # The same metric names on every node (the run's mlexp.cluster.node tag
                # says which), so runs chart together in the UI; MLflow's
                # MLFLOW_SYSTEM_METRICS_NODE_ID wins when set.
                node_id=None,
                # Where mlflow.log_* goes: through the spool under --mlexp-on-tracking-error spool.
                tracking_uri=mlflow.get_tracking_uri(),
            )
        except Exception as exc:
            _log_problem("could not start the system metrics of run", run.run_id, exc)
            return
        monitor.start()
        self._monitors[run.run_id] = (item.nodeid, monitor)

    @pytest.hookimpl(tryfirst=True)
    def pytest_mlexp_run_ending(
        self, item: pytest.Item, run: ExperimentRun, status: str, outcome: str
    ) -> None:
        self._finish(run.run_id)

    def pytest_runtest_logfinish(self, nodeid: str) -> None:
        # The run ended without its ending hooks (the store failed before them).
        for run_id, (owner, _) in list(self._monitors.items()):
            if owner == nodeid:
                self._finish(run_id)

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self) -> None:
        for run_id in list(self._monitors):
            self._finish(run_id)

    def _finish(self, run_id: str) -> None:
        """Stop the run's monitor and log what it sampled since its last step, and a last sample."""
        entry = self._monitors.pop(run_id, None)
        if entry is None:
            return
        monitor = entry[1]
        # Joins the thread (MLflow catches and logs its own errors).
        monitor.finish()
        try:
            # An item shorter than a logging period still gets a step: what was sampled
            # since the last step, and now.
            monitor.collect_metrics()
            monitor.publish_metrics(monitor.aggregate_metrics())
            monitor.mlflow_logger.flush()
        except Exception as exc:
            _log_problem("could not log the last system metrics of run", run_id, exc)


def _log_problem(what: str, run_id: str, exc: Exception) -> None:
    """As MLflow's own monitor does: a warning in the log, never a failed item."""
    message = f"{what} {run_id}: {type(exc).__name__}: {redact_text(str(exc))[:300]}"
    logging.getLogger(__name__).warning(message)
