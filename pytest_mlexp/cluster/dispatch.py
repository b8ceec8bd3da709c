"""The controller's loop under a cluster: items to warm workers, reports back.

The controller collects, as a serial session does, then replaces pytest's
run loop (``pytest_runtestloop``, as xdist's ``DSession`` does). Items are
grouped by the resources they reserve; each group gets warm workers (as many
as the cluster can host at once, up to the group's size) and each worker is
handed the group's next item as soon as it returns the last one. Groups
asking for a GPU or a custom resource start first, and are placed before the
others ask, so an item that fits anywhere never takes the only node a
constrained one fits on. What a worker returns is replayed here through
``pytest_runtest_logstart``/``logreport``/``logfinish``, so the terminal,
``-v``, ``-x``, JUnit and the session's end see the items as under xdist. A
group whose queue is empty ends its workers, freeing what they reserved.

The cluster is an ``executor.Executor`` (Ray's, Slurm's): this module knows
nothing else of it. A worker lost mid-item (its node lost, its job
cancelled, preempted or out of time): its run is ended KILLED as a
superseded attempt, with the cluster's reason, and the item goes back to the
front of its queue for a new worker, up to ``MAX_ATTEMPTS``. Ctrl-C: every
worker is stopped and the runs in flight end KILLED (``interrupted``).
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pytest

from ..runs.usage import GPUS_ENV
from .resources import Demand, capacity, demand_of, missing

if TYPE_CHECKING:
    from ..runs.session import MlexpSession
    from ..workers import Given
    from .executor import Executor, Outcome

#: Attempts of an item whose worker was lost before it fails with the reason.
MAX_ATTEMPTS = 3
#: Seconds each poll may block, so that Ctrl-C is seen at once.
_WAIT_SLICE = 0.2
#: Seconds the unconstrained shapes wait for the constrained ones' workers to be placed.
_PLACEMENT_TIMEOUT = 30.0
#: Seconds Ctrl-C waits for the stopped workers to be gone.
_KILL_TIMEOUT = 5.0
#: What a worker inherits from the controller's environment (credentials included:
#: it logs to the same server); the cluster's own switches stay the controller's.
_ENV_PREFIXES = ("MLFLOW_", "MLEXP_")
_ENV_NAMES = ("PYTEST_ADDOPTS",)
_ENV_OWN = ("MLEXP_RAY", "MLEXP_SLURM")


@dataclass
class Group:
    """The items of one resource shape, their queue and their workers."""

    demand: Demand
    queue: deque[tuple[pytest.Item, int]] = field(default_factory=deque)
    workers: int = 0


@dataclass
class Call:
    """One item in flight on one worker."""

    worker: Hashable
    group: Group
    item: pytest.Item
    attempt: int


def item_demand(item: pytest.Item, default: Mapping[str, Any]) -> Demand:
    from ..runs.markers import marker_options

    resources = marker_options(item).get("resources")
    return demand_of(default if resources is None else resources, f"{item.nodeid}: resources")


class Dispatcher:
    """Runs a session's collected items on the cluster (``pytest_runtestloop``)."""

    def __init__(
        self,
        executor: Executor,
        session: MlexpSession,
        given: Callable[[int], Given],
    ) -> None:
        """``given``: what worker number n is given (``workers.Given``)."""
        self.executor = executor
        self.session = session
        self.config = session.config
        self.given = given
        self.groups: dict[tuple[Any, ...], Group] = {}
        #: Items no node can ever host, and why.
        self.unhostable: list[tuple[pytest.Item, str]] = []
        self.order: dict[str, int] = {}
        self._workers = 0
        #: Worker -> the item it runs.
        self._inflight: dict[Hashable, Call] = {}
        #: Workers ending their sessions -> their group.
        self._finishing: dict[Hashable, Group] = {}
        self.pytest_session: pytest.Session | None = None
        #: The journal files (spooled runs) there were before the session's items ran.
        self._journal_before: set[str] = set()

    # -- before anything runs ----------------------------------------------------------------

    def plan(self, items: list[pytest.Item]) -> None:
        """Group the items by shape; raises ``UsageError`` for bad ``resources=``."""
        default = self.session.settings.cluster.resources
        self._journal_before = set(_journal_files(self._journal_root()))
        nodes = list(self.executor.nodes())
        for index, item in enumerate(items):
            self.order[item.nodeid] = index
            demand = item_demand(item, default)
            why = missing(demand, nodes, self.executor.title)
            if why is not None:
                self.unhostable.append((item, why))
                continue
            group = self.groups.setdefault(demand.key, Group(demand))
            group.queue.append((item, 1))

    # -- the loop ------------------------------------------------------------------------------

    def run(self, pytest_session: pytest.Session) -> None:
        self.pytest_session = pytest_session
        for item, why in self.unhostable:
            self._fail(item, f"mlexp: {why}; it cannot run on this cluster", when="setup")
        nodes = list(self.executor.nodes())
        try:
            # The most constrained shapes first, and placed before the others ask: an item
            # that fits anywhere must not take the only node a GPU or custom item fits on.
            constrained = [g for g in self.groups.values() if g.demand.constrained]
            placed = [worker for group in constrained for worker in self._start(group, nodes)]
            if placed and len(constrained) < len(self.groups):
                self.executor.await_placement(placed, _PLACEMENT_TIMEOUT)
            for group in self.groups.values():
                if not group.demand.constrained:
                    self._start(group, nodes)
            while self._inflight or self._finishing:
                for outcome in self.executor.poll(_WAIT_SLICE):
                    self._handle(outcome)
        except BaseException:
            self._cancel()
            raise
        self._replay_journal()

    def _start(self, group: Group, nodes: list[Mapping[str, float]]) -> list[Hashable]:
        """Start as many of the group's workers as the cluster hosts at once, each given an item."""
        started = []
        for _ in range(min(len(group.queue), capacity(group.demand, nodes))):
            worker = self._start_worker(group)
            if worker is None:
                break
            started.append(worker)
            self._give(worker, group)
        return started

    def _start_worker(self, group: Group) -> Hashable | None:
        """A new worker for ``group``; ``None`` when the cluster refused it (its items fail)."""
        from .executor import StartRefused

        self._workers += 1
        spec = self._spec(self._workers - 1)
        # The GPUs the worker holds, for what its runs used (half a GPU shows as one device).
        spec["env"][GPUS_ENV] = f"{group.demand.gpus:g}"
        try:
            worker = self.executor.start(group.demand, spec)
        except StartRefused as exc:
            while group.queue:
                item, _ = group.queue.popleft()
                self._fail(item, f"mlexp: {exc}", when="setup")
            return None
        group.workers += 1
        return worker

    def _spec(self, number: int) -> dict[str, Any]:
        config = self.config
        rootdir = Path(config.rootpath)
        invocation = Path(config.invocation_params.dir)
        try:
            chdir = invocation.relative_to(rootdir).as_posix()
        except ValueError:
            chdir = "."
        env = {
            name: value
            for name, value in os.environ.items()
            if (name.startswith(_ENV_PREFIXES) or name in _ENV_NAMES) and name not in _ENV_OWN
        }
        tracking = self.session.settings.tracking
        args = [str(arg) for arg in config.invocation_params.args]
        if config.pluginmanager.hasplugin("randomly"):
            # As pytest-randomly gives xdist's workers the controller's seed.
            args.append(f"--randomly-seed={config.getoption('randomly_seed')}")
        return {
            "args": args,
            "chdir": chdir,
            "env": env,
            "options": {
                "mlexp_tracking_uri": tracking.tracking_uri,
                "mlexp_experiment": tracking.experiment,
            },
            "given": self.given(number).to_json(),
            "backend": self.executor.backend,
        }

    def _give(self, worker: Hashable, group: Group) -> None:
        """The group's next item to ``worker``, or the end of its session if none is left."""
        if group.queue and not self._stopping():
            item, attempt = group.queue.popleft()
            self.executor.run(worker, item.nodeid)
            self._inflight[worker] = Call(worker, group, item, attempt)
            return
        group.workers -= 1
        status = pytest.ExitCode.TESTS_FAILED if self._failed() else pytest.ExitCode.OK
        self.executor.finish(worker, int(status))
        self._finishing[worker] = group

    def _handle(self, outcome: Outcome) -> None:
        worker = outcome.worker
        if worker in self._finishing:
            del self._finishing[worker]
            self._ended(outcome)
            return
        call = self._inflight.pop(worker)
        if outcome.kind == "lost":
            self._lost(call, outcome.reason)
        elif outcome.kind == "failed":
            self._fail(call.item, f"mlexp: {outcome.reason}", when="call")
            self._give(worker, call.group)
        else:
            self._returned(call, outcome.result)

    def _failed(self) -> bool:
        return self.pytest_session is not None and self.pytest_session.testsfailed > 0

    def _stopping(self) -> bool:
        session = self.pytest_session
        return session is not None and bool(session.shouldfail or session.shouldstop)

    def _returned(self, call: Call, result: Mapping[str, Any]) -> None:
        self._keep_journal(result.get("journal", []))
        if result.get("error"):
            self._fail(call.item, f"mlexp: {result['error']}", when="setup")
        else:
            self._replay(result["events"])
        self._give(call.worker, call.group)

    def _replay(self, events: list[dict[str, Any]]) -> None:
        hook = self.config.hook
        for event in events:
            if event["event"] == "report":
                data = event["data"]
                report = hook.pytest_report_from_serializable(config=self.config, data=data)
                hook.pytest_runtest_logreport(report=report)
            elif event["event"] == "logstart":
                hook.pytest_runtest_logstart(
                    nodeid=event["nodeid"], location=tuple(event["location"])
                )
            else:
                hook.pytest_runtest_logfinish(
                    nodeid=event["nodeid"], location=tuple(event["location"])
                )

    def _lost(self, call: Call, reason: str) -> None:
        """The worker was lost mid-item: its run ends KILLED as superseded; the item goes again."""
        self._close(call.item, "rerun", reason)
        group = call.group
        group.workers -= 1
        if call.attempt >= MAX_ATTEMPTS:
            self._fail(
                call.item,
                f"mlexp: the {self.executor.backend} worker running this item was lost "
                f"{call.attempt} times; not retried again. The last time: {reason}",
                when="call",
            )
        else:
            group.queue.appendleft((call.item, call.attempt + 1))
        if not group.queue or group.workers > 0:
            return
        why = missing(group.demand, self.executor.nodes(), self.executor.title)
        if why is not None:
            while group.queue:
                item, _ = group.queue.popleft()
                self._fail(item, f"mlexp: {why} since a node was lost", when="setup")
            return
        worker = self._start_worker(group)
        if worker is not None:
            self._give(worker, group)

    def _close(self, item: pytest.Item, outcome: str, reason: str = "") -> None:
        from ..runs.markers import marker_options
        from .attempts import close_attempt

        settings = self.session.settings
        experiment = str(marker_options(item).get("experiment") or settings.tracking.experiment)
        index = self.order.get(item.nodeid, 0)
        try:
            closed = close_attempt(
                self.session.backend,
                item,
                experiment,
                settings.tracking.session_id,
                outcome=outcome,
                index=index,
                reason=reason,
            )
        except Exception as exc:
            import warnings

            from ..warning_types import MlexpWarning

            warnings.warn(
                MlexpWarning(f"could not close the run of {item.nodeid} as KILLED: {exc}"),
                stacklevel=1,
            )
            return
        self.session.results.extend(closed)

    def _fail(self, item: pytest.Item, message: str, *, when: Literal["setup", "call"]) -> None:
        """Report ``item`` failed here, with ``message``, as if it had run."""
        hook = self.config.hook
        hook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
        keywords: dict[str, Literal[1]] = dict.fromkeys(item.keywords, 1)
        failed = pytest.TestReport(
            item.nodeid, item.location, keywords, "failed", message, when, duration=0.0
        )
        hook.pytest_runtest_logreport(report=failed)
        passed = pytest.TestReport(
            item.nodeid, item.location, keywords, "passed", None, "teardown", duration=0.0
        )
        hook.pytest_runtest_logreport(report=passed)
        hook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)

    # -- the end -------------------------------------------------------------------------------

    def _ended(self, outcome: Outcome) -> None:
        """A worker ended its session: what it reserved goes back to the cluster."""
        result = outcome.result
        self._keep_journal(result.get("journal", []))
        if result.get("error"):
            import warnings

            from ..warning_types import MlexpWarning

            message = f"a {self.executor.backend} worker's session end failed: {result['error']}"
            warnings.warn(MlexpWarning(message), stacklevel=1)
        self.executor.release(outcome.worker)

    def _cancel(self) -> None:
        """Ctrl-C (or a crash): stop every worker; the runs in flight end KILLED."""
        inflight = list(self._inflight.values())
        self._inflight, self._finishing = {}, {}
        # Gone before their runs are looked for: none is created after.
        self.executor.cancel(_KILL_TIMEOUT)
        for call in inflight:
            self._close(call.item, "interrupted")

    def _journal_root(self) -> Path:
        from ..spool.journal import JOURNAL_DIR

        return self.session.settings.tracking.rootdir / JOURNAL_DIR

    def _replay_journal(self) -> None:
        """Send the runs the nodes spooled this session (no route to the server, or it was
        lost), now that they are done, from here; ``mlexp sync`` is left what cannot be sent.
        """
        from .replay import replay_new

        replay_new(self.session, self._journal_root(), self._journal_before)

    def _keep_journal(self, files: list[tuple[str, bytes]]) -> None:
        """Spooled runs' journal files from a worker, into this project's ``.mlexp/journal``."""
        if files:
            from ..spool.journal import JOURNAL_DIR
            from .journal import keep

            keep(files, self.session.settings.tracking.rootdir / JOURNAL_DIR)


def _journal_files(root: Path) -> list[str]:
    return [path.name for path in root.glob("*.jsonl")] if root.is_dir() else []
