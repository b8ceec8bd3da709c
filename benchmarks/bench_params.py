"""What a grid from the params file costs at collection, against the same grid in decorators.

Two projects collect the same experiment functions (``pytest --collect-only``,
no store is opened): one parametrized by ``@pytest.mark.parametrize``, the
other by ``experiments/params.yaml`` (fixed values and grid axes, plus a
``--mlexp-set`` override making a new axis in the second project, so the
whole path is measured: reading the YAML, applying overrides, parametrizing).
Both are run in interleaved pairs; medians are reported, and the ratio.

Run: ``python benchmarks/bench_params.py [--repeat 11] [--functions 20] [--cells 50]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ENV = {**os.environ, "PYTHONWARNINGS": "ignore", "MLFLOW_TRACKING_URI": ""}
ENV["MLEXP_EXPERIMENT_PATHS"] = "."  # experiment files at the project's top


def decorated_module(functions: int, cells: int) -> str:
    lines = ["import pytest", ""]
    for f in range(functions):
        lines += [
            "@pytest.mark.parametrize('depth', [1, 2])",
            f"@pytest.mark.parametrize('alpha', [i / 10 for i in range({cells // 2})])",
            f"def experiment_f{f}(alpha, depth):",
            "    cv = 5  # a fixed value, in code",
            "    return {'score': alpha * cv}",
            "",
        ]
    return "\n".join(lines)


def file_module(functions: int) -> str:
    return "\n".join(
        f"def experiment_f{f}(alpha, cv, depth):\n    return {{'score': alpha}}\n"
        for f in range(functions)
    )


def params_file(functions: int, cells: int) -> str:
    alphas = ", ".join(str(i / 10) for i in range(cells // 2))
    return "".join(
        f"experiment_f{f}:\n  params: {{cv: 5, depth: 1}}\n  grid: {{alpha: [{alphas}]}}\n"
        for f in range(functions)
    )


def project(root: Path, name: str, files: dict[str, str]) -> Path:
    path = root / name
    for filename, content in files.items():
        (path / filename).parent.mkdir(parents=True, exist_ok=True)
        (path / filename).write_text(content)
    (path / "pytest.ini").write_text("[pytest]\n")
    return path


def timed(command: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env=ENV, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed in {cwd}:\n{done.stdout}\n{done.stderr}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=11)
    parser.add_argument("--functions", type=int, default=20)
    parser.add_argument("--cells", type=int, default=50, help="cells per function")
    args = parser.parse_args()
    base = [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:randomly"]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        decorated = project(
            root,
            "decorated",
            {"experiments/experiment_grid.py": decorated_module(args.functions, args.cells)},
        )
        from_file = project(
            root,
            "from-file",
            {
                "experiments/experiment_grid.py": file_module(args.functions),
                "experiments/params.yaml": params_file(args.functions, args.cells),
            },
        )
        decorated_times, file_times = [], []
        for _ in range(args.repeat):
            decorated_times.append(timed(base, decorated))
            file_times.append(timed([*base, "--mlexp-set", "depth=[1,2]"], from_file))
    items = args.functions * args.cells
    decorated_median = statistics.median(decorated_times)
    file_median = statistics.median(file_times)
    print(
        f"{args.functions} functions x {args.cells} cells = {items} items, "
        f"pytest --collect-only, median of {args.repeat} interleaved rounds:"
    )
    print(f"  grids in @pytest.mark.parametrize   : {decorated_median:6.3f} s")
    print(f"  grids in params.yaml + --mlexp-set  : {file_median:6.3f} s")
    print(f"  ratio file / decorators             : {file_median / decorated_median:6.3f}x")


if __name__ == "__main__":
    main()
