"""Counted nouns for what the plugin prints: ``1 run``, ``3 runs``."""

from __future__ import annotations


def counted(count: int, noun: str, plural: str | None = None) -> str:
    """``count`` and ``noun``, plural unless ``count`` is 1: ``counted(1, "run") == "1 run"``."""
    return f"{count} {noun if count == 1 else plural or noun + 's'}"
