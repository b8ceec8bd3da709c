"""``mlexp report``, ``mlexp compare`` and ``mlexp runs``: stored runs, after the fact.

Every command reads the store named by ``--tracking-uri``, else
``MLFLOW_TRACKING_URI``, else the project's default store
(``sqlite:///<project root>/mlflow.db``). Mistakes (an unknown run, experiment,
session or store, a bad filter) print one line on stderr and exit with code 2.
"""

from __future__ import annotations

import argparse
import datetime
import difflib
import functools
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .redaction import redact_text
from .store import StoreError

if TYPE_CHECKING:
    from mlflow.entities import Experiment

    from .store import Store, StoredRun

#: Exit code for a mistake in what the user asked for (as argparse uses for bad usage).
EXIT_USAGE = 2
#: Exit code when the store fails while we read it.
EXIT_FAILURE = 1

#: Artifact folder holding the source code a run logged.
CODE_DIR = "code"

#: Rows ``mlexp runs`` shows unless told otherwise.
DEFAULT_MAX_ROWS = 50


def register(subparsers: Any) -> None:
    store = argparse.ArgumentParser(add_help=False)
    store.add_argument(
        "--tracking-uri",
        metavar="URI",
        help="MLflow store to read (default: MLFLOW_TRACKING_URI, else "
        "sqlite:///<project root>/mlflow.db, the project root being the nearest folder "
        "upward with pyproject.toml, pytest.ini, tox.ini or setup.cfg)",
    )

    report = subparsers.add_parser(
        "report",
        parents=[store],
        help="write the HTML report of stored runs",
        description="Write a self-contained HTML report (run tables, Plotly plots) of stored "
        "runs: a session's, an experiment's, or by default the latest session's.",
    )
    report.add_argument("--experiment", metavar="NAME", help="only runs of this experiment")
    report.add_argument("--session", metavar="ID", help="only runs of this pytest session id")
    report.add_argument(
        "--filter", metavar="EXPR", default="", help="MLflow search filter, e.g. 'metrics.r2 > 0.3'"
    )
    report.add_argument(
        "-o",
        "--output",
        metavar="PATH",
        default="mlexp-report.html",
        help="HTML file to write (default: mlexp-report.html)",
    )
    report.set_defaults(handler=run_report)

    compare = subparsers.add_parser(
        "compare",
        parents=[store],
        help="compare two runs: params, metrics and code",
        description="Show two runs' params and metrics side by side with deltas (B - A), "
        f"and a unified diff of the code they logged under the artifact folder {CODE_DIR}/.",
    )
    compare.add_argument("run_a", metavar="RUN_A", help="run id, or run name (its latest run)")
    compare.add_argument("run_b", metavar="RUN_B", help="run id, or run name (its latest run)")
    compare.add_argument(
        "--experiment", metavar="NAME", help="look run names up in this experiment only"
    )
    compare.add_argument(
        "-U",
        "--context",
        type=int,
        default=3,
        metavar="N",
        help="lines of context in the code diff (default: 3)",
    )
    compare.set_defaults(handler=run_compare)

    runs = subparsers.add_parser(
        "runs",
        parents=[store],
        help="list stored runs in a compact table",
        description="List stored runs, newest first. Filter with MLflow's search syntax, "
        "e.g. --filter \"metrics.r2 > 0.3 and params.alpha = '0.1'\".",
    )
    runs.add_argument("--experiment", metavar="NAME", help="only this experiment (default: all)")
    runs.add_argument("--session", metavar="ID", help="only runs of this pytest session id")
    runs.add_argument("--filter", metavar="EXPR", default="", help="MLflow search filter")
    runs.add_argument(
        "--max",
        type=int,
        default=DEFAULT_MAX_ROWS,
        metavar="N",
        help=f"show at most N runs (default: {DEFAULT_MAX_ROWS})",
    )
    runs.set_defaults(handler=run_runs)


def _reports_errors(handler: Callable[[argparse.Namespace], int]) -> Callable[..., int]:
    """Turn store problems into one line on stderr and an exit code, never a traceback."""

    @functools.wraps(handler)
    def run(args: argparse.Namespace) -> int:
        from mlflow.exceptions import MlflowException

        try:
            return handler(args)
        except StoreError as exc:
            print(f"mlexp {args.command}: error: {exc}", file=sys.stderr)
            return EXIT_USAGE
        except MlflowException as exc:
            message = redact_text(str(exc.message).strip().splitlines()[0])
            print(f"mlexp {args.command}: error: the store failed: {message}", file=sys.stderr)
            return EXIT_FAILURE
        except OSError as exc:
            print(f"mlexp {args.command}: error: {exc}", file=sys.stderr)
            return EXIT_FAILURE

    return run


def _open(args: argparse.Namespace) -> Store:
    from .store import open_store

    return open_store(args.tracking_uri)


def _experiments(store: Store, name: str | None) -> list[Experiment]:
    from .store import active_experiments, experiment_by_name

    return [experiment_by_name(store, name)] if name else active_experiments(store)


def _filters(*parts: str) -> str:
    return " and ".join(p for p in parts if p.strip())


# -- mlexp report ------------------------------------------------------------------------------


