"""The seam between the dispatcher and a cluster: one small protocol every backend implements.

``dispatch.Dispatcher`` knows only this: start a worker reserving a
``Demand``, hand it an item, learn what came back (a result, a worker lost,
a worker ended), cancel everything, stop. Ray (``ray_backend``) and Slurm
(``slurm_backend``) are two implementations; a third (Dask, Kubernetes jobs)
is one more module in this package, named in ``backends.BACKENDS``, and its
settings. What a worker does with an item is the same everywhere
(``worker.ItemWorker``).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from .resources import Demand

#: ``returned``: the item's result; ``failed``: the call itself raised (``reason``);
#: ``lost``: the worker died mid-item (``reason``: the cluster's word for it);
#: ``ended``: the worker ended its session (``result``: its journal, its error).
OutcomeKind = Literal["returned", "failed", "lost", "ended"]


class StartRefused(Exception):
    """The cluster will not start a worker of that shape (sbatch refused the job): why."""


@dataclass
class Outcome:
    """What the cluster says about one worker's last call."""

    worker: Hashable
    kind: OutcomeKind
    result: Mapping[str, Any] = field(default_factory=dict)
    reason: str = ""


class Executor(Protocol):
    """A cluster that runs warm workers, each holding one pytest session across its items."""

    #: The backend's name, on every run as ``mlexp.cluster.backend`` (``ray``, ``slurm``).
    backend: str
    #: How messages name the cluster: ``the Ray cluster``, ``the Slurm cluster``.
    title: str
    #: How messages name the session's cluster: ``--mlexp-ray 10.0.0.5:6379``.
    where: str
    #: Whether every node is on this machine (an embedded store is then shared).
    local: bool
    #: Whether the nodes run a copy of the project (Ray's, without ``.git``), not the
    #: project itself on a shared file system (Slurm's).
    shipped: bool

    def nodes(self) -> Sequence[Mapping[str, float]]:
        """Each alive node's total resources, by neutral name (``CPU``, ``GPU``, ``memory``)."""
        ...

    def start(self, demand: Demand, spec: Mapping[str, Any]) -> Hashable:
        """Start a worker reserving ``demand`` with ``spec`` (``worker.ItemWorker``); its handle.

        Raises ``StartRefused`` when the cluster will not: the shape's items fail with it.
        """
        ...

    def await_placement(self, workers: Sequence[Hashable], timeout: float) -> None:
        """Wait (at most ``timeout``) until ``workers`` hold their resources."""
        ...

    def run(self, worker: Hashable, nodeid: str) -> None:
        """Hand ``worker`` the item ``nodeid``; its outcome comes from ``poll``."""
        ...

    def finish(self, worker: Hashable, exitstatus: int) -> None:
        """Ask ``worker`` to end its session; an ``ended`` outcome follows."""
        ...

    def poll(self, timeout: float) -> list[Outcome]:
        """The outcomes ready within ``timeout`` seconds (short, so Ctrl-C is seen at once)."""
        ...

    def release(self, worker: Hashable) -> None:
        """An ended worker's resources go back to the cluster."""
        ...

    def cancel(self, timeout: float) -> None:
        """Stop every worker now (Ctrl-C), and wait at most ``timeout`` until they are gone."""
        ...

    def shutdown(self) -> None:
        """Leave the cluster; nothing of the session stays queued or running."""
        ...
