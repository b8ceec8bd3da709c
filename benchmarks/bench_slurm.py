"""Dispatch overhead per item on a single-node Slurm cluster, against ``-n 2`` and Ray.

As ``bench_ray.py`` measures it: trivial cells (2 params and 2 metrics each)
logged to a real ``mlflow server``, in sessions of ``--few`` and ``--many``
cells; the difference divided by the difference in cells is what one more
item costs once the workers are up (the jobs' queueing and start, submitit's
submission and the workers' collection cancel out). Three sides per round,
interleaved: ``-n 2`` (pytest-xdist's two workers), ``--mlexp-ray`` on a
one-node local Ray cluster of 2 CPUs, and ``--mlexp-slurm`` on a single-node
Slurm of 2 CPUs (two warm jobs, each serving its mailbox on the file
system). Wall time, and CPU time of every process involved: the pytest
session and its xdist workers, the clusters' processes (Ray's workers,
slurmctld, slurmd with its slurmstepd and jobs, munged), the server.

What to look at: the per-item wall time of ``--mlexp-slurm`` against ``-n
2``'s (the mailbox's polling, 50 ms on each side, bounds it from below) and
the per-session constant (``few`` side: sbatch, the queue, a job's Python
start and collection), which a long job amortizes. The Slurm cluster is
started as ``tests/test_slurm.py`` starts it (needs Debian's ``slurmctld
slurmd slurm-client munge`` and ``pytest-mlexp[slurm]``), on free ports, and
drained and stopped by its pids.

Run: ``python benchmarks/bench_slurm.py [--repeat 3] [--few 10] [--many 110]``.
Medians of the rounds are reported.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

from bench_ray import ENV, PROJECT, session, started

sys.path.insert(0, str(PROJECT / "tests"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--few", type=int, default=10)
    parser.add_argument("--many", type=int, default=110)
    args = parser.parse_args()
    from test_slurm import SlurmCluster  # the tests' single-node cluster

    with tempfile.TemporaryDirectory(prefix="bench-slurm-") as tmp, started(Path(tmp)) as services:
        address, url, pids = services
        folder = Path(tempfile.mkdtemp(prefix="bench-slurm-cluster-", dir="/tmp"))
        folder.chmod(0o755)  # munge's socket
        env = {
            **os.environ,
            "SLURM_CONF": str(folder / "slurm.conf"),
            "PATH": os.pathsep.join([str(folder / "bin"), os.environ.get("PATH", "")]),
        }
        cluster = SlurmCluster(folder, env)
        cluster.start()
        # The sessions (and their jobs, which inherit it) see the cluster.
        ENV.update(SLURM_CONF=env["SLURM_CONF"], PATH=env["PATH"])
        try:
            daemons = [daemon.pid for daemon in cluster.daemons]
            sides = {
                "-n 2": ["-n", "2", "--mlexp-tracking-uri", url],
                "--mlexp-ray": ["--mlexp-ray", address, "--mlexp-tracking-uri", url],
                "--mlexp-slurm": ["--mlexp-slurm", "--mlexp-tracking-uri", url],
            }
            wall: dict[str, list[float]] = {side: [] for side in sides}
            cpu: dict[str, list[float]] = {side: [] for side in sides}
            for i in range(args.repeat):
                for side, side_args in sides.items():
                    slug = "".join(c if c.isalnum() else "-" for c in side)
                    watched = pids + daemons
                    few = session(Path(tmp), f"{slug}-{i}-few", args.few, side_args, watched)
                    many = session(Path(tmp), f"{slug}-{i}-many", args.many, side_args, watched)
                    extra = args.many - args.few
                    wall[side].append((many[0] - few[0]) / extra)
                    cpu[side].append((many[1] - few[1]) / extra)
                    print(
                        f"  round {i + 1}: {side:14} {few[0]:6.2f} s / {many[0]:6.2f} s wall "
                        f"({args.few} / {args.many} cells), {few[1]:6.2f} s / {many[1]:6.2f} s CPU",
                        file=sys.stderr,
                    )
        finally:
            cluster.stop()
    print(
        f"one more trivial cell, logged to a local mlflow server, {os.cpu_count()} CPUs, "
        f"median of {args.repeat} interleaved rounds ({args.many} - {args.few} cells):"
    )
    medians = {side: statistics.median(values) * 1000 for side, values in wall.items()}
    cpus = {side: statistics.median(values) * 1000 for side, values in cpu.items()}
    for side in medians:
        print(f"  {side:14}: {medians[side]:6.1f} ms wall, {cpus[side]:6.1f} ms CPU an item")
    for side in ("--mlexp-ray", "--mlexp-slurm"):
        print(
            f"  {side} / -n 2: {medians[side] / medians['-n 2']:5.2f}x wall, "
            f"{cpus[side] / cpus['-n 2']:5.2f}x CPU"
        )


if __name__ == "__main__":
    main()
