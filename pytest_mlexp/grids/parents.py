"""The group runs of each item: its grid's parent and, for repeats, its cell run.

They are found or created (``groups.creation``) when the item's run is about
to be created, so the item's run gets ``mlflow.parentRunId`` with its
creation, at no extra request.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING

import pytest

from ..backend import tags as T
from ..directions import BestSpec
from ..groups.collected import collected_items
from ..groups.creation import GroupRuns, host_name
from ..keys import GROUPS_KEY, REGISTER_KEY, TRIAL_OF_KEY
from ..params.keys import PARAMS_KEY
from ..runs.identity import run_name
from ..runs.markers import marker_options
from ..runs.summary import GroupRefs
from .repeats import SEED_PARAM, cell_nodeid, repeat_seeds, seed_batch

if TYPE_CHECKING:
    from ..settings import Settings

#: Longest list of left-out cells kept in a tag (MLflow allows 8000 characters).
MAX_TAG_LENGTH = 7000


class GridParents:
    """Registered as ``mlexp-grid`` in the processes that run tracked items."""

    def __init__(self, config: pytest.Config, settings: Settings) -> None:
        self.config = config
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
            grid_tags = {T.GRID: function_id, T.BEST_METRIC: best}
            if not self.groups.known(T.KIND_GRID, function_id):
                grid_tags.update(self._grid_members(item, repeated))
            grid_run_id = self.groups.group(
                item,
                T.KIND_GRID,
                function_id,
                run_name(item, getattr(item, "originalname", item.name)),
                grid_tags,
            )
            tags[T.GRID] = function_id
            tags[T.PARENT_RUN_ID] = grid_run_id
        if repeated:
            cell = cell_nodeid(item.nodeid)
            repeats = [
                each
                for each in collected_items(self.config, item)
                if cell_nodeid(each.nodeid) == cell
            ]
            # Seeds on demand: the first seeds always run, the others while undecided.
            first = [each for each in repeats if seed_batch(each) == 0]
            cell_tags = {T.GRID: function_id, T.CELL: cell, T.MEMBERS: str(len(first))}
            if grid_run_id is not None:
                cell_tags[T.PARENT_RUN_ID] = grid_run_id
            cell_run_id = self.groups.group(
                item, T.KIND_CELL, cell, run_name(item, cell.rpartition("::")[2]), cell_tags
            )
            tags[T.CELL] = cell
            tags[T.PARENT_RUN_ID] = cell_run_id
        item.stash[GROUPS_KEY] = GroupRefs(grid, grid_run_id, cell, cell_run_id, best)
        return tags

    def _grid_members(self, item: pytest.Item, repeated: bool) -> dict[str, str]:
        """The grid's cells in the code, and when the session runs part of them and the
        grid's best cell decides something (registration, ``gate="best"``), the latest run of
        the current code of each cell left out (``groups.whole``)."""
        items = collected_items(self.config, item)
        cells = {cell_nodeid(each.nodeid) if repeated else each.nodeid for each in items}
        tags = {T.MEMBERS: str(len(cells))}
        selected = {each.nodeid for each in item.session.items}
        left_out = [each for each in items if each.nodeid not in selected]
        if not left_out or repeated:
            # A repeated cell counts only by its repeats of this session.
            return tags
        # Set by models, before (tryfirst). A grid gated by its best cell decides on it too.
        registers = bool(item.stash.get(REGISTER_KEY, ""))
        if not registers and marker_options(item).get("gate") != "best":
            return tags
        try:
            found = self.config.hook.pytest_mlexp_latest_runs_of_current_code(items=left_out)
        except Exception:
            found = None  # registration then says the grid ran in part, and registers nothing
        if found is not None:
            text = json.dumps(dict(sorted(found.items())), separators=(",", ":"))
            if len(text) <= MAX_TAG_LENGTH:
                tags[T.MEMBERS_ELSEWHERE] = text
        return tags
