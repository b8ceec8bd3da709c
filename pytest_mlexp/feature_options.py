"""Typed readers for feature settings, on top of ``config.lookup`` (CLI > env > ini > yaml).

Bad values raise ``pytest.UsageError`` naming the source, the key, the value
and the accepted forms.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import pytest

from .config import lookup, settings_file

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$", re.I)
_UNITS = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}


def bool_setting(config: pytest.Config, option: str, key: str, default: bool) -> bool:
    """A yes/no setting: true/false, on/off, yes/no, 1/0."""
    found = lookup(config, option=option, key=key)
    if found is None:
        return default
    value, source = found
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise pytest.UsageError(
        f"{source}: invalid value {value!r} for {key}; accepted: true/false, on/off, yes/no, 1/0"
    )


def list_setting(config: pytest.Config, option: str, key: str) -> tuple[list[str], str] | None:
    """A list setting: repeated flags, ini lines, a YAML list, or comma/space separated text.

    Returns the items and where they came from, or ``None`` when unset.
    """
    found = lookup(config, option=option)
    if found is None:
        source, values = settings_file(config)
        if values.get(key) is None:
            return None
        found = (values[key], f"{source} {key}")
        if not isinstance(found[0], str | list | tuple):
            raise pytest.UsageError(
                f"{found[1]}: expected a list or a string, got {type(found[0]).__name__}"
            )
    value, source = found
    items = value if isinstance(value, list | tuple) else [value]
    return split_items(items), source


def split_items(items: Sequence[Any]) -> list[str]:
    """Split every item on commas and whitespace, dropping empty pieces."""
    return [piece for item in items for piece in re.split(r"[,\s]+", str(item)) if piece]


def size_setting(config: pytest.Config, option: str, key: str, default: int) -> int:
    """A size in bytes: ``500000``, ``100MB``, ``1.5G``, ``2GiB`` (binary units); 0 = no limit."""
    found = lookup(config, option=option, key=key)
    if found is None:
        return default
    value, source = found
    match = _SIZE.match(str(value))
    if match is None or isinstance(value, bool):
        raise pytest.UsageError(
            f"{source}: invalid size {value!r} for {key}; accepted: a number of bytes "
            "or a number with a unit, e.g. 500000, 100MB, 1.5GB (0 means no limit)"
        )
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


def format_size(size: int) -> str:
    for unit, factor in (("GB", 2**30), ("MB", 2**20), ("KB", 2**10)):
        if size >= factor:
            return f"{size / factor:.1f} {unit}"
    return f"{size} B"
