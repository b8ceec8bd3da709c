"""Reaching the Ray cluster: Ray imported, the address probed, the project shipped.

Everything that can refuse the session does so here, before anything runs,
as ``pytest.UsageError`` (exit code 4): Ray missing, a cluster that does not
answer (probed with a short TCP connect, instead of Ray's minute of
reconnecting). ``checks`` refuses what nodes on other machines cannot share.
"""

from __future__ import annotations

import contextlib
import signal
import socket
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

#: Seconds the cluster's address may take to accept a TCP connection.
PROBE_TIMEOUT = 3.0

#: Never shipped to the nodes, besides what ``.gitignore`` and ``.rayignore`` ignore
#: (Ray honours both): version control, virtualenvs, stores, caches, the spool's journal.
EXCLUDES = (
    ".git",
    ".hg",
    ".venv",
    "venv",
    ".tox",
    ".nox",
    "__pycache__",
    "*.pyc",
    ".pytest_cache",
    ".mypy_cache",
    ".ruff_cache",
    "mlflow.db",
    "mlflow.db-*",
    "*.db-wal",
    "*.db-shm",
    "mlruns",
    "mlartifacts",
    ".mlexp",
)

INSTALL_HINT = "pip install 'pytest-mlexp[ray]'"


@dataclass
class Cluster:
    """The connected cluster: its address, whether all its nodes are on this machine."""

    ray: ModuleType
    address: str
    local: bool
    #: Node id -> its total resources, for alive nodes.
    nodes: dict[str, dict[str, float]] = field(default_factory=dict)
    _sigterm: Any = None

    def refresh(self) -> dict[str, dict[str, float]]:
        """The alive nodes' total resources, as Ray knows them now."""
        self.nodes = {
            str(node["NodeID"]): {str(k): float(v) for k, v in node["Resources"].items()}
            for node in self.ray.nodes()
            if node.get("Alive")
        }
        return self.nodes

    def shutdown(self) -> None:
        """Disconnect, and give SIGTERM back the handler it had before ``ray.init``."""
        self.ray.shutdown()
        if self._sigterm is not None:
            signal.signal(signal.SIGTERM, self._sigterm)


def import_ray() -> ModuleType:
    """Ray, or ``UsageError`` naming the extra that brings it."""
    try:
        import ray
    except ImportError:
        raise pytest.UsageError(
            f"--mlexp-ray needs Ray, which is not installed: {INSTALL_HINT}"
        ) from None
    return ray


def probe(address: str, timeout: float = PROBE_TIMEOUT) -> str | None:
    """Why ``address`` (``host:port``, ``ray://host:port``) does not answer, or ``None``."""
    target = address.removeprefix("ray://")
    host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit():
        return f"expected auto, HOST:PORT or ray://HOST:10001, not {address!r}"
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            return None
    except OSError as exc:
        return f"nothing answers at {target} ({type(exc).__name__}: {exc})"


def connect(address: str, rootdir: Path) -> Cluster:
    """Connect to the cluster at ``address``, shipping ``rootdir``; or raise ``UsageError``."""
    ray = import_ray()
    if address != "auto":
        why = probe(address)
        if why is not None:
            raise pytest.UsageError(f"--mlexp-ray {address}: the Ray cluster is unreachable: {why}")
    runtime_env = {"working_dir": str(rootdir), "excludes": list(EXCLUDES)}
    sigterm = signal.getsignal(signal.SIGTERM)
    try:
        ray.init(
            address=address,
            runtime_env=runtime_env,
            log_to_driver=False,
            configure_logging=False,
        )
    except Exception as exc:
        raise pytest.UsageError(
            f"--mlexp-ray {address}: could not connect to the Ray cluster: "
            f"{type(exc).__name__}: {exc}"
        ) from None
    # Ray's SIGTERM handler exits the process; the session's own (runs.session) ends
    # the runs in flight as KILLED, as Ctrl-C does.
    with contextlib.suppress(ValueError):  # not the main thread: Ray installed none
        signal.signal(signal.SIGTERM, sigterm)
    cluster = Cluster(ray, address, local=False, _sigterm=sigterm)
    cluster.refresh()
    cluster.local = is_local(node_addresses(ray), _this_machine(ray))
    return cluster


def node_addresses(ray: ModuleType) -> set[str]:
    return {str(node["NodeManagerAddress"]) for node in ray.nodes() if node.get("Alive")}


def is_local(addresses: set[str], here: set[str]) -> bool:
    """Whether every node's address is one of this machine's."""
    return all(address in here or address.startswith("127.") for address in addresses)


def _this_machine(ray: ModuleType) -> set[str]:
    here = {"localhost", "::1", ray.util.get_node_ip_address()}
    with contextlib.suppress(OSError):
        here.update(str(info[4][0]) for info in socket.getaddrinfo(socket.gethostname(), None))
    return here
