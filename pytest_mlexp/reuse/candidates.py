"""The runs an item may reuse: the newest earlier run whose fingerprint equals the item's.

From anyone (teammates on a shared server, other branches, other clones):
equal fingerprints mean the same computation, wherever it ran. One paged
search, newest first, covers the usual case (the previous sessions' runs);
an item that found no match there is looked up by its fingerprint tag alone.
When no run matches, the explanation compares the item with its *nearest*
earlier run: the one that differs in the fewest parts, then files, newest first.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..backend import tags as T
from ..backend.search import NOT_REPRODUCTION, PAGE_SIZE, search_runs, tag_equals
from .fingerprint import parse_files

if TYPE_CHECKING:
    from mlflow.entities import Run

#: Why an item with no earlier run executed: counted, not listed, by the terminal.
NEW = "no earlier run"
#: Outcomes of a run whose results can be reused (a reused run's own included).
REUSABLE_OUTCOMES = frozenset({"passed", T.OUTCOME_REUSED})
_REGRESSED = "regressed"
#: The fingerprint's parts an explanation compares, in the order it names them.
COMPARED_PARTS = ("params", "code", "inputs", "env")
#: Runs read when an item's own fingerprint or test id is looked up alone.
_LOOKUP_PAGE = 20
_FINGERPRINTED = f"tags.`{T.FINGERPRINT}` IS NOT NULL and {NOT_REPRODUCTION}"


@dataclass
class Decision:
    """What reuse decided for one item (``reuse.keys.DECISION_KEY``)."""

    #: The run whose results the item's run copies, or ``""`` when the item executes.
    reused_from: str = ""
    #: Why the item executes although it ran before (``code changed (helpers.py)``).
    reason: str = ""
    #: The run copied from (the newest matching one), when reused.
    source: Run | None = None


#: A test as reuse looks it up: (experiment id, node id).
Test = tuple[str, str]


@dataclass
class Candidates:
    """Per test: the newest earlier run with the same fingerprint, else its nearest run."""

    #: The newest earlier run whose fingerprint equals the test's now.
    matching: dict[Test, Run] = field(default_factory=dict)
    #: When none matches: the earlier run differing in the fewest parts, then files.
    nearest: dict[Test, Run] = field(default_factory=dict)


def find_candidates(
    client: Any, wanted: Mapping[Test, Mapping[str, str]], session_id: str
) -> Candidates:
    """For each test -> its fingerprint's tags now, the run it may reuse, or its nearest run.

    ``wanted`` maps each test to ``Fingerprint.tags()`` (the digest and one hash
    per part). One search, newest first, a page of twice the tests; then one
    search by fingerprint (and, for an explanation, one by test id) for each
    test that page left without a match, unless the page held every earlier run.
    Runs of this session (other xdist workers), runs still RUNNING, attempts
    superseded by a rerun and runs of ``mlexp reproduce`` are passed over.
    """
    found = Candidates()
    if not wanted:
        return found
    ids = sorted({experiment_id for experiment_id, _ in wanted})
    page_size = min(PAGE_SIZE, max(100, 2 * len(wanted)))
    seen: dict[Test, list[Run]] = {}
    count = 0
    for run in _newest_first(client, ids, _FINGERPRINTED, page_size):
        count += 1
        if _eligible(run, session_id):
            _consider(found, seen, wanted, run)
        if count >= page_size or len(found.matching) == len(wanted):
            break
    whole_history = count < page_size
    for test, tags in wanted.items():
        if test in found.matching:
            continue
        digest = tags.get(T.FINGERPRINT, "")
        if not whole_history and digest:
            query = f"{tag_equals(T.FINGERPRINT, digest)} and {NOT_REPRODUCTION}"
            for run in _earlier(client, [test[0]], query, session_id):
                if _key(run) == test:
                    found.matching[test] = run
                    break
            if test in found.matching:
                continue
            if test not in seen:
                query = f"{tag_equals(T.NODEID, test[1])} and {_FINGERPRINTED}"
                seen[test] = list(_earlier(client, [test[0]], query, session_id))
        if seen.get(test):
            found.nearest[test] = min(seen[test], key=lambda run: distance(tags, run))
    return found


def distance(current: Mapping[str, str], run: Run) -> tuple[int, int]:
    """How far ``run`` is from ``current`` (fingerprint tags): parts, then files, that differ."""
    before = run.data.tags
    parts = sum(
        before.get(T.FINGERPRINT_PREFIX + part) != current.get(T.FINGERPRINT_PREFIX + part)
        for part in COMPARED_PARTS
    )
    files = 0
    for tag in (T.FINGERPRINT_CODE_FILES, T.FINGERPRINT_INPUT_FILES):
        now, then = parse_files(current.get(tag, "")), parse_files(before.get(tag, ""))
        files += sum(now.get(name) != then.get(name) for name in now.keys() | then.keys())
    return parts, files


def unusable(run: Run) -> str | None:
    """Why a matching run's results must not be reused (failed, killed, regressed...), or None."""
    tags = run.data.tags
    outcome = tags.get(T.OUTCOME, "")
    status = str(run.info.status)
    if tags.get(T.VERDICT) == _REGRESSED:
        return "its latest matching run regressed"
    if status != "FINISHED":
        word = {"FAILED": "failed", "KILLED": "was killed"}.get(status, status.lower())
        return f"its latest matching run {outcome if outcome in ('xfailed', 'error') else word}"
    if outcome not in REUSABLE_OUTCOMES:
        return f"its latest matching run {outcome or 'has no outcome'}"
    return None


def original(run: Run) -> str:
    """The run that executed: a reused run points at its own source."""
    return run.data.tags.get(T.REUSED_FROM) or str(run.info.run_id)


# -- internals ------------------------------------------------------------------------------


def _key(run: Run) -> Test:
    return (str(run.info.experiment_id), run.data.tags.get(T.NODEID, ""))


def _newest_first(client: Any, ids: list[str], query: str, page_size: int) -> Iterator[Run]:
    return search_runs(
        client, ids, query, order_by=["attributes.start_time DESC"], page_size=page_size
    )


def _earlier(client: Any, ids: list[str], query: str, session_id: str) -> Iterator[Run]:
    """The first ``_LOOKUP_PAGE`` runs matching ``query``, newest first, an item may look at."""
    runs = _newest_first(client, ids, query, _LOOKUP_PAGE)
    for run, _ in zip(runs, range(_LOOKUP_PAGE), strict=False):
        if _eligible(run, session_id):
            yield run


def _eligible(run: Run, session_id: str) -> bool:
    """Not this session's, not RUNNING, not an attempt a rerun superseded."""
    tags = run.data.tags
    if tags.get(T.SESSION_ID) == session_id or run.info.status in ("RUNNING", "SCHEDULED"):
        return False
    return tags.get(T.OUTCOME) != T.OUTCOME_RERUN


def _consider(
    found: Candidates,
    seen: dict[Test, list[Run]],
    wanted: Mapping[Test, Mapping[str, str]],
    run: Run,
) -> None:
    key = _key(run)
    tags = wanted.get(key)
    if tags is None or key in found.matching:
        return
    digest = tags.get(T.FINGERPRINT)
    if digest and run.data.tags.get(T.FINGERPRINT) == digest:
        found.matching[key] = run
    else:
        seen.setdefault(key, []).append(run)
