"""pytest-mlexp: every experiment function becomes a tracked MLflow run.

Importing this package does not import ``mlflow``; ``ExperimentRun`` is
loaded on first access.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .settings.tracking import TrackingConfig
from .warning_types import MlexpWarning

if TYPE_CHECKING:
    from .runs.experiment_run import ExperimentRun

__all__ = ["ExperimentRun", "MlexpWarning", "TrackingConfig"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name == "ExperimentRun":
        from .runs.experiment_run import ExperimentRun

        return ExperimentRun
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
