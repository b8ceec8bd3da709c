"""Seeds on demand at run time: a batch's seed runs only while its cell is still undecided.

Every seed of a cell's budget is collected, the extra ones at the end of the
session, batch after batch (``grids.repeats.order_by_batch``). When an extra
seed's turn comes, it asks the store whether its cell was decided after the
batches before it: it waits until their runs ended (under xdist or on Ray
another worker may still run them; in this order every wait points to items
collected before, so it ends), computes the cell's means as the session's end
will (``grids.kinds.cell_values``) and judges them with the sequential rule
(``gate.sequential``) against the cell's baseline. A decided cell's extra
seeds end in setup, without a run and without a terminal line (their reports
carry ``SEED_NOT_NEEDED`` and count nowhere, ``pipeline``).

Under ``--mlexp-update-baseline``, or against the store when the cell has no
baseline there yet, a cell runs its whole budget: a baseline that stopped
growing when its seeds happened to spread little would understate the noise
of every later comparison (measured: the level at the tolerance's edge rose
to 6.1%), and one that always holds the budget keeps the looks' levels'
calibration exact.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import pytest

from ..backend import tags as T
from ..grids.repeats import cell_nodeid, seed_batch
from ..keys import SESSION_KEY
from ..runs.markers import marker_experiment
from .keys import RULES_KEY
from .markers import rules_from_json, rules_to_json
from .rules import N_SUFFIX, STD_SUFFIX, Rules, compare_cell, with_histories
from .verdicts import INCONCLUSIVE, verdict_of

if TYPE_CHECKING:
    from ..runs.session import MlexpSession
    from .baselines import Baseline

#: The user property of an extra seed's report whose cell was decided before its turn.
SEED_NOT_NEEDED = T.SEED_NOT_NEEDED
#: Seconds between two reads of the store while earlier seeds run elsewhere (growing).
FIRST_WAIT, LONGEST_WAIT = 0.2, 5.0


class SeedsOnDemand:
    """Registered as ``mlexp-seeds`` where items run, when some cell has a seed budget."""

    def __init__(self, session: MlexpSession) -> None:
        self.session = session
        self.settings = session.settings
        #: (cell, look) -> whether the cell was decided after the batches before ``look``.
        self._decided: dict[tuple[str, int], bool] = {}
        self._baselines: dict[str, Baseline | None] = {}

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        # Registered after mlexp-runs, so called before it starts the item's run; inside
        # pytest's own setup wrappers (logging, capture), as their teardowns expect.
        batch = seed_batch(item)
        # A reproduction (``mlexp reproduce``) is given the seeds its original ran: all run.
        if not batch or T.REPRODUCES in self.settings.tracking.tags:
            return
        if not self._needed(item, batch):
            item.user_properties.append((SEED_NOT_NEEDED, cell_nodeid(item.nodeid)))
            pytest.skip(f"mlexp: {cell_nodeid(item.nodeid)} was decided by its earlier seeds")

    def _needed(self, item: pytest.Item, batch: int) -> bool:
        """Whether the cell is undecided after every batch before ``batch``."""
        cell = cell_nodeid(item.nodeid)
        for look in range(1, batch + 1):
            key = (cell, look)
            if key not in self._decided:
                self._decided[key] = self._decide(item, cell, look)
            if self._decided[key]:
                return False
        return True

    def _decide(self, item: pytest.Item, cell: str, look: int) -> bool:
        """Whether the batches before ``look`` decided ``cell`` (waiting for their runs)."""
        earlier = [
            each.nodeid
            for each in item.session.items
            if cell_nodeid(each.nodeid) == cell and seed_batch(each) < look
        ]
        runs = self._ended_runs(item, cell, set(earlier))
        if any(run.info.status != "FINISHED" for run in runs):
            return True  # a failed seed fails the cell: more seeds cannot change it
        values = cell_metrics(runs)
        if not values:
            return True
        rules = look_rules(item.stash[RULES_KEY], runs)
        gate = self.settings.gate
        if gate.update:
            return False  # a baseline being recorded runs its whole budget
        baseline = self._baseline(item, cell)
        if baseline is None:
            # The store's first baseline of the cell is being made: its whole budget.
            return gate.spec is None
        rows = compare_cell(values, baseline.metrics, rules)
        return verdict_of(rows, True, baseline) != INCONCLUSIVE

    def _ended_runs(self, item: pytest.Item, cell: str, nodeids: set[str]) -> list[Any]:
        """The last attempt's run of each of ``nodeids``, once all of them ended."""
        from ..backend.search import search_runs, tag_equals
        from ..groups.creation import host_name
        from ..groups.members import final_attempts
        from ..groups.sweep import process_alive

        backend = self.session.config.stash[SESSION_KEY].backend
        experiment = marker_experiment(item, self.settings.tracking.experiment)
        query = (
            f"{tag_equals(T.SESSION_ID, self.settings.tracking.session_id)} "
            f"and {tag_equals(T.CELL, cell)}"
        )
        here = host_name()
        wait = FIRST_WAIT
        while True:
            found = [
                run
                for run in search_runs(backend.client, [backend.experiment_id(experiment)], query)
                if run.data.tags.get(T.NODEID) in nodeids and T.KIND not in run.data.tags
            ]
            latest: dict[str, Any] = {}
            for run in sorted(final_attempts(found)[0], key=lambda r: r.info.start_time):
                latest[run.data.tags[T.NODEID]] = run
            running = [
                run
                for run in latest.values()
                if run.info.status == "RUNNING"
                and not (
                    run.data.tags.get(T.HOST) == here
                    and not process_alive(int(run.data.tags.get(T.PID, "0") or 0))
                )
            ]
            if len(latest) == len(nodeids) and not running:
                return list(latest.values())
            time.sleep(wait)
            wait = min(LONGEST_WAIT, wait * 1.5)

    def _baseline(self, item: pytest.Item, cell: str) -> Baseline | None:
        if cell not in self._baselines:
            from .baselines import Baseline, read_file

            gate = self.settings.gate
            found = None
            if gate.baseline_file is not None:
                entry = read_file(gate.baseline_file).get(cell)
                found = Baseline(entry, gate.file_label) if entry is not None else None
            elif gate.spec is not None:
                from .group_runs import cell_baseline

                backend = self.session.config.stash[SESSION_KEY].backend
                experiment = marker_experiment(item, self.settings.tracking.experiment)
                found = cell_baseline(
                    backend, gate, self.settings.tracking.session_id, cell, experiment
                )
            self._baselines[cell] = found
        return self._baselines[cell]


