"""The cluster backends, by name: the one place a new backend is added.

A backend is a module of this package with a class implementing
``executor.Executor`` and a classmethod ``open(settings, rootdir)`` that
connects, or raises ``UsageError`` naming the fix, before anything runs.
Its settings live in ``settings.cluster`` (``ClusterSettings.backend``).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..settings import Settings
    from .executor import Executor

#: Backend name -> (module of this package, its executor class).
BACKENDS = {
    "ray": ("ray_backend", "RayExecutor"),
    "slurm": ("slurm_backend", "SlurmExecutor"),
}


def open_executor(settings: Settings, rootdir: Path) -> Executor:
    """The executor of ``settings.cluster.backend``, connected; or ``UsageError``."""
    name = settings.cluster.backend
    assert name is not None, "no cluster backend in the settings"
    module, cls = BACKENDS[name]
    executor: Executor = getattr(importlib.import_module(f".{module}", __package__), cls).open(
        settings, rootdir
    )
    return executor
