"""Repeats: ``@pytest.mark.mlexp(repeats=3)`` or ``seeds=[...]`` runs each cell once per seed."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import pytest

from ..runs.markers import marker_options

SEED_PARAM = "seed"
_SEED_ID = re.compile(r"(?:-|\[)seed\d+\]$")


def parametrize_repeats(metafunc: pytest.Metafunc) -> None:
    """Parametrize ``seed`` with the marker's seeds, ids ``seed0``, ``seed1``..."""
    seeds = repeat_seeds(metafunc.definition)
    if seeds is None:
        return
    if SEED_PARAM not in metafunc.fixturenames:
        raise pytest.UsageError(
            f"@pytest.mark.mlexp(repeats/seeds) on {metafunc.definition.nodeid}: the "
            f"function must take a {SEED_PARAM!r} argument to receive each repeat's seed"
        )
    metafunc.parametrize(SEED_PARAM, seeds, ids=[f"seed{i}" for i in range(len(seeds))])


def repeat_seeds(item: Any) -> list[Any] | None:
    """The seeds of a repeated experiment (``repeats=N`` -> 0..N-1), or None."""
    options = marker_options(item)
    repeats, seeds = options.get("repeats"), options.get("seeds")
    where = f"@pytest.mark.mlexp on {item.nodeid}"
    if seeds is not None:
        if isinstance(seeds, str | bytes) or not isinstance(seeds, Sequence) or not seeds:
            raise pytest.UsageError(f"{where}: seeds must be a non-empty list, got {seeds!r}")
        if repeats is not None and repeats != len(seeds):
            raise pytest.UsageError(
                f"{where}: repeats={repeats!r} disagrees with {len(seeds)} seeds; give one of them"
            )
        return list(seeds)
    if repeats is None:
        return None
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise pytest.UsageError(f"{where}: repeats must be a positive integer, got {repeats!r}")
    return list(range(repeats))


def is_repeat(item: pytest.Item) -> bool:
    """Whether ``item`` is one seed of a repeated cell (``repeats=``/``seeds=``)."""
    callspec = getattr(item, "callspec", None)
    if callspec is None or SEED_PARAM not in callspec.params:
        return False
    return repeat_seeds(item) is not None


def cell_nodeid(nodeid: str) -> str:
    """The node id of a repeat's cell: ``f[0.1-seed2]`` -> ``f[0.1]``, ``f[seed2]`` -> ``f``."""
    match = _SEED_ID.search(nodeid)
    if match is None:
        return nodeid
    return nodeid[: match.start()] + ("]" if match.group().startswith("-") else "")
