"""Repository-level fixtures shared by the example experiments.

Only fixtures live here; anything autouse would also reach ``tests/``.
"""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture(scope="session")
def diabetes() -> tuple[Any, Any]:
    """scikit-learn's diabetes regression data set (ships with sklearn, no download)."""
    from sklearn.datasets import load_diabetes

    return load_diabetes(return_X_y=True)


@pytest.fixture(scope="session")
def breast_cancer() -> tuple[Any, Any]:
    """scikit-learn's breast cancer classification data set (ships with sklearn)."""
    from sklearn.datasets import load_breast_cancer

    return load_breast_cancer(return_X_y=True)
