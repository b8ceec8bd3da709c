"""``mlexp runs``: the newest stored runs in a compact table; ``--parents``: the group runs.

Runs made by ``mlexp reproduce`` are left out unless ``--reproductions``, and
shown with the run they reproduce.
"""

from __future__ import annotations

import argparse
from collections import Counter
from typing import TYPE_CHECKING, Any

from ..backend import tags as T
from ..backend.errors import StoreError
from .project import open_project, reports_errors, store_options
from .tables import cut, filters, model_mark, started, status, table

if TYPE_CHECKING:
    from ..reports.stored_runs import StoredRun

#: Rows ``mlexp runs`` shows unless told otherwise.
DEFAULT_MAX_ROWS = 50

#: How the summary line names each kind of group run.
KIND_NAMES = {
    T.KIND_GRID: ("grid", "grids"),
    T.KIND_SEARCH: ("search", "searches"),
    T.KIND_CELL: ("repeated cell", "repeated cells"),
    T.KIND_SESSION: ("session report", "session reports"),
}


def register(subparsers: Any) -> None:
    runs = subparsers.add_parser(
        "runs",
        parents=[
            store_options(
                "only this experiment (default: the one pytest logs to here: the configured "
                "experiment, else the one named after the rootdir)"
            )
        ],
        help="list stored runs in a compact table",
        description="List stored runs, newest first, with a MODEL column when runs logged "
        "MLflow models. Filter with MLflow's search syntax, "
        "e.g. --filter \"metrics.r2 > 0.3 and params.alpha = '0.1'\". "
        "Group runs (grid and search parents, repeated cells) are listed with --parents; "
        "runs made by `mlexp reproduce` with --reproductions.",
    )
    runs.add_argument("--session", metavar="ID", help="only runs of this pytest session id")
    runs.add_argument("--filter", metavar="EXPR", default="", help="MLflow search filter")
    runs.add_argument(
        "--parents",
        action="store_true",
        help="list the group runs instead: grid and search parents and repeated cells, "
        "with their members' counts and best member",
    )
    runs.add_argument(
        "--reproductions",
        action="store_true",
        help="also list the runs made by `mlexp reproduce` (left out by default), "
        "with the run each reproduces in a REPRODUCES column",
    )
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
    from ..backend.search import NOT_REPRODUCTION, REPRODUCTION, first_run
    from ..reports.stored_runs import MAX_RUNS, current_aliases, search, session_filter

    if args.max < 1:
        raise StoreError(f"--max must be at least 1, got {args.max}")
    project = open_project(args)
    experiment = project.pytest_experiment()
    experiments = [experiment] if experiment is not None else project.backend.experiments()
    query = filters(session_filter(args.session) if args.session else "", args.filter)
    kept_out = "" if args.reproductions else NOT_REPRODUCTION
    try:
        found = search(
            project.backend,
            experiments,
            filters(query, kept_out),
            max_results=MAX_RUNS,
            include_containers=True,
        )
    except StoreError:
        if kept_out and query:  # the error names the user's filter, as given
            search(project.backend, experiments, query, max_results=1)
        raise
    groups = [r for r in found if r.tags.get(T.KIND)]
    members = [r for r in found if not r.tags.get(T.KIND)]
    listed = groups if args.parents else members
    shown = listed[: args.max]
    where = (
        f"experiment {experiment.name!r}"
        if experiment is not None
        else f"all experiments (none is named {project.tracking.experiment!r})"
    )
    noun = "group runs" if args.parents else "runs"
    print(
        f"{len(shown)} {noun} in {where} of {project.backend.display_uri}"
        + (f" ({query})" if query else "")
    )
    if shown:
        current_aliases(project.backend, shown)
        print(parents_table(shown) if args.parents else runs_table(shown))
    if len(listed) > args.max:
        print(f"(newest {args.max} shown; more {noun} match: raise --max or narrow --filter)")
    if not args.parents and groups:
        print(f"({left_out(groups)} not listed: mlexp runs --parents lists them)")
    if kept_out:
        ids = [str(e.experiment_id) for e in experiments]
        if first_run(project.backend.client, ids, filters(query, REPRODUCTION)) is not None:
            print("(reproductions not listed: mlexp runs --reproductions lists them)")
    return 0


