"""Parallel efficiency on the embedded store: what pytest-xdist still gains with tracking on.

1. CPU-bound cells (``--only cpu``): 24 cells burning 1 s of CPU each, on the
   embedded sqlite store. Four sessions per round, interleaved: tracked
   ``-n 0`` and ``-n 2``, and the same cells untracked (``-p no:mlexp``)
   ``-n 0`` and ``-n 2``. The efficiency is the tracked speed-up over the
   untracked one (target >= 0.9). The store exists already, as from a
   project's second session on (a copy of one made by a one-cell session);
   ``--fresh-store`` makes every session create its own.
2. Trivial cells (``--only trivial``): 100 cells logging 2 params and
   2 metrics, tracked, ``-n 1`` against ``-n 2`` (target: ``-n 2`` never slower).

Run: ``python benchmarks/bench_parallel.py [--repeat 3] [--only cpu|trivial]
[--fresh-store] [--before DIR]``. ``--before`` measures an earlier version of the package too
(a folder holding its ``pytest_mlexp``), first on ``PYTHONPATH``, in the same rounds.
Medians of the rounds are reported.
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

CPU_CELLS = 24
CPU_SECONDS = 1.0
TRIVIAL_CELLS = 100

# The same file runs tracked and untracked: the ini collects experiment_* either way.
INI = "[pytest]\npython_files = experiment_*.py\npython_functions = experiment_*\n"

CPU_EXPERIMENT = textwrap.dedent(
    f"""
    import time
    import pytest

    @pytest.mark.parametrize("i", range({CPU_CELLS}))
    def experiment_cpu(i):
        start = time.process_time()
        total = 0
        while time.process_time() - start < {CPU_SECONDS}:
            total += sum(range(1000))
        return {{"score": i, "total": total}}
    """
)

TRIVIAL_EXPERIMENT = textwrap.dedent(
    f"""
    import pytest

    @pytest.mark.parametrize("i", range({TRIVIAL_CELLS}))
    def experiment_grid(mlflow_run, i):
        mlflow_run.log_params({{"p0": 0, "p1": i}})
        mlflow_run.log_metrics({{"m0": 0, "m1": i}})
    """
)

ENV = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "MLEXP_", "PYTEST_"))}
ENV["PYTHONWARNINGS"] = "ignore"
ENV["MLEXP_EXPERIMENT_PATHS"] = "."  # experiment files at the project's top


#: A store made once per run of the script, copied into each project (``existing_store``).
STORE: Path | None = None


def existing_store(root: Path) -> Path:
    """An embedded store as a project has it after its first session: made by a one-cell one."""
    project = root / "first-session"
    project.mkdir()
    (project / "pytest.ini").write_text(INI)
    (project / "experiment_first.py").write_text("def experiment_first():\n    return 1.0\n")
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly"]
    subprocess.run(command, cwd=project, env=ENV, capture_output=True, check=True)
    return project / "mlflow.db"


def session(
    root: Path, name: str, source: str, args: list[str], before: Path | None
) -> tuple[float, float]:
    """Run one session; its wall time and the CPU time (user + system) of its processes."""
    project = root / name
    project.mkdir()
    (project / "pytest.ini").write_text(INI)
    if STORE is not None:
        shutil.copy(STORE, project / "mlflow.db")
    (project / "experiment_cells.py").write_text(source)
    env = ENV if before is None else {**ENV, "PYTHONPATH": str(before)}
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", *args]
    before_cpu = _children_cpu()
    start = time.perf_counter()
    done = subprocess.run(command, cwd=project, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{name} failed:\n{done.stdout[-3000:]}\n{done.stderr[-2000:]}")
    return elapsed, _children_cpu() - before_cpu


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def rounds(
    root: Path,
    source: str,
    sides: list[tuple[str, list[str], Path | None]],
    repeat: int,
) -> tuple[dict[str, float], dict[str, float]]:
    """Median wall times and median CPU times, by side."""
    times: dict[str, list[float]] = {label: [] for label, _, _ in sides}
    cpu: dict[str, list[float]] = {label: [] for label, _, _ in sides}
    for i in range(repeat):
        for label, args, before in sides:
            slug = "".join(c if c.isalnum() else "-" for c in label)
            elapsed, used = session(root, f"{slug}-{i}", source, args, before)
            times[label].append(elapsed)
            cpu[label].append(used)
            print(
                f"  round {i + 1}: {label:28} {elapsed:6.2f} s wall, {used:6.2f} s CPU",
                file=sys.stderr,
            )
    wall = {label: statistics.median(values) for label, values in times.items()}
    return wall, {label: statistics.median(values) for label, values in cpu.items()}


def cpu_cells(root: Path, repeat: int, before: Path | None) -> None:
    versions: list[tuple[str, Path | None]] = [("", None)]
    if before is not None:
        versions.append((", before", before))
    sides = [("untracked -n 0", ["-p", "no:mlexp", "-n", "0"], None)]
    sides.append(("untracked -n 2", ["-p", "no:mlexp", "-n", "2"], None))
    for suffix, version in versions:
        sides.append((f"tracked -n 0{suffix}", ["-n", "0"], version))
        sides.append((f"tracked -n 2{suffix}", ["-n", "2"], version))
    medians, cpu = rounds(root, CPU_EXPERIMENT, sides, repeat)
    store = "an existing" if STORE is not None else "a new"
    print(
        f"{CPU_CELLS} cells of {CPU_SECONDS:g} s CPU, {store} embedded sqlite store, "
        f"{os.cpu_count()} CPUs, median of {repeat} interleaved rounds:"
    )
    for label, seconds in medians.items():
        print(f"  {label:28}: {seconds:6.2f} s wall, {cpu[label]:6.2f} s CPU")
    untracked = medians["untracked -n 0"] / medians["untracked -n 2"]
    print(f"  speed-up untracked -n 2     : {untracked:6.2f}x")
    for suffix, _ in versions:
        tracked = medians[f"tracked -n 0{suffix}"] / medians[f"tracked -n 2{suffix}"]
        print(f"  speed-up tracked -n 2{suffix:7}: {tracked:6.2f}x")
        print(
            f"  efficiency tracked/untracked{suffix:0}: {tracked / untracked:6.2f}  (target >= 0.9)"
        )


def trivial_cells(root: Path, repeat: int, before: Path | None) -> None:
    sides: list[tuple[str, list[str], Path | None]] = [
        ("-n 1", ["-n", "1"], None),
        ("-n 2", ["-n", "2"], None),
    ]
    if before is not None:
        sides += [("-n 1, before", ["-n", "1"], before), ("-n 2, before", ["-n", "2"], before)]
    medians, cpu = rounds(root, TRIVIAL_EXPERIMENT, sides, repeat)
    store = "an existing" if STORE is not None else "a new"
    print(
        f"{TRIVIAL_CELLS} trivial cells, {store} embedded sqlite store, "
        f"median of {repeat} interleaved rounds:"
    )
    for label, seconds in medians.items():
        print(f"  {label:28}: {seconds:6.2f} s wall, {cpu[label]:6.2f} s CPU")
    for suffix in ("", ", before") if before is not None else ("",):
        ratio = medians[f"-n 1{suffix}"] / medians[f"-n 2{suffix}"]
        print(f"  speed-up -n 2 over -n 1{suffix:8}: {ratio:6.2f}x  (target >= 1.0x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", choices=("cpu", "trivial"), default=None)
    parser.add_argument("--before", type=Path, default=None, help="an earlier checkout")
    parser.add_argument(
        "--fresh-store", action="store_true", help="every session creates its own store"
    )
    args = parser.parse_args()
    global STORE
    with tempfile.TemporaryDirectory(prefix="bench-parallel-") as tmp:
        if not args.fresh_store:
            STORE = existing_store(Path(tmp))
        if args.only != "trivial":
            cpu_cells(Path(tmp), args.repeat, args.before)
        if args.only != "cpu":
            trivial_cells(Path(tmp), args.repeat, args.before)


if __name__ == "__main__":
    main()
