"""The hooks of reuse: fingerprint every tracked run; under ``--mlexp-reuse``, replay the unchanged.

Registered by ``pipeline.activate`` in the processes that run tracked items.
Every run gets its fingerprint tags and its declared inputs as datasets. With
reuse on, the newest earlier run with the same fingerprint is found for each of
this process's tests (``candidates``, at the first item), whoever made it; an
item whose matching run finished and passed is not executed: its run copies that
run's params, final metrics and own tags, points at it (``mlexp.reused_from``)
and ends FINISHED with outcome ``reused``. Everything after the call (the gate,
grid parents, repeats' means, reports) sees it as an executed run.
"""

from __future__ import annotations

import warnings
from collections.abc import Collection
from typing import TYPE_CHECKING

import pytest

from ..backend import tags as T
from ..keys import REUSE_KEY, RUN_KEY, TRIAL_OF_KEY
from ..redaction import redact_text
from ..runs.markers import marker_experiment, marker_options
from ..runs.summary import ReuseNote
from ..settings.reuse import DEFAULT_INPUT_CONTEXT
from ..warning_types import MlexpWarning
from .candidates import NEW, Candidates, Decision, find_candidates, original, unusable
from .explain import changed_parts
from .fingerprint import Fingerprint, Fingerprinter
from .keys import DECISION_KEY, FINGERPRINT_KEY

if TYPE_CHECKING:
    from mlflow.entities import Run

    from ..runs.experiment_run import ExperimentRun
    from ..runs.session import MlexpSession

#: Tag prefixes a reused run does not copy from its source: this session sets its own.
_OWN_TAG_PREFIXES = ("mlflow.", "mlexp.")

#: Why a search's trial always executes.
SEARCH_TRIAL = "a search's trial (the study proposes new values and is told each result)"


