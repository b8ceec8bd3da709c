"""Where a search's Optuna study is stored: journal files under the rootdir, a database, a proxy."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from ..workers import given
from .sources import lookup

#: Environment variable naming the search storage.
STORAGE_ENV = "MLEXP_SEARCH_STORAGE"

_DATABASE_URL = re.compile(r"^[A-Za-z][A-Za-z0-9]*(\+[A-Za-z0-9_]+)?://")


@dataclass(frozen=True)
class SearchSettings:
    """The storage of the session's studies."""

    #: A relational database URL (SQLAlchemy's form), or ``grpc://host:port`` for Optuna's
    #: gRPC storage proxy; ``None``: journal files under ``<rootdir>/.mlexp/optuna/``, one per
    #: study.
    storage: str | None = None
    #: Where ``storage`` came from, for messages.
    source: str = "default"
    #: The folder whose ``.mlexp/optuna`` holds the journal files; ``None``: the rootdir.
    journal_root: Path | None = None


def resolve_search(config: pytest.Config) -> SearchSettings:
    """``--mlexp-search-storage``, ``MLEXP_SEARCH_STORAGE``, ini or yaml ``search_storage``."""
    handed = given(config)
    journal_root = Path(handed.journal_root) if handed and handed.journal_root else None
    found = lookup(config, option="mlexp_search_storage", env=STORAGE_ENV, key="search_storage")
    if found is None:
        return SearchSettings(journal_root=journal_root)
    value, source = str(found[0]).strip(), found[1]
    if value.lower() in ("journal", "default"):
        return SearchSettings(source=source, journal_root=journal_root)
    if not _DATABASE_URL.match(value):
        from ..redaction import redact_text

        raise pytest.UsageError(
            f"{source}: invalid search storage {redact_text(value)!r}; expected a database URL "
            "such as postgresql+psycopg://user@host/optuna or sqlite:////abs/path/optuna.db, "
            "grpc://host:port for Optuna's gRPC storage proxy, or journal for journal files "
            "under .mlexp/optuna (the default)"
        )
    return SearchSettings(storage=value, source=source)
