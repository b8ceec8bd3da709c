"""Paged ``search_runs``: every matching run, one page at a time."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from . import tags as T

if TYPE_CHECKING:
    from mlflow.entities import Run

#: MLflow's largest page.
PAGE_SIZE = 1000
#: The filter clause leaving out the runs ``mlexp reproduce`` made: they are checks of
#: earlier runs, never a baseline, a reuse source or a group's member of their own.
NOT_REPRODUCTION = f"tags.`{T.REPRODUCES}` IS NULL"
#: ... and the one selecting them.
REPRODUCTION = f"tags.`{T.REPRODUCES}` IS NOT NULL"


def search_runs(
    client: Any,
    experiment_ids: Iterable[str],
    filter_string: str = "",
    *,
    order_by: Sequence[str] | None = None,
    page_size: int = PAGE_SIZE,
) -> Iterator[Run]:
    """Yield every run matching ``filter_string``; pages are fetched as the caller iterates.

    Stop iterating to stop fetching: ``next(search_runs(...), None)`` costs one request.
    """
    ids = list(experiment_ids)
    if not ids:
        return
    token = None
    while True:
        page = client.search_runs(
            ids,
            filter_string=filter_string,
            max_results=page_size,
            order_by=list(order_by) if order_by else None,
            page_token=token,
        )
        yield from page
        token = page.token
        if not token:
            return


def first_run(
    client: Any,
    experiment_ids: Iterable[str],
    filter_string: str = "",
    *,
    order_by: Sequence[str] | None = None,
) -> Run | None:
    """The first matching run, in one request, or ``None``."""
    found = search_runs(client, experiment_ids, filter_string, order_by=order_by, page_size=1)
    return next(found, None)


def quote(value: str) -> str:
    """``value`` escaped for a single-quoted string in a search filter."""
    return value.replace("\\", "\\\\").replace("'", "\\'")


def tag_equals(tag: str, value: str) -> str:
    """The filter clause ``tags.`tag` = 'value'``."""
    return f"tags.`{tag}` = '{quote(value)}'"
