"""The params file in each run: tag ``mlexp.overrides``, artifacts ``lineage/params*.yaml``."""

from __future__ import annotations

import os
import re
import shlex
import warnings
from collections.abc import Iterable
from pathlib import Path
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
        warn_unmatched(state, {item.path for item in tracked})

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


def warn_unmatched(state: ParamsState, collected: set[Path]) -> None:
    """Warn about functions of the file that no collected experiment is named after.

    A function defined in a file this session did not collect (``pytest
    experiments/one.py``) simply was not selected: no warning. One defined
    nowhere near the params file, or missing from the file that was
    collected, is a typo or a renamed function: warned.
    """
    if state.file is None:
        return
    missing = [f for f in state.file.entries if f not in state.seen]
    if not missing:
        return
    # A file.py::function key is looked for by its function's name.
    defined = defining_files(state.file.path.parent, [f.rpartition("::")[2] for f in missing])
    resolved = {path.resolve() for path in collected}
    for function in missing:
        where = defined.get(function.rpartition("::")[2])
        if (where or set()) - resolved:
            continue  # in a file this session did not collect: not selected
        name = function.rpartition("::")[2]
        if where and name != function:
            verb = "defines" if len(where) == 1 else "define"
            why = f"{', '.join(sorted(p.name for p in where))} {verb} {name}: fix the file part"
        elif where:
            why = f"{', '.join(sorted(p.name for p in where))} defines it but is not an experiment"
        else:
            why = f"no Python file under {state.file.path.parent} defines it"
        warning = MlexpWarning(
            f"{function} in {state.file.display} matches no experiment function "
            f"collected in this session; fix the name if it is a typo ({why})"
        )
        try:
            # Located at the function's line of the params file, as the summary shows it.
            warnings.warn_explicit(
                warning, MlexpWarning, str(state.file.path), state.file.entries[function].line
            )
        except MlexpWarning:
            # filterwarnings = error: raised in a hook, it would be an INTERNALERROR.
            raise pytest.UsageError(
                f"{warning} (an error here: filterwarnings turns MlexpWarning into errors)"
            ) from None


#: Folders never searched for experiment functions.
_SKIPPED_DIRS = frozenset({"node_modules", "site-packages", "__pycache__", "mlruns", "venv"})


def defining_files(folder: Path, functions: Iterable[str]) -> dict[str, set[Path]]:
    """The Python files under ``folder`` defining each of ``functions`` (``def name(``)."""
    wanted = list(functions)
    pattern = re.compile(
        r"^\s*(?:async\s+)?def\s+(" + "|".join(re.escape(f) for f in wanted) + r")\s*\(",
        re.MULTILINE,
    )
    found: dict[str, set[Path]] = {}
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".") and d not in _SKIPPED_DIRS]
        for name in files:
            if not name.endswith(".py"):
                continue
            path = Path(root, name)
            try:
                text = path.read_text(encoding="utf-8", errors="replace")
            except OSError:
                continue
            for match in pattern.finditer(text):
                found.setdefault(match.group(1), set()).add(path.resolve())
    return found
