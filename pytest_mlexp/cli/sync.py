"""``mlexp sync``: replay the runs spooled while the tracking server was unreachable."""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..redaction import redact_text
from .project import EXIT_FAILURE, project_tracking, reports_errors

if TYPE_CHECKING:
    from ..backend.client import Backend


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "sync",
        help="replay runs spooled while the tracking server was unreachable",
        description="Send the runs kept in the journal (.mlexp/journal under the project's "
        "rootdir) to the tracking server. Replaying twice sends nothing twice.",
    )
    parser.add_argument(
        "--journal",
        default=None,
        help="journal folder (default: .mlexp/journal in the project's rootdir)",
    )
    parser.add_argument(
        "--tracking-uri",
        default=None,
        help="server to send to (default: the project's tracking URI when it configures one, "
        "else the URI the runs were recorded for); credentials come from MLflow's usual "
        "environment variables",
    )
    parser.add_argument(
        "--config",
        metavar="PATH",
        help="mlexp YAML settings file (default: mlexp.yaml in the rootdir, when present)",
    )
    parser.set_defaults(handler=run_sync)


@reports_errors
def run_sync(args: argparse.Namespace) -> int:
    from ..spool.journal import JOURNAL_DIR
    from ..spool.replay import recorded_uri, replay, replay_order

    tracking = project_tracking(args)
    root = Path(args.journal) if args.journal else tracking.rootdir / JOURNAL_DIR
    files = replay_order(root.glob("*.jsonl")) if root.is_dir() else []
    if not files:
        print(f"mlexp sync: nothing to replay in {root}")
        return 0
    configured = tracking.tracking_uri if tracking.uri_source != "default" else None
    backends: dict[str, Backend] = {}
    replayed: dict[str, list[str]] = {}  # uri -> run ids
    ids: dict[str, str] = {}  # journal id of a run created offline -> its id on the server
    done = failed = 0
    with _without_mlflow_links():
        for path in files:
            try:
                uri = configured or recorded_uri(path) or tracking.tracking_uri
                if uri not in backends:
                    backends[uri] = _open(uri, tracking.uri_source if configured else "the journal")
                run_id = replay(path, backends[uri], ids)
            except Exception as exc:
                failed += 1
                print(
                    f"mlexp sync: {path.name}: {type(exc).__name__}: "
                    f"{redact_text(str(exc))[:300]}; kept for the next sync"
                )
                continue
            replayed.setdefault(uri, []).append(run_id)
            print(f"mlexp sync: {_described(backends[uri], run_id)}")
            done += 1
        print(f"mlexp sync: replayed {done} runs, {failed} left in {root}")
        for uri, run_ids in replayed.items():
            failed += _recomplete(backends[uri], run_ids)
    return EXIT_FAILURE if failed else 0


@contextlib.contextmanager
def _without_mlflow_links() -> Iterator[None]:
    """Keep MLflow's two lines per ended run (``View run ... at``) out of the output.

    MLflow prints them when a run on a server ends, unless its documented
    ``MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT`` says not to; ``mlexp sync`` prints
    one line per run of its own.
    """
    from mlflow.environment_variables import MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT

    name = MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT.name
    saved = os.environ.get(name)
    os.environ[name] = "true"
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = saved


def _described(backend: Backend, run_id: str) -> str:
    """``experiment_cell[3]: <its page>``: a replayed run as the server now has it."""
    try:
        info = backend.client.get_run(run_id).info
    except Exception:
        return f"run {run_id}"
    link = backend.run_link(str(info.experiment_id), run_id)
    return f"{info.run_name}: {link or f'run {run_id}'}"


def _recomplete(backend: Backend, run_ids: list[str]) -> int:
    """Complete again the group runs (cells, grids, searches) of the replayed runs; 1 if not."""
    from ..grids.kinds import CELL, GRID
    from ..groups.completion import recomplete_groups
    from ..search.kinds import SEARCH

    try:
        lines = recomplete_groups(backend, run_ids, [CELL, GRID, SEARCH])
    except Exception as exc:
        print(
            f"mlexp sync: could not complete the group runs in {backend.display_uri}: "
            f"{type(exc).__name__}: {redact_text(str(exc))[:300]}"
        )
        return 1
    for line in lines:
        print(line)
    return 0


def _open(uri: str, source: str) -> Backend:
    from ..backend.client import Backend

    return Backend.for_reading(uri, source)
