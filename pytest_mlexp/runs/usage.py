"""What each run used: its wall time, its CPU time and the GPUs it held.

Measured in the process that runs the item, from the start of its setup to
the end of its teardown, whatever runs it: the session's own process, an
xdist worker, a Ray actor or a Slurm job. Nothing here knows the executor:
the GPUs held are the GPUs visible to the process (``CUDA_VISIBLE_DEVICES``,
which Ray and Slurm set for the GPUs they assign), unless the executor says
how many it assigned in ``MLEXP_GPUS`` (``0.5`` for half a GPU Ray shares).

The figures are logged as MLflow system metrics, one value each (step 0):
the UI shows them in the run's "System metrics" tab beside MLflow's own
samples, and every reader of the experiment's metrics leaves ``system/``
aside, so the gate never judges them, reuse never copies them, group runs
never average them. A reused run (``--mlexp-reuse``) executed nothing: it
records no usage, and its source run keeps what it used.
"""

from __future__ import annotations

import math
import os
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass

from ..backend.tags import SYSTEM_METRICS_PREFIX
from ..warning_types import MlexpWarning

#: The metrics a run's usage is logged as.
WALL_SECONDS = SYSTEM_METRICS_PREFIX + "wall_time_seconds"
CPU_SECONDS = SYSTEM_METRICS_PREFIX + "cpu_time_seconds"
GPU_COUNT = SYSTEM_METRICS_PREFIX + "gpu_count"
GPU_HOURS = SYSTEM_METRICS_PREFIX + "gpu_hours"
METRICS = (WALL_SECONDS, CPU_SECONDS, GPU_COUNT, GPU_HOURS)

#: How many GPUs an executor assigned to the process; wins over ``CUDA_VISIBLE_DEVICES``.
GPUS_ENV = "MLEXP_GPUS"
#: One entry per NVIDIA GPU of the machine (Linux), for a process no executor limited.
_NVIDIA_GPUS = "/proc/driver/nvidia/gpus"


@dataclass(frozen=True)
class Usage:
    """What one run used (or several, added up)."""

    wall_seconds: float = 0.0
    #: The process's CPU time, user and system, with its children that ended and were waited for.
    cpu_seconds: float = 0.0
    #: GPU-hours: the GPUs held times the wall time, in hours.
    gpu_hours: float = 0.0
    #: The GPUs held (for a sum: the most any one run held).
    gpus: float = 0.0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.wall_seconds + other.wall_seconds,
            self.cpu_seconds + other.cpu_seconds,
            self.gpu_hours + other.gpu_hours,
            max(self.gpus, other.gpus),
        )

    def metrics(self) -> dict[str, float]:
        """The run's system metrics."""
        return {
            WALL_SECONDS: self.wall_seconds,
            CPU_SECONDS: self.cpu_seconds,
            GPU_COUNT: self.gpus,
            GPU_HOURS: self.gpu_hours,
        }

    @classmethod
    def from_metrics(cls, metrics: Mapping[str, float]) -> Usage | None:
        """A stored run's usage, or ``None`` when it recorded none (reused, or older)."""
        if WALL_SECONDS not in metrics:
            return None
        return cls(
            float(metrics[WALL_SECONDS]),
            float(metrics.get(CPU_SECONDS, 0.0)),
            float(metrics.get(GPU_HOURS, 0.0)),
            float(metrics.get(GPU_COUNT, 0.0)),
        )


class Meter:
    """Started when an item's run starts; ``stop`` says what the item used since."""

    def __init__(self) -> None:
        self.gpus = held_gpus()
        self._wall = time.monotonic()
        self._cpu = cpu_seconds()

    def stop(self) -> Usage:
        wall = max(0.0, time.monotonic() - self._wall)
        cpu = max(0.0, cpu_seconds() - self._cpu)
        return Usage(wall, cpu, self.gpus * wall / 3600, self.gpus)


def cpu_seconds() -> float:
    """This process's CPU time so far, with that of its children that ended and were waited for."""
    spent = os.times()
    return spent.user + spent.system + spent.children_user + spent.children_system


def held_gpus(environ: Mapping[str, str] | None = None) -> float:
    """The GPUs this process holds: as its executor said, else those visible to it."""
    environ = os.environ if environ is None else environ
    assigned = environ.get(GPUS_ENV, "").strip()
    if assigned:
        try:
            count = float(assigned)
        except ValueError:
            count = math.nan
        if math.isfinite(count) and count >= 0:
            return count
        warnings.warn(
            MlexpWarning(
                f"{GPUS_ENV}={assigned!r} is not a number of GPUs (such as 1 or 0.5); "
                "the GPUs visible to the process are counted instead"
            ),
            stacklevel=2,
        )
    visible = environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return float(len(_cuda_devices(visible)))
    try:
        return float(len(os.listdir(_NVIDIA_GPUS)))
    except OSError:
        return 0.0


def _cuda_devices(visible: str) -> list[str]:
    """The devices CUDA sees: the list up to its first invalid entry (``-1`` hides them all)."""
    devices = []
    for entry in visible.split(","):
        entry = entry.strip()
        if not entry or entry.startswith("-"):
            break
        devices.append(entry)
    return devices
