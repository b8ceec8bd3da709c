"""The stash keys through which features hand state to each other, typed.

``config.stash`` holds what lives for the session; ``item.stash`` what one
tracked item's features leave for its run summary. A feature's private
per-item state stays in its own module.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from .gate.rules import Rules
    from .params.collection import ItemParams
    from .reuse.candidates import Decision
    from .reuse.fingerprint import Fingerprint
    from .runs.item_runs import ItemRun
    from .runs.session import MlexpSession
    from .runs.summary import GroupRefs, Verdict
    from .search.collection import Pending
    from .settings import Settings

# -- config.stash ---------------------------------------------------------------------------
#: Every resolved setting of the session.
SETTINGS_KEY: pytest.StashKey[Settings] = pytest.StashKey()
#: The session object: the backend, the runs, the summaries.
SESSION_KEY: pytest.StashKey[MlexpSession] = pytest.StashKey()

#: Set when collection met a search declaration (``search.collection``).
SEARCH_COLLECTED_KEY: pytest.StashKey[bool] = pytest.StashKey()

# -- item.stash -------------------------------------------------------------------------------
#: The run of a tracked item while it runs (the ``mlflow_run`` fixture's).
RUN_KEY: pytest.StashKey[ItemRun] = pytest.StashKey()
#: Set by grids: the group runs the item's run belongs to.
GROUPS_KEY: pytest.StashKey[GroupRefs] = pytest.StashKey()
#: Set by the gate once the item's call has been judged.
VERDICT_KEY: pytest.StashKey[Verdict] = pytest.StashKey()
#: Set by the gate at collection: the rules the item is judged by.
RULES_KEY: pytest.StashKey[Rules] = pytest.StashKey()
#: Set by the gate on a repeat: the rules (JSON) its cell's mean is judged by at the end.
CELL_RULES_KEY: pytest.StashKey[dict[str, Any]] = pytest.StashKey()
#: Set by params at activation: what the item took from the params file (its fixed values
#: are params but not grid axes; lineage logs the file; reuse will fingerprint it).
PARAMS_KEY: pytest.StashKey[ItemParams] = pytest.StashKey()
#: Set by reuse when the item's run starts: what its result depends on, hashed.
FINGERPRINT_KEY: pytest.StashKey[Fingerprint] = pytest.StashKey()
#: Set by reuse when the item's run starts: whether it is reused, or why it executes.
REUSE_KEY: pytest.StashKey[Decision] = pytest.StashKey()
#: Set by search at activation on a search's trials: the search and the trial's slot.
TRIAL_KEY: pytest.StashKey[Pending] = pytest.StashKey()
