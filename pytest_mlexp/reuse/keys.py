"""Reuse's own stash keys (what the kernel reads of a decision is ``keys.REUSE_KEY``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from .candidates import Decision
    from .fingerprint import Fingerprint

#: Set by reuse when the item's run starts: what its result depends on, hashed.
FINGERPRINT_KEY: pytest.StashKey[Fingerprint] = pytest.StashKey()
#: Set by reuse when the item's run starts: the decision, with the run it copies from.
DECISION_KEY: pytest.StashKey[Decision] = pytest.StashKey()
