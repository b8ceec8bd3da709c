"""Which items are tracked: ``experiment_*`` functions, items marked ``mlexp``, users of
``mlflow_run``.

Asked in every pytest run of the environment, with or without experiments, so it
stays apart from the marker's arguments (``markers``): pytest loads each module of
the plugin's package through its assertion rewriter, at a price per code object.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest


def is_tracked(item: pytest.Item) -> bool:
    """An ``experiment_*`` function, an item marked ``mlexp``, or one using ``mlflow_run``."""
    if not isinstance(item, pytest.Function):
        return False
    return (
        item.originalname.startswith("experiment_")
        or "mlflow_run" in item.fixturenames
        or item.get_closest_marker("mlexp") is not None
    )


def tracked_items(items: Sequence[pytest.Item]) -> list[pytest.Item]:
    """The tracked ones among ``items`` (``is_tracked``), in order.

    Called on every session's items, with or without experiments: a collector's
    markers are looked at once for all its items, and an item costs no Python call.
    """
    marked: dict[int, bool] = {}  # by id(): a node's hash is a Python call
    tracked: list[pytest.Item] = []
    parent: Any = None
    parent_marked = False
    function = pytest.Function
    for item in items:
        if not isinstance(item, function):
            continue
        if item.parent is not parent:  # items come grouped by their collector
            parent = item.parent
            parent_marked = parent is not None and _is_marked(parent, marked)
        if (
            item.originalname.startswith("experiment_")
            or "mlflow_run" in item.fixturenames
            or parent_marked
        ):
            tracked.append(item)
            continue
        for mark in item.own_markers:
            if mark.name == "mlexp":
                tracked.append(item)
                break
    return tracked


def _is_marked(node: Any, marked: dict[int, bool]) -> bool:
    """Whether ``node`` or a collector above it is marked ``mlexp``; ``marked`` caches."""
    found = marked.get(id(node))
    if found is None:
        found = any(mark.name == "mlexp" for mark in node.own_markers) or (
            node.parent is not None and _is_marked(node.parent, marked)
        )
        marked[id(node)] = found
    return found
