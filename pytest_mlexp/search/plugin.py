"""Each trial of a search, in the process that runs it: ask in setup, tell after the call.

Registered as ``mlexp-search`` by ``pipeline.activate`` when collection found
trials, after ``mlexp-runs``, so its ``tryfirst`` setup hook runs before the
run is created: the trial's values replace the pending ones in the item's
params before the run logs them and before fixtures are set up, so they
reach the function as its arguments.

- setup: ``study.ask`` with the search's distributions;
- the run's tags: ``mlexp.trial`` (its number in the study) and the search's
  parent run (``mlexp.kind=search``), found or created as a grid's is;
- during the call: the objective logged at a step is reported to the trial,
  and ``mlflow_run.should_prune()`` asks the pruner;
- after the call: the objective is read from the run's metrics and told; a
  failure is told as failed, a pruned trial as pruned (pytest skips it);
- a trial that ends any other way (setup error, Ctrl-C) is told as failed,
  so that no trial stays RUNNING in the study.

``mlexp reproduce`` re-runs one past trial with its values fixed, and no
study: it names the trials and their logged params in the environment
variable ``MLEXP_REPRODUCE_TRIALS`` (JSON, node id -> param -> text).
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

from ..backend import tags as T
from ..gate.keys import RULES_KEY
from ..groups.collected import collected_items
from ..groups.creation import GroupRuns
from ..keys import CELL_RULES_KEY, GROUPS_KEY, RUN_KEY, TRIAL_OF_KEY
from ..runs.identity import run_name
from ..runs.summary import GroupRefs
from ..warning_types import MlexpWarning
from ..workers import given
from .declaration import SearchSpec
from .keys import TRIAL_KEY
from .space import space_to_json

if TYPE_CHECKING:
    from ..runs.experiment_run import ExperimentRun
    from ..runs.session import MlexpSession
    from .collection import Pending

COMPLETE, PRUNED, FAIL = "complete", "pruned", "fail"

#: Set by ``mlexp reproduce`` in the pytest it starts: JSON, node id -> param -> logged text.
FIXED_TRIALS_ENV = "MLEXP_REPRODUCE_TRIALS"


@dataclass
class ActiveTrial:
    """A trial that was asked and not yet told; what ``mlflow_run`` reports to."""

    spec: SearchSpec
    study: Any
    trial: Any
    #: pruned, complete or fail, once told.
    state: str | None = None
    #: The pruner said stop (``should_prune()`` returned True).
    prune_requested: bool = False
    #: The last intermediate value of the objective: (step, value).
    last: tuple[int, float] | None = None

    @property
    def number(self) -> int:
        return int(self.trial.number)

    def observe(self, key: str, value: float, step: int) -> None:
        """The objective logged at a step: an intermediate value for the pruner."""
        if key != self.spec.objective or self.state is not None or not math.isfinite(value):
            return
        if self.last is not None and step <= self.last[0]:
            return  # Optuna keeps one value per step, in order
        self.trial.report(value, step)
        self.last = (step, value)

    def should_prune(self) -> bool:
        if self.state is not None or self.last is None:
            return False
        if self.trial.should_prune():
            self.prune_requested = True
        return self.prune_requested

    def tell(self, state: str, value: float | None = None) -> None:
        if self.state is not None:
            return
        from optuna.trial import TrialState

        self.state = state
        if state == COMPLETE:
            self.study.tell(self.trial, value)
        elif state == PRUNED:
            self.study.tell(self.trial, state=TrialState.PRUNED)
        else:
            self.study.tell(self.trial, state=TrialState.FAIL)


_ACTIVE_KEY = pytest.StashKey[ActiveTrial]()


def _fixed_trials() -> dict[str, dict[str, str]]:
    """The trials ``mlexp reproduce`` runs with fixed values, from ``MLEXP_REPRODUCE_TRIALS``."""
    import json

    text = os.environ.get(FIXED_TRIALS_ENV)
    if not text:
        return {}
    data = json.loads(text)
    return {str(k): {str(n): str(v) for n, v in values.items()} for k, values in data.items()}


def _at_item_location(report: pytest.TestReport, item: pytest.Item) -> None:
    """Report a skip at the item's location (``-rs``), not where the plugin raised it."""
    if isinstance(report.longrepr, tuple):
        path, line = item.reportinfo()[:2]
        if line is not None:
            report.longrepr = (os.fspath(path), line + 1, report.longrepr[2])


