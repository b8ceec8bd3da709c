"""A search's own stash keys."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from .collection import Pending

#: Set by search at activation on a search's trials: the search and the trial's slot.
TRIAL_KEY: pytest.StashKey[Pending] = pytest.StashKey()
