"""The metric that picks a grid's best cell, for the whole session."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from .sources import lookup

if TYPE_CHECKING:
    from ..directions import BestSpec


def resolve_best(config: pytest.Config) -> BestSpec | None:
    """``--mlexp-best-metric`` and its ini / yaml keys; ``None``: each grid's first metric."""
    found = lookup(config, option="mlexp_best_metric", key="best_metric")
    if found is None:
        return None
    from ..directions import BestSpec

    try:
        return BestSpec.parse(str(found[0]))
    except ValueError as exc:
        raise pytest.UsageError(f"{found[1]}: {exc}") from None
