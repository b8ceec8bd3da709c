"""Registered as ``mlexp-models`` in the processes that run tracked items."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import pytest

from ..redaction import redact_text
from ..warning_types import MlexpWarning

if TYPE_CHECKING:
    from ..runs.experiment_run import ExperimentRun


class ModelMetrics:
    """When a run that logged models ends, its last metrics are linked to those models."""

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
