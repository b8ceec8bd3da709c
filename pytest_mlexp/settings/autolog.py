"""Whether ``mlflow.autolog()`` is on for tracked items (off by default)."""

from __future__ import annotations

import pytest

from .sources import bool_setting


def resolve_autolog(config: pytest.Config) -> bool:
    return bool_setting(config, "mlexp_autolog", "autolog", False)
