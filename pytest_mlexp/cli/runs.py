"""``mlexp runs``: the newest stored runs in a compact table."""

from __future__ import annotations

import argparse
from typing import Any

from ..backend import tags as T
from ..backend.errors import StoreError
from .project import open_project, reports_errors, store_options
from .tables import cut, filters, model_mark, started, status, table

#: Rows ``mlexp runs`` shows unless told otherwise.
DEFAULT_MAX_ROWS = 50


def register(subparsers: Any) -> None:
    runs = subparsers.add_parser(
        "runs",
        parents=[store_options("only this experiment (default: the project's, else all)")],
        help="list stored runs in a compact table",
        description="List stored runs, newest first, with a MODEL column when runs logged "
        "MLflow models. Filter with MLflow's search syntax, "
        "e.g. --filter \"metrics.r2 > 0.3 and params.alpha = '0.1'\".",
    )
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


@reports_errors
def run_runs(args: argparse.Namespace) -> int:
    from ..reports.stored_runs import search, session_filter
    from ..reports.terminal import format_metrics

    if args.max < 1:
        raise StoreError(f"--max must be at least 1, got {args.max}")
    project = open_project(args)
    experiments = project.experiments()
    query = filters(session_filter(args.session) if args.session else "", args.filter)
    found = search(project.backend, experiments, query, max_results=args.max + 1)
    shown = found[: args.max]
    name = project.experiment_name
    where = f"experiment {name!r}" if name else "all experiments"
    print(
        f"{len(shown)} runs in {where} of {project.backend.display_uri}"
        + (f" ({query})" if query else "")
    )
    if not shown:
        return 0
    several = len({r.experiment_id for r in shown}) > 1
    # A search's trials: their number in the study (the name holds the item's slot).
    trials = any(T.TRIAL in r.tags for r in shown)
    header = ["RUN ID", "NAME", "STATUS", "STARTED"]
    if several:
        header.insert(2, "EXPERIMENT")
    if trials:
        header.insert(2, "TRIAL")
    header += ["PARAMS", "METRICS"]
    models = any(run.models or run.registered for run in shown)
    if models:
        header.append("MODEL")
    rows = []
    for run in shown:
        row = [run.run_id, run.name, status(run), started(run)]
        if several:
            row.insert(2, run.experiment)
        if trials:
            row.insert(2, run.tags.get(T.TRIAL, "-"))
        params = " ".join(f"{k}={v}" for k, v in sorted(run.params.items()))
        row += [cut(params, 40) or "-", format_metrics(dict(sorted(run.metrics.items())), 4)]
        if models:
            row.append(model_mark(run))
        rows.append(row)
    print(table(header, rows))
    if len(found) > args.max:
        print(f"(newest {args.max} shown; more runs match: raise --max or narrow --filter)")
    return 0
