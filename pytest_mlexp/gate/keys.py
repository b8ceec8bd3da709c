"""The gate's own stash keys."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from .rules import Rules

#: Set by the gate at collection: the rules the item is judged by.
RULES_KEY: pytest.StashKey[Rules] = pytest.StashKey()
