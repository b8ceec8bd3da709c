"""The plugin's own warning category, so users can filter it."""

from __future__ import annotations

import pytest


class MlexpWarning(pytest.PytestWarning):
    """Something pytest-mlexp could not track as asked; the test itself is unaffected.

    Filter it like any pytest warning, e.g. ``-W ignore::pytest_mlexp.MlexpWarning``.
    """
