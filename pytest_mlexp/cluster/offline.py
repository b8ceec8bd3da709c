"""A cluster worker whose node has no route to the tracking server: its runs go to the journal.

A session refuses a tracking server it cannot reach at its start, even under
``--mlexp-on-tracking-error spool``: nobody would send the journal. A
cluster's worker is different: compute nodes often have no route to the
server while the controller, on the login node, has one and sends the
journal the nodes wrote on the shared file system once the items are done
(``replay``). So under the spool a worker opens its store offline: each run
is created in the journal, and MLflow gives up on the server at once.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from ..backend.client import Backend
    from ..settings import Settings

#: What MLflow tries before a write goes to the journal, on a node known to have no route.
_GIVE_UP_AT_ONCE = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "5"}


def offline_when_unreachable(
    open_backend: Callable[[Settings], Backend],
) -> Callable[[Settings], Backend]:
    """``open_backend``, opening the store offline when the server is out of reach (spool)."""

    def open_store(settings: Settings) -> Backend:
        try:
            return open_backend(settings)
        except pytest.UsageError:
            from ..backend import uris
            from ..backend.client import unreachable_reason

            uri = settings.tracking.tracking_uri
            if settings.on_tracking_error != "spool" or not uris.is_server(uri):
                raise
            if unreachable_reason(uri, timeout=5.0) is None:
                raise  # it answers: refused for another reason
            return offline_backend(settings)

    return open_store


def offline_backend(settings: Settings) -> Backend:
    """The store at the settings' server, every write of which goes to the journal."""
    import mlflow
    from mlflow import MlflowClient

    from ..backend.client import Backend
    from ..spool.client import SpoolingClient
    from ..spool.journal import JOURNAL_DIR, Journal
    from ..spool.store import route_fluent_api

    for name, value in _GIVE_UP_AT_ONCE.items():
        os.environ.setdefault(name, value)
    tracking = settings.tracking
    uri = tracking.tracking_uri
    mlflow.set_tracking_uri(uri)
    backend = Backend(
        MlflowClient(tracking_uri=uri), uri, tracking.uri_source, tracking.artifact_location
    )
    backend.client = SpoolingClient(backend.client, Journal(tracking.rootdir / JOURNAL_DIR, uri))
    route_fluent_api(backend.client, uri)
    return backend
