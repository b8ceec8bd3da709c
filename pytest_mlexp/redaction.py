"""Keep credentials out of everything the plugin prints or logs."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

REDACTED = "***"

_SECRET_QUERY_KEYS = re.compile(r"(pass|secret|token|key|auth|credential|signature)", re.I)


def redact_uri(uri: str) -> str:
    """Return ``uri`` with its password and secret query values replaced by ``***``.

    >>> redact_uri("postgresql://bob:hunter2@db:5432/mlflow")
    'postgresql://bob:***@db:5432/mlflow'
    >>> redact_uri("https://ci-token@github.com/org/repo.git")
    'https://***@github.com/org/repo.git'
    """
    try:
        parts = urlsplit(uri)
    except ValueError:
        return REDACTED
    netloc = parts.netloc
    if "@" not in netloc and not parts.query:
        return uri
    if "@" in netloc:
        userinfo, _, host = netloc.rpartition("@")
        user, sep, _password = userinfo.partition(":")
        # A user with no password is usually a token (https://TOKEN@host).
        netloc = f"{user}:{REDACTED}@{host}" if sep else f"{REDACTED}@{host}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode(
            [(k, REDACTED if _SECRET_QUERY_KEYS.search(k) else v) for k, v in pairs], safe="*"
        )
    redacted = urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
    return redacted if redacted != urlunsplit(parts) else uri


def redact_text(text: str) -> str:
    """Redact every URL with credentials inside free text (a command line, a message)."""
    return re.sub(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"]+", lambda m: redact_uri(m.group(0)), text)
