"""Which parts of lineage every run logs: code, git, env."""

from __future__ import annotations

import pytest

from .sources import list_setting

#: The parts of lineage a user can switch on or off.
PARTS = ("code", "git", "env")


def resolve_lineage(config: pytest.Config) -> frozenset[str]:
    """The lineage parts switched on, or ``UsageError`` for an unknown part."""
    found = list_setting(config, "mlexp_lineage", "lineage")
    if found is None:
        return frozenset(PARTS)
    items, source = found
    parts: set[str] = set()
    for item in (i.lower() for i in items):
        if item == "all":
            parts.update(PARTS)
        elif item == "none":
            parts.clear()
        elif item in PARTS:
            parts.add(item)
        else:
            raise pytest.UsageError(
                f"{source}: unknown lineage part {item!r}; accepted: "
                f"{', '.join(PARTS)}, all, none (e.g. --mlexp-lineage=code,env)"
            )
    return frozenset(parts)
