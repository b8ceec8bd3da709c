"""Dispatch overhead per item on a local Ray cluster, against the same cells under ``-n 2``.

Trivial cells (2 params and 2 metrics each) logged to a real ``mlflow server``,
in sessions of ``--few`` and ``--many`` cells: the difference divided by the
difference in cells is what one more item costs once the workers are up
(their start, Ray's connection and collection cancel out). Two sides per
round, interleaved: ``-n 2`` (the baseline: pytest-xdist's two workers) and
``--mlexp-ray`` on a one-node local cluster of 2 CPUs (two warm workers).
Wall time, and CPU time of every process involved: the pytest session and
its xdist workers, the cluster's processes (its Ray workers included), the
tracking server. Target: <= 50 ms an item on the cluster; the ratio to
``-n 2``'s figure of the same run is reported.

The cluster (ports 6260-6289, its own ``--temp-dir``) and the server are
started by the script and ended by their process groups.

Run: ``python benchmarks/bench_ray.py [--repeat 3] [--few 10] [--many 110]``.
Medians of the rounds are reported.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import psutil

INI = "[pytest]\n"
EXPERIMENT = """
import pytest

@pytest.mark.parametrize("i", range({cells}))
def experiment_grid(mlflow_run, i):
    mlflow_run.log_params({{"p0": 0, "p1": i}})
    mlflow_run.log_metrics({{"m0": 0, "m1": i}})
"""
HEAD_PORT = 6260
BIN = Path(sys.executable).parent
PROJECT = Path(__file__).resolve().parent.parent
ENV = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "MLEXP_", "PYTEST_"))}
ENV.update(
    PYTHONWARNINGS="ignore",
    RAY_AUTH_MODE="disabled",
    MLEXP_EXPERIMENT_PATHS=".",  # experiment files at the project's top
    PYTHONPATH=os.pathsep.join(filter(None, [str(PROJECT), os.environ.get("PYTHONPATH")])),
)


def _tree_cpu(pids: list[int]) -> float:
    """CPU seconds (user + system, reaped children included) of the trees under ``pids``."""
    total = 0.0
    for pid in pids:
        try:
            root = psutil.Process(pid)
            processes = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            continue
        for process in processes:
            try:
                times = process.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += times.user + times.system + times.children_user + times.children_system
    return total


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def started(root: Path) -> Iterator[tuple[str, str, list[int]]]:
    """A one-node local cluster of 2 CPUs and a tracking server: their addresses and pids."""
    log = open(root / "services.log", "ab")  # noqa: SIM115 - closed below
    port = _free_port()
    server = subprocess.Popen(
        [str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port),
         "--backend-store-uri", f"sqlite:///{root / 'server.db'}",
         "--artifacts-destination", str(root / "artifacts"), "--workers", "2"],
        env={**ENV, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    ports = [
        "--node-manager-port", str(HEAD_PORT + 1), "--object-manager-port", str(HEAD_PORT + 2),
        "--dashboard-agent-listen-port", str(HEAD_PORT + 3),
        "--dashboard-agent-grpc-port", str(HEAD_PORT + 4),
        "--metrics-export-port", str(HEAD_PORT + 5), "--runtime-env-agent-port", str(HEAD_PORT + 6),
        "--dashboard-port", str(HEAD_PORT + 7),
        "--min-worker-port", str(HEAD_PORT + 10), "--max-worker-port", str(HEAD_PORT + 29),
    ]  # fmt: skip
    temp_dir = tempfile.mkdtemp(prefix="bench-ray-", dir="/tmp")
    head = subprocess.Popen(
        [str(BIN / "ray"), "start", "--head", "--block", "--port", str(HEAD_PORT),
         "--num-cpus", "2", "--include-dashboard=false", "--disable-usage-stats",
         "--node-ip-address", "127.0.0.1", "--temp-dir", temp_dir, *ports],
        env=ENV, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"{url}/health", timeout=2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("the tracking server did not start") from None
                time.sleep(0.5)
        time.sleep(10)  # the head node's services (an idle cluster costs no CPU after this)
        yield f"127.0.0.1:{HEAD_PORT}", url, [server.pid, head.pid]
    finally:
        for process in (head, server):
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()
        shutil.rmtree(temp_dir, ignore_errors=True)


def session(
    root: Path, name: str, cells: int, args: list[str], pids: list[int]
) -> tuple[float, float]:
    """One session's wall time and the CPU time of its processes, the cluster's and the server's."""
    project = root / name
    project.mkdir()
    (project / "pytest.ini").write_text(INI)
    (project / "experiment_cells.py").write_text(textwrap.dedent(EXPERIMENT.format(cells=cells)))
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", *args]
    services_before = _tree_cpu(pids)
    own_before = _children_cpu()
    start = time.perf_counter()
    done = subprocess.run(command, cwd=project, env=ENV, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{name} failed:\n{done.stdout[-3000:]}\n{done.stderr[-2000:]}")
    used = _children_cpu() - own_before + _tree_cpu(pids) - services_before
    return elapsed, used


def _children_cpu() -> float:
    times = psutil.Process().cpu_times()
    return times.children_user + times.children_system


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--few", type=int, default=10)
    parser.add_argument("--many", type=int, default=110)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-ray-") as tmp, started(Path(tmp)) as services:
        address, url, pids = services
        sides = {
            "-n 2": ["-n", "2", "--mlexp-tracking-uri", url],
            "--mlexp-ray": ["--mlexp-ray", address, "--mlexp-tracking-uri", url],
        }
        wall: dict[str, list[float]] = {side: [] for side in sides}
        cpu: dict[str, list[float]] = {side: [] for side in sides}
        for i in range(args.repeat):
            for side, side_args in sides.items():
                slug = "".join(c if c.isalnum() else "-" for c in side)
                few = session(Path(tmp), f"{slug}-{i}-few", args.few, side_args, pids)
                many = session(Path(tmp), f"{slug}-{i}-many", args.many, side_args, pids)
                extra = args.many - args.few
                wall[side].append((many[0] - few[0]) / extra)
                cpu[side].append((many[1] - few[1]) / extra)
                print(
                    f"  round {i + 1}: {side:12} {few[0]:6.2f} s / {many[0]:6.2f} s wall "
                    f"({args.few} / {args.many} cells), {few[1]:6.2f} s / {many[1]:6.2f} s CPU",
                    file=sys.stderr,
                )
    print(
        f"one more trivial cell, logged to a local mlflow server, {os.cpu_count()} CPUs, "
        f"median of {args.repeat} interleaved rounds ({args.many} - {args.few} cells):"
    )
    medians = {side: statistics.median(values) * 1000 for side, values in wall.items()}
    cpus = {side: statistics.median(values) * 1000 for side, values in cpu.items()}
    for side in sides:
        print(f"  {side:12}: {medians[side]:6.1f} ms wall, {cpus[side]:6.1f} ms CPU an item")
    print(
        f"  --mlexp-ray / -n 2: {medians['--mlexp-ray'] / medians['-n 2']:5.2f}x wall, "
        f"{cpus['--mlexp-ray'] / cpus['-n 2']:5.2f}x CPU  "
        f"(target: <= 50 ms an item on the cluster: {medians['--mlexp-ray']:.1f} ms)"
    )


if __name__ == "__main__":
    main()
