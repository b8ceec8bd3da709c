"""The nodes' spooled runs, sent by the controller once the cluster's items are done.

Compute nodes often have no route to the tracking server (W&B users ask for
truly offline sweeps for that reason). Under ``--mlexp-on-tracking-error
spool`` their runs go to the journal (on the shared file system under
Slurm, shipped back with each item's result under Ray), and the controller,
which reaches the server, replays the journal files this session made before
the session's end completes the group runs. A file that cannot be sent
stays for ``mlexp sync``, which the terminal names.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Collection
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..runs.session import MlexpSession


def replay_new(session: MlexpSession, root: Path, before: Collection[str]) -> int:
    """Replay the journal files under ``root`` not in ``before``; how many were sent."""
    if not root.is_dir():
        return 0
    from ..spool.replay import replay, replay_order

    files = [path for path in replay_order(root.glob("*.jsonl")) if path.name not in before]
    if not files:
        return 0
    from ..backend.client import Backend
    from ..redaction import redact_text
    from ..warning_types import MlexpWarning

    tracking = session.settings.tracking
    sent: dict[str, str] = {}  # journal id -> the run's id on the server
    ids: dict[str, str] = {}
    try:
        backend = Backend.for_reading(tracking.tracking_uri, tracking.uri_source)
        for path in files:
            sent[path.stem] = replay(path, backend, ids)
    except Exception as exc:
        message = (
            f"could not send the runs the cluster's nodes spooled ({type(exc).__name__}: "
            f"{redact_text(str(exc))[:300]}); they stay in {root} for mlexp sync"
        )
        warnings.warn(MlexpWarning(message), stacklevel=1)
    # Those sent are no longer waiting for a sync: the session's end reads them from the server.
    session.results[:] = [
        dataclasses.replace(r, spooled=False, run_id=sent.get(r.run_id, r.run_id))
        if r.spooled and (r.run_id in sent or r.run_id in sent.values())
        else r
        for r in session.results
    ]
    return len(sent)
