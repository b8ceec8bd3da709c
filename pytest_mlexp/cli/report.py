"""``mlexp report``: the HTML report of stored runs, by default your latest session's."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..backend.errors import StoreError
from .project import open_project, reports_errors, store_options
from .scope import add_anyone_flag, checkout_scope, latest_session
from .tables import filters


def register(subparsers: Any) -> None:
    report = subparsers.add_parser(
        "report",
        parents=[store_options("only runs of this experiment")],
        help="write the HTML report of stored runs",
        description="Write a self-contained HTML report (run tables, Plotly plots) of stored "
        "runs: a session's, an experiment's, or by default your latest session's (runs of your "
        "user name from a checkout of this project's git remote; --anyone: anyone's).",
    )
    report.add_argument("--session", metavar="ID", help="only runs of this pytest session id")
    add_anyone_flag(report, "the latest session")
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
    report.add_argument(
        "--figures",
        choices=("inline", "cdn"),
        help="how the page loads plotly.js: inline (works offline, about 4.7 MB) or cdn "
        "(plotly's CDN, a small file); default: the project's --mlexp-figures setting, else inline",
    )
    report.set_defaults(handler=run_report)


@reports_errors
def run_report(args: argparse.Namespace) -> int:
    from ..reports import html
    from ..reports.stored_runs import search, session_filter

    if Path(args.output).is_dir():
        raise StoreError(f"-o {args.output}: is a directory; give the HTML file to write")
    project = open_project(args)
    experiments = project.experiments()
    session = args.session
    latest = ""
    if session is None and args.experiment is None:
        whose = checkout_scope(project, args)
        session = latest_session(project.backend, experiments, whose)
        latest = f", the latest of {whose.describe()}"
    scope = []
    if args.experiment:
        scope.append(f"experiment {args.experiment}")
    if session:
        scope.append(f"session {session}{latest}")
    if args.filter:
        scope.append(f"filter {args.filter}")
    query = filters(session_filter(session) if session else "", args.filter)
    if not search(project.backend, experiments, query, max_results=1):
        raise StoreError(f"no runs match ({'; '.join(scope)}) in {project.backend.display_uri}")
    figures = args.figures or project_figures(args)
    report = html.build_report(project.backend, experiments, query, "; ".join(scope), figures)
    try:
        path = html.write(report, Path(args.output))
    except OSError as exc:
        raise OSError(f"cannot write {args.output}: {exc.strerror or exc}") from None
    print(
        f"mlexp report: wrote {path}: {report.run_count} runs in "
        f"{len(report.sections)} experiment{'s' if len(report.sections) != 1 else ''} "
        f"({'; '.join(scope)})"
    )
    return 0


def project_figures(args: argparse.Namespace) -> str:
    """The project's ``figures`` setting (ini ``mlexp_figures``, ``mlexp.yaml``)."""
    from ..settings.project import project_config
    from ..settings.reports import resolve_figures

    config = getattr(args, "config", None)
    return resolve_figures(project_config([f"--mlexp-config={config}"] if config else []))
