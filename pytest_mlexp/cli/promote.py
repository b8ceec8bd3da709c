"""``mlexp promote``: tag the passed runs of a session as the baseline (``promoted``)."""

from __future__ import annotations

import argparse
from typing import Any

from ..backend.errors import StoreError
from .project import EXIT_FAILURE, open_project, reports_errors, store_options


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "promote",
        parents=[store_options("only runs of this experiment (default: the project's, else all)")],
        help="tag the passed runs of a session as the baseline (--mlexp-baseline promoted)",
        description="Tag the passed runs of a pytest session with mlexp.baseline=true, so "
        "that `pytest --mlexp-baseline promoted` compares later sessions with them.",
    )
    parser.add_argument("--session", required=True, metavar="ID", help="the session id")
    parser.set_defaults(handler=run_promote)


@reports_errors
def run_promote(args: argparse.Namespace) -> int:
    from ..gate.baselines import is_safe_value, promote_session

    if not is_safe_value(args.session):
        raise StoreError(f"bad session id {args.session!r}")
    project = open_project(args)
    ids = [str(e.experiment_id) for e in project.experiments()]
    promoted = promote_session(project.backend.client, args.session, ids)
    if not promoted:
        print(
            f"mlexp promote: no passed run of session {args.session} "
            f"in {project.backend.display_uri}"
        )
        return EXIT_FAILURE
    print(f"promoted {len(promoted)} runs of session {args.session} to baseline")
    return 0