@_reports_errors
def run_report(args: argparse.Namespace) -> int:
    from . import html_report
    from .store import latest_session, search, session_filter

    if Path(args.output).is_dir():
        raise StoreError(f"-o {args.output}: is a directory; give the HTML file to write")
    store = _open(args)
    experiments = _experiments(store, args.experiment)
    session = args.session
    if session is None and args.experiment is None:
        session = latest_session(store, experiments)
    scope = []
    if args.experiment:
        scope.append(f"experiment {args.experiment}")
    if session:
        scope.append(f"session {session}")
    if args.filter:
        scope.append(f"filter {args.filter}")
    query = _filters(session_filter(session) if session else "", args.filter)
    if not search(store, experiments, query, max_results=1):
        raise StoreError(f"no runs match ({'; '.join(scope)}) in {store.display_uri}")
    report = html_report.build_report(store, experiments, query, "; ".join(scope))
    try:
        path = html_report.write(report, Path(args.output))
    except OSError as exc:
        raise OSError(f"cannot write {args.output}: {exc.strerror or exc}") from None
    print(
        f"mlexp report: wrote {path}: {report.run_count} runs in "
        f"{len(report.sections)} experiment{'s' if len(report.sections) != 1 else ''} "
        f"({'; '.join(scope)})"
    )
    return 0


# -- mlexp runs ----------------------------------------------------------------------------------


@_reports_errors
def run_runs(args: argparse.Namespace) -> int:
    from .report import format_metrics
    from .store import search, session_filter

    if args.max < 1:
        raise StoreError(f"--max must be at least 1, got {args.max}")
    store = _open(args)
    experiments = _experiments(store, args.experiment)
    query = _filters(session_filter(args.session) if args.session else "", args.filter)
    found = search(store, experiments, query, max_results=args.max + 1)
    shown = found[: args.max]
    where = f"experiment {args.experiment!r}" if args.experiment else "all experiments"
    print(f"{len(shown)} runs in {where} of {store.display_uri}" + (f" ({query})" if query else ""))
    if not shown:
        return 0
    several = len({r.experiment_id for r in shown}) > 1
    header = ["RUN ID", "NAME", "STATUS", "STARTED"]
    if several:
        header.insert(2, "EXPERIMENT")
    header += ["PARAMS", "METRICS"]
    rows = []
    for run in shown:
        row = [run.run_id, run.name, _status(run), _started(run)]
        if several:
            row.insert(2, run.experiment)
        params = " ".join(f"{k}={v}" for k, v in sorted(run.params.items()))
        row += [_cut(params, 40) or "-", format_metrics(dict(sorted(run.metrics.items())), 4)]
        rows.append(row)
    print(_table(header, rows))
    if len(found) > args.max:
        print(f"(newest {args.max} shown; more runs match: raise --max or narrow --filter)")
    return 0


# -- mlexp compare ------------------------------------------------------------------------------


@_reports_errors
def run_compare(args: argparse.Namespace) -> int:
    from .store import experiment_by_name, get_run

    store = _open(args)
    pool = [experiment_by_name(store, args.experiment)] if args.experiment else []
    run_a = get_run(store, args.run_a, pool)
    run_b = get_run(store, args.run_b, pool)

    print(
        _table(
            ["", "A", "B"],
            [
                ["name", run_a.name, run_b.name],
                ["run id", run_a.run_id, run_b.run_id],
                ["experiment", run_a.experiment, run_b.experiment],
                ["status", _status(run_a), _status(run_b)],
                ["started", _started(run_a), _started(run_b)],
                ["session", run_a.session_id or "-", run_b.session_id or "-"],
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
            rows.append(["  " + key, _cut(_text(a), 40), _cut(_text(b), 40), mark])
        print(_table(["", "A", "B", ""], rows))
    else:
        print("  (none)")
    print()
    print("metrics:")
    keys = sorted(set(run_a.metrics) | set(run_b.metrics))
    if keys:
        rows = []
        for key in keys:
            ma, mb = run_a.metrics.get(key), run_b.metrics.get(key)
            rows.append(["  " + key, _number(ma), _number(mb), _delta(ma, mb)])
        print(_table(["", "A", "B", "B - A"], rows))
    else:
        print("  (none)")
    print()
    print(_code_diff(store, run_a, run_b, args.context))
    return 0


def _code_diff(store: Store, run_a: StoredRun, run_b: StoredRun, context: int) -> str:
    """A summary line and a unified diff of the files both runs logged under ``code/``."""
    with tempfile.TemporaryDirectory(prefix="mlexp-compare-") as tmp:
        files_a = _code_files(store, run_a.run_id, Path(tmp, "a"))
        files_b = _code_files(store, run_b.run_id, Path(tmp, "b"))
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


def _code_files(store: Store, run_id: str, destination: Path) -> dict[str, Path]:
    """The run's files under ``code/``, downloaded, by their path inside ``code/``."""
    if not store.client.list_artifacts(run_id, CODE_DIR):
        return {}
    destination.mkdir(parents=True)
    local = Path(store.client.download_artifacts(run_id, CODE_DIR, str(destination)))
    return {
        path.relative_to(local).as_posix(): path
        for path in sorted(local.rglob("*"))
        if path.is_file()
    }


# -- formatting ---------------------------------------------------------------------------------


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    ]
    if not any(header):
        lines = lines[1:]
    return "\n".join(lines)


def _status(run: StoredRun) -> str:
    outcome = run.outcome
    return run.status + (f" ({outcome})" if outcome not in ("", "passed", "failed") else "")


def _started(run: StoredRun) -> str:
    if not run.start_time:
        return "-"
    return datetime.datetime.fromtimestamp(run.start_time / 1000).strftime("%Y-%m-%d %H:%M:%S")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _text(value: str | None) -> str:
    return "-" if value is None else value


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.6g}"


def _delta(a: float | None, b: float | None) -> str:
    if a is None or b is None:
        return ""
    delta = b - a
    if delta == 0:
        return "0"
    relative = f" ({delta / abs(a):+.1%})" if a else ""
    return f"{delta:+.6g}{relative}"
