"""``mlexp compare``: two runs side by side: params, metrics with deltas, a diff of their code."""

from __future__ import annotations

import argparse
import difflib
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..backend import tags as T
from .project import open_project, reports_errors, store_options
from .scope import Scope, add_anyone_flag, checkout_scope, run_by_name
from .tables import cut, delta, number, started, status, table, text

if TYPE_CHECKING:
    from ..backend.client import Backend
    from ..reports.stored_runs import StoredRun

#: Artifact folder holding the source code a run logged.
CODE_DIR = "code"


def register(subparsers: Any) -> None:
    compare = subparsers.add_parser(
        "compare",
        parents=[store_options("look run names up in this experiment only")],
        help="compare two runs: params, metrics and code",
        description="Show two runs' params and metrics side by side with deltas (B - A), "
        f"and a unified diff of the code they logged under the artifact folder {CODE_DIR}/.",
    )
    for name in ("run_a", "run_b"):
        compare.add_argument(
            name,
            metavar=name.upper(),
            help="run id, or run name or node id (FILE::NAME): your latest run of it",
        )
    add_anyone_flag(compare, "a named run")
    compare.add_argument(
        "-U",
        "--context",
        type=int,
        default=3,
        metavar="N",
        help="lines of context in the code diff (default: 3)",
    )
    compare.set_defaults(handler=run_compare)


@reports_errors
def run_compare(args: argparse.Namespace) -> int:
    project = open_project(args)
    backend = project.backend
    pool = project.experiments() if project.experiment_name else backend.experiments()
    whose = checkout_scope(project, args)
    run_a, how_a = _find(backend, args.run_a, pool, whose, "RUN_A")
    run_b, how_b = _find(backend, args.run_b, pool, whose, "RUN_B")

    print(
        table(
            ["", "A", "B"],
            [
                ["name", run_a.name, run_b.name],
                ["run id", run_a.run_id, run_b.run_id],
                ["experiment", run_a.experiment, run_b.experiment],
                ["status", status(run_a), status(run_b)],
                ["started", started(run_a), started(run_b)],
                ["session", run_a.session_id or "-", run_b.session_id or "-"],
                ["user", run_a.tags.get(T.USER, "-"), run_b.tags.get(T.USER, "-")],
                ["picked", how_a, how_b],
            ],
        )
    )
    print()
    print("params:")
    keys = sorted(set(run_a.params) | set(run_b.params))
    if keys:
        rows = []
        for key in keys:
            a, b = run_a.params.get(key), run_b.params.get(key)
            mark = "" if a == b else "changed" if a is not None and b is not None else "only one"
            rows.append(["  " + key, cut(text(a), 40), cut(text(b), 40), mark])
        print(table(["", "A", "B", ""], rows))
    else:
        print("  (none)")
    print()
    print("metrics:")
    keys = sorted(set(run_a.metrics) | set(run_b.metrics))
    if keys:
        rows = []
        for key in keys:
            ma, mb = run_a.metrics.get(key), run_b.metrics.get(key)
            rows.append(["  " + key, number(ma), number(mb), delta(ma, mb)])
        print(table(["", "A", "B", "B - A"], rows))
    else:
        print("  (none)")
    print()
    print(code_diff(backend, run_a, run_b, args.context))
    return 0


def _find(
    backend: Backend, ref: str, pool: list[Any], whose: Scope, label: str
) -> tuple[StoredRun, str]:
    """The run ``ref`` names, and how it was picked: by id, or the latest of whose by name."""
    from mlflow.exceptions import MlflowException

    from ..reports.stored_runs import stored_run

    try:
        run = backend.client.get_run(ref)
    except MlflowException:
        run = None
    if run is not None:
        experiment = backend.client.get_experiment(run.info.experiment_id)
        names = {str(experiment.experiment_id): str(experiment.name)}
        return stored_run(backend, run, names), "by run id"
    found = run_by_name(backend, ref, pool, whose, label)
    return found, "latest of anyone's" if whose.anyone else "your latest (--anyone: anyone's)"


def code_diff(backend: Backend, run_a: StoredRun, run_b: StoredRun, context: int) -> str:
    """A summary line and a unified diff of the files both runs logged under ``code/``."""
    with tempfile.TemporaryDirectory(prefix="mlexp-compare-") as tmp:
        files_a = _code_files(backend, run_a.run_id, Path(tmp, "a"))
        files_b = _code_files(backend, run_b.run_id, Path(tmp, "b"))
        if not files_a and not files_b:
            return f"code: neither run logged code artifacts (under {CODE_DIR}/)"
        if not files_a or not files_b:
            which, has = ("A", "B") if not files_a else ("B", "A")
            return (
                f"code: run {which} logged no code artifacts (under {CODE_DIR}/); "
                f"run {has} logged {len(files_a or files_b)} files"
            )
        both = sorted(set(files_a) & set(files_b))
        only_a = sorted(set(files_a) - set(files_b))
        only_b = sorted(set(files_b) - set(files_a))
        chunks = []
        changed = 0
        for name in sorted(set(files_a) | set(files_b)):
            a = files_a.get(name)
            b = files_b.get(name)
            old = a.read_bytes() if a else b""
            new = b.read_bytes() if b else b""
            if old == new:
                continue
            changed += name in both
            label_a = f"a/{CODE_DIR}/{name}" if a else "/dev/null"
            label_b = f"b/{CODE_DIR}/{name}" if b else "/dev/null"
            try:
                old_lines = old.decode("utf-8").splitlines(keepends=True)
                new_lines = new.decode("utf-8").splitlines(keepends=True)
            except UnicodeDecodeError:
                chunks.append(f"Binary files {label_a} and {label_b} differ\n")
                continue
            diff = difflib.unified_diff(old_lines, new_lines, label_a, label_b, n=context)
            chunks.append("".join(line if line.endswith("\n") else line + "\n" for line in diff))
        summary = (
            f"code: {len(both)} files in both runs ({changed} differ), "
            f"{len(only_a)} only in A, {len(only_b)} only in B"
        )
        if not chunks:
            return summary + "; the code is identical"
        return summary + "\n" + "".join(chunks).rstrip("\n")


def _code_files(backend: Backend, run_id: str, destination: Path) -> dict[str, Path]:
    """The run's files under ``code/``, downloaded, by their path inside ``code/``."""
    if not backend.client.list_artifacts(run_id, CODE_DIR):
        return {}
    destination.mkdir(parents=True)
    # MLflow draws a tqdm progress bar on stderr when tqdm is installed (Optuna brings
    # it): noise for a command's output. The user's own setting wins.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    local = Path(backend.client.download_artifacts(run_id, CODE_DIR, str(destination)))
    return {
        path.relative_to(local).as_posix(): path
        for path in sorted(local.rglob("*"))
        if path.is_file()
    }
