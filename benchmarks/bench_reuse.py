"""What ``--mlexp-reuse`` saves: a second, unchanged session of a grid of slow cells.

Three sessions per round, on copies of one empty sqlite store:

1. ``first``: a 50-cell grid whose cells take 1 second each, ``--mlexp-reuse``
   on (nothing to reuse yet: every cell executes, and is fingerprinted);
2. ``second``: the same project again, unchanged, ``--mlexp-reuse``: every
   cell is recorded from the first session's run instead of executed
   (one search for the candidates, hashes from the cache);
3. ``trivial``: a 50-cell grid of cells that do nothing, without reuse, as
   the second session of its project (a first one, not measured, filled its
   store like the first session filled the grid's): what any session of 50
   runs costs.

Target: ``second`` costs no more than ``trivial``, hence >= 10x less than ``first``.
Each round runs ``first`` once, then ``--pairs`` interleaved pairs of
``second`` (again and again: each reuses everything) and ``trivial``, so a
slower moment of the machine hits both sides; medians are reported, wall time
and CPU time (user + system of the session's processes).

Run: ``python benchmarks/bench_reuse.py [--repeat 2] [--pairs 5] [--cells 50] [--seconds 1]``.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ENV = {**os.environ, "PYTHONWARNINGS": "ignore", "MLFLOW_TRACKING_URI": ""}
ENV["MLEXP_EXPERIMENT_PATHS"] = "."  # experiment files at the project's top


def experiment(cells: int, seconds: float) -> str:
    return textwrap.dedent(
        f"""
        import time

        import pytest

        @pytest.mark.parametrize("i", range({cells}))
        def experiment_cell(mlflow_run, i):
            time.sleep({seconds})
            mlflow_run.log_params({{"depth": i % 5, "width": i * 2}})
            mlflow_run.log_metrics({{"accuracy": 1 - i / 1000, "loss": i / 100}})
        """
    )


def project(root: Path, name: str, source: str, store: Path) -> Path:
    path = root / name
    path.mkdir()
    (path / "pytest.ini").write_text("[pytest]\nmlexp_experiment = bench\n")
    (path / "test_grid.py").write_text(source)
    shutil.copy(store, path / "mlflow.db")
    return path


def timed(args: list[str], cwd: Path) -> tuple[float, float]:
    """Wall and CPU seconds of one pytest session (CPU: user + system of its processes)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "-p", "no:cacheprovider"]
    done = subprocess.run(
        [*command, *args], cwd=cwd, env=ENV, capture_output=True, text=True, check=False
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"session failed in {cwd}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def empty_store(root: Path) -> Path:
    """An empty, migrated store to copy: creating the tables is not what is measured."""
    path = root / "empty"
    path.mkdir()
    code = (
        "from mlflow.tracking import MlflowClient; "
        f"MlflowClient('sqlite:///{path / 'mlflow.db'}').search_experiments()"
    )
    subprocess.run([sys.executable, "-c", code], env=ENV, check=True, capture_output=True)
    return path / "mlflow.db"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--cells", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=1.0)
    options = parser.parse_args()
    times: dict[str, list[tuple[float, float]]] = {"first": [], "second": [], "trivial": []}
    with tempfile.TemporaryDirectory(prefix="bench-reuse-") as tmp:
        root = Path(tmp)
        store = empty_store(root)
        slow = experiment(options.cells, options.seconds)
        trivial = experiment(options.cells, 0)
        for round_ in range(options.repeat):
            grid = project(root, f"grid{round_}", slow, store)
            times["first"].append(timed(["--mlexp-reuse"], grid))
            plain = project(root, f"trivial{round_}", trivial, store)
            timed([], plain)
            for _ in range(options.pairs):
                times["second"].append(timed(["--mlexp-reuse"], grid))
                times["trivial"].append(timed([], plain))
            print(
                f"round {round_ + 1}: "
                + ", ".join(
                    f"{k} {v[-1][0]:.2f}s wall {v[-1][1]:.2f}s cpu" for k, v in times.items()
                ),
                flush=True,
            )
    wall = {k: statistics.median(t[0] for t in v) for k, v in times.items()}
    cpu = {k: statistics.median(t[1] for t in v) for k, v in times.items()}
    print(
        f"\n{options.cells} cells of {options.seconds:g}s, medians of {options.repeat} first "
        f"sessions and {options.repeat * options.pairs} (second, trivial) pairs"
    )
    for name in times:
        print(f"  {name:<8} wall {wall[name]:7.2f}s   cpu {cpu[name]:7.2f}s")
    print(
        f"second / first:   wall {wall['second'] / wall['first']:.3f}x "
        f"({wall['first'] / wall['second']:.1f}x faster)"
    )
    print(
        f"second / trivial: wall {wall['second'] / wall['trivial']:.2f}x, "
        f"cpu {cpu['second'] / cpu['trivial']:.2f}x"
    )


if __name__ == "__main__":
    main()
