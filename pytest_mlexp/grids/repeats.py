"""Repeats: ``@pytest.mark.mlexp(repeats=3)`` or ``seeds=[...]`` runs each cell once per seed.

With a seed budget (``repeats=(5, 20)``, or ``repeats=5`` and ``--mlexp-seed-budget 20``)
every seed of the budget is collected, the seeds beyond the first ones in
batches put at the end of the session (``order_by_batch``); a batch's seed runs
only while its cell is undecided after the batches before (``gate.on_demand``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import pytest

from ..keys import SETTINGS_KEY
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
    """The seeds of a repeated experiment (``repeats=N`` -> 0..N-1, the budget's), or None."""
    plan = repeat_plan(item)
    if plan is not None:
        return list(range(plan[1]))
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


def repeat_plan(item: Any) -> tuple[int, int] | None:
    """``(first seeds, budget)`` of a repeated experiment with seeds on demand, else None.

    From ``repeats=(5, 20)``, or ``repeats=5`` and the session's seed budget;
    ``UsageError`` for a bad pair.
    """
    repeats = marker_options(item).get("repeats")
    where = f"@pytest.mark.mlexp on {item.nodeid}"
    if isinstance(repeats, tuple | list):
        if len(repeats) != 2 or not all(
            isinstance(n, int) and not isinstance(n, bool) for n in repeats
        ):
            raise pytest.UsageError(
                f"{where}: repeats must be a number of seeds or (first seeds, budget) such as "
                f"repeats=(5, 20), got {repeats!r}"
            )
        first, budget = repeats
        if marker_options(item).get("seeds") is not None:
            raise pytest.UsageError(
                f"{where}: repeats={tuple(repeats)!r} runs seeds 0, 1, ... on demand; "
                "give seeds= or a budget, not both"
            )
        if not 1 < first < budget:
            raise pytest.UsageError(
                f"{where}: repeats={tuple(repeats)!r}: the first seeds (at least 2) must be "
                "fewer than the budget, such as repeats=(5, 20)"
            )
        return first, budget
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 2:
        return None
    if marker_options(item).get("seeds") is not None:
        return None
    settings = item.config.stash.get(SETTINGS_KEY, None)
    budget = settings.gate.seed_budget if settings is not None else 0
    return (repeats, budget) if budget > repeats else None


def seed_batch(item: pytest.Item) -> int:
    """The batch of a repeat's seed: 0 for the first seeds (and without a budget), 1, 2...."""
    plan = repeat_plan(item)
    callspec = getattr(item, "callspec", None)
    if plan is None or callspec is None or SEED_PARAM not in callspec.params:
        return 0
    first, _ = plan
    seed = callspec.params[SEED_PARAM]
    return 0 if seed < first else 1 + (seed - first) // first


def order_by_batch(items: list[pytest.Item]) -> None:
    """Put the extra seeds after every other item, batch after batch, in place.

    A batch's seed waits for its cell's earlier batches (``gate.on_demand``):
    in this order each item waits only for items before it, serially and under
    xdist, whose schedulers give each worker its items in collection order.
    """
    batches = {id(item): seed_batch(item) for item in items}
    if any(batches.values()):
        items.sort(key=lambda item: batches[id(item)])


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
