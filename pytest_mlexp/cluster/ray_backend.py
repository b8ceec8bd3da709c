"""The Ray backend (``--mlexp-ray``): warm workers are Ray actors reserving an item's resources.

Each worker is an actor (``RayItemWorker``) holding one ``worker.ItemWorker``
for its life; an item is an actor call, its outcome a Ray object reference.
A worker whose actor died mid-call (its node lost) is ``lost``; Ctrl-C kills
every actor (``ray.kill``). Ray is imported here only, once the flag is given.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .checks import check_store
from .connect import Cluster, connect
from .executor import Outcome
from .resources import Demand
from .worker import ItemWorker


class RayItemWorker(ItemWorker):
    """The actor's class (``ray.remote`` is applied by the executor, so Ray stays optional)."""

    def __init__(self, spec: dict[str, Any]) -> None:
        import ray

        super().__init__(spec, ray.get_runtime_context().get_node_id())


def actor_options(demand: Demand) -> dict[str, Any]:
    """The options of ``ActorClass.options()`` that reserve ``demand`` for an actor's life."""
    options: dict[str, Any] = {"num_cpus": demand.cpus, "num_gpus": demand.gpus}
    if demand.memory:
        options["memory"] = demand.memory
    if demand.custom:
        options["resources"] = dict(demand.custom)
    return options


class RayExecutor:
    """``executor.Executor`` on a Ray cluster."""

    backend = "ray"
    title = "the Ray cluster"
    shipped = True

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.ray = cluster.ray
        self.local = cluster.local
        self.where = f"--mlexp-ray {cluster.address}"
        self._actor_class: Any = None
        #: Object reference -> (its actor, whether it ends the actor's session).
        self._pending: dict[Any, tuple[Any, bool]] = {}
        self._actors: list[Any] = []

    @classmethod
    def open(cls, settings: Any, rootdir: Path) -> RayExecutor:
        """Connect to ``settings.cluster.address``, or raise ``UsageError`` saying why not."""
        executor = cls(connect(str(settings.cluster.address), rootdir))
        check_store(executor.local, executor.where, settings.tracking)
        return executor

    def nodes(self) -> Sequence[Mapping[str, float]]:
        return list(self.cluster.refresh().values())

    def start(self, demand: Demand, spec: Mapping[str, Any]) -> Hashable:
        if self._actor_class is None:
            self._actor_class = self.ray.remote(RayItemWorker)
        options = actor_options(demand)
        actor = self._actor_class.options(max_restarts=0, max_task_retries=0, **options)
        handle = actor.remote(dict(spec))
        self._actors.append(handle)
        return handle  # type: ignore[no-any-return]

    def await_placement(self, workers: Sequence[Hashable], timeout: float) -> None:
        # A worker answers ``info`` once it is placed and started.
        refs = [worker.info.remote() for worker in workers]  # type: ignore[attr-defined]
        if refs:
            self.ray.wait(refs, num_returns=len(refs), timeout=timeout)

    def run(self, worker: Hashable, nodeid: str) -> None:
        self._pending[worker.run.remote(nodeid)] = (worker, False)  # type: ignore[attr-defined]

    def finish(self, worker: Hashable, exitstatus: int) -> None:
        self._pending[worker.finish.remote(exitstatus)] = (worker, True)  # type: ignore[attr-defined]

    def poll(self, timeout: float) -> list[Outcome]:
        if not self._pending:
            return []
        ready, _ = self.ray.wait(list(self._pending), num_returns=1, timeout=timeout)
        return [self._outcome(ref, *self._pending.pop(ref)) for ref in ready]

    def _outcome(self, ref: Any, worker: Any, ending: bool) -> Outcome:
        exceptions = self.ray.exceptions
        try:
            result = self.ray.get(ref)
        except (exceptions.RayActorError, exceptions.WorkerCrashedError) as exc:
            if ending:
                return Outcome(worker, "ended")  # its node was lost: its runs ended with items
            return Outcome(worker, "lost", reason=f"{type(exc).__name__}: {str(exc)[:1000]}")
        except exceptions.RayTaskError as exc:
            if ending:
                return Outcome(worker, "ended", {"error": str(exc)})
            return Outcome(worker, "failed", reason=f"the Ray worker failed: {exc}")
        return Outcome(worker, "ended" if ending else "returned", result)

    def release(self, worker: Hashable) -> None:
        self._actors.remove(worker)
        self.ray.kill(worker, no_restart=True)

    def cancel(self, timeout: float) -> None:
        busy = [ref for ref, (_, ending) in self._pending.items() if not ending]
        for actor in self._actors:
            self.ray.kill(actor, no_restart=True)
        if busy:
            # Dead before their runs are looked for: none is created after.
            self.ray.wait(busy, num_returns=len(busy), timeout=timeout)
        self._pending = {}

    def shutdown(self) -> None:
        self.cluster.shutdown()
