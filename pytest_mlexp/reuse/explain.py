"""Why an item executed although it ran before: which part of its fingerprint changed."""

from __future__ import annotations

from collections.abc import Mapping

from ..backend import tags as T
from .fingerprint import Fingerprint, parse_files

#: Most file names an explanation lists.
_MAX_NAMED = 3


def changed_parts(current: Fingerprint, before: Mapping[str, str]) -> str:
    """``code changed (helpers_a.py)``, ``inputs changed (data/train.csv)``...; ``before``: tags."""
    reasons = []
    for part in ("params", "code", "inputs", "env"):
        old = before.get(f"{T.FINGERPRINT_PREFIX}{part}")
        if old == current.parts.get(part):
            continue
        if part == "code":
            files = _changed_files(current.code_files, before.get(T.FINGERPRINT_CODE_FILES))
            reasons.append(f"code changed{files}")
        elif part == "inputs":
            files = _changed_files(current.input_files, before.get(T.FINGERPRINT_INPUT_FILES))
            reasons.append(f"inputs changed{files}")
        elif part == "env":
            reasons.append("environment changed (Python or installed packages)")
        else:
            reasons.append("params changed")
    return ", ".join(reasons) or "fingerprint changed"


def _changed_files(current: Mapping[str, str], before_text: str | None) -> str:
    """`` (a.py, b.py)``: files added, removed or edited since; ``""`` if unknown."""
    if before_text is None:
        return ""
    before = parse_files(before_text)
    now = {name: digest[:12] for name, digest in current.items()}
    names = sorted(name for name in now.keys() | before.keys() if now.get(name) != before.get(name))
    if not names:
        return ""
    shown = ", ".join(names[:_MAX_NAMED])
    more = f" and {len(names) - _MAX_NAMED} more" if len(names) > _MAX_NAMED else ""
    return f" ({shown}{more})"
