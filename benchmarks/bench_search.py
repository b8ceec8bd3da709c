"""What a search's trial costs against a grid cell with the same logging.

Two projects run the same experiment function (three params, one metric
returned): one as a grid (``@pytest.mark.parametrize`` over fixed values),
one as an Optuna search (``search=``, ``trials=``, the default TPE sampler
and journal file storage). Each is run as fresh pytest sessions of a small
and a large size, in interleaved rounds; the cost of one item is the
difference of the median session times divided by the difference in items,
so start-up (Python, pytest, mlflow and optuna imports, the store) is left
out, and what remains is per item: for a trial, asking the study, telling it,
the journal's writes and the run; for a cell, the run. Their ratio is printed,
in wall time and in CPU time (user + system of the session's process): on a
machine shared with other work, wall time mostly measures the neighbours.

Run: ``python benchmarks/bench_search.py [--repeat 7] [--small 10] [--large 90]
[--sampler tpe|random|qmc] [--storage URL]``.

``--storages N`` measures Optuna alone instead, in this process: ``N`` trials
of ask (three params) and tell with the sampler, in memory, in a journal file
(the default storage) and in a sqlite database, per trial.
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
import time
from pathlib import Path

ENV = {**os.environ, "PYTHONWARNINGS": "ignore", "MLFLOW_TRACKING_URI": ""}

BODY = """
def experiment_bowl(mlflow_run, x, y, shape):
    mlflow_run.log_metric("bias", {"bowl": 0.0, "tilted": 3.0}[shape])
    return {"loss": (x - 1) ** 2 + (y + 2) ** 2 + {"bowl": 0, "tilted": 3}[shape]}
"""


def grid_module(cells: int) -> str:
    values = [(round(-5 + 10 * i / max(cells, 1), 4), i % 11 - 5, ("bowl", "tilted")[i % 2])
              for i in range(cells)]  # fmt: skip
    return f"import pytest\n\n@pytest.mark.parametrize(('x', 'y', 'shape'), {values!r})" + BODY


def search_module(trials: int, sampler: str) -> str:
    return (
        "import pytest\n\n"
        "@pytest.mark.mlexp(search={'x': 'uniform(-5, 5)', 'y': 'int(-5, 5)', "
        f"'shape': ['bowl', 'tilted']}}, trials={trials}, objective='loss:min', "
        f"sampler={sampler!r}, seed=0)" + BODY
    )


def project(root: Path, name: str, source: str) -> Path:
    path = root / name
    (path / "experiments").mkdir(parents=True)
    (path / "experiments" / "experiment_bowl.py").write_text(source)
    (path / "pytest.ini").write_text("[pytest]\n")
    return path


def timed(path: Path, extra: list[str]) -> tuple[float, float]:
    """Wall and CPU seconds of one fresh session on a fresh store and fresh study."""
    for leftover in ("mlflow.db", "mlruns", ".mlexp"):
        target = path / leftover
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
    command = [
        sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "-p", "no:cacheprovider",
        "--mlexp-lineage", "none", "--mlexp-artifacts", "off", *extra,
    ]  # fmt: skip
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(command, cwd=path, env=ENV, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed in {path}:\n{done.stdout}\n{done.stderr}")
    return elapsed, cpu


def storages(trials: int, sampler: str, repeat: int) -> None:
    """Optuna's ask and tell alone, per trial, on each kind of storage."""
    import optuna
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = {
        "x": FloatDistribution(-5, 5),
        "y": IntDistribution(-5, 5),
        "shape": CategoricalDistribution(["bowl", "tilted"]),
    }
    samplers = {
        "tpe": optuna.samplers.TPESampler,
        "random": optuna.samplers.RandomSampler,
        "qmc": optuna.samplers.QMCSampler,
    }

    def per_trial(storage: object) -> float:
        study = optuna.create_study(storage=storage, sampler=samplers[sampler](seed=0))
        start = time.perf_counter()
        for _ in range(trials):
            trial = study.ask(space)
            study.tell(trial, (trial.params["x"] - 1) ** 2 + (trial.params["y"] + 2) ** 2)
        return (time.perf_counter() - start) / trials

    kinds = ("in memory", "journal file", "sqlite")
    times: dict[str, list[float]] = {kind: [] for kind in kinds}
    for _ in range(repeat):
        for kind in kinds:
            with tempfile.TemporaryDirectory() as tmp:
                storage: object = None
                if kind == "journal file":
                    storage = JournalStorage(JournalFileBackend(str(Path(tmp) / "study.log")))
                elif kind == "sqlite":
                    storage = f"sqlite:///{Path(tmp) / 'optuna.db'}"
                times[kind].append(per_trial(storage))
    print(f"{trials} {sampler} trials (ask, 3 params, tell), median of {repeat} rounds:")
    for kind in kinds:
        print(f"  {kind:<13}: {statistics.median(times[kind]) * 1000:6.1f} ms a trial")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--small", type=int, default=10, help="items of the small sessions")
    parser.add_argument("--large", type=int, default=90, help="items of the large sessions")
    parser.add_argument("--sampler", default="tpe", choices=["tpe", "random", "qmc"])
    parser.add_argument("--storage", default=None, help="--mlexp-search-storage URL")
    parser.add_argument("--storages", type=int, default=0, metavar="N")
    args = parser.parse_args()
    if args.storages:
        storages(args.storages, args.sampler, args.repeat)
        return
    extra = ["--mlexp-search-storage", args.storage] if args.storage else []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        projects = {
            ("grid", args.small): project(root, "grid-small", grid_module(args.small)),
            ("grid", args.large): project(root, "grid-large", grid_module(args.large)),
            ("search", args.small): project(
                root, "search-small", search_module(args.small, args.sampler)
            ),
            ("search", args.large): project(
                root, "search-large", search_module(args.large, args.sampler)
            ),
        }
        times: dict[tuple[str, int], list[tuple[float, float]]] = {key: [] for key in projects}
        for _ in range(args.repeat):
            for (kind, size), path in projects.items():
                times[(kind, size)].append(timed(path, extra if kind == "search" else []))
    storage = args.storage or "journal file"
    print(
        f"sessions of {args.small} and {args.large} items, median of {args.repeat} "
        f"interleaved rounds (sampler {args.sampler}, storage {storage}):"
    )
    items = args.large - args.small
    for index, clock in enumerate(("wall", "CPU")):
        median = {key: statistics.median(t[index] for t in values) for key, values in times.items()}
        per_cell = (median[("grid", args.large)] - median[("grid", args.small)]) / items
        per_trial = (median[("search", args.large)] - median[("search", args.small)]) / items
        fixed = median[("search", args.small)] - median[("grid", args.small)]
        fixed -= args.small * (per_trial - per_cell)
        print(f" {clock} time:")
        for (kind, size), value in median.items():
            print(f"  {kind:<6} {size:>4} items : {value:7.3f} s")
        print(f"  per grid cell      : {per_cell * 1000:7.1f} ms")
        print(f"  per search trial   : {per_trial * 1000:7.1f} ms")
        print(f"  ratio trial / cell : {per_trial / per_cell:7.3f}x  (target <= 1.3x)")
        print(f"  search's fixed cost per session (optuna import, study, parent): {fixed:6.3f} s")


if __name__ == "__main__":
    main()