class SearchTrials:
    """Registered as ``mlexp-search``: asks, tracks and tells every trial run in this process."""

    def __init__(self, session: MlexpSession, slots: Mapping[str, Pending]) -> None:
        self.session = session
        self.config = session.config
        self.settings = session.settings
        #: The search parents, one per search, found or created by the first trial that needs it.
        self.groups = GroupRuns(self.config, self.settings)
        handed = given(self.config)
        self.worker = handed.worker if handed is not None else 0
        self._slots = dict(slots)
        self._studies: dict[str, Any] = {}
        self._open: dict[str, ActiveTrial] = {}
        self._fixed = _fixed_trials()

    def mark(self, items: list[pytest.Item]) -> None:
        for item in items:
            slot = self._slots.get(item.nodeid)
            if slot is not None:
                item.stash[TRIAL_KEY] = slot
                item.stash[TRIAL_OF_KEY] = slot.spec.function

    # -- ask ------------------------------------------------------------------------------------

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        slot = item.stash.get(TRIAL_KEY, None)
        if slot is None:
            return
        spec = slot.spec
        params = item.callspec.params  # type: ignore[attr-defined]
        fixed = self._fixed.get(item.nodeid)
        if fixed is not None:
            # Reproduced with the values it once had: no study is asked or told.
            for name, dimension in spec.space.items():
                params[name] = dimension.value_of(fixed[name])
            return
        study = self._study(spec)
        distributions = {name: dim.to_distribution() for name, dim in spec.space.items()}
        trial = study.ask(distributions)
        active = ActiveTrial(spec, study, trial)
        item.stash[_ACTIVE_KEY] = active
        self._open[item.nodeid] = active
        for name in spec.space:
            params[name] = trial.params[name]

    def pytest_mlexp_run_tags(self, item: pytest.Item) -> dict[str, str] | None:
        active = item.stash.get(_ACTIVE_KEY, None)
        if active is None:
            return None
        spec = active.spec
        parent = self._parent(item, spec, active)
        item.stash[GROUPS_KEY] = GroupRefs(
            best=spec.objective_spec, search=spec.function, search_run_id=parent
        )
        rules = item.stash.get(RULES_KEY, None)
        if rules is not None:
            from ..gate.group_runs import rules_to_json

            item.stash[CELL_RULES_KEY] = rules_to_json(rules)
        return {
            T.SEARCH: spec.function,
            T.TRIAL: str(active.number),
            T.STUDY: str(active.study.study_name),
            T.PARENT_RUN_ID: parent,
        }

    def pytest_mlexp_run_start(self, item: pytest.Item, run: ExperimentRun) -> None:
        active = item.stash.get(_ACTIVE_KEY, None)
        if active is not None:
            run.search_trial = active

    # -- tell -----------------------------------------------------------------------------------

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Any:
        active = item.stash.get(_ACTIVE_KEY, None)
        if active is None:
            return (yield)
        import optuna

        try:
            result = yield
        except optuna.TrialPruned:
            self._prune(active)
        except pytest.skip.Exception:
            if not active.prune_requested:
                active.tell(FAIL)
                raise
            self._prune(active)
        except BaseException:
            active.tell(FAIL)
            raise
        if active.prune_requested:
            self._prune(active)
        self._tell_objective(item, active)
        return result

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
        report: pytest.TestReport = yield
        active = item.stash.get(_ACTIVE_KEY, None)
        if active is None:
            return report
        if report.when == "call" and report.skipped and active.state == PRUNED:
            _at_item_location(report, item)
        if report.when == "teardown" or (report.when == "setup" and not report.passed):
            # Asked but never called (a fixture failed, a skip mark): not a result.
            self._close(item.nodeid, active)
        if report.when == "teardown":
            self._open.pop(item.nodeid, None)
        return report

    def pytest_mlexp_run_ending(
        self, item: pytest.Item, run: ExperimentRun, status: str, outcome: str
    ) -> None:
        active = item.stash.get(_ACTIVE_KEY, None)
        if active is not None and active.state == PRUNED:
            run.set_tag(T.OUTCOME, T.OUTCOME_PRUNED)

    def pytest_sessionfinish(self) -> None:
        # Trials cut short by Ctrl-C never reach teardown: tell them failed.
        for nodeid, active in list(self._open.items()):
            self._close(nodeid, active)
        self._open.clear()

    # -- internals ------------------------------------------------------------------------------

    def _study(self, spec: SearchSpec) -> Any:
        study = self._studies.get(spec.function)
        if study is None:
            from .study import open_study

            tracking = self.settings.tracking
            study = self._studies[spec.function] = open_study(
                spec,
                self.settings.search,
                rootdir=tracking.rootdir,
                session_id=tracking.session_id,
                worker=self.worker,
            )
        return study

    def _parent(self, item: pytest.Item, spec: SearchSpec, active: ActiveTrial) -> str:
        """The search's parent run (``groups.creation``), with the study and the space as tags."""
        import json

        from ..backend.client import MAX_TAG_LENGTH
        from ..directions import max_or_min
        from .study import storage_label

        tracking = self.settings.tracking
        study_name = str(active.study.study_name)
        space = json.dumps(space_to_json(spec.space), separators=(",", ":"))
        tags = {
            T.SEARCH: spec.function,
            T.BEST_METRIC: spec.objective,
            T.BEST_DIRECTION: max_or_min(spec.direction),
            T.STUDY: study_name,
            T.SEARCH_STORAGE: storage_label(self.settings.search, tracking.rootdir, study_name),
            T.SAMPLER: spec.sampler_text(),
            T.PRUNER: spec.pruner_text(),
            T.TRIALS_PLANNED: str(spec.trials),
            # The trials in the code, whatever part of them the session runs.
            T.MEMBERS: str(len(collected_items(self.session.config, item))),
        }
        if len(space) <= MAX_TAG_LENGTH:
            tags[T.SPACE] = space
        return self.groups.group(
            item,
            T.KIND_SEARCH,
            spec.function,
            run_name(item, getattr(item, "originalname", item.name)),
            tags,
        )

    def _prune(self, active: ActiveTrial) -> None:
        active.tell(PRUNED)
        where = ""
        if active.last is not None:
            step, value = active.last
            where = f" at step {step} ({active.spec.objective}={value:.4g})"
        # Shown at the item's location by ``pytest_runtest_makereport``, as a skip mark is.
        pytest.skip(f"pruned{where}: trial {active.number} of the search")

    def _tell_objective(self, item: pytest.Item, active: ActiveTrial) -> None:
        objective = active.spec.objective
        run = item.stash[RUN_KEY].run
        value = run.metrics.get(objective)
        if value is None:
            # Logged through mlflow.log_metric or autolog: read it back from the store.
            run.flush()
            value = run.client.get_run(run.run_id).data.metrics.get(objective)
        if value is None or not math.isfinite(value):
            active.tell(FAIL)
            logged = ", ".join(sorted(run.metrics)) or "no metric"
            problem = (
                f"did not log the objective {objective!r} (it logged: {logged})"
                if value is None
                else f"logged the objective {objective!r} as {value}"
            )
            pytest.fail(
                f"mlexp search: trial {active.number} of {active.spec.function} {problem}; a "
                f"trial is told to the study by its objective: log it with "
                f"mlflow_run.log_metric({objective!r}, value) or return {{{objective!r}: value}}",
                pytrace=False,
            )
        active.tell(COMPLETE, float(value))

    def _close(self, nodeid: str, active: ActiveTrial) -> None:
        try:
            active.tell(FAIL)
        except Exception as exc:
            warnings.warn(
                MlexpWarning(
                    f"could not tell the study that trial {active.number} of {nodeid} failed: "
                    f"{type(exc).__name__}: {exc}"
                ),
                stacklevel=1,
            )
