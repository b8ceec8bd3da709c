"""Autolog: ``mlflow.autolog()`` for tracked items, logging into the item's own run.

Off by default (see the README's "Autolog" section). When on, autolog is
switched on when a tracked item's run starts, which the core has made the
fluent active run, so parameters, metrics and models of sklearn, xgboost,
lightgbm, keras, pytorch-lightning... land in it. It is switched off again
before an untracked item runs, so that an ordinary test that fits a model
never makes a stray run of its own.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import pytest

from .runs.markers import is_tracked

if TYPE_CHECKING:
    from .runs.experiment_run import ExperimentRun


class Autolog:
    """Registered as ``mlexp-autolog``: autolog on while tracked items run, off otherwise."""

    def __init__(self) -> None:
        self.active = False

    def pytest_mlexp_run_start(self, item: pytest.Item, run: ExperimentRun) -> None:
        # pytest resets the warning filters after each item: autolog's own
        # warnings (from mlflow's modules) must not become errors under
        # filterwarnings=error, or autolog silently drops what it logs.
        warnings.filterwarnings("ignore", module=r"mlflow(\.|$)")
        if self.active:
            return
        import mlflow

        # exclusive=False: autolog writes into the active run, ours.
        mlflow.autolog(silent=True)
        self.active = True

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        if self.active and not is_tracked(item):
            self._switch_off()

    def pytest_sessionfinish(self) -> None:
        if self.active:
            self._switch_off()

    def _switch_off(self) -> None:
        import mlflow

        mlflow.autolog(disable=True, silent=True)
        self.active = False
