"""Autolog: ``mlflow.autolog()`` for tracked items, logging into the item's own run.

Off by default (see the README's "Autolog" section). When on, autolog is
switched on when a tracked item's run starts, which the core has made the
fluent active run, so parameters, metrics and models of sklearn, xgboost,
lightgbm, keras, pytorch-lightning... land in it. It is switched off again
before an untracked item runs, so that an ordinary test that fits a model
never makes a stray run of its own.

A user's own ``mlflow.<flavor>.autolog()`` called inside a tracked item (as
a PyTorch Lightning script does with ``mlflow.pytorch.autolog()``) is scoped
to that item the same way: ``AutologScope`` switches off, when the item ends,
every integration the item switched on, so a later plain test does not make
a stray run in MLflow's ``Default`` experiment.
"""

from __future__ import annotations

import importlib
import sys
import warnings
from typing import TYPE_CHECKING

import pytest

from .runs.tracked import is_tracked

if TYPE_CHECKING:
    from .runs.experiment_run import ExperimentRun


class Autolog:
    """Registered as ``mlexp-autolog``: autolog on while tracked items run, off otherwise."""

    def __init__(self) -> None:
        self.active = False
        #: The integrations on before this switched autolog on.
        self.before: frozenset[str] = frozenset()

    def pytest_mlexp_run_start(self, item: pytest.Item, run: ExperimentRun) -> None:
        # pytest resets the warning filters after each item: autolog's own
        # warnings (from mlflow's modules) must not become errors under
        # filterwarnings=error, or autolog silently drops what it logs.
        warnings.filterwarnings("ignore", module=r"mlflow(\.|$)")
        if self.active:
            return
        import mlflow

        self.before = enabled_integrations()
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
        # An item's own ``mlflow.<flavor>.autolog()`` outlives the universal switch (MLflow
        # keeps a flavor call's settings over the universal ones): off too, unless it was on
        # before autolog was switched on.
        for name in sorted(enabled_integrations() - self.before):
            _disable(name)
        self.active = False


class AutologScope:
    """Registered as ``mlexp-autolog-scope``: autologging an item switched on ends with it."""

    def __init__(self) -> None:
        #: The integrations on when the current tracked item's run started.
        self.before: frozenset[str] | None = None

    @pytest.hookimpl(trylast=True)  # after ``Autolog``'s, which is not the item's doing
    def pytest_mlexp_run_start(self, item: pytest.Item, run: ExperimentRun) -> None:
        self.before = enabled_integrations()

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_teardown(self, item: pytest.Item) -> object:
        try:
            return (yield)
        finally:
            if self.before is not None:
                for name in sorted(enabled_integrations() - self.before):
                    _disable(name)
                self.before = None


def enabled_integrations() -> frozenset[str]:
    """The MLflow autologging integrations switched on now (``sklearn``, ``pytorch``...).

    Read from MLflow's own registry; empty, without importing mlflow, when it is not loaded.
    """
    utils = sys.modules.get("mlflow.utils.autologging_utils")
    if utils is None:
        return frozenset()
    return frozenset(
        name
        for name, config in utils.AUTOLOGGING_INTEGRATIONS.items()
        if config and not config.get("disable", True)
    )


def _disable(name: str) -> None:
    """``mlflow.<name>.autolog(disable=True)``: the integration's own switch."""
    try:
        module = importlib.import_module(f"mlflow.{name}")
    except ImportError:
        return  # an integration outside mlflow's flavors: left as its owner set it
    module.autolog(disable=True, silent=True)
    # As before the item: a later ``mlflow.autolog()`` (``--mlexp-autolog on`` in the next
    # session of this process) configures it again, as it skips integrations a user's own
    # ``mlflow.<name>.autolog()`` configured (MLflow's ``setup_autologging``).
    from mlflow.utils import autologging_utils

    config = autologging_utils.AUTOLOGGING_INTEGRATIONS.get(name)
    if config is not None:
        config[autologging_utils.AUTOLOGGING_CONF_KEY_IS_GLOBALLY_CONFIGURED] = True
