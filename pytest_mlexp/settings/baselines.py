"""``--mlexp-baseline``: which earlier runs a session's metrics are compared with.

A value type of the settings; the gate's ``baselines`` finds the runs it selects.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..backend import tags as T
from ..backend.search import NOT_REPRODUCTION

ACCEPTED_SPECS = (
    "latest (the latest passed run of each test from an earlier session), "
    "branch:NAME (the same, on git branch NAME, from a clean tree; branch:NAME:dirty also "
    "takes runs made with uncommitted changes), promoted (runs promoted with "
    "--mlexp-promote-baseline or `mlexp promote`), tag:KEY=VALUE (runs with that tag), "
    "session:ID (runs of that session), run:ID[,ID...] (those runs)"
)

#: The qualifier of ``branch:NAME:dirty``.
DIRTY = "dirty"

_SAFE_VALUE = re.compile(r"^[^'\"\\`]+$")


@dataclass(frozen=True)
class BaselineSpec:
    """A parsed ``--mlexp-baseline`` value."""

    kind: str
    value: str = ""
    key: str = ""
    #: ``branch:NAME:dirty``: also runs made from a tree with uncommitted changes.
    dirty: bool = False

    def __str__(self) -> str:
        if self.kind in ("latest", "promoted"):
            return self.kind
        if self.kind == "tag":
            return f"tag:{self.key}={self.value}"
        return f"{self.kind}:{self.value}" + (f":{DIRTY}" if self.dirty else "")

    @property
    def run_ids(self) -> list[str]:
        return [part.strip() for part in self.value.split(",") if part.strip()]

    def filter_string(self, session_id: str) -> str:
        """The ``search_runs`` filter selecting candidate runs (any test id)."""
        clauses = ["attributes.status = 'FINISHED'", f"tags.`{T.OUTCOME}` = 'passed'"]
        if self.kind == "session":
            clauses.append(f"tags.`{T.SESSION_ID}` = '{self.value}'")
        else:
            # Never compare a session with itself (also covers repeated CI shards).
            clauses.append(f"tags.`{T.SESSION_ID}` != '{session_id}'")
        if self.kind in ("latest", "branch"):
            # A run of ``mlexp reproduce`` checks an earlier run: it never becomes the baseline.
            clauses.append(NOT_REPRODUCTION)
        if self.kind == "branch":
            clauses.append(f"tags.`{T.GIT_BRANCH}` = '{self.value}'")
            if not self.dirty:
                # A branch's baseline is its code as committed: not a run with local edits.
                clauses.append(f"tags.`{T.GIT_DIRTY}` = 'false'")
        elif self.kind == "promoted":
            clauses.append(f"tags.`{T.PROMOTED}` = 'true'")
        elif self.kind == "tag":
            clauses.append(f"tags.`{self.key}` = '{self.value}'")
        return " and ".join(clauses)


def parse_spec(text: str) -> BaselineSpec:
    """Parse ``latest``, ``branch:main[:dirty]``, ``promoted``, ``tag:K=V``, ``session:ID``..."""
    text = text.strip()
    if text in ("latest", "promoted"):
        return BaselineSpec(text)
    kind, sep, value = text.partition(":")
    value = value.strip()
    if not sep or kind not in ("branch", "tag", "session", "run") or not value:
        raise ValueError(f"unknown baseline {text!r}")
    if not _SAFE_VALUE.match(value):
        raise ValueError(f"baseline {text!r} may not contain quotes, backquotes or backslashes")
    if kind == "tag":
        key, sep, tag_value = value.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"baseline {text!r} needs tag:KEY=VALUE")
        return BaselineSpec("tag", tag_value.strip(), key.strip())
    if kind == "branch":
        # A git branch name cannot hold ":", so a qualifier after one is never part of it.
        name, sep, qualifier = value.partition(":")
        if (sep and qualifier != DIRTY) or not name:
            raise ValueError(f"baseline {text!r}: write branch:NAME or branch:NAME:{DIRTY}")
        return BaselineSpec(kind, name, dirty=bool(sep))
    return BaselineSpec(kind, value)


def is_safe_value(text: str) -> bool:
    """Whether ``text`` can go into a search filter as is (no quotes, backquotes, backslashes)."""
    return bool(_SAFE_VALUE.match(text))