class Reuse:
    """Registered as ``mlexp-reuse``: fingerprints runs; with reuse on, replays unchanged ones."""

    def __init__(self, session: MlexpSession, tracked: list[pytest.Item]) -> None:
        self.session = session
        self.settings = session.settings
        self.enabled = session.settings.reuse.enabled
        self.fingerprinter = Fingerprinter(
            session.config, session.settings.tracking.rootdir, session.settings.reuse.inputs
        )
        self.fingerprinter.prepare(tracked)
        self._tracked = tracked
        self._candidates: Candidates | None = None
        self._search_error: str | None = None

    # -- when a run starts --------------------------------------------------------------

    def pytest_mlexp_run_tags(self, item: pytest.Item) -> dict[str, str]:
        try:
            fingerprint = self.fingerprinter.of(item)
        except Exception as exc:
            # Never a reason to fail the item: it executes, unfingerprinted, and says why.
            problem = f"{type(exc).__name__}: {redact_text(str(exc))[:200]}"
            fingerprint = Fingerprint(digest="", parts={}, problem=problem)
        item.stash[FINGERPRINT_KEY] = fingerprint
        tags = fingerprint.tags()
        if self.enabled:
            decision = self._decide(item, fingerprint)
            item.stash[DECISION_KEY] = decision
            item.stash[REUSE_KEY] = ReuseNote(decision.reused_from, decision.reason)
            if decision.reused_from:
                tags[T.REUSED_FROM] = decision.reused_from
        return tags

    def pytest_mlexp_run_start(self, item: pytest.Item, run: ExperimentRun) -> None:
        fingerprint = item.stash.get(FINGERPRINT_KEY, None)
        if fingerprint is None or not fingerprint.inputs:
            return
        from ..backend.datasets import log_file_inputs

        context = str(marker_options(item).get("input_context") or DEFAULT_INPUT_CONTEXT)
        files = [(f.name, f.path, f.digest) for f in fingerprint.inputs]
        try:
            log_file_inputs(run.client, run.run_id, files, context)
        except Exception as exc:
            warnings.warn(
                MlexpWarning(
                    f"{item.nodeid}: could not log its declared inputs as datasets: "
                    f"{type(exc).__name__}: {redact_text(str(exc))[:300]}"
                ),
                stacklevel=1,
            )

    # -- instead of the call ----------------------------------------------------------------

    @pytest.hookimpl(tryfirst=True)
    def pytest_pyfunc_call(self, pyfuncitem: pytest.Function) -> bool | None:
        decision = pyfuncitem.stash.get(DECISION_KEY, None)
        item_run = pyfuncitem.stash.get(RUN_KEY, None)
        if decision is None or decision.source is None or item_run is None:
            return None
        # Tags this session gives the run (--mlexp-tag, the marker's) are not overwritten.
        own = {*self.settings.tracking.tags, *marker_options(pyfuncitem)["tags"]}
        copy_results(decision.source, item_run.run, keep=own)
        item_run.run.set_tag(
            T.NOTE,
            f"Reused, not executed: its fingerprint is unchanged since run "
            f"`{decision.reused_from}`, whose params, final metrics and tags it copies. "
            "Histories and artifacts are on that run.",
        )
        # JUnit's <property> and, with -v, the terminal's status word (also under xdist).
        pyfuncitem.user_properties.append((T.REUSED_FROM, decision.reused_from))
        return True

    def pytest_mlexp_run_ending(
        self, item: pytest.Item, run: ExperimentRun, status: str, outcome: str
    ) -> None:
        decision = item.stash.get(DECISION_KEY, None)
        if decision is not None and decision.reused_from and outcome == "passed":
            run.set_tag(T.OUTCOME, T.OUTCOME_REUSED)

    # -- for groups the session runs only part of --------------------------------------------

    @pytest.hookimpl(trylast=True)
    def pytest_mlexp_latest_runs_of_current_code(self, items: list[pytest.Item]) -> dict[str, str]:
        """Node id -> the newest earlier run whose fingerprint is the item's now, if it passed."""
        wanted = self._wanted(items)
        candidates = find_candidates(
            self.session.backend.client, wanted, self.settings.tracking.session_id
        )
        found = {}
        for item in items:
            run = candidates.matching.get(self._test(item))
            found[item.nodeid] = str(run.info.run_id) if run and unusable(run) is None else ""
        return found

    # -- internals ------------------------------------------------------------------------

    def _decide(self, item: pytest.Item, fingerprint: Fingerprint) -> Decision:
        if marker_options(item).get("reuse") is False:
            return Decision(reason="reuse=False")
        if TRIAL_OF_KEY in item.stash:
            return Decision(reason=SEARCH_TRIAL)
        if fingerprint.problem is not None:
            return Decision(reason=f"fingerprint could not be computed: {fingerprint.problem}")
        candidates = self._find_candidates()
        if self._search_error is not None:
            return Decision(reason=self._search_error)
        test = self._test(item)
        run = candidates.matching.get(test)
        if run is None:
            nearest = candidates.nearest.get(test)
            if nearest is None:
                return Decision(reason=NEW)
            return Decision(reason=changed_parts(fingerprint, nearest.data.tags))
        why = unusable(run)
        if why is not None:
            return Decision(reason=why)
        return Decision(reused_from=original(run), source=run)

    def _test(self, item: pytest.Item) -> tuple[str, str]:
        """(experiment id, node id): how reuse looks the item's runs up."""
        experiment = marker_experiment(item, self.settings.tracking.experiment)
        return (self.session.backend.experiment_id(experiment), item.nodeid)

    def _wanted(self, items: list[pytest.Item]) -> dict[tuple[str, str], dict[str, str]]:
        """Each item's test -> its fingerprint's tags now (those that could be computed)."""
        wanted = {}
        for item in items:
            fingerprint = item.stash.get(FINGERPRINT_KEY, None) or self.fingerprinter.of(item)
            if fingerprint.digest:
                wanted[self._test(item)] = fingerprint.tags()
        return wanted

    def _find_candidates(self) -> Candidates:
        """The candidates of every one of this process's tests, searched once (per process)."""
        if self._candidates is None:
            backend = self.session.backend
            self._candidates = Candidates()
            try:
                self._candidates = find_candidates(
                    backend.client, self._wanted(self._tracked), self.settings.tracking.session_id
                )
            except Exception as exc:
                self._search_error = (
                    f"could not search earlier runs in {backend.display_uri}: "
                    f"{type(exc).__name__}: {redact_text(str(exc))[:200]}"
                )
        return self._candidates


def copy_results(source: Run, run: ExperimentRun, keep: Collection[str] = ()) -> None:
    """Copy the source's params, final metrics and own tags (not MLflow's, mlexp's nor ``keep``)."""
    for key, value in source.data.params.items():
        if key not in run.params:
            run.log_param(key, value)
    # Not MLflow's system metrics: a reused run executes nothing on this machine.
    run.log_metrics(
        {k: v for k, v in source.data.metrics.items() if not k.startswith(T.SYSTEM_METRICS_PREFIX)}
    )
    run.set_tags(
        {
            key: value
            for key, value in source.data.tags.items()
            if not key.startswith(_OWN_TAG_PREFIXES) and key not in keep
        }
    )
    # The source's shape: its returned metrics stay returned, its histories stay histories.
    metrics = source.data.metrics
    for key in filter(None, source.data.tags.get(T.RETURNED, "").split(",")):
        if key in metrics:
            run.returned[key] = metrics[key]
    run.histories.update(filter(None, source.data.tags.get(T.HISTORIES, "").split(",")))
