"""The Slurm backend (``--mlexp-slurm``): warm workers are Slurm jobs submitted through submitit.

Each worker is one job (``slurm_worker.serve``) reserving an item's
resources (``GPU=1`` becomes ``gpus_per_node=1``, ``CPU`` ``cpus_per_task``,
``memory`` ``mem``, a custom resource a ``gres``) with the session's sbatch
options and the item's own (``resources={"slurm": {...}}``). It holds one
pytest session on the project as the shared file system shows it, and runs
the items its mailbox (``mailbox.Mailbox``) hands it, so a job's start and
collection are paid once for all the items of its shape.

A job that ends while it runs an item (cancelled, preempted, out of time,
its node failed) is ``lost`` with the state Slurm gives (submitit's
``sacct`` watcher); Ctrl-C and the session's end ``scancel`` whatever is left.
Refusals before anything runs: submitit missing, no ``sbatch``, a controller
that does not answer, an unknown partition, no accounting (``sacct``).

Of submitit's insides this module uses ``slurm._get_default_parameters`` (the
names ``update_parameters`` takes) and the jobs' shared ``watcher`` (one
``sacct`` for all of them); checked with submitit 1.5.4, and
``tests/test_slurm.py`` fails loudly when they change.
"""

from __future__ import annotations

import contextlib
import math
import shutil
import socket
import subprocess
import time
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from .checks import check_store
from .executor import Outcome, StartRefused
from .mailbox import Mailbox
from .resources import Demand

INSTALL_HINT = "pip install 'pytest-mlexp[slurm]'"
#: Seconds a Slurm command may take before the controller is taken as unreachable.
COMMAND_TIMEOUT = 20.0
#: Seconds between two looks at the jobs' states (one ``sacct`` for all of them).
STATE_PERIOD = 2.0
#: Job states in which a job may still answer its mailbox.
_ALIVE = {
    "PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "REQUEUED", "RESIZING",
    "SUSPENDED", "UNKNOWN", "READY", "REQUEUE_HOLD", "REQUEUE_FED", "SIGNALING",
    "STAGE_OUT",
}  # fmt: skip
#: Node states that host no job.
_DEAD_NODE = ("down", "drain", "fail", "inval", "maint", "futr", "unk")
#: Where the session's job folders live, under the rootdir.
FOLDER = Path(".mlexp") / "slurm"


@dataclass(eq=False)
class Worker:
    """One job: its submitit ``Job``, its mailbox, its next call."""

    job: Any
    mailbox: Mailbox
    calls: int = 0
    #: The call awaiting its result, and whether it ends the session.
    waiting: int | None = None
    ending: bool = False


@dataclass
class Node:
    name: str
    address: str
    totals: dict[str, float] = field(default_factory=dict)


def import_submitit() -> Any:
    try:
        import submitit
    except ImportError:
        raise pytest.UsageError(
            f"--mlexp-slurm needs submitit, which is not installed: {INSTALL_HINT}"
        ) from None
    return submitit


