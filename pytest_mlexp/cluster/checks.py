"""What nodes on other machines cannot share, refused before anything runs (any backend)."""

from __future__ import annotations

from typing import Any

import pytest


def check_store(local: bool, where: str, tracking: Any) -> None:
    """Refuse an embedded store (sqlite, files) when nodes are on other machines.

    ``where``: how the message names the cluster (``--mlexp-ray 10.0.0.5:6379``).
    """
    if local or not tracking.is_embedded:
        return
    raise pytest.UsageError(
        f"{where}: the cluster has nodes on other machines, which cannot "
        f"write to the embedded store {tracking.display_uri} of this one; run a tracking server "
        "(mlflow server --backend-store-uri postgresql://... --host 0.0.0.0) and pass its URL "
        "with --mlexp-tracking-uri http://HOST:5000 (or MLFLOW_TRACKING_URI)"
    )


def check_study_storage(reachable: bool, where: str, search: Any) -> None:
    """Refuse the searches' default journal files when the nodes cannot reach this project's."""
    if reachable or search.storage is not None:
        return
    raise pytest.UsageError(
        f"{where}: the session's searches share their Optuna study in a "
        "journal file under .mlexp/optuna, which nodes on other machines cannot reach; give a "
        "database every node reaches: --mlexp-search-storage postgresql+psycopg://user@host/optuna"
    )
