"""A group's members as the code declares them, whatever part of it the session runs.

A node id (``f.py::experiment_grid[0.001-16]``), ``-k``, ``-m``, ``--lf`` and
``--deselect`` leave out some parametrizations of a function; pytest drops
them before ``pytest_collection_modifyitems`` ends, and a node id's siblings
never reach it. ``record`` keeps every parametrized item a module or class
collected (``collection.Collection.pytest_make_collect_report``), so a group
knows its whole membership.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pytest

from ..keys import COLLECTED_KEY, DEFINED_KEY


def function_id(nodeid: str) -> str:
    """``f.py::experiment_grid[0.1-16]`` -> ``f.py::experiment_grid``."""
    return nodeid.split("[", 1)[0]


def record(config: pytest.Config, collected: Iterable[Any]) -> None:
    """Keep the parametrized items among a collector's ``collected`` nodes, by function."""
    found = config.stash.setdefault(COLLECTED_KEY, {})
    defined = config.stash.setdefault(DEFINED_KEY, {})
    for node in collected:
        if isinstance(node, pytest.Item):
            # Which files define a function of that name (``runs.identity.run_name``).
            name = getattr(node, "originalname", node.name)
            defined.setdefault(name, set()).add(node.nodeid.split("::", 1)[0])
        if isinstance(node, pytest.Item) and getattr(node, "callspec", None) is not None:
            found.setdefault(function_id(node.nodeid), {}).setdefault(node.nodeid, node)


def collected_items(config: pytest.Config, item: pytest.Item) -> list[pytest.Item]:
    """Every parametrized item of ``item``'s function, as collected before any selection."""
    found = config.stash.get(COLLECTED_KEY, {}).get(function_id(item.nodeid), {})
    return list(found.values()) if item.nodeid in found else [item]
