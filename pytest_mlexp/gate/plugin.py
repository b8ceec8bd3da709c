"""The gate in the processes that run items: each tracked item is judged once its function returned.

Its run's metrics are read back from the store (so ``mlflow.log_*`` and
autolog count) and compared by ``rules.compare``; the item fails itself with
a table when a metric regressed. The verdict goes into the run's tags and
into its summary, on which the controller's session end works
(``gate.session_end``).

Repeated experiments (``repeats=``/``seeds=``) are gated per cell, not per
seed: each repeat is judged only by its ``expect=`` bounds, and its cell's
mean is compared with the baseline at session end.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from ..backend import tags as T
from ..grids.repeats import is_repeat
from ..keys import CELL_RULES_KEY, RUN_KEY, SESSION_KEY, TRIAL_OF_KEY, VERDICT_KEY
from ..runs.markers import marker_experiment
from ..runs.metric_values import read_values
from ..runs.summary import Verdict
from ..settings.gate import BEST
from . import rules
from .baselines import Baseline
from .judge import judge
from .keys import RULES_KEY
from .markers import item_rules, rules_to_json
from .rules import FAILING, Rules
from .verdicts import REGRESSED, failure_line, failure_message, verdict_tags

if TYPE_CHECKING:
    from ..runs.experiment_run import ExperimentRun
    from ..settings import Settings


class RegressionGate:
    """Registered as ``mlexp-gate``; judges every tracked item's metrics after its call."""

    def __init__(self, config: pytest.Config, settings: Settings) -> None:
        self.config = config
        self.settings = settings.gate
        self.experiment = settings.tracking.experiment
        self.session_id = settings.tracking.session_id
        self._store_baselines: dict[str, Baseline] | None = None
        self._store_error: str | None = None
        self._file_entries: dict[str, dict[str, float]] | None = None
        self._items: list[pytest.Item] = []

    def prepare(self, items: list[pytest.Item]) -> None:
        """Work out every tracked item's rules now, so a bad marker stops the session."""
        self._items = items
        for item in items:
            item.stash[RULES_KEY] = item_rules(item, self.settings)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Any:
        result = yield
        item_run = item.stash.get(RUN_KEY, None)
        item_rules_ = item.stash.get(RULES_KEY, None)
        # A search's trials are judged as a whole, by their best (gate.group_runs), at the end;
        # so are the cells of a grid marked gate="best".
        if item_run is None or item_rules_ is None or TRIAL_OF_KEY in item.stash:
            return result
        # The run's one value of each metric, fluent API and autolog included.
        values = read_values(item_run.run)
        item_rules_ = rules.with_histories(item_rules_, values.histories)
        if item_rules_.gate == BEST:
            item.stash[CELL_RULES_KEY] = rules_to_json(item_rules_, bounds=True)
            for name, value in sorted(values.values.items()):
                item.user_properties.append((name, value))
            return result
        self._judge(item, item_run.run, item_rules_, values.values)
        return result

    def _judge(
        self, item: pytest.Item, run: ExperimentRun, item_rules_: Rules, metrics: dict[str, float]
    ) -> None:
        settings = self.settings
        repeat = is_repeat(item)
        if repeat:
            # The cell's mean is judged at session end, by the rules its repeats carry there.
            item.stash[CELL_RULES_KEY] = rules_to_json(item_rules_)
        if not (((settings.compares or settings.update) and not repeat) or item_rules_.bounds):
            for name, value in sorted(metrics.items()):
                item.user_properties.append((name, value))
            return
        for name, value in sorted(metrics.items()):
            item.user_properties.append((name, value))
        baseline: Baseline | None = None
        if settings.compares and not repeat:
            baseline = self._baseline(item)
        judged = judge(
            item.nodeid,
            metrics,
            baseline,
            item_rules_,
            settings,
            compares=settings.compares and not repeat,
        )
        run.set_tags(verdict_tags(judged.verdict, baseline))
        item.user_properties.append((T.VERDICT, judged.verdict))
        if baseline is not None:
            for name, value in sorted(baseline.metrics.items()):
                item.user_properties.append((f"{name}.baseline", value))
        item.stash[VERDICT_KEY] = Verdict(
            nodeid=item.nodeid,
            verdict=judged.verdict,
            source=baseline.source if baseline else None,
            rows=judged.rows,
            metrics=rules.judged(metrics, item_rules_),
            repeat=repeat,
            recorded=rules.recorded(metrics, item_rules_),
        )
        if judged.failing:
            pytest.fail(failure_message(judged.rows, judged.failing, baseline), pytrace=False)
        if judged.problem is not None:
            pytest.fail(f"mlexp: {judged.problem}", pytrace=False)

    def _baseline(self, item: pytest.Item) -> Baseline | None:
        settings = self.settings
        if settings.baseline_file is not None:
            metrics = self._file().get(item.nodeid)
            return None if metrics is None else Baseline(metrics, settings.file_label)
        if self._store_baselines is None:
            self._store_baselines = self._load_store()
        if self._store_error is not None:
            pytest.fail(f"mlexp: {self._store_error}", pytrace=False)
        return self._store_baselines.get(item.nodeid)

    def _load_store(self) -> dict[str, Baseline]:
        """The baseline of every item of this process, in one paged search."""
        from .baselines import from_store

        assert self.settings.spec is not None
        backend = self.config.stash[SESSION_KEY].backend
        experiments = {marker_experiment(item, self.experiment) for item in self._items}
        try:
            return from_store(
                backend.client,
                self.settings.spec,
                session_id=self.session_id,
                experiment_ids=[backend.experiment_id(name) for name in experiments],
                nodeids=[item.nodeid for item in self._items],
            )
        except ValueError as exc:
            self._store_error = str(exc)
            return {}

    def _file(self) -> dict[str, dict[str, float]]:
        if self._file_entries is None:
            from .baselines import read_file

            assert self.settings.baseline_file is not None
            try:
                self._file_entries = read_file(self.settings.baseline_file)
            except ValueError as exc:
                raise pytest.UsageError(f"--mlexp-baseline-file: {exc}") from None
        return self._file_entries

    def pytest_mlexp_run_ending(
        self, item: pytest.Item, run: ExperimentRun, status: str, outcome: str
    ) -> None:
        if self.settings.promote and outcome == "passed":
            run.set_tag(T.PROMOTED, "true")
        verdict = item.stash.get(VERDICT_KEY, None)
        if verdict is not None and verdict.verdict == REGRESSED:
            # One line for the run's failure reason, not the whole table.
            failing = [row for row in verdict.rows if row.verdict in FAILING]
            run.set_tag(T.ERROR, failure_line(failing)[:500])
