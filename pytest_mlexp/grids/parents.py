"""The group runs of each item: its grid's parent and, for repeats, its cell run.

They are found or created (``groups.creation``) when the item's run is about
to be created, so the item's run gets ``mlflow.parentRunId`` with its
creation, at no extra request.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import pytest

from ..backend import tags as T
from ..directions import BestSpec
from ..groups.creation import GroupRuns, host_name
from ..keys import GROUPS_KEY, TRIAL_OF_KEY
from ..params.keys import PARAMS_KEY
from ..runs.markers import marker_options
from ..runs.summary import GroupRefs
from .repeats import SEED_PARAM, cell_nodeid, repeat_seeds

if TYPE_CHECKING:
    from ..settings import Settings


class GridParents:
    """Registered as ``mlexp-grid`` in the processes that run tracked items."""

    def __init__(self, config: pytest.Config, settings: Settings) -> None:
        self.settings = settings
        self.groups = GroupRuns(config, settings)

    def pytest_mlexp_run_tags(self, item: pytest.Item) -> dict[str, str]:
        tags = {T.HOST: host_name(), T.PID: str(os.getpid())}
        callspec = getattr(item, "callspec", None)
        if callspec is None or TRIAL_OF_KEY in item.stash:
            # A search's trials have the search's parent run (search.plugin), not a grid's.
            return tags
        options = marker_options(item)
        repeated = repeat_seeds(item) is not None and SEED_PARAM in callspec.params
        # A params file's fixed values are params of the run, not axes of a grid.
        from_file = item.stash.get(PARAMS_KEY, None)
        fixed = from_file.fixed if from_file is not None else frozenset()
        grid_params = {
            k: v
            for k, v in callspec.params.items()
            if not (repeated and k == SEED_PARAM) and k not in fixed
        }
        spec = BestSpec.parse(options["best"]) if options.get("best") else self.settings.best
        best = str(spec or "")
        function_id = item.nodeid.split("[", 1)[0]
        grid = grid_run_id = cell = cell_run_id = None
        if grid_params:
            grid = function_id
            grid_run_id = self.groups.group(
                item,
                T.KIND_GRID,
                function_id,
                getattr(item, "originalname", item.name),
                {T.GRID: function_id, T.BEST_METRIC: best},
            )
            tags[T.GRID] = function_id
            tags[T.PARENT_RUN_ID] = grid_run_id
        if repeated:
            cell = cell_nodeid(item.nodeid)
            cell_tags = {T.GRID: function_id, T.CELL: cell}
            if grid_run_id is not None:
                cell_tags[T.PARENT_RUN_ID] = grid_run_id
            cell_run_id = self.groups.group(
                item, T.KIND_CELL, cell, cell.rpartition("::")[2], cell_tags
            )
            tags[T.CELL] = cell
            tags[T.PARENT_RUN_ID] = cell_run_id
        item.stash[GROUPS_KEY] = GroupRefs(grid, grid_run_id, cell, cell_run_id, best)
        return tags
