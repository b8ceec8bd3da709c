"""The store's errors: one printable line, and a lost server told from a refused request.

Imports no MLflow at module level: ``mlexp --help`` and the command's own
errors need none.
"""

from __future__ import annotations

from collections.abc import Iterator

from ..redaction import redact_text


class StoreError(Exception):
    """The store, or what was asked of it, is not there. The message is one printable line."""


def one_line(exc: BaseException) -> str:
    """The first line of an exception's message, credentials redacted."""
    message = str(getattr(exc, "message", None) or exc)
    first = next((line.strip() for line in message.splitlines() if line.strip()), "")
    return redact_text(first)


class ServerLost(ConnectionError):
    """The session's tracking server failed earlier; it is not asked again this session.

    Raised, as the cause of an ``MlflowException`` (the shape MLflow gives a
    lost connection), by the spool's client and store in place of a request:
    ``is_transient`` classifies it as a lost connection.
    """


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
