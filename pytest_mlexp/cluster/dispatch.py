"""The controller's loop under ``--mlexp-ray``: items to warm Ray workers, reports back.

The controller collects, as a serial session does, then replaces pytest's
run loop (``pytest_runtestloop``, as xdist's ``DSession`` does). Items are
grouped by the resources they reserve; each group gets warm workers
(``worker.ItemWorker`` actors reserving that shape, as many as the cluster
can host at once, up to the group's size) and each worker is handed the
group's next item as soon as it returns the last one. Groups asking for a GPU
or a custom resource start first, and are placed before the others ask, so an
item that fits anywhere never takes the only node a constrained one fits on. What a worker returns
is replayed here through ``pytest_runtest_logstart``/``logreport``/``logfinish``,
so the terminal, ``-v``, ``-x``, JUnit and the session's end see the items
as under xdist. A group whose queue is empty ends its workers, freeing what
they reserved for the next groups.

A worker that dies mid-item (its node lost): its run is ended KILLED as a
superseded attempt and the item goes back to the front of its queue for a
new worker, up to ``MAX_ATTEMPTS``. Ctrl-C: every worker is killed and the
runs in flight end KILLED (``interrupted``).
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pytest

from ..runs.usage import GPUS_ENV
from .resources import Demand, capacity, demand_of, missing

if TYPE_CHECKING:
    from ..runs.session import MlexpSession
    from ..workers import Given
    from .connect import Cluster

#: Attempts of an item whose worker died before it fails with the reason.
MAX_ATTEMPTS = 3
#: Seconds each ``ray.wait`` may block, so that Ctrl-C is seen at once.
_WAIT_SLICE = 0.2
#: Seconds the unconstrained shapes wait for the constrained ones' workers to be placed.
_PLACEMENT_TIMEOUT = 30.0
#: Seconds Ctrl-C waits for the killed workers to be gone.
_KILL_TIMEOUT = 5.0
#: What a worker inherits from the controller's environment (credentials included:
#: it logs to the same server); MLEXP_RAY is the controller's own.
_ENV_PREFIXES = ("MLFLOW_", "MLEXP_")
_ENV_NAMES = ("PYTEST_ADDOPTS",)


@dataclass
class Group:
    """The items of one resource shape, their queue and their workers."""

    demand: Demand
    queue: deque[tuple[pytest.Item, int]] = field(default_factory=deque)
    workers: int = 0


@dataclass
class Call:
    """One item in flight on one worker."""

    actor: Any
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
        cluster: Cluster,
        session: MlexpSession,
        given: Callable[[int], Given],
    ) -> None:
        """``given``: what worker number n is given (``workers.Given``)."""
        self.cluster = cluster
        self.ray = cluster.ray
        self.session = session
        self.config = session.config
        self.given = given
        self.groups: dict[tuple[Any, ...], Group] = {}
        #: Items no node can ever host, and why.
        self.unhostable: list[tuple[pytest.Item, str]] = []
        self.order: dict[str, int] = {}
        self._actor_class: Any = None
        self._workers = 0
        self._inflight: dict[Any, Call] = {}
        #: Workers ending their sessions: the call's reference -> the worker.
        self._finishing: dict[Any, Any] = {}
        self.pytest_session: pytest.Session | None = None

    # -- before anything runs ----------------------------------------------------------------

    def plan(self, items: list[pytest.Item]) -> None:
        """Group the items by shape; raises ``UsageError`` for bad ``resources=``."""
        default = self.session.settings.cluster.resources
        nodes = list(self.cluster.refresh().values())
        for index, item in enumerate(items):
            self.order[item.nodeid] = index
            demand = item_demand(item, default)
            why = missing(demand, nodes)
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
        nodes = list(self.cluster.nodes.values())
        try:
            # The most constrained shapes first, and placed before the others ask: an item
            # that fits anywhere must not take the only node a GPU or custom item fits on.
            constrained = [g for g in self.groups.values() if g.demand.constrained]
            placed = [ref for group in constrained for ref in self._start(group, nodes)]
            if placed and len(constrained) < len(self.groups):
                self.ray.wait(placed, num_returns=len(placed), timeout=_PLACEMENT_TIMEOUT)
            for group in self.groups.values():
                if not group.demand.constrained:
                    self._start(group, nodes)
            while self._inflight or self._finishing:
                waiting = [*self._inflight, *self._finishing]
                ready, _ = self.ray.wait(waiting, num_returns=1, timeout=_WAIT_SLICE)
                for ref in ready:
                    if ref in self._finishing:
                        self._ended(ref, self._finishing.pop(ref))
                    else:
                        self._returned(ref, self._inflight.pop(ref))
        except BaseException:
            self._cancel()
            raise

    def _start(self, group: Group, nodes: Sequence[Mapping[str, float]]) -> list[Any]:
        """Start as many of the group's workers as the cluster hosts at once, each given an item.

        Returns a reference per worker that is ready once the worker is placed and started
        (its ``info``, asked before its first item).
        """
        placed = []
        for _ in range(min(len(group.queue), capacity(group.demand, nodes))):
            actor = self._start_worker(group)
            placed.append(actor.info.remote())
            self._give(actor, group)
        return placed

    def _start_worker(self, group: Group) -> Any:
        if self._actor_class is None:
            from .worker import ItemWorker

            self._actor_class = self.ray.remote(ItemWorker)
        group.workers += 1
        self._workers += 1
        spec = self._spec(self._workers - 1)
        # The GPUs the worker holds, for what its runs used (half a GPU shows as one device).
        spec["env"][GPUS_ENV] = f"{group.demand.num_gpus:g}"
        options = group.demand.actor_options()
        return self._actor_class.options(max_restarts=0, max_task_retries=0, **options).remote(spec)

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
            if (name.startswith(_ENV_PREFIXES) or name in _ENV_NAMES) and name != "MLEXP_RAY"
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
        }

    def _give(self, actor: Any, group: Group) -> None:
        """The group's next item to ``actor``, or the end of its session if none is left."""
        if group.queue and not self._stopping():
            item, attempt = group.queue.popleft()
            ref = actor.run.remote(item.nodeid)
            self._inflight[ref] = Call(actor, group, item, attempt)
            return
        group.workers -= 1
        status = pytest.ExitCode.TESTS_FAILED if self._failed() else pytest.ExitCode.OK
        self._finishing[actor.finish.remote(int(status))] = actor

    def _failed(self) -> bool:
        return self.pytest_session is not None and self.pytest_session.testsfailed > 0

    def _stopping(self) -> bool:
        session = self.pytest_session
        return session is not None and bool(session.shouldfail or session.shouldstop)

    def _returned(self, ref: Any, call: Call) -> None:
        exceptions = self.ray.exceptions
        try:
            result = self.ray.get(ref)
        except (exceptions.RayActorError, exceptions.WorkerCrashedError) as exc:
            self._lost(call, exc)
            return
        except exceptions.RayTaskError as exc:
            self._fail(call.item, f"mlexp: the Ray worker failed: {exc}", when="call")
            self._give(call.actor, call.group)
            return
        self._keep_journal(result.get("journal", []))
        if result.get("error"):
            self._fail(call.item, f"mlexp: {result['error']}", when="setup")
        else:
            self._replay(result["events"])
        self._give(call.actor, call.group)

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

    def _lost(self, call: Call, exc: BaseException) -> None:
        """The worker died mid-item: its run ends KILLED as superseded; the item goes again."""
        self._close(call.item, "rerun")
        group = call.group
        group.workers -= 1
        if call.attempt >= MAX_ATTEMPTS:
            self._fail(
                call.item,
                f"mlexp: the Ray worker running this item died {call.attempt} times; "
                f"not retried again. The last time: {type(exc).__name__}: {str(exc)[:1000]}",
                when="call",
            )
        else:
            group.queue.appendleft((call.item, call.attempt + 1))
        if not group.queue or group.workers > 0:
            return
        why = missing(group.demand, self.cluster.refresh().values())
        if why is not None:
            while group.queue:
                item, _ = group.queue.popleft()
                self._fail(item, f"mlexp: {why} since a node was lost", when="setup")
            return
        self._give(self._start_worker(group), group)

    def _close(self, item: pytest.Item, outcome: str) -> None:
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

    def _ended(self, ref: Any, actor: Any) -> None:
        """A worker ended its session: what it reserved goes back to the cluster."""
        try:
            result = self.ray.get(ref)
        except Exception:
            result = {}  # its node was lost: its runs ended with their items
        self._keep_journal(result.get("journal", []))
        if result.get("error"):
            import warnings

            from ..warning_types import MlexpWarning

            message = f"a Ray worker's session end failed: {result['error']}"
            warnings.warn(MlexpWarning(message), stacklevel=1)
        self.ray.kill(actor, no_restart=True)

    def _cancel(self) -> None:
        """Ctrl-C (or a crash): kill every worker; the runs in flight end KILLED."""
        refs, inflight = list(self._inflight), list(self._inflight.values())
        self._inflight = {}
        for call in inflight:
            self.ray.kill(call.actor, no_restart=True)
        if refs:
            # Dead before their runs are looked for: none is created after.
            self.ray.wait(refs, num_returns=len(refs), timeout=_KILL_TIMEOUT)
        for actor in self._finishing.values():
            self.ray.kill(actor, no_restart=True)
        self._finishing = {}
        for call in inflight:
            self._close(call.item, "interrupted")

    def _keep_journal(self, files: list[tuple[str, bytes]]) -> None:
        """Spooled runs' journal files from a worker, into this project's ``.mlexp/journal``."""
        if files:
            from ..spool.journal import JOURNAL_DIR
            from .journal import keep

            keep(files, self.session.settings.tracking.rootdir / JOURNAL_DIR)
