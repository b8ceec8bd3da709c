"""What an outage costs: a session whose tracking server dies early, against one with it up.

Two sessions per pair, each a grid of ``--cells`` cells (params, metrics, a
fluent ``mlflow.log_metric``) against a real ``mlflow server`` on 127.0.0.1,
with ``--mlexp-on-tracking-error spool`` and MLflow's HTTP retries as the
plugin bounds them by default (3 retries, backoff factor 1: about 6 s per
request that finds the server gone):

1. ``up``: the server answers the whole session (the baseline);
2. ``outage``: cell ``--die-at`` flushes its run and stops the server; every
   later cell runs without one and is spooled to the journal.

Target: ``outage`` costs seconds more than ``up``, not a retry cycle per call:
its extra wall time is about one request's retries (the one that finds the
server gone) plus the session end's probe, whatever the number of cells
after the outage. Before the spool marked the server lost, every run created
and every read after the outage waited through MLflow's retries (the issue
saw 66 s for a 3 s session). The pairs are interleaved, so a slower moment
of the machine hits both sides; medians are reported, wall time and CPU
time (user + system of the pytest process; the server's own is left out),
and the ratio of ``outage`` to ``up`` measured in the same run.

Run: ``python benchmarks/bench_outage.py [--pairs 5] [--cells 20] [--die-at 2]``.
"""

from __future__ import annotations

import argparse
import os
import resource
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
from pathlib import Path

ENV = {**os.environ, "PYTHONWARNINGS": "ignore", "MLFLOW_TRACKING_URI": ""}
ENV["MLEXP_EXPERIMENT_PATHS"] = "."  # experiment files at the project's top
for name in list(ENV):
    if name.startswith("MLFLOW_HTTP_REQUEST_"):
        del ENV[name]  # the plugin's bounded defaults, as a user gets them


def experiment(cells: int, die_at: int) -> str:
    return textwrap.dedent(
        f"""
        import os, signal, time, urllib.request

        import mlflow
        import pytest

        def stop_server():
            os.killpg(int(os.environ["BENCH_SERVER_PID"]), signal.SIGTERM)
            while True:
                try:
                    urllib.request.urlopen(os.environ["BENCH_SERVER_URL"] + "/health", timeout=1)
                except OSError:
                    return
                time.sleep(0.1)

        @pytest.mark.parametrize("i", range({cells}))
        def experiment_cell(mlflow_run, i):
            mlflow_run.log_params({{"depth": i % 5, "width": i * 2}})
            mlflow.log_metric("fluent", i / 10)
            if i == {die_at} and os.environ.get("BENCH_SERVER_PID"):
                mlflow_run.flush()
                stop_server()
            mlflow_run.log_metrics({{"accuracy": 1 - i / 1000, "loss": i / 100}})
        """
    )


class Server:
    """A real ``mlflow server`` on a free port, its store a copy of an empty one."""

    def __init__(self, root: Path, template: Path) -> None:
        root.mkdir()
        shutil.copy(template, root / "server.db")
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = int(sock.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        command = [
            sys.executable, "-m", "mlflow", "server",
            "--backend-store-uri", f"sqlite:///{root / 'server.db'}",
            "--artifacts-destination", str(root / "artifacts"),
            "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1",
        ]  # fmt: skip
        env = {**ENV, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        with open(root / "server.log", "ab") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env
            )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"mlflow server exited: {(root / 'server.log').read_text()}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2):
                    return
            except OSError:
                time.sleep(0.3)
        self.stop()
        raise SystemExit("mlflow server did not start in 120 s")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
        self.process.wait(timeout=30)


def empty_store(root: Path) -> Path:
    """An empty store as ``mlflow server`` makes it: creating its tables is not what is measured."""
    path = root / "empty.db"
    code = (
        "from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore; "
        f"SqlAlchemyStore('sqlite:///{path}', 'mlflow-artifacts:/').engine.dispose()"
    )
    subprocess.run([sys.executable, "-c", code], env=ENV, check=True, capture_output=True)
    return path


def timed(cwd: Path, server: Server, *, kill: bool) -> tuple[float, float, str]:
    """Wall and CPU seconds of one pytest session, and its output."""
    env = {**ENV, "BENCH_SERVER_URL": server.url}
    if kill:
        env["BENCH_SERVER_PID"] = str(server.process.pid)
    command = [
        sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "-p", "no:cacheprovider",
        "--mlexp-tracking-uri", server.url, "--mlexp-on-tracking-error", "spool",
        "--mlexp-experiment", cwd.name,
    ]  # fmt: skip
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"session failed in {cwd}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--cells", type=int, default=20)
    parser.add_argument("--die-at", type=int, default=2)
    options = parser.parse_args()
    if not 0 <= options.die_at < options.cells - 1:
        parser.error("--die-at must name a cell before the last one")
    times: dict[str, list[tuple[float, float]]] = {"up": [], "outage": []}
    source = experiment(options.cells, options.die_at)
    spooled = options.cells - options.die_at
    with tempfile.TemporaryDirectory(prefix="bench-outage-") as tmp:
        root = Path(tmp)
        template = empty_store(root)
        up_server = Server(root / "server-up", template)
        try:
            for pair in range(options.pairs):
                for kind in ("up", "outage"):
                    project = root / f"{kind}{pair}"
                    project.mkdir()
                    (project / "pytest.ini").write_text("[pytest]\n")
                    (project / "experiment_grid.py").write_text(source)
                    server = up_server if kind == "up" else Server(root / f"server{pair}", template)
                    try:
                        wall, cpu, output = timed(project, server, kill=kind == "outage")
                    finally:
                        if server is not up_server:
                            server.stop()  # stopped by the experiment: reaped after the timing
                    if kind == "outage" and f"mlexp: {spooled} runs could not reach" not in output:
                        raise SystemExit(f"the outage session spooled no {spooled} runs:\n{output}")
                    times[kind].append((wall, cpu))
                print(
                    f"pair {pair + 1}: "
                    + ", ".join(
                        f"{k} {v[-1][0]:.2f}s wall {v[-1][1]:.2f}s cpu" for k, v in times.items()
                    ),
                    flush=True,
                )
        finally:
            up_server.stop()
    wall = {k: statistics.median(t[0] for t in v) for k, v in times.items()}
    cpu = {k: statistics.median(t[1] for t in v) for k, v in times.items()}
    print(
        f"\n{options.cells} cells, the server stopped in cell {options.die_at} "
        f"({spooled} runs spooled), medians of {options.pairs} (up, outage) pairs"
    )
    for name in times:
        print(f"  {name:<7} wall {wall[name]:7.2f}s   cpu {cpu[name]:7.2f}s")
    print(
        f"outage / up: wall {wall['outage'] / wall['up']:.2f}x "
        f"(+{wall['outage'] - wall['up']:.2f}s), cpu {cpu['outage'] / cpu['up']:.2f}x"
    )


if __name__ == "__main__":
    main()
