"""The params file in each run: tag ``mlexp.overrides``, artifacts ``lineage/params*.yaml``."""

from __future__ import annotations

import shlex
import warnings
from typing import TYPE_CHECKING

import pytest

from ..backend import tags as T
from ..warning_types import MlexpWarning
from .collection import ParamsState, definition_id
from .keys import PARAMS_KEY

if TYPE_CHECKING:
    from ..runs.experiment_run import ExperimentRun

#: The params file as loaded, logged with each run that took values from it.
PARAMS_ARTIFACT = "lineage/params.yaml"
#: The same file with the session's ``--mlexp-set`` overrides applied.
OVERRIDDEN_ARTIFACT = "lineage/params_overridden.yaml"


class ParamsLog:
    """Registered as ``mlexp-params`` once collection found tracked items and a params file."""

    def __init__(self, state: ParamsState, tracked: list[pytest.Item], *, log_files: bool) -> None:
        self.log_files = log_files
        for item in tracked:
            taken = state.applied.get(definition_id(item))
            if taken is not None:
                item.stash[PARAMS_KEY] = taken
        warn_unmatched(state)

    def pytest_mlexp_run_tags(self, item: pytest.Item) -> dict[str, str] | None:
        taken = item.stash.get(PARAMS_KEY, None)
        if taken is None or not taken.overrides:
            return None
        return {T.OVERRIDES: shlex.join(taken.overrides)}

    def pytest_mlexp_run_start(self, item: pytest.Item, run: ExperimentRun) -> None:
        taken = item.stash.get(PARAMS_KEY, None)
        if taken is None or not self.log_files:
            return
        run.log_text(taken.text, PARAMS_ARTIFACT)
        if taken.overridden_text is not None:
            run.log_text(taken.overridden_text, OVERRIDDEN_ARTIFACT)


def warn_unmatched(state: ParamsState) -> None:
    """Warn about functions of the file that no collected experiment is named after."""
    if state.file is None:
        return
    for function, entry in state.file.entries.items():
        if function not in state.seen:
            # Located at the function's line of the params file, as the summary shows it.
            warnings.warn_explicit(
                MlexpWarning(
                    f"{function} in {state.file.display} matches no experiment "
                    "function collected in this session; fix the name if it is a typo "
                    "(running part of the experiments, by path, leaves the others out too)"
                ),
                MlexpWarning,
                str(state.file.path),
                entry.line,
            )
