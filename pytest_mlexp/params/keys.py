"""The params file's own stash keys."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from .collection import ItemParams

#: Set by params at activation: what the item took from the params file (its fixed values
#: are params but not grid axes; lineage logs the file; reuse fingerprints it).
PARAMS_KEY: pytest.StashKey[ItemParams] = pytest.StashKey()
