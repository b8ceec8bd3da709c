"""The group runs of each item: its grid's parent and, for repeats, its cell run.

They are found or created when the item's run is about to be created, so the
item's run gets ``mlflow.parentRunId`` with its creation, at no extra request.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from typing import TYPE_CHECKING

import pytest

from ..backend import tags as T
from ..backend.groups import find_or_create_group
from ..directions import BestSpec
from ..keys import GROUPS_KEY, PARAMS_KEY, SESSION_KEY, TRIAL_KEY
from ..runs.item_runs import source_name
from ..runs.markers import marker_options
from ..runs.summary import GroupRefs
from ..workers import worker_input
from .labels import lineage_tags, stamped_name
from .repeats import SEED_PARAM, cell_nodeid, repeat_seeds

if TYPE_CHECKING:
    from ..settings import Settings


def host_name() -> str:
    return socket.gethostname()


class GridParents:
    """Registered as ``mlexp-grid`` in the processes that run tracked items."""

    def __init__(self, config: pytest.Config, settings: Settings) -> None:
        self.config = config
        self.settings = settings
        controller = worker_input(config) or {}
        #: The controller's pid: group runs belong to it, as they outlive workers.
        self.owner_pid = int(controller.get("mlexp_controller_pid", os.getpid()))
        self._groups: dict[tuple[str, str], str] = {}  # (kind, key) -> run id, in this process

    def pytest_mlexp_run_tags(self, item: pytest.Item) -> dict[str, str]:
        tags = {T.HOST: host_name(), T.PID: str(os.getpid())}
        callspec = getattr(item, "callspec", None)
        if callspec is None or TRIAL_KEY in item.stash:
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
        experiment = str(options.get("experiment") or self.settings.tracking.experiment)
        function_id = item.nodeid.split("[", 1)[0]
        base_tags = {
            **self.settings.tracking.tags,
            **{str(k): str(v) for k, v in options.get("tags", {}).items()},
            T.GRID: function_id,
        }
        grid = grid_run_id = cell = cell_run_id = None
        if grid_params:
            grid = function_id
            grid_run_id = self._group(
                item,
                experiment,
                T.KIND_GRID,
                function_id,
                getattr(item, "originalname", item.name),
                {**base_tags, T.BEST_METRIC: best},
            )
            tags[T.GRID] = function_id
            tags[T.PARENT_RUN_ID] = grid_run_id
        if repeated:
            cell = cell_nodeid(item.nodeid)
            cell_tags = {**base_tags, T.CELL: cell}
            if grid_run_id is not None:
                cell_tags[T.PARENT_RUN_ID] = grid_run_id
            cell_run_id = self._group(
                item, experiment, T.KIND_CELL, cell, cell.rpartition("::")[2], cell_tags
            )
            tags[T.CELL] = cell
            tags[T.PARENT_RUN_ID] = cell_run_id
        item.stash[GROUPS_KEY] = GroupRefs(grid, grid_run_id, cell, cell_run_id, best)
        return tags

    def _group(
        self,
        item: pytest.Item,
        experiment: str,
        kind: str,
        key: str,
        name: str,
        tags: Mapping[str, str],
    ) -> str:
        if (kind, key) not in self._groups:
            all_tags = {
                **tags,
                **lineage_tags(self.settings.tracking.rootdir, self.settings.lineage),
                T.HOST: host_name(),
                T.PID: str(self.owner_pid),
                T.SOURCE_NAME: source_name(item, self.settings.tracking.rootdir),
                T.SOURCE_TYPE: "LOCAL",
            }
            if T.PARENT_RUN_ID not in tags:  # a top-level run: say which session made it
                name = stamped_name(
                    name, self.settings.tracking.session_id, all_tags.get(T.GIT_COMMIT)
                )
            self._groups[(kind, key)] = find_or_create_group(
                self.config.stash[SESSION_KEY].backend,
                experiment,
                session_id=self.settings.tracking.session_id,
                kind=kind,
                key=key,
                name=name,
                tags=all_tags,
            )
        return self._groups[(kind, key)]
