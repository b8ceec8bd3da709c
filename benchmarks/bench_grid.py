"""Grid throughput: 200 cells with -n 1 / -n 2 / -n 4, on sqlite and on a tracking server.

Run from the repository root (the project's venv must be active or used):

    .venv/bin/python benchmarks/bench_grid.py [--cells 200] [--workers 1 2 4]
        [--server-workers 2] [--postgres postgresql+psycopg://...]

Each configuration runs a fresh pytest session on a generated grid and
reports wall time, runs per second and the ratio to ``-n 1`` on the same
store, measured in this run. Against the server it also counts the HTTP
requests the session made (from the server's access log), per cell: once
with 2 params and 2 metrics per cell, once with 50 params and 200 metrics,
to show the count does not grow with the values logged.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

EXPERIMENT = """
import pytest

@pytest.mark.parametrize("i", range({cells}))
def experiment_grid(mlflow_run, i):
    mlflow_run.log_params({{"p" + str(j): j for j in range({params})}})
    mlflow_run.log_metrics({{"m" + str(j): i * j for j in range({metrics})}})
    return {{"score": i}}
"""

REQUEST = re.compile(r'"(GET|POST|PATCH|PUT|DELETE) (/api/\S+|/ajax-api/\S+|/health)')


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    def __init__(self, root: Path, backend: str | None, workers: int) -> None:
        self.root = root
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = root / "server.log"
        mlflow = shutil.which("mlflow", path=os.path.dirname(sys.executable)) or "mlflow"
        command = [
            mlflow, "server",
            "--backend-store-uri", backend or f"sqlite:///{root / 'server.db'}",
            "--artifacts-destination", str(root / "artifacts"),
            "--host", "127.0.0.1", "--port", str(self.port), "--workers", str(workers),
        ]  # fmt: skip
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2):
                    return
            except OSError:
                time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"server did not start: {self.log.read_text()[-2000:]}")

    def requests(self) -> int:
        return sum(1 for line in self.log.read_text().splitlines() if REQUEST.search(line))

    def stop(self) -> None:
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)


def session(
    root: Path, name: str, cells: int, workers: int, uri: str | None, params: int, metrics: int
) -> float:
    project = root / name
    project.mkdir()
    (project / "pytest.ini").write_text("[pytest]\n")
    (project / "experiment_grid.py").write_text(
        EXPERIMENT.format(cells=cells, params=params, metrics=metrics)
    )
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "-n", str(workers)]
    if uri:
        command += ["--mlexp-tracking-uri", uri]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "MLEXP_"))}
    env["MLEXP_EXPERIMENT_PATHS"] = "."  # experiment files at the project's top
    start = time.perf_counter()
    done = subprocess.run(command, cwd=project, capture_output=True, text=True, env=env)
    elapsed = time.perf_counter() - start
    if done.returncode != 0 or f"{cells} passed" not in done.stdout:
        raise RuntimeError(f"{name} failed:\n{done.stdout[-3000:]}\n{done.stderr[-2000:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=200)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--server-workers", type=int, default=2)
    parser.add_argument("--postgres", default=os.environ.get("MLEXP_TEST_POSTGRES_URI"))
    parser.add_argument(
        "--sqlite-only", action="store_true", help="only the embedded store: no server"
    )
    args = parser.parse_args()

    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-grid-") as tmp:
        root = Path(tmp)
        stores: list[tuple[str, Server | None]] = [("sqlite", None)]
        if args.sqlite_only:
            for workers in args.workers:
                elapsed = session(root, f"sqlite-n{workers}", args.cells, workers, None, 2, 2)
                base = rows[0][2] if rows else elapsed
                rows.append(("sqlite", workers, elapsed, base / elapsed, None))
            _print(args, rows, [])
            return
        server_root = root / "server"
        server_root.mkdir()
        server = Server(server_root, None, args.server_workers)
        stores.append(("server (sqlite)", server))
        pg_server = None
        if args.postgres:
            pg_root = root / "pg-server"
            pg_root.mkdir()
            pg_server = Server(pg_root, args.postgres, args.server_workers)
            stores.append(("server (postgres)", pg_server))
        try:
            for label, srv in stores:
                base = None
                for workers in args.workers:
                    name = f"{label.split()[0]}-{len(rows)}-n{workers}"
                    before = srv.requests() if srv else 0
                    elapsed = session(
                        root, name, args.cells, workers, srv.url if srv else None, 2, 2
                    )
                    requests = (srv.requests() - before) if srv else None
                    base = base or elapsed
                    rows.append((label, workers, elapsed, base / elapsed, requests))
                    print(f"{label:18} -n {workers}: {elapsed:6.1f} s", file=sys.stderr)
            # Requests per cell do not depend on how much each run logs.
            counts = []
            for params, metrics in ((2, 2), (50, 200)):
                before = server.requests()
                session(root, f"values-{params}", 50, 1, server.url, params, metrics)
                counts.append((params, metrics, (server.requests() - before) / 50))
        finally:
            server.stop()
            if pg_server:
                pg_server.stop()

    _print(args, rows, counts)


def _print(args: argparse.Namespace, rows: list[Any], counts: list[Any]) -> None:
    print(f"\nGrid of {args.cells} cells ({os.cpu_count()} CPUs), one session per row:\n")
    print("| store | -n | wall time (s) | runs/s | speed-up vs -n 1 | HTTP requests per cell |")
    print("|---|---|---|---|---|---|")
    for label, workers, elapsed, ratio, requests in rows:
        per_cell = f"{requests / args.cells:.1f}" if requests is not None else "-"
        print(
            f"| {label} | {workers} | {elapsed:.1f} | {args.cells / elapsed:.1f} | "
            f"{ratio:.2f}x | {per_cell} |"
        )
    if not counts:
        return
    print("\nHTTP requests per cell (50-cell session, -n 1, server):\n")
    print("| params per cell | metrics per cell | requests per cell |")
    print("|---|---|---|")
    for params, metrics, per_cell in counts:
        print(f"| {params} | {metrics + 1} | {per_cell:.1f} |")


if __name__ == "__main__":
    main()