def slurm_command(args: Sequence[str], where: str) -> str:
    """Run a Slurm client command; its output, or ``UsageError`` naming the fix."""
    try:
        done = subprocess.run(
            list(args), capture_output=True, text=True, timeout=COMMAND_TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired:
        done = None
    if done is None or done.returncode != 0:
        said = (done.stderr or done.stdout).strip().splitlines() if done else []
        why = said[-1] if said else f"no answer within {COMMAND_TIMEOUT:g} s"
        raise pytest.UsageError(
            f"{where}: the Slurm controller does not answer ({args[0]}: {why}); run pytest "
            "where `sinfo` works (a login node), or point SLURM_CONF at the cluster's slurm.conf"
        )
    return done.stdout


def check_accounting(where: str) -> None:
    """Refuse a cluster whose ``sacct`` does not answer: a lost job would never be noticed.

    submitit reads the jobs' states with ``sacct`` (Slurm's accounting, ``slurmdbd``).
    """
    try:
        done = subprocess.run(
            ["sacct", "-n", "-X", "-o", "JobID", "-S", "now"],
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        said = f"{type(exc).__name__}: {exc}"
    else:
        if done.returncode == 0:
            return
        lines = (done.stderr or done.stdout).strip().splitlines()
        said = lines[-1] if lines else f"exit code {done.returncode}"
    raise pytest.UsageError(
        f"{where}: Slurm's accounting does not answer (sacct: {said}); the session reads its "
        "jobs' states with sacct, as submitit does: run it on a cluster with accounting "
        "(slurmdbd), which your cluster's admins can switch on"
    )


def parse_nodes(text: str) -> list[Node]:
    """``sinfo -h -N -o '%N|%o|%c|%m|%G|%t'`` -> the alive nodes and their totals."""
    nodes: dict[str, Node] = {}
    for line in text.splitlines():
        parts = line.strip().split("|")
        if len(parts) != 6:
            continue
        name, address, cpus, memory, gres, state = parts
        if state.lower().startswith(_DEAD_NODE) or name in nodes:
            continue
        totals = {"CPU": float(cpus or 0), "memory": float(memory or 0) * 1024**2}
        for entry in gres.split(","):
            fields = entry.split("(")[0].split(":")  # gpu:a100:4(S:0-1) -> gpu, a100, 4
            if len(fields) >= 2 and fields[-1].isdigit():
                resource = "GPU" if fields[0] == "gpu" else fields[0]
                totals[resource] = totals.get(resource, 0.0) + float(fields[-1])
        nodes[name] = Node(name, address, totals)
    return list(nodes.values())


def this_machine() -> set[str]:
    here = {"localhost", "::1", socket.gethostname(), socket.getfqdn()}
    with contextlib.suppress(OSError):
        here.update(str(info[4][0]) for info in socket.getaddrinfo(socket.gethostname(), None))
    return here


def job_parameters(
    demand: Demand, partition: str | None, options: Mapping[str, Any], rootdir: Path
) -> dict[str, Any]:
    """submitit's ``update_parameters`` for a job reserving ``demand``, started in ``rootdir``.

    ``options``: the session's sbatch options, then the item's (``resources={"slurm": ...}``);
    names submitit does not know go to sbatch as they are (``additional_parameters``).
    """
    from submitit.slurm.slurm import _get_default_parameters

    known = set(_get_default_parameters())
    parameters: dict[str, Any] = {
        "job_name": "mlexp",
        "cpus_per_task": max(1, math.ceil(demand.cpus)),
        # The partition's own time limit unless the options say (submitit's default is 5 min).
        "time": None,
    }
    if partition is not None:
        parameters["partition"] = partition
    if demand.gpus:
        parameters["gpus_per_node"] = math.ceil(demand.gpus)
    extra: dict[str, Any] = {"no_requeue": True, "chdir": str(rootdir)}
    if demand.memory:
        extra["mem"] = f"{math.ceil(demand.memory / 1024**2)}M"  # MiB, as sbatch reads it
    if demand.custom:
        parameters["gres"] = ",".join(
            f"{name}:{math.ceil(amount)}" for name, amount in sorted(demand.custom.items())
        )
    # A preempted worker is replaced by the controller, not requeued by Slurm (no_requeue).
    for name, value in options.items():
        key = name.replace("-", "_")
        if key in known:
            parameters[key] = value
        else:
            extra[key] = value
    parameters["additional_parameters"] = {k.replace("_", "-"): v for k, v in extra.items()}
    return parameters


class SlurmExecutor:
    """``executor.Executor`` on a Slurm cluster, through submitit."""

    backend = "slurm"
    title = "the Slurm cluster"
    shipped = False

    def __init__(self, settings: Any, rootdir: Path, nodes: list[Node]) -> None:
        self.slurm = settings.cluster.slurm
        self.where = self.slurm.source + (
            f" {self.slurm.partition}" if self.slurm.partition else ""
        )
        self.rootdir = rootdir
        self.folder = rootdir / FOLDER / settings.tracking.session_id
        self._nodes = nodes
        here = this_machine()
        self.local = all(
            n.name in here or n.address in here or n.address.startswith("127.") for n in nodes
        )
        self._workers: list[Worker] = []
        self._checked = 0.0
        self._lost = False

    @classmethod
    def open(cls, settings: Any, rootdir: Path) -> SlurmExecutor:
        """Check submitit, ``sbatch``, the controller and the partition; or ``UsageError``."""
        import_submitit()
        slurm = settings.cluster.slurm
        where = slurm.source
        for command in ("sbatch", "srun", "sinfo", "scancel", "squeue"):
            if shutil.which(command) is None:
                raise pytest.UsageError(
                    f"{where}: Slurm's {command} is not on the PATH; run pytest on a login node "
                    "of the cluster, or install Slurm's client (Debian: apt-get install "
                    "slurm-client) with the cluster's slurm.conf (SLURM_CONF)"
                )
        partitions = slurm_command(["sinfo", "-h", "-o", "%P"], where).split()
        names = [p.rstrip("*") for p in partitions]
        if slurm.partition is not None and slurm.partition not in names:
            hint = ""
            if Path(slurm.partition).exists():
                hint = (
                    f"; {slurm.partition} is a path, read as the partition: put --mlexp-slurm "
                    "after the paths, or write --mlexp-slurm=PARTITION"
                )
            raise pytest.UsageError(
                f"{where} {slurm.partition}: the cluster has no partition {slurm.partition!r}; "
                f"its partitions: {', '.join(partitions) or 'none'} (sinfo; * is the default)"
                + hint
            )
        check_accounting(where)
        listing = ["sinfo", "-h", "-N", "-o", "%N|%o|%c|%m|%G|%t"]
        if slurm.partition is not None:
            listing += ["-p", slurm.partition]
        executor = cls(settings, rootdir, parse_nodes(slurm_command(listing, where)))
        check_store(executor.local, executor.where, settings.tracking)
        return executor

    # -- the protocol ----------------------------------------------------------------------

    def nodes(self) -> Sequence[Mapping[str, float]]:
        return [node.totals for node in self._nodes]

    def start(self, demand: Demand, spec: Mapping[str, Any]) -> Hashable:
        from submitit import SlurmExecutor as Submitter

        options = {**self.slurm.options, **demand.options.get("slurm", {})}
        submitter = Submitter(folder=self.folder / "%j")
        submitter.update_parameters(
            **job_parameters(demand, self.slurm.partition, options, self.rootdir)
        )
        from .slurm_worker import serve

        number = len(self._workers)
        mailbox = Mailbox(self.folder / "mailbox" / str(number))
        mailbox.path.mkdir(parents=True, exist_ok=True)
        try:
            job = submitter.submit(serve, dict(spec), str(mailbox.path))
        except Exception as exc:
            raise StartRefused(
                f"sbatch refused a job reserving {demand.describe()}: {str(exc).strip()[-1000:]}"
            ) from None
        worker = Worker(job, mailbox)
        self._workers.append(worker)
        return worker

    def await_placement(self, workers: Sequence[Hashable], timeout: float) -> None:
        # Slurm's queue places them: a job waits for its resources without taking others'.
        return

    def run(self, worker: Hashable, nodeid: str) -> None:
        self._post(worker, {"op": "run", "nodeid": nodeid})

    def finish(self, worker: Hashable, exitstatus: int) -> None:
        self._post(worker, {"op": "finish", "exitstatus": exitstatus}, ending=True)

    def _post(self, worker: Hashable, call: dict[str, Any], *, ending: bool = False) -> None:
        assert isinstance(worker, Worker)
        worker.mailbox.post(worker.calls, call)
        worker.waiting, worker.ending = worker.calls, ending
        worker.calls += 1

    def poll(self, timeout: float) -> list[Outcome]:
        deadline = time.monotonic() + timeout
        while True:
            outcomes = self._answered()
            if not outcomes and time.monotonic() - self._checked >= STATE_PERIOD:
                outcomes = self._gone()
            if outcomes or time.monotonic() >= deadline:
                return outcomes
            time.sleep(0.05)

    def _waiting(self) -> list[Worker]:
        return [worker for worker in self._workers if worker.waiting is not None]

    def _answered(self) -> list[Outcome]:
        outcomes = []
        for worker in self._waiting():
            assert worker.waiting is not None
            result = worker.mailbox.result(worker.waiting)
            if result is not None:
                worker.waiting = None
                outcomes.append(Outcome(worker, "ended" if worker.ending else "returned", result))
        return outcomes

    def _gone(self) -> list[Outcome]:
        """Outcomes of the waiting workers whose jobs ended without answering."""
        self._checked = time.monotonic()
        waiting = self._waiting()
        if not waiting:
            return []
        watcher = waiting[0].job.watcher
        for worker in waiting:
            watcher.register_job(worker.job.job_id)
        watcher.update()
        outcomes = []
        for worker in waiting:
            state = watcher.get_state(worker.job.job_id, mode="cache")
            if state.split(" ")[0].upper() in _ALIVE:
                continue
            found = self._answered()  # it may have answered just before it ended
            if found:
                outcomes.extend(found)
                continue
            worker.waiting = None
            if worker.ending:
                outcomes.append(Outcome(worker, "ended"))
                continue
            self._lost = True
            reason = f"the Slurm job {worker.job.job_id} ended {state}"
            if state.startswith("FAILED"):
                reason += f"; the end of its log: {_tail(worker.job)}"
            outcomes.append(Outcome(worker, "lost", reason=reason))
        return outcomes

    def release(self, worker: Hashable) -> None:
        assert isinstance(worker, Worker)
        shutil.rmtree(worker.mailbox.path, ignore_errors=True)

    def cancel(self, timeout: float) -> None:
        self._scancel(timeout)
        for worker in self._workers:
            worker.waiting = None

    def shutdown(self) -> None:
        """``scancel`` what is left (nothing stays queued or running); logs kept if needed."""
        self._scancel(COMMAND_TIMEOUT)
        if not self._lost:
            shutil.rmtree(self.folder, ignore_errors=True)

    def _scancel(self, timeout: float) -> None:
        ids = [w.job.job_id for w in self._workers if w.job.job_id]
        if not ids:
            return
        subprocess.run(["scancel", *ids], capture_output=True, timeout=COMMAND_TIMEOUT, check=False)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            listed = subprocess.run(
                ["squeue", "-h", "-o", "%i", "-j", ",".join(ids)],
                capture_output=True,
                text=True,
                timeout=COMMAND_TIMEOUT,
                check=False,
            )
            if listed.returncode != 0 or not listed.stdout.strip():
                return  # none queued or running (or Slurm forgot them: long done)
            time.sleep(0.2)


def _tail(job: Any, lines: int = 15) -> str:
    try:
        text = job.stderr() or ""
    except Exception:
        return "(none)"
    return "\n".join(text.strip().splitlines()[-lines:]) or "(empty)"
