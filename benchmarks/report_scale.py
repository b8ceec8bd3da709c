"""How long the HTML report takes for a large grid, against reading the runs alone.

Builds a throwaway sqlite store with a grid of RUNS runs (3 params, 3 final
metrics, one metric logged at STEPS steps), then times, on the same store:

- baseline: one ``search_runs`` of the experiment (what ``mlexp runs`` costs);
- gather: the report's reading, runs plus every metric history, in bulk
  (target <= 3x the baseline);
- before: the same reading with one ``get_metric_history`` per run and
  metric, as the report read before it read in bulk;
- render: the HTML page from what was read.

Run: ``.venv/bin/python benchmarks/report_scale.py [RUNS] [STEPS]``.
"""

from __future__ import annotations

import sys
import tempfile
import time
import warnings
from pathlib import Path

from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient

from pytest_mlexp.backend.client import Backend
from pytest_mlexp.reports import html as html_report
from pytest_mlexp.reports.stored_runs import search

warnings.filterwarnings("ignore", category=DeprecationWarning)


def make_store(root: Path, runs: int, steps: int) -> str:
    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    experiment_id = client.create_experiment("bench", artifact_location=(root / "a").as_uri())
    for i in range(runs):
        lr, depth, model = [0.001, 0.01, 0.1, 1.0][i % 4], 2 + i % 5, ["a", "b"][i % 2]
        run = client.create_run(
            experiment_id,
            run_name=f"experiment_fit[{lr}-{depth}-{model}-{i}]",
            tags={
                "mlexp.nodeid": f"experiment_fit.py::experiment_fit[{i}]",
                "mlexp.session_id": "bench",
                "mlexp.outcome": "passed",
            },
        )
        now = int(time.time() * 1000)
        metrics = [Metric("loss", 1 / (s + 1) + lr, now, s) for s in range(steps)]
        metrics += [Metric(k, v, now, 0) for k, v in (("acc", 0.5 + lr), ("f1", 0.4 + depth / 10))]
        params = [Param("lr", str(lr)), Param("depth", str(depth)), Param("model", model)]
        client.log_batch(run.info.run_id, metrics=metrics, params=params)
        client.set_terminated(run.info.run_id)
    return uri


def read_one_by_one(store: Backend, experiments: list) -> None:  # type: ignore[type-arg]
    """The report's reading before bulk histories: one request per run and metric."""
    for run in search(store, experiments):
        for key in run.metrics:
            store.client.get_metric_history(run.run_id, key)


def best_of(repeat: int, action) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    steps = int(sys.argv[2]) if len(sys.argv) > 2 else 50
    with tempfile.TemporaryDirectory() as tmp:
        store = Backend.for_reading(make_store(Path(tmp), runs, steps), "benchmark")
        experiments = [store.client.get_experiment_by_name("bench")]
        baseline = best_of(3, lambda: search(store, experiments))
        gather = best_of(3, lambda: html_report.build_report(store, experiments, "", "bench"))
        one_by_one = best_of(3, lambda: read_one_by_one(store, experiments))
        report = html_report.build_report(store, experiments, "", "bench")
        render = best_of(3, lambda: html_report.render(report))
        size = len(html_report.render(report).encode()) / 1e6
    print(f"{runs} runs, 3 metrics ({steps} steps of one), sqlite store")
    print(f"baseline search_runs:        {baseline * 1000:8.1f} ms")
    print(
        f"gather (runs + histories):   {gather * 1000:8.1f} ms  "
        f"({gather / baseline:.1f}x baseline, target <= 3x)"
    )
    print(
        f"before (one request per run and metric): {one_by_one * 1000:8.1f} ms  "
        f"({one_by_one / baseline:.1f}x baseline)"
    )
    print(
        f"render (HTML, 4 plots/grid): {render * 1000:8.1f} ms  ({render / baseline:.1f}x baseline)"
    )
    print(f"page size: {size:.1f} MB (plotly.js is 4.8 MB of it)")


if __name__ == "__main__":
    main()
