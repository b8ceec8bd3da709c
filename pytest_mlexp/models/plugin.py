"""Registered as ``mlexp-models`` in the processes that run tracked items."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import pytest

from ..keys import REGISTER_KEY
from ..redaction import redact_text
from ..warning_types import MlexpWarning

if TYPE_CHECKING:
    from ..runs.experiment_run import ExperimentRun
    from ..settings.models import RegisterSettings


def check_marker(marker: pytest.Mark, where: str) -> None:
    """Raise ``UsageError`` for a marker's ``register=`` that is not a model name."""
    register = marker.kwargs.get("register")
    if register is not None:
        from ..settings.models import check_model_name

        check_model_name(register, f"{where}: register")


class ModelMetrics:
    """Models of a run: ``mlflow_run.log_model`` logs them, their registered name goes to the
    run's summary, and when the run ends its last metrics are linked to them."""

    def __init__(self, register: RegisterSettings) -> None:
        self.register = register

    @pytest.hookimpl(tryfirst=True)
    def pytest_mlexp_run_tags(self, item: pytest.Item) -> dict[str, str]:
        from .registry import registered_name

        # Before the run is created: a grid's parent, created with it, asks (grids.parents).
        item.stash[REGISTER_KEY] = registered_name(item, self.register)
        return {}

    @pytest.hookimpl(tryfirst=True)
    def pytest_mlexp_run_start(self, item: pytest.Item, run: ExperimentRun) -> None:
        from .logged import log_model

        run.model_logger = log_model

    @pytest.hookimpl(trylast=True)
    def pytest_mlexp_run_ending(
        self, item: pytest.Item, run: ExperimentRun, status: str, outcome: str
    ) -> None:
        if not run.logged_models:
            return
        from .logged import link_metrics

        try:
            run.flush()
            link_metrics(run.client, run.run_id, list(run.logged_models.values()))
        except Exception as exc:
            warnings.warn(
                MlexpWarning(
                    f"{item.nodeid}: the metrics of run {run.run_id} could not be linked to "
                    f"its logged models: {type(exc).__name__}: {redact_text(str(exc))[:300]}"
                ),
                stacklevel=1,
            )
