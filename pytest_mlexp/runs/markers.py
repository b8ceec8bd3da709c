"""``@pytest.mark.mlexp``: which items are tracked, and the marker's arguments."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

#: Keyword arguments accepted by ``@pytest.mark.mlexp``, each with its meaning (the
#: documentation's reference is generated from this mapping; iterate it for the names).
MARKER_KWARGS: dict[str, str] = {
    "experiment": "The MLflow experiment of the runs, instead of the session's.",
    "tags": "A dict of tags every run gets, merged with the session's (the closest marker wins).",
    # the gate
    "expect": "Bounds on metrics, checked every session: `{'accuracy': '>= 0.9', "
    "'rmse': '< 0.5'}`; several joined by `and`.",
    "tolerance": "How much worse than the baseline a metric may get, per metric "
    "(`'*'`: the test's default): `0.01`, `'2%'`, `'2 std'`, `'0.01 or 2%'`.",
    "direction": "A metric's direction for the gate and the best cell: `up`, `down` or "
    "`ignore`, e.g. `{'throughput': 'up'}`.",
    "gate": "How a repeated cell is judged against a baseline with seeds: `'bound'` (a "
    "confidence bound, the default) or `'mean'` (the difference of the means); `'best'`: a "
    "grid is gated once, by its best cell, as a search is.",
    "confidence": "The confidence of that bound, e.g. `0.95`.",
    "judge": "The metrics the gate judges, e.g. `['accuracy', 'val_loss']` (default: the "
    "returned metrics, those logged once, and those named by `expect=`, a direction or a "
    "tolerance; a history logged at several steps is only recorded).",
    # grids
    "best": "The metric that picks a grid's best cell: `'r2'`, `'val_loss:min'`, `'score:max'`.",
    "repeats": "Run each cell this many times, with seeds 0, 1, ... (the function takes `seed`); "
    "`(5, 20)`: 5 seeds, then 5 more at a time while the gate cannot decide, up to 20.",
    "seeds": "Run each cell once per seed of this list.",
    # models
    "register": "The registered model whose new version the best cell's logged model "
    "becomes when the session passes.",
    # reuse
    "reuse": "`False`: always execute this function under `--mlexp-reuse`.",
    "inputs": "Globs (from the rootdir) of the data files it reads: hashed into its "
    "fingerprint and logged as its datasets.",
    "input_context": "The dataset context of those inputs (default `training`).",
    # search (checked when the trials are collected: search.collection)
    "search": "An Optuna search space, one item per trial: name -> `'uniform(a, b)'`, "
    "`'loguniform(a, b)'`, `'int(a, b)'`, `'int(a, b, log)'`, a list, or a distribution.",
    "trials": "How many trials this session runs.",
    "objective": "The metric told to the study: `'val_loss:min'`, `'accuracy:max'`, or a "
    "name whose direction is known.",
    "sampler": "`'tpe'` (default), `'random'`, `'qmc'`, or an Optuna sampler.",
    "seed": "The sampler's seed, for a reproducible serial search.",
    "pruner": "`'median'`, `'hyperband'`, `'successive_halving'`, or an Optuna pruner.",
    "study": "A study name to continue across sessions (default: one study per session).",
    # Ray clusters
    "resources": "What a cluster (Ray, Slurm) reserves for each of its items: `{'GPU': 1, "
    "'CPU': 4, 'memory': '8GB'}`, and a backend's own options under its name "
    "(`'slurm': {'time': 120}`).",
}


#: Set on an item whose ``best=`` a params file gives (``params.collection``): the grid line
#: names that source.
BEST_FROM_FILE_KEY = pytest.StashKey[bool]()


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
