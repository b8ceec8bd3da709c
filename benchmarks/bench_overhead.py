"""What the plugin costs, as ratios against baselines measured in the same run.

1. Per-run cost: 100 cells, each logging 9 params, 20 metrics and 5 tags
   through ``mlflow_run``, against a plain script doing the same logging
   with ``MlflowClient.create_run`` + ``log_batch`` + ``set_terminated``,
   each on a fresh sqlite store (both pay the same interpreter start and
   mlflow import). The plugin is measured twice: lean (lineage and artifact
   discovery off: the script's logging, plus pytest, the fluent active run
   and the grid parent), and with its defaults (every run also uploads its
   code, requirements and git state, and is diffed for new files).
2. Idle cost: a suite of 300 ordinary tests (10 modules, fixtures,
   parametrize, a skip and an xfail) with the plugin installed and active,
   against the same suite with ``-p no:mlexp`` (pytest then never imports the
   plugin): the difference in milliseconds of wall and CPU time a session,
   target <= 10 ms, and the ratio. Each round runs both sides, in alternating
   order; the difference reported is the median of the rounds' differences.
   Python writes and reads its bytecode caches, as in a user's environment
   (``PYTHONDONTWRITEBYTECODE`` is dropped), and one untimed round warms them.
   Take it on a quiet machine: ``python benchmarks/bench_overhead.py --only idle
   --repeat 15``.

Run: ``python benchmarks/bench_overhead.py [--repeat 5] [--only idle|tracking]
[--before DIR]``. ``--before`` measures an earlier version of the package too
(a folder holding its ``pytest_mlexp``, e.g. ``git worktree add /tmp/old
HEAD~3``), put first on ``PYTHONPATH``, interleaved with the others.
Medians of the repeats are reported; every side of a ratio is run in each
round, in turn, so that a slower moment of the machine hits all of them.
The per-run cost is reported as wall time and as CPU time (user + system of
the session's processes): on a machine shared with other work, wall time
mostly measures the neighbours, CPU time what the session itself did.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

CELLS = 100
PLAIN_TESTS = 300

PARAMS, METRICS, TAGS = 9, 20, 5

EXPERIMENT = textwrap.dedent(
    f"""
    import pytest

    @pytest.mark.parametrize("i", range({CELLS}))
    def experiment_trivial(mlflow_run, i):
        mlflow_run.log_params({{f"p{{j}}": i * j for j in range({PARAMS - 1})}})
        mlflow_run.log_metrics({{f"m{{j}}": i / (j + 1) for j in range({METRICS})}})
        mlflow_run.set_tags({{f"t{{j}}": f"v{{i}}" for j in range({TAGS})}})
    """
)

PLAIN_SCRIPT = textwrap.dedent(
    f"""
    import getpass, sys, time, uuid
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.tracking import MlflowClient

    client = MlflowClient(sys.argv[1])
    experiment_id = client.create_experiment("bench", artifact_location=sys.argv[2])
    session = uuid.uuid4().hex
    for i in range({CELLS}):
        tags = {{
            "mlflow.runName": f"experiment_trivial[{{i}}]",
            "mlflow.source.name": "experiment_bench.py",
            "mlflow.source.type": "LOCAL",
            "mlflow.user": getpass.getuser(),
            "mlexp.nodeid": f"experiment_bench.py::experiment_trivial[{{i}}]",
            "mlexp.session_id": session,
        }}
        run = client.create_run(experiment_id, tags=tags, run_name=f"experiment_trivial[{{i}}]")
        now = int(time.time() * 1000)
        client.log_batch(
            run.info.run_id,
            metrics=[Metric(f"m{{j}}", i / (j + 1), now, 0) for j in range({METRICS})],
            params=[Param("i", str(i))]
            + [Param(f"p{{j}}", str(i * j)) for j in range({PARAMS - 1})],
            tags=[RunTag("mlexp.outcome", "passed")]
            + [RunTag(f"t{{j}}", f"v{{i}}") for j in range({TAGS})],
        )
        client.set_terminated(run.info.run_id, "FINISHED")
    """
)

ENV = {**os.environ, "PYTHONWARNINGS": "ignore", "MLFLOW_TRACKING_URI": ""}
# Without bytecode caches every session would compile the plugin (and pytest rewrite it):
# a user's environment has them.
ENV.pop("PYTHONDONTWRITEBYTECODE", None)
ENV["MLEXP_EXPERIMENT_PATHS"] = "."  # experiment files at the project's top


def timed(command: list[str], cwd: Path, before: Path | None = None) -> float:
    """Seconds the command took; its CPU time (user + system) goes to ``CPU_TIMES``."""
    env = ENV if before is None else {**ENV, "PYTHONPATH": str(before)}
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, cwd=cwd, env=env, check=True, capture_output=True)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    CPU_TIMES.append(after.ru_utime - usage.ru_utime + after.ru_stime - usage.ru_stime)
    return elapsed


#: CPU seconds of each command ``timed`` ran, in order.
CPU_TIMES: list[float] = []


def fresh_project(root: Path, name: str, files: dict[str, str]) -> Path:
    project = root / name
    project.mkdir()
    (project / "pytest.ini").write_text("[pytest]\n")
    for filename, content in files.items():
        (project / filename).write_text(content)
    return project


#: The plugin doing only what the plain script does.
SAME_LOGGING = ["--mlexp-lineage", "none", "--mlexp-artifacts", "off"]


def tracking_overhead(
    root: Path, repeat: int, before: Path | None
) -> tuple[dict[str, float], dict[str, float]]:
    """Medians of wall and CPU seconds: the plain script, the plugin lean and with defaults."""
    walls: dict[str, list[float]] = {}
    cpus: dict[str, list[float]] = {}
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "-p", "no:xdist"]
    sides: list[tuple[str, list[str], Path | None]] = [
        ("lean", SAME_LOGGING, None),
        ("defaults", [], None),
    ]
    if before is not None:
        sides += [("lean, before", SAME_LOGGING, before), ("defaults, before", [], before)]
    for i in range(repeat):
        project = fresh_project(root, f"plain{i}", {"plain.py": PLAIN_SCRIPT})
        uri = f"sqlite:///{project / 'mlflow.db'}"
        walls.setdefault("plain", []).append(
            timed([sys.executable, "plain.py", uri, (project / "a").as_uri()], project)
        )
        cpus.setdefault("plain", []).append(CPU_TIMES[-1])
        for label, options, version in sides:
            project = fresh_project(
                root, f"{label.replace(', ', '-')}{i}", {"experiment_bench.py": EXPERIMENT}
            )
            walls.setdefault(label, []).append(timed([*command, *options], project, version))
            cpus.setdefault(label, []).append(CPU_TIMES[-1])
            assert (project / "mlflow.db").exists()
    return (
        {label: statistics.median(values) for label, values in walls.items()},
        {label: statistics.median(values) for label, values in cpus.items()},
    )


#: A plain suite's module: what ordinary tests use (fixtures, parametrize, skip, xfail).
PLAIN_MODULE = textwrap.dedent(
    """
    import pytest

    @pytest.fixture
    def numbers():
        return list(range(10))

    @pytest.mark.parametrize("n", range({per_module}))
    def test_in_range(numbers, n):
        assert n % 10 in numbers

    @pytest.mark.skip(reason="not today")
    def test_skipped():
        pass

    @pytest.mark.xfail(reason="known")
    def test_known():
        assert False
    """
)


def idle_cost(
    root: Path, repeat: int, before: Path | None = None
) -> tuple[dict[str, tuple[float, float]], dict[str, tuple[float, float]]]:
    """Medians of (wall, CPU) seconds of each side (active, disabled, the earlier version),
    and medians of each round's (wall, CPU) difference to ``disabled`` in the same round."""
    modules = 10
    text = PLAIN_MODULE.format(per_module=PLAIN_TESTS // modules - 2)
    files = {f"test_plain{i}.py": text for i in range(modules)}
    project = fresh_project(root, "plain-suite", files)
    base = [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "-p", "no:cacheprovider"]
    sides: list[tuple[str, list[str], Path | None]] = [
        ("active", base, None),
        ("disabled", [*base, "-p", "no:mlexp"], None),
    ]
    if before is not None:
        sides.append(("before", base, before))
    for _, command, version in sides:  # untimed: bytecode caches, the file system's caches
        timed(command, project, version)
    walls: dict[str, list[float]] = {label: [] for label, _, _ in sides}
    cpus: dict[str, list[float]] = {label: [] for label, _, _ in sides}
    for round_ in range(repeat):
        # Alternate the order, so that neither side always runs after the other.
        for label, command, version in sides if round_ % 2 == 0 else sides[::-1]:
            walls[label].append(timed(command, project, version))
            cpus[label].append(CPU_TIMES[-1])
    medians = {
        label: (statistics.median(walls[label]), statistics.median(cpus[label])) for label in walls
    }
    differences = {
        label: (
            statistics.median(a - b for a, b in zip(walls[label], walls["disabled"], strict=True)),
            statistics.median(a - b for a, b in zip(cpus[label], cpus["disabled"], strict=True)),
        )
        for label in walls
        if label != "disabled"
    }
    return medians, differences


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--only", choices=("idle", "tracking"), default=None)
    parser.add_argument("--before", type=Path, default=None, help="an earlier checkout")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if args.only != "idle":
            report_tracking(root, args.repeat, args.before)
        if args.only != "tracking":
            report_idle(root, args.repeat, args.before)


def report_tracking(root: Path, repeat: int, before: Path | None) -> None:
    walls, cpus = tracking_overhead(root, repeat, before)
    print(
        f"{CELLS} cells x ({PARAMS} params, {METRICS} metrics, {TAGS} tags), "
        f"fresh sqlite store, median of {repeat} interleaved rounds:"
    )
    targets = {"lean": "  (target <= 1.15x)", "defaults": "  (target <= 1.3x)"}
    for kind, medians in (("wall", walls), ("CPU", cpus)):
        plain = medians["plain"]
        print(f"  {kind} time, plain MlflowClient script : {plain:6.2f} s")
        for label, seconds in medians.items():
            if label != "plain":
                print(f"  {kind} time, plugin {label:18}: {seconds:6.2f} s")
        for label, seconds in medians.items():
            if label != "plain":
                name = f"{kind} ratio {label} / plain"
                print(f"  {name:38}: {seconds / plain:6.2f}x{targets.get(label, '')}")
        per_run = (medians["defaults"] - medians["lean"]) / CELLS * 1000
        print(f"  {kind} time, lineage + discovery per run : {per_run:6.1f} ms")


def report_idle(root: Path, repeat: int, before: Path | None) -> None:
    medians, differences = idle_cost(root, repeat, before)
    print(f"{PLAIN_TESTS} ordinary tests, no experiments, median of {repeat} interleaved rounds:")
    labels = {
        "disabled": "pytest -p no:mlexp",
        "active": "pytest (plugin active)",
        "before": "pytest (plugin active, --before)",
    }
    for label, (wall, cpu) in medians.items():
        print(f"  {labels[label]:34}: wall {wall:6.3f} s, CPU {cpu:6.3f} s")
    off_wall, off_cpu = medians["disabled"]
    for label in ("active", "before"):
        if label not in medians:
            continue
        wall, cpu = medians[label]
        wall_diff, cpu_diff = differences[label]
        print(
            f"  {label} - disabled, same round{'':6}: wall {wall_diff * 1000:+6.1f} ms, "
            f"CPU {cpu_diff * 1000:+6.1f} ms a session (target <= 10 ms); "
            f"ratio {wall / off_wall:.3f}x wall, {cpu / off_cpu:.3f}x CPU"
        )


if __name__ == "__main__":
    main()
