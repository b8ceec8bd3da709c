"""Telling a lost tracking server from a refused request, by exception type and HTTP status."""

from __future__ import annotations

from collections.abc import Iterator

#: HTTP statuses of a server that is there but cannot answer now (MLflow has retried them).
TRANSIENT_STATUSES = frozenset({408, 429, 502, 503, 504})


def is_transient(exc: BaseException) -> bool:
    """A lost connection, a timeout or an unavailable server, once MLflow's retries are spent.

    MLflow raises ``MlflowException`` from inside its ``except`` around the
    HTTP request, so the ``requests`` error that caused it is on the chain.
    A refused request (a bad value, a missing run, a denied permission) is not transient.
    """
    import requests
    from mlflow.exceptions import MlflowException

    lost = (
        requests.ConnectionError,
        requests.Timeout,
        requests.exceptions.RetryError,
        requests.exceptions.ChunkedEncodingError,
        ConnectionError,
        TimeoutError,
    )
    for error in _chain(exc):
        if isinstance(error, lost):
            return True
        if isinstance(error, MlflowException) and (
            error.get_http_status_code() in TRANSIENT_STATUSES  # type: ignore[no-untyped-call]
        ):
            return True
    return False


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and the exceptions it was raised from or while handling."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__
