"""The best member of a whole group the session ran only part of.

Registration (``models.registry``) and the gate on a ``gate="best"`` grid
(``gate.group_runs``) decide on a group's best member: when the session ran
only some of its members (``mlexp.members`` counts them all), the members
left out count by their latest earlier run of the current code, recorded on
the group run when it was created (``mlexp.members_elsewhere``, through
reuse's fingerprints), never by the best of the part that ran.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..backend import tags as T
from ..directions import BestSpec
from .best import pick_best


@dataclass(frozen=True)
class WholeBest:
    """The whole group's best member, or why it is not known."""

    run: Any = None
    #: ``only 1 of 3 cells ran this session, and ...``: why ``run`` is None.
    why: str | None = None
    #: How many members the group has (more than ran when the session ran part of it).
    members: int = 0


def whole_group_best(
    client: Any,
    group_run: Any,
    best_run: Any,
    ran: int,
    spec: BestSpec,
    directions: Mapping[str, str],
    members: str = "cells",
) -> WholeBest:
    """The best of ``best_run`` (the best of the ``ran`` members that ran) and the members left
    out, by ``spec``; ``best_run`` itself when the whole group ran."""
    tags = group_run.data.tags
    declared = tags.get(T.MEMBERS, "")
    if not declared.isdigit() or int(declared) <= ran:
        return WholeBest(best_run, members=ran)
    total = int(declared)
    part = f"only {ran} of {total} {members} ran this session"
    elsewhere = json.loads(tags.get(T.MEMBERS_ELSEWHERE) or "null")
    if not isinstance(elsewhere, dict) or ran + len(elsewhere) < total:
        return WholeBest(why=f"{part}, and the others' earlier runs are not known", members=total)
    missing = sorted(node.rpartition("::")[2] for node, run_id in elsewhere.items() if not run_id)
    if missing:
        shown = ", ".join(missing[:3]) + (f" (+{len(missing) - 3})" if len(missing) > 3 else "")
        has = "has" if len(missing) == 1 else "have"
        return WholeBest(
            why=f"{part}, and {shown} {has} no earlier passed run of the current code",
            members=total,
        )
    runs = [best_run, *(client.get_run(run_id) for run_id in elsewhere.values())]
    picked = pick_best(runs, spec, directions)
    if picked.run is None:
        return WholeBest(why=f"{part}, and none is best by {picked.metric}", members=total)
    return WholeBest(picked.run, members=total)
