"""What happens when the tracking server is lost mid-session: fail the item, or spool its run."""

from __future__ import annotations

import pytest

from .sources import lookup

POLICIES = ("fail", "spool")
POLICY_ENV = "MLEXP_ON_TRACKING_ERROR"


def resolve_policy(config: pytest.Config) -> str:
    """``fail`` (the default) or ``spool``; ``UsageError`` for anything else."""
    found = lookup(
        config, option="mlexp_on_tracking_error", env=POLICY_ENV, key="on_tracking_error"
    )
    if found is None:
        return "fail"
    value, source = str(found[0]).strip().lower(), found[1]
    if value not in POLICIES:
        raise pytest.UsageError(
            f"{source}: unknown policy {found[0]!r} for a lost tracking server; "
            f"accepted: {', '.join(POLICIES)}"
        )
    return value