def runs_table(shown: list[StoredRun]) -> str:
    """The runs of items: id, name, status, params, metrics and models."""
    from ..reports.terminal import format_metrics

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
    copies = reproductions(shown)
    if copies:
        header.append("REPRODUCES")
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
        if copies:
            row.append(run.tags.get(T.REPRODUCES, "-"))
        rows.append(row)
    return table(header, rows)


def reproductions(shown: list[StoredRun]) -> bool:
    """Whether any of ``shown`` was made by ``mlexp reproduce`` (a REPRODUCES column then)."""
    return any(T.REPRODUCES in run.tags for run in shown)


def parents_table(shown: list[StoredRun]) -> str:
    """The group runs: kind, members' counts, best member."""
    several = len({r.experiment_id for r in shown}) > 1
    header = ["RUN ID", "NAME", "KIND", "STATUS", "STARTED", "MEMBERS", "BEST"]
    if several:
        header.insert(2, "EXPERIMENT")
    copies = reproductions(shown)
    if copies:
        header.append("REPRODUCES")
    rows = []
    for run in shown:
        kind = run.tags.get(T.KIND, "")
        row = [run.run_id, run.name, kind, status(run), started(run), members(run), best(run)]
        if several:
            row.insert(2, run.experiment)
        if copies:
            row.append(run.tags.get(T.REPRODUCES, "-"))
        rows.append(row)
    return table(header, rows)


def members(run: StoredRun) -> str:
    """``6 cells: 5 passed, 1 failed``, ``20 trials: 18 complete, 2 pruned``, ``3 repeats: ...``."""
    tags = run.tags
    kind = tags.get(T.KIND)

    def counts(total: str, noun: str, parts: list[tuple[str, str]]) -> str:
        if not tags.get(total):
            return "-"
        done = ", ".join(f"{tags[key]} {word}" for key, word in parts if tags.get(key, "0") != "0")
        return f"{tags[total]} {noun}" + (f": {done}" if done else "")

    if kind == T.KIND_GRID:
        return counts(
            T.GRID_SIZE,
            "cells",
            [(T.PASSED, "passed"), (T.FAILED, "failed"), (T.KILLED, "killed")],
        )
    if kind == T.KIND_SEARCH:
        return counts(
            T.TRIALS,
            "trials",
            [
                (T.TRIALS_COMPLETE, "complete"),
                (T.TRIALS_PRUNED, "pruned"),
                (T.TRIALS_FAILED, "failed"),
                (T.KILLED, "killed"),
            ],
        )
    if kind == T.KIND_CELL:
        return counts(T.REPEATS, "repeats", [(T.REPEATS_PASSED, "passed")])
    return "-"


def best(run: StoredRun) -> str:
    """``experiment_ridge[0.1] (r2=0.93)``: the best member and the metric that ranked it."""
    name = run.tags.get(T.BEST_RUN_NAME)
    if not name:
        return "-"
    metric = run.tags.get(T.BEST_METRIC, "")
    value = run.metrics.get(T.BEST_PREFIX + metric)
    return name + (f" ({metric}={value:.4g})" if metric and value is not None else "")


def left_out(groups: list[StoredRun]) -> str:
    """``3 group runs (2 grids, 1 search)``."""
    kinds = Counter(run.tags.get(T.KIND, "") for run in groups)
    parts = []
    for kind, count in sorted(kinds.items()):
        one, many = KIND_NAMES.get(kind, (kind, kind))
        parts.append(f"{count} {one if count == 1 else many}")
    noun = "group run" if len(groups) == 1 else "group runs"
    return f"{len(groups)} {noun} ({', '.join(parts)})"
