"""The session's end, after an outage: the server answers again, so the session syncs itself.

Once per session, before the group runs are completed: when some of the
session's runs were spooled, one probe of the server's ``/health`` decides.
If it answers, the journals of this session's runs (their own, and those of
group runs created offline) are replayed as ``mlexp sync`` would, and the
runs' summaries take their ids on the server, so the grid and search lines,
the links and the reports are those of a session without an outage. If it
does not, nothing more is sent to it this session.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from ..backend.errors import is_transient, one_line
from ..redaction import redact_text

if TYPE_CHECKING:
    from ..backend.client import Backend
    from ..runs.summary import RunSummary
    from .client import SpoolingClient

#: Seconds the session's end waits for the server's ``/health``.
PROBE_TIMEOUT = 5.0


def rejoin(backend: Backend, results: Sequence[RunSummary]) -> list[str]:
    """Replay the session's spooled runs if the server is back; the lines saying what was done.

    ``results`` (every attempt of the session) are updated in place: a replayed
    run is no longer ``spooled``, and has its server's run id and link.
    """
    from ..backend import uris
    from ..backend.client import Backend, unreachable_reason

    spool: SpoolingClient = backend.client
    if not uris.is_server(backend.uri) or not any(r.spooled for r in results):
        return []
    if unreachable_reason(backend.uri, timeout=PROBE_TIMEOUT) is not None:
        spool.mark_lost("no answer at the session's end")
        return []
    paths = [spool.journal.root / f"{run_id}.jsonl" for run_id in _journal_ids(results)]
    paths = [path for path in paths if path.is_file()]
    if not paths:
        return []
    from .replay import replay, replay_order

    # Straight to the server: the spool would keep a spooled run's operations again.
    direct = Backend(spool.unwrapped, backend.uri, backend.source)
    ids: dict[str, str] = {}  # journal id of a run created offline -> its id on the server
    replayed: list[str] = []
    problem = ""
    lost_again = False
    for path in replay_order(paths):
        try:
            replay(path, direct, ids)
        except Exception as exc:
            problem = f"{path.name}: {type(exc).__name__}: {redact_text(one_line(exc))[:300]}"
            lost_again = is_transient(exc)
            if lost_again:
                break  # what is left waits for `mlexp sync`
            continue
        replayed.append(path.stem)
    spool.resume(replayed)
    if lost_again:
        spool.mark_lost("lost again at the session's end")
    _renumber(backend, results, set(replayed), ids)
    line = (
        f"mlexp: tracking server {backend.display_uri} answered again: "
        f"{len(replayed)} of {len(paths)} spooled runs sent from the journal"
    )
    return [line + (f"; {problem}" if problem else "")]


def _journal_ids(results: Sequence[RunSummary]) -> Iterator[str]:
    """The journal files the session may have written: its runs' and their group runs'."""
    seen: set[str] = set()
    for result in results:
        refs = result.groups
        candidates: list[str | None] = [result.run_id]
        if refs is not None:
            candidates += [refs.grid_run_id, refs.cell_run_id, refs.search_run_id]
        for run_id in candidates:
            if run_id and run_id not in seen:
                seen.add(run_id)
                yield run_id


def _renumber(
    backend: Backend, results: Sequence[RunSummary], replayed: set[str], ids: dict[str, str]
) -> None:
    """Point the summaries of replayed runs, and their group runs, at their ids on the server."""

    def server(run_id: str | None) -> str | None:
        return ids.get(run_id, run_id) if run_id else run_id

    for result in results:
        if result.groups is not None:
            refs = result.groups
            result.groups = dataclasses.replace(
                refs,
                grid_run_id=server(refs.grid_run_id),
                cell_run_id=server(refs.cell_run_id),
                search_run_id=server(refs.search_run_id),
            )
        if result.verdict is not None and result.verdict.cell_run_id:
            result.verdict.cell_run_id = server(result.verdict.cell_run_id)
        if result.spooled and result.run_id in replayed:
            result.run_id = ids.get(result.run_id, result.run_id)
            result.spooled = False
            try:
                experiment_id = backend.experiment_id(result.experiment)
            except Exception:
                continue  # no link: the run's id is shown instead
            result.url = backend.run_link(experiment_id, result.run_id)
