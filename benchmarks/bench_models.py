"""What logging a model per grid cell costs, against MLflow's own ``log_model`` by hand.

A grid of 4 cells, each fitting a small scikit-learn model and logging it as
an MLflow Model, through the plugin (``mlflow_run.log_model``), against a plain
script making 4 runs that each call ``mlflow.sklearn.log_model`` (what a user
writes without the plugin). MLflow infers a model's pip requirements in a
fresh Python process for every model; the plugin infers them once per kind of
model and reuses them for the next cells (``models/requirements.py``). Both
sides start an interpreter on a fresh sqlite store and are run in interleaved
pairs; medians of the repeats are reported.

Run: ``python benchmarks/bench_models.py [--repeat 3] [--cells 4]``.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

# The same fresh projects and environment as the overhead benchmark (run from this folder).
from bench_overhead import ENV, fresh_project

SETUP = """
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression

X, y = make_classification(n_samples=200, n_features=8, random_state=0)
"""


def experiment(cells: int) -> str:
    return SETUP + textwrap.dedent(
        f"""
        import pytest

        @pytest.mark.parametrize("C", [0.1 * (i + 1) for i in range({cells})])
        def experiment_model(mlflow_run, C):
            model = LogisticRegression(C=C).fit(X, y)
            mlflow_run.log_model(model, input_example=X[:3])
            return {{"accuracy": model.score(X, y)}}
        """
    )


def plain_script(cells: int) -> str:
    return SETUP + textwrap.dedent(
        f"""
        import sys
        import mlflow

        mlflow.set_tracking_uri(sys.argv[1])
        mlflow.set_experiment("bench")
        for i in range({cells}):
            C = 0.1 * (i + 1)
            with mlflow.start_run(run_name=f"experiment_model[{{C}}]"):
                model = LogisticRegression(C=C).fit(X, y)
                mlflow.log_param("C", C)
                mlflow.sklearn.log_model(model, name="model", input_example=X[:3])
                mlflow.log_metric("accuracy", model.score(X, y))
        """
    )


def timed(command: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(command, cwd=cwd, env=ENV, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--cells", type=int, default=4)
    args = parser.parse_args()
    plugin_times, plain_times = [], []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for i in range(args.repeat):
            command = [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "-p", "no:xdist"]
            project = fresh_project(
                root, f"plugin{i}", {"experiment_bench.py": experiment(args.cells)}
            )
            plugin_times.append(timed(command, project))
            project = fresh_project(root, f"plain{i}", {"plain.py": plain_script(args.cells)})
            uri = f"sqlite:///{project / 'mlflow.db'}"
            plain_times.append(timed([sys.executable, "plain.py", uri], project))
    plugin, plain = statistics.median(plugin_times), statistics.median(plain_times)
    print(f"{args.cells} cells logging a scikit-learn model, fresh sqlite store, ", end="")
    print(f"median of {args.repeat}:")
    print(f"  plain script, mlflow.sklearn.log_model : {plain:6.2f} s")
    print(f"  plugin, mlflow_run.log_model           : {plugin:6.2f} s")
    print(f"  ratio plugin / plain                   : {plugin / plain:6.2f}x")


if __name__ == "__main__":
    main()
