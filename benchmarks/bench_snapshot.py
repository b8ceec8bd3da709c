"""Cost of artifact discovery per run: snapshot + diff of a rootdir of 20,000 files.

Generates a project tree (source, data, plots, models, a .git and a .venv
folder), then times, per run, what the plugin does around every tracked
item: one snapshot when the run starts and one walk + diff when it ends.
The baseline, measured in the same run on the same tree, is the cheapest
possible full walk: ``os.scandir`` recursion that only lists names (no
stat, no pruning).

    python benchmarks/bench_snapshot.py [--files 20000] [--repeat 15]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from pytest_mlexp.artifacts.scanner import Scanner, changed
from pytest_mlexp.settings.artifacts import DEFAULT_PATTERNS

# Share of the files per kind: most of a project is code and data, few files match.
KINDS = (
    ("src", ".py", 0.40),
    ("data", ".txt", 0.25),
    ("data", ".csv", 0.05),
    ("plots", ".png", 0.05),
    ("models", ".joblib", 0.02),
    ("docs", ".md", 0.03),
    (".git/objects", "", 0.10),
    (".venv/lib/site-packages/pkg", ".py", 0.10),
)


def make_tree(root: Path, files: int, per_dir: int = 100) -> None:
    made = 0
    for folder, suffix, share in KINDS:
        count = int(files * share) if folder != KINDS[-1][0] else files - made
        for i in range(count):
            directory = root / folder / f"d{i // per_dir:03d}"
            if i % per_dir == 0:
                directory.mkdir(parents=True, exist_ok=True)
            (directory / f"f{i:05d}{suffix}").write_bytes(b"x")
        made += count
    (root / ".venv" / "pyvenv.cfg").write_text("home = /usr/bin\n")


def bare_walk(root: str) -> int:
    count = 0
    stack = [root]
    while stack:
        with os.scandir(stack.pop()) as it:
            for entry in it:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                else:
                    count += 1
    return count


def timed(func: Callable[[], object], repeat: int) -> float:
    """Median seconds of ``repeat`` calls."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        make_tree(root, args.files)
        total = bare_walk(str(root))
        default = Scanner(DEFAULT_PATTERNS)
        everything = Scanner(["*"])
        before = default.scan(root)
        matched = len(before)

        def run_default() -> None:
            start = default.scan(root)
            (root / "src" / "d000" / "model.joblib").write_bytes(b"new")
            assert len(changed(start, default.scan(root))) == 1
            (root / "src" / "d000" / "model.joblib").unlink()

        def run_everything() -> None:
            start = everything.scan(root)
            changed(start, everything.scan(root))

        # Warm the OS caches once, as every run after the first sees them warm.
        bare_walk(str(root))
        baseline = timed(lambda: bare_walk(str(root)), args.repeat)
        per_run = timed(run_default, args.repeat)
        worst = timed(run_everything, args.repeat)

    print(f"tree: {total} files, {matched} matching the default patterns")
    print(f"baseline (bare os.scandir walk, names only): {baseline * 1000:8.1f} ms")
    print(
        f"per run, default patterns (snapshot + diff):  {per_run * 1000:8.1f} ms "
        f"= {per_run / baseline:.2f}x baseline"
    )
    print(
        f"per run, pattern '*' (every file stat'ed):    {worst * 1000:8.1f} ms "
        f"= {worst / baseline:.2f}x baseline"
    )


if __name__ == "__main__":
    main()
