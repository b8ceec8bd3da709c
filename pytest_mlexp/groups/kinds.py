"""The kinds of group runs, registered by the features that make them, and what all share.

The engine (``creation``, ``completion``, ``members``, ``best``) knows no kind:
grids register ``cell`` and ``grid`` (``grids.kinds``), searches ``search``
(``search.kinds``). A ``GroupKind`` says which tag names a group run's test
id, how the session's group runs of that kind are found among its runs'
summaries, and how one is filled in from its members' final attempts: its
``fill`` writes the group run, terminates it, and returns the line the
terminal prints for it, if any.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..backend import tags as T
from ..backend.client import now_ms
from ..directions import BestSpec

if TYPE_CHECKING:
    from ..backend.client import Backend
    from ..runs.summary import RunSummary
    from ..settings import Settings


@dataclass(frozen=True)
class Group:
    """A group run to complete, and how to rank its members."""

    run_id: str
    #: ``mlexp.kind``: cell, grid or search.
    kind: str
    #: Its test id: the cell's node id, the grid's or the search's function.
    name: str
    best: BestSpec = field(default_factory=lambda: BestSpec(None))
    #: Configured directions of metrics (``--mlexp-direction``).
    directions: Mapping[str, str] = field(default_factory=dict)
    #: The metric ranking members when ``best`` names none: the first one logged.
    first_metric: str | None = None


Fill = Callable[["Backend", Group, list[Any]], "str | None"]


@dataclass(frozen=True)
class GroupKind:
    """One kind of group run, as the feature making it registers it."""

    #: ``mlexp.kind`` on its group runs.
    kind: str
    #: The tag holding a group run's test id.
    name_tag: str
    #: Fills in and terminates a group run from its members; its terminal line, if any.
    fill: Fill
    #: The session's group runs of this kind, from its runs' summaries.
    session_groups: Callable[[Sequence[RunSummary], Settings], list[Group]]
    #: Whether it picks a best member (a grid its best cell, a search its best trial).
    ranks_members: bool = True
    #: Whether its group runs hold other group runs (a grid holds repeated cells): completed
    #: after the others.
    holds_groups: bool = False


def ran_in_part(tags: Mapping[str, str], ran: int, members: str) -> str:
    """``2 of 6 cells ran this session`` when a group run's ``tags`` count more members
    (``mlexp.members``, from collection) than ``ran``, else ``""``."""
    declared = tags.get(T.MEMBERS, "")
    if not declared.isdigit() or int(declared) <= ran:
        return ""
    return f"{ran} of {declared} {members} ran this session"


def write_group(
    backend: Backend,
    run_id: str,
    best: Any,
    metrics: list[tuple[str, float, int, int]],
    params: list[tuple[str, str]],
    tags: list[tuple[str, str]],
    status: str,
) -> None:
    """Log a grid's or search's values and its best member's, then terminate it with ``status``."""
    from mlflow.exceptions import MlflowException

    best_params: list[tuple[str, str]] = []
    if best.run is not None:
        now = now_ms()
        tags = [
            *tags,
            (T.BEST_RUN_ID, best.run.info.run_id),
            (T.BEST_RUN_NAME, best.run.info.run_name or ""),
        ]
        metrics = [
            *metrics,
            *(
                (T.BEST_PREFIX + k, float(v), now, 0)
                for k, v in best.run.data.metrics.items()
                if not k.startswith(T.SYSTEM_METRICS_PREFIX)
            ),
        ]
        best_params = [(T.BEST_PREFIX + k, v) for k, v in best.run.data.params.items()]
    backend.log_batch(run_id, metrics=metrics, params=params, tags=tags)
    try:
        backend.log_batch(run_id, params=best_params)
    except MlflowException:
        # A later shard of the same session found another best member: params are
        # immutable, so the newer best goes to tags.
        later = [(T.LATER_BEST_PREFIX + k[len(T.BEST_PREFIX) :], v) for k, v in best_params]
        backend.log_batch(run_id, tags=later)
    backend.client.set_terminated(run_id, status)
