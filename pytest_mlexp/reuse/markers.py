"""The marker's reuse arguments: ``reuse=False``, ``inputs=[...]``, ``input_context=``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest


def check_reuse_marker(kwargs: Mapping[str, Any], where: str) -> None:
    """Raise ``UsageError`` for a bad ``reuse``, ``inputs`` or ``input_context`` argument."""
    reuse = kwargs.get("reuse")
    if reuse is not None and not isinstance(reuse, bool):
        raise pytest.UsageError(f"{where}: reuse must be True or False, got {reuse!r}")
    if "inputs" in kwargs:
        marker_inputs(kwargs["inputs"], where)
    context = kwargs.get("input_context")
    if context is not None and (not isinstance(context, str) or not context.strip()):
        raise pytest.UsageError(
            f"{where}: input_context must be a non-empty string such as 'training' or "
            f"'evaluation', got {context!r}"
        )


def marker_inputs(value: Any, where: str) -> tuple[str, ...]:
    """The globs of a marker's ``inputs=``: a string or a list of strings."""
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple) or not all(
        isinstance(item, str) and item.strip() for item in value
    ):
        raise pytest.UsageError(
            f"{where}: inputs must be a glob or a list of globs from the rootdir, e.g. "
            f"inputs=['data/train.csv', 'data/*.parquet'], got {value!r}"
        )
    return tuple(item.strip() for item in value)
