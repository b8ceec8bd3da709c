"""pytest-mlexp: every experiment function becomes a tracked MLflow run.

Importing this package imports neither ``mlflow`` nor ``pytest``; its names
are loaded on first access.

PYTEST_DONT_REWRITE: the plugin's own asserts are internal checks, not tests;
pytest need not rewrite them, nor warn that an in-process session (pytester)
finds the package imported already.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .runs.experiment_run import ExperimentRun
    from .settings.tracking import TrackingConfig
    from .warning_types import MlexpWarning

__all__ = ["ExperimentRun", "MlexpWarning", "TrackingConfig"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # Loaded on first access: MLflow imports ``spool.store`` (its tracking-store
    # entry point) in every process of the environment, which must not pay for pytest.
    if name == "ExperimentRun":
        from .runs.experiment_run import ExperimentRun

        return ExperimentRun
    if name == "TrackingConfig":
        from .settings.tracking import TrackingConfig

        return TrackingConfig
    if name == "MlexpWarning":
        from .warning_types import MlexpWarning

        return MlexpWarning
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
