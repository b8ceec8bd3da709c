"""``ItemRun``: what is known about a tracked item's run while it runs (``keys.RUN_KEY``).

Its own module, so that the stash keys and ``item_runs`` name it without
importing ``experiment_run`` (and with it mlflow) before a run starts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pytest

from .usage import Meter

if TYPE_CHECKING:
    from .experiment_run import ExperimentRun


@dataclass
class ItemRun:
    """What is known about a tracked item's run while it runs."""

    run: ExperimentRun
    experiment: str
    reports: dict[str, pytest.TestReport] = field(default_factory=dict)
    #: Measures what the item uses, from before its run started (``runs.usage``).
    meter: Meter = field(default_factory=Meter)
