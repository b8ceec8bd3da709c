"""``@pytest.mark.mlexp``: which items are tracked, and the marker's arguments."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

#: Keyword arguments accepted by ``@pytest.mark.mlexp``.
MARKER_KWARGS = (
    "experiment",
    "tags",
    # the gate
    "expect",
    "tolerance",
    "direction",
    "gate",
    "confidence",
    # grids
    "best",
    "repeats",
    "seeds",
    # models
    "register",
    # reuse
    "reuse",
    "inputs",
    "input_context",
    # search (checked when the trials are collected: search.collection)
    "search",
    "trials",
    "objective",
    "sampler",
    "seed",
    "pruner",
    "study",
    # Ray clusters
    "resources",
)


def is_tracked(item: pytest.Item) -> bool:
    """An ``experiment_*`` function, an item marked ``mlexp``, or one using ``mlflow_run``."""
    if not isinstance(item, pytest.Function):
        return False
    return (
        item.originalname.startswith("experiment_")
        or "mlflow_run" in item.fixturenames
        or item.get_closest_marker("mlexp") is not None
    )


def marker_options(node: Any) -> dict[str, Any]:
    """The ``mlexp`` marker arguments of an item (or a ``Metafunc`` definition).

    A function's marker overrides its module's; ``tags`` merge across
    markers, the closest marker winning per key.
    """
    options: dict[str, Any] = {}
    tags: dict[str, Any] = {}
    for marker in reversed(list(node.iter_markers("mlexp"))):
        options.update(marker.kwargs)
        # Markers are validated after collection; until then, skip bad tags quietly.
        marker_tags = marker.kwargs.get("tags")
        if isinstance(marker_tags, Mapping):
            tags.update(marker_tags)
    options["tags"] = tags
    return options


def marker_place(item: pytest.Item) -> str:
    """How errors about an item's marker begin."""
    return f"@pytest.mark.mlexp on {item.nodeid}"


def check_marker(item: pytest.Item, marker: pytest.Mark) -> None:
    """Raise ``UsageError`` for a marker with arguments the plugin does not accept.

    The kernel checks its own arguments (``experiment``, ``tags``); the
    features check theirs (``pipeline.activate`` calls them in turn), then
    ``check_best``.
    """
    where = marker_place(item)
    if marker.args:
        raise pytest.UsageError(
            f"{where}: takes keyword arguments only ({', '.join(MARKER_KWARGS)}), "
            f"got positional {marker.args!r}"
        )
    unknown = sorted(set(marker.kwargs) - set(MARKER_KWARGS))
    if unknown:
        raise pytest.UsageError(
            f"{where}: unknown argument {unknown[0]!r}; accepted: {', '.join(MARKER_KWARGS)}"
        )
    experiment = marker.kwargs.get("experiment")
    if experiment is not None and (not isinstance(experiment, str) or not experiment.strip()):
        raise pytest.UsageError(
            f"{where}: experiment must be a non-empty string, got {experiment!r}"
        )
    tags = marker.kwargs.get("tags")
    if tags is not None and not isinstance(tags, dict):
        raise pytest.UsageError(
            f"{where}: tags must be a dict such as tags={{'team': 'vision'}}, got {tags!r}"
        )


def check_best(item: pytest.Item, marker: pytest.Mark) -> None:
    """Raise ``UsageError`` for a ``best=`` that names no metric and direction."""
    best = marker.kwargs.get("best")
    if best is not None:
        from ..directions import BestSpec

        try:
            BestSpec.parse(best)
        except ValueError as exc:
            raise pytest.UsageError(f"{marker_place(item)}: {exc}") from None


def marker_experiment(item: pytest.Item, default: str) -> str:
    """The experiment an item's run goes to: the marker's, else ``default``."""
    return str(marker_options(item).get("experiment") or default)
