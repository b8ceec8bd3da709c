"""Registered as ``mlexp-models`` in the processes that run tracked items."""

from __future__ import annotations

import warnings
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

import pytest

from ..keys import REGISTER_KEY, SESSION_KEY, SETTINGS_KEY
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
        #: What ``--mlexp-keep-models`` did at session end, for the terminal.
        self.kept_line: str | None = None

    @pytest.hookimpl(wrapper=True, trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> Generator[None, Any, Any]:
        """After the session's end work (groups completed, models registered): keep the best K.

        ``trylast``: inside the terminal reporter's wrapper, which prints the summary
        once the others are done. Runs in the process that ran the items: serially,
        the controller. Under xdist the workers end before the groups are completed,
        so nothing is removed.
        """
        result = yield
        keep = self.register.keep
        mlexp = session.config.stash.get(SESSION_KEY, None)
        settings = session.config.stash.get(SETTINGS_KEY, None)
        if keep is None or mlexp is None or settings is None or not mlexp.results:
            return result
        if hasattr(session.config, "workerinput"):
            return result
        try:
            from .keep import keep_best_models

            backend = mlexp.backend
            experiments = [
                backend.experiment_id(name) for name in {r.experiment for r in mlexp.results}
            ]
            pruned = keep_best_models(backend, experiments, settings.tracking.session_id, keep)
            self.kept_line = pruned.line(keep)
        except Exception as exc:
            self.kept_line = (
                f"mlexp: --mlexp-keep-models {keep}: could not remove models: "
                f"{type(exc).__name__}: {redact_text(str(exc))[:300]}"
            )
        return result

    @pytest.hookimpl(trylast=True)
    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.kept_line is not None:
            terminalreporter.write_line(self.kept_line)

    @pytest.hookimpl(tryfirst=True)
    def pytest_mlexp_run_start(self, item: pytest.Item, run: ExperimentRun) -> None:
        from .logged import log_model
        from .registry import registered_name

        run.model_logger = log_model
        item.stash[REGISTER_KEY] = registered_name(item, self.register)
        # Where a figure's plotly.js comes from: stored artifacts, as models are.
        settings = item.config.stash.get(SETTINGS_KEY, None)
        if settings is not None:
            run.figures = settings.figures

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
