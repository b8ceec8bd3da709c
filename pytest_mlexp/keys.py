"""The stash keys through which features hand state to the kernel and to each other, typed.

``config.stash`` holds what lives for the session; ``item.stash`` what one
tracked item's features leave for its run summary. Only what the kernel
reads, or hands on, is here, typed by kernel value types or plain data; a
feature's private state has its key in the feature (``gate.keys``,
``params.keys``, ``reuse.keys``, ``search.keys``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from .runs.item_run import ItemRun
    from .runs.session import MlexpSession
    from .runs.summary import GroupRefs, ReuseNote, Verdict
    from .settings import Settings

# -- config.stash ---------------------------------------------------------------------------
#: Every resolved setting of the session.
SETTINGS_KEY: pytest.StashKey[Settings] = pytest.StashKey()
#: The session object: the backend, the runs, the summaries.
SESSION_KEY: pytest.StashKey[MlexpSession] = pytest.StashKey()

#: Set at collection, before any selection (node ids, ``-k``, ``-m``, ``--lf``, ``--deselect``):
#: every parametrized item collected, by its function's node id, then its own.
COLLECTED_KEY: pytest.StashKey[dict[str, dict[str, pytest.Item]]] = pytest.StashKey()
#: Set at collection, before any selection: each function name, and the files defining it.
DEFINED_KEY: pytest.StashKey[dict[str, set[str]]] = pytest.StashKey()

# -- item.stash -------------------------------------------------------------------------------
#: The run of a tracked item while it runs (the ``mlflow_run`` fixture's).
RUN_KEY: pytest.StashKey[ItemRun] = pytest.StashKey()
#: Set by grids: the group runs the item's run belongs to.
GROUPS_KEY: pytest.StashKey[GroupRefs] = pytest.StashKey()
#: Set by the gate once the item's call has been judged.
VERDICT_KEY: pytest.StashKey[Verdict] = pytest.StashKey()
#: Set by the gate on a repeat: the rules (JSON) its cell's mean is judged by at the end.
CELL_RULES_KEY: pytest.StashKey[dict[str, Any]] = pytest.StashKey()
#: Set by models before the item's run is created: the registered model its best cell
#: becomes a version of (``register=``), or ``""``.
REGISTER_KEY: pytest.StashKey[str] = pytest.StashKey()
#: Set by searches at activation on each of a search's trials: the search's test id. Grids,
#: reuse and the gate leave a trial to its search.
TRIAL_OF_KEY: pytest.StashKey[str] = pytest.StashKey()
#: Set by reuse when the item's run starts: whether it is reused, or why it executes.
REUSE_KEY: pytest.StashKey[ReuseNote] = pytest.StashKey()