def cell_metrics(runs: list[Any]) -> dict[str, float]:
    """A cell's means, spreads and seeds over its passed ``runs``, as its cell run will hold."""
    from ..grids.kinds import cell_values

    values = cell_values(runs)
    means = {}
    for key, series in values.items():
        means.update(_summary(key, series))
    return means


def _summary(key: str, series: list[float]) -> dict[str, float]:
    import statistics

    return {
        key: statistics.fmean(series),
        key + STD_SUFFIX: statistics.stdev(series) if len(series) > 1 else 0.0,
        key + N_SUFFIX: float(len(series)),
    }


def look_rules(rules: Rules, runs: list[Any]) -> Rules:
    """The rules the session's end judges the cell by, so a look judges the same metrics.

    The session's end reads a cell's rules from its first seed's result
    (``gate.plugin`` keeps them as ``rules_to_json``, ``gate.group_runs`` reads
    them back): the item's, without the ``expect=`` bounds (each seed is held to
    them, the cell's mean is not), with the seed's histories (a metric logged at
    several steps and not returned, a training curve, is not judged unless
    named: ``Rules.judges``). A look builds them the same way, from the
    ``mlexp.histories`` tag of the seed that ended first.
    """
    if runs:
        first = min(runs, key=lambda run: run.info.end_time or 0)
        names = filter(None, first.data.tags.get(T.HISTORIES, "").split(","))
        rules = with_histories(rules, names)
    return rules_from_json(rules_to_json(rules))


def count_in_progress(config: pytest.Config, nodeid: str) -> None:
    """Count a seed not needed in the terminal's progress, so that the session ends at 100%.

    pytest's terminal counts an item in its progress only when it prints a letter
    for it; its set of reported ids is private (``_progress_nodeids_reported``,
    checked with pytest 8 and 9). Without it, nothing breaks: the progress stops short.
    """
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    reported = getattr(reporter, "_progress_nodeids_reported", None)
    if isinstance(reported, set):
        reported.add(nodeid)
