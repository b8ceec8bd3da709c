"""A run's fingerprint: what its result depends on, hashed, one tag per part.

The parts:

- ``test``: the test id;
- ``params``: the item's parametrize values (indirect ones and seeds included);
- ``code``: the content of the experiment module, the conftests that apply to
  it, the project modules it imports (transitively, as lineage finds them when
  collection ends);
- ``inputs``: the content of the declared input files;
- ``env``: the Python version and the installed distributions with their versions.

Equal fingerprints mean the same computation: ``--mlexp-reuse`` then copies the
earlier run's results instead of executing the item again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import platform
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from ..backend import tags as T
from ..runs.markers import marker_options
from .inputs import InputFile, InputHashes, display_name, expand
from .markers import marker_inputs

#: The parts of a fingerprint, in the order explanations name them.
PARTS = ("test", "params", "code", "inputs", "env")
#: Longest list of files kept in a tag (MLflow allows 8000 characters).
_MAX_FILES_TAG = 6000
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


class UnstableValue(ValueError):
    """A value whose text changes from one session to the next (an object's address)."""


@dataclass(frozen=True)
class Fingerprint:
    """The hash of every part of what a run depends on, and the whole."""

    #: The whole fingerprint, or ``""`` when a part could not be computed.
    digest: str
    #: Part name -> its hash.
    parts: dict[str, str]
    #: Code and input files (as named in messages) -> their content hashes.
    code_files: dict[str, str] = field(default_factory=dict)
    input_files: dict[str, str] = field(default_factory=dict)
    #: Why the fingerprint could not be computed, if it could not.
    problem: str | None = None
    #: The declared input files, hashed (logged as the run's datasets).
    inputs: tuple[InputFile, ...] = ()

    def tags(self) -> dict[str, str]:
        """The run's tags: ``mlexp.fingerprint`` and one ``mlexp.fingerprint.<part>`` each."""
        tags = {f"{T.FINGERPRINT_PREFIX}{part}": value for part, value in self.parts.items()}
        if self.digest:
            tags[T.FINGERPRINT] = self.digest
        for tag, files in (
            (T.FINGERPRINT_CODE_FILES, self.code_files),
            (T.FINGERPRINT_INPUT_FILES, self.input_files),
        ):
            text = files_text(files)
            if text and len(text) <= _MAX_FILES_TAG:
                tags[tag] = text
        return tags


def files_text(files: Mapping[str, str]) -> str:
    """``name=hash`` a line, sorted: how the files of a part are kept in a tag."""
    return "\n".join(f"{name}={digest[:12]}" for name, digest in sorted(files.items()))


def parse_files(text: str) -> dict[str, str]:
    """The inverse of ``files_text``."""
    pairs = (line.rpartition("=") for line in text.splitlines() if "=" in line)
    return {name: digest for name, _, digest in pairs}


class Fingerprinter:
    """Computes the fingerprints of one process's items; every hash is cached."""

    def __init__(self, config: pytest.Config, rootdir: Path, inputs: Sequence[str]) -> None:
        self.config = config
        self.rootdir = rootdir.resolve()
        self.session_inputs = tuple(inputs)
        self.hashes = InputHashes(self.rootdir)
        #: Module key -> its code files (name -> hash), fixed when collection ended.
        self._code: dict[str, dict[str, str]] = {}
        self._env: str | None = None

    def prepare(self, items: Sequence[pytest.Item]) -> None:
        """Fix each module's code files now, when collection ended, the same in every process.

        Later, experiments' bodies import more modules; which ones depends on the
        order items ran in, so the code part would change with the order.
        """
        for item in items:
            with contextlib.suppress(OSError):  # met again, and reported, when the item runs
                self._code_files(item)

    def of(self, item: pytest.Item) -> Fingerprint:
        """The item's fingerprint; ``problem`` says why it could not be computed."""
        parts: dict[str, str] = {"test": _hash(item.nodeid)}
        problem = None
        callspec = getattr(item, "callspec", None)
        try:
            params = callspec.params if callspec is not None else {}
            parts["params"] = _hash(
                {str(k): stable_value(v, str(k)) for k, v in sorted(params.items())}
            )
        except UnstableValue as exc:
            problem = str(exc)
        # The params file is not code: the item's values from it are its params above, so a
        # value added to a grid runs the new cell only.
        try:
            code_files = self._code_files(item)
        except OSError as exc:
            code_files = {}
            problem = problem or f"could not read a code file: {exc}"
        parts["code"] = _hash(code_files)
        input_files: dict[str, str] = {}
        files: list[InputFile] = []
        try:
            files, unmatched = self.inputs(item)
            input_files = {f.name: f.digest for f in files}
            parts["inputs"] = _hash({"files": input_files, "unmatched": unmatched})
        except OSError as exc:
            problem = problem or f"could not read a declared input: {exc}"
        parts["env"] = self._environment()
        digest = "" if problem else _hash(parts, length=32)
        return Fingerprint(digest, parts, code_files, input_files, problem, tuple(files))

    def inputs(self, item: pytest.Item) -> tuple[list[InputFile], list[str]]:
        """The item's declared input files (session-wide and its marker's), hashed."""
        patterns = self.declared(item)
        if not patterns:
            return [], []
        paths, unmatched = expand(patterns, self.rootdir)
        return self.hashes.files(paths), unmatched

    def declared(self, item: pytest.Item) -> tuple[str, ...]:
        where = f"@pytest.mark.mlexp on {item.nodeid}"
        own = marker_inputs(marker_options(item).get("inputs"), where)
        return tuple(dict.fromkeys((*self.session_inputs, *own)))

    def _code_files(self, item: pytest.Item) -> dict[str, str]:
        key = _module_key(item)
        if key not in self._code:
            from ..lineage.code import item_code_files

            files = item_code_files(self.config, item, self.rootdir)
            self._code[key] = {display_name(f, self.rootdir): _file_hash(f) for f in files}
        return self._code[key]

    def _environment(self) -> str:
        if self._env is None:
            from ..lineage.environment import requirements

            pins = [line for line in requirements().splitlines() if not line.startswith("#")]
            self._env = _hash({"python": platform.python_version(), "distributions": pins})
        return self._env


def stable_value(value: Any, name: str) -> Any:
    """``value`` as JSON that is the same in every session, or ``UnstableValue``."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, list | tuple):
        return [stable_value(v, name) for v in value]
    if isinstance(value, Mapping):
        return {str(k): stable_value(v, name) for k, v in sorted(value.items(), key=str)}
    if isinstance(value, set | frozenset):
        return sorted((stable_value(v, name) for v in value), key=repr)
    qualname = getattr(value, "__qualname__", None)
    if isinstance(qualname, str) and (callable(value) or isinstance(value, ModuleType)):
        return f"{getattr(value, '__module__', '')}.{qualname}"
    text = repr(value)
    if _ADDRESS.search(text):
        raise UnstableValue(
            f"param {name!r} has no stable value ({text[:80]}); give its class a __repr__ "
            "that shows what it holds, or parametrize with plain values"
        )
    return f"{type(value).__module__}.{type(value).__qualname__}:{text}"


def _hash(value: Any, *, length: int = 16, full: bool = False) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return digest if full else digest[:length]


_FILE_HASHES: dict[tuple[Path, int, int], str] = {}


def _file_hash(path: Path) -> str:
    """sha256 of a code file, cached in this process by (path, size, mtime)."""
    stat = path.stat()
    key = (path, stat.st_size, stat.st_mtime_ns)
    if key not in _FILE_HASHES:
        _FILE_HASHES[key] = hashlib.sha256(path.read_bytes()).hexdigest()
    return _FILE_HASHES[key]


def _module_key(item: pytest.Item) -> str:
    module = getattr(item, "module", None)
    return module.__name__ if isinstance(module, ModuleType) else str(item.path)
