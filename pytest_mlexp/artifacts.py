"""Artifact discovery: upload the files a run created or changed, safely and cheaply.

When a tracked item's run starts, the configured roots (default: the
rootdir) are snapshotted: a stat-only walk that prunes early and stats only
files whose names match the patterns. When the run ends (after teardown),
the roots are walked again and every new or changed file is uploaded,
together with the matching files in the item's ``tmp_path`` and every file
in ``mlflow_run.output_dir`` (both are fresh per item, so everything in them
is new). Files already uploaded with ``mlflow_run.log_artifact`` are skipped.

Safety: links are never followed out of a root, key and credential files
are never uploaded, and files over the size cap are skipped with a warning.
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import re
import stat
import tempfile
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .config import TrackingConfig
from .feature_options import bool_setting, format_size, list_setting, size_setting
from .warning_types import MlexpWarning

if TYPE_CHECKING:
    from .tracking import ExperimentRun

#: Uploaded when a root holds a new or changed file matching one of these.
DEFAULT_PATTERNS = (
    "*.h5", "*.pkl", "*.joblib", "*.model", "*.png", "*.json",
    "*.keras", "*.pt", "*.pth", "*.onnx", "*.safetensors", "*.pickle",
    "*.svg", "*.html", "*.csv",
)  # fmt: skip
#: Directories never walked, by name (virtualenvs are also found by their pyvenv.cfg).
PRUNED_DIRS = frozenset(
    {
        ".git", ".hg", ".svn", "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache",
        ".tox", ".nox", ".venv", "venv", "site-packages", "node_modules",
        ".ipynb_checkpoints", "mlruns", "mlartifacts",
    }
)  # fmt: skip
#: Never uploaded, whatever the patterns say.
SECRET_PATTERNS = (
    ".env", ".env.*", "*.pem", "*.key", "id_rsa*", "id_dsa*", "id_ecdsa*", "id_ed25519*",
    ".netrc", "*credentials*", "*.p12", "*.pfx", ".pgpass", ".pypirc",
)  # fmt: skip
DEFAULT_MAX_SIZE = 100 * 2**20

MODEL_SUFFIXES = frozenset(
    {".h5", ".pkl", ".joblib", ".model", ".keras", ".pt", ".pth", ".onnx", ".safetensors",
     ".pickle", ".ckpt", ".bin"}
)  # fmt: skip
PLOT_SUFFIXES = frozenset({".png", ".svg", ".html", ".jpg", ".jpeg", ".gif", ".pdf"})

OUTPUT_DIR = "output_dir"
TMP_PATH = "tmp_path"


def add_options(group: Any, parser: pytest.Parser) -> None:
    group.addoption(
        "--mlexp-artifacts",
        dest="mlexp_artifacts",
        metavar="on|off",
        default=None,
        help="Upload the files each run creates (default: on).",
    )
    group.addoption(
        "--mlexp-artifact-root",
        dest="mlexp_artifact_roots",
        metavar="DIR",
        action="append",
        default=None,
        help="Directory watched for new files (repeatable; default: the rootdir; none: "
        "only tmp_path and mlflow_run.output_dir).",
    )
    group.addoption(
        "--mlexp-artifact-pattern",
        dest="mlexp_artifact_patterns",
        metavar="GLOB",
        action="append",
        default=None,
        help="File pattern to upload (repeatable; replaces the default list).",
    )
    group.addoption(
        "--mlexp-artifact-exclude",
        dest="mlexp_artifact_exclude",
        metavar="GLOB",
        action="append",
        default=None,
        help="File or directory pattern never uploaded (repeatable).",
    )
    group.addoption(
        "--mlexp-artifact-max-size",
        dest="mlexp_artifact_max_size",
        metavar="SIZE",
        default=None,
        help="Larger files are not uploaded, with a warning (default: 100MB; 0: no limit).",
    )
    parser.addini("mlexp_artifacts", "Upload the files each run creates (on/off).", default="")
    parser.addini("mlexp_artifact_roots", "Directories watched for new files.", type="linelist")
    parser.addini("mlexp_artifact_patterns", "File patterns to upload.", type="linelist")
    parser.addini("mlexp_artifact_exclude", "Patterns never uploaded.", type="linelist")
    parser.addini("mlexp_artifact_max_size", "Size cap of discovered files.", default="")


@dataclass(frozen=True)
class DiscoverySettings:
    enabled: bool
    roots: tuple[Path, ...]
    patterns: tuple[str, ...]
    exclude: tuple[str, ...]
    max_size: int

    @classmethod
    def from_config(cls, config: pytest.Config, rootdir: Path) -> DiscoverySettings:
        roots: list[Path] = [rootdir]
        found = list_setting(config, "mlexp_artifact_roots", "artifact_roots")
        if found is not None:
            items, source = found
            base = Path.cwd() if source.startswith("--") else rootdir
            roots = [] if [i.lower() for i in items] == ["none"] else [base / i for i in items]
            for root in roots:
                if not root.is_dir():
                    raise pytest.UsageError(
                        f"{source}: artifact root {str(root)!r} is not a directory; give "
                        "existing directories, or none to watch only tmp_path and output_dir"
                    )
        patterns = list_setting(config, "mlexp_artifact_patterns", "artifact_patterns")
        exclude = list_setting(config, "mlexp_artifact_exclude", "artifact_exclude")
        return cls(
            enabled=bool_setting(config, "mlexp_artifacts", "artifacts", True),
            roots=tuple(dict.fromkeys(r.resolve() for r in roots)),
            patterns=tuple(patterns[0]) if patterns else DEFAULT_PATTERNS,
            exclude=tuple(exclude[0]) if exclude else (),
            max_size=size_setting(
                config, "mlexp_artifact_max_size", "artifact_max_size", DEFAULT_MAX_SIZE
            ),
        )


@dataclass
class Artifact:
    """A file to upload to the run: ``path`` on disk, into the run's ``artifact_path`` folder.

    ``root`` says where it was found: ``"output_dir"``, ``"tmp_path"``, a
    watched root's path, or anything a hook sets.
    """

    path: Path
    artifact_path: str | None
    root: str = ""


# -- scanning ----------------------------------------------------------------------

#: (mtime_ns, size, inode): a file whose triple changed was rewritten.
Stamp = tuple[int, int, int]


_SUFFIX_GLOB = re.compile(r"^\*\.[A-Za-z0-9_-]+$")


def _glob_regex(patterns: Iterable[str]) -> re.Pattern[str] | None:
    patterns = list(patterns)
    if not patterns:
        return None
    return re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in patterns), re.IGNORECASE)


class Scanner:
    """A stat-only walk of a directory tree, pruning early, matching names by pattern.

    Only files whose names match are stat'ed; ``*.ext`` patterns are a set lookup.
    """

    def __init__(
        self,
        patterns: Sequence[str] | None,
        exclude: Sequence[str] = (),
        pruned: Iterable[Path] = (),
    ) -> None:
        patterns = list(patterns) if patterns is not None else None
        self._match_all = patterns is None or "*" in patterns
        simple = [p for p in patterns or () if _SUFFIX_GLOB.match(p)]
        self._suffixes = frozenset(p[1:].lower() for p in simple)
        # Other patterns: with a "/" they match the path relative to the root, else the name.
        rest = [p for p in patterns or () if p not in simple]
        self._names = _glob_regex(p for p in rest if "/" not in p)
        self._paths = _glob_regex(p for p in rest if "/" in p)
        self._exclude = _glob_regex(exclude)
        self._secret = _glob_regex(SECRET_PATTERNS)
        self.pruned = {str(p) for p in pruned}

    def _excluded(self, name: str, relative: str) -> bool:
        return self._exclude is not None and bool(
            self._exclude.match(name) or self._exclude.match(relative)
        )

    def _wanted(self, name: str, relative: str) -> bool:
        if self._match_all:
            return True
        dot = name.rfind(".")
        if dot >= 0 and name[dot:].lower() in self._suffixes:
            return True
        return bool(
            (self._names is not None and self._names.match(name))
            or (self._paths is not None and self._paths.match(relative))
        )

    def scan(self, root: Path) -> dict[str, Stamp]:
        """Every wanted regular file under ``root`` and its stamp."""
        found: dict[str, Stamp] = {}
        real_root = os.path.realpath(root)
        stack = [(str(root), "")]
        excluded, pruned, wanted = self._excluded, self.pruned, self._wanted
        has_exclude = self._exclude is not None
        while stack:
            directory, prefix = stack.pop()
            try:
                with os.scandir(directory) as it:
                    entries = list(it)
            except OSError:
                continue
            if prefix and any(e.name == "pyvenv.cfg" for e in entries):
                continue  # a virtualenv
            for entry in entries:
                name = entry.name
                try:
                    if entry.is_dir(follow_symlinks=False):
                        if name in PRUNED_DIRS or entry.path in pruned:
                            continue
                        if has_exclude and excluded(name, prefix + name):
                            continue
                        stack.append((entry.path, prefix + name + "/"))
                        continue
                    if not wanted(name, prefix + name):
                        continue
                    if has_exclude and excluded(name, prefix + name):
                        continue
                    if self._secret is not None and self._secret.match(name):
                        continue
                    if entry.is_symlink():
                        # Never follow a link out of the root.
                        target = os.path.realpath(entry.path)
                        if not target.startswith(real_root + os.sep):
                            continue
                        info = os.stat(entry.path)
                    else:
                        info = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                if stat.S_ISREG(info.st_mode):
                    found[entry.path] = (info.st_mtime_ns, info.st_size, info.st_ino)
        return found


def changed(before: dict[str, Stamp], after: dict[str, Stamp]) -> list[str]:
    """Files of ``after`` that are new or whose stamp differs, in walk order."""
    return [path for path, stamp in after.items() if before.get(path) != stamp]


def is_secret(path: Path) -> bool:
    regex = _glob_regex(SECRET_PATTERNS)
    return regex is not None and bool(regex.match(path.name))


def kind_folder(path: Path) -> str:
    """``models``, ``plots`` or ``files``: where a file lands in the run's artifacts."""
    suffix = path.suffix.lower()
    if suffix in MODEL_SUFFIXES:
        return "models"
    if suffix in PLOT_SUFFIXES:
        return "plots"
    return "files"


# -- xdist attribution ---------------------------------------------------------------


class Concurrency:
    """Tells whether another xdist worker ran a tracked item while this one ran.

    Each worker keeps a small marker file ``<worker> = "<active> <changes>"``
    in a directory shared by the test run; a run whose window saw another
    worker active, or its change counter move, cannot be sure who wrote a new
    file in a shared root.
    """

    def __init__(self, directory: Path, worker: str) -> None:
        self.directory = directory
        self.worker = worker
        self._changes = 0
        directory.mkdir(parents=True, exist_ok=True)

    def _write(self, active: bool) -> None:
        self._changes += 1
        marker = self.directory / self.worker
        temporary = marker.with_name(f".{self.worker}.tmp")
        temporary.write_text(f"{int(active)} {self._changes}")
        os.replace(temporary, marker)

    def _others(self) -> dict[str, tuple[bool, str]]:
        states = {}
        for marker in self.directory.iterdir():
            if marker.name.startswith(".") or marker.name == self.worker:
                continue
            try:
                active, _, changes = marker.read_text().partition(" ")
            except OSError:
                continue
            states[marker.name] = (active == "1", changes)
        return states

    def close(self) -> None:
        """Remove this worker's marker, and the directory once every worker has."""
        with contextlib.suppress(OSError):
            (self.directory / self.worker).unlink()
        with contextlib.suppress(OSError):
            self.directory.rmdir()

    def begin(self) -> dict[str, tuple[bool, str]]:
        self._write(True)
        return self._others()

    def end(self, at_begin: dict[str, tuple[bool, str]]) -> bool:
        """Finish the window; True when another worker ran an item during it."""
        now = self._others()
        self._write(False)
        if any(active for active, _ in at_begin.values()):
            return True
        return any(
            active or at_begin.get(worker, (False, "0"))[1] != changes
            for worker, (active, changes) in now.items()
        )


# -- the plugin ------------------------------------------------------------------------


@dataclass
class _Window:
    snapshots: dict[Path, dict[str, Stamp]] = field(default_factory=dict)
    others: dict[str, tuple[bool, str]] | None = None


_WINDOW_KEY = pytest.StashKey[_Window]()


def configure(config: pytest.Config, settings: TrackingConfig) -> None:
    """Register artifact discovery (it decides per run whether it is switched on)."""
    discovery = DiscoverySettings.from_config(config, settings.rootdir)
    config.pluginmanager.register(ArtifactDiscovery(config, discovery, settings), "mlexp-artifacts")


class ArtifactDiscovery:
    """Plugin: snapshot when a run starts, find and upload new files when it ends."""

    def __init__(
        self, config: pytest.Config, settings: DiscoverySettings, tracking: TrackingConfig
    ) -> None:
        self.config = config
        self.settings = settings
        self.tracking = tracking
        self._concurrency = _concurrency(config)
        self._output_base: Path | None = None

    def _store_dir(self) -> Path | None:
        """The embedded store's artifact folder (``<rootdir>/mlruns``), when local."""
        location = self.tracking.artifact_location
        if not location or not location.startswith("file://"):
            return None
        from urllib.parse import unquote, urlsplit

        return Path(unquote(urlsplit(location).path)).resolve()

    def pytest_ignore_collect(self, collection_path: Path) -> bool | None:
        # Logged code (code/experiment_*.py) must not be collected from the store.
        store = self._store_dir()
        return True if store is not None and collection_path == store else None

    def _pruned(self) -> set[Path]:
        """Directories never part of a watched root: pytest's temp dirs, the tracking store."""
        pruned = set()
        basetemp = self.config.option.basetemp
        if basetemp:
            pruned.add(Path(basetemp).resolve())
            if hasattr(self.config, "workerinput"):
                # xdist workers' basetemps are siblings: <controller basetemp>/<worker>.
                pruned.add(Path(basetemp).resolve().parent)
        factory = getattr(self.config, "_tmp_path_factory", None)
        if factory is not None:
            pruned.add(factory.getbasetemp().resolve())
        store = self._store_dir()
        if store is not None:
            pruned.add(store)
        return pruned

    def _scanner(self, patterns: Sequence[str] | None) -> Scanner:
        return Scanner(patterns, self.settings.exclude, self._pruned())

    # -- run start: output dir and snapshot ---------------------------------------------

    def pytest_mlexp_run_start(self, item: pytest.Item, run: ExperimentRun) -> None:
        run.output_location = self._output_base_dir() / f"{_slug(item.name)}-{run.run_id[:8]}"
        if not self.settings.enabled:
            return
        window = _Window()
        scanner = self._scanner(self.settings.patterns)
        for root in self.settings.roots:
            window.snapshots[root] = scanner.scan(root)
        if self._concurrency is not None:
            window.others = self._concurrency.begin()
        item.stash[_WINDOW_KEY] = window

    def _output_base_dir(self) -> Path:
        """``<basetemp>/mlexp-outputs``: kept and cleaned by pytest like ``tmp_path``."""
        if self._output_base is None:
            factory = getattr(self.config, "_tmp_path_factory", None)
            if factory is not None:
                base = factory.getbasetemp() / "mlexp-outputs"
            else:  # -p no:tmpdir
                base = Path(tempfile.mkdtemp(prefix="mlexp-outputs-"))
            self._output_base = base
        return self._output_base

    # -- run ending: diff and upload ------------------------------------------------------

    def pytest_mlexp_run_ending(
        self, item: pytest.Item, run: ExperimentRun, status: str, outcome: str
    ) -> None:
        notes: list[str] = []
        artifacts = self.discover(item, run, notes)
        self.config.hook.pytest_mlexp_artifacts(item=item, run=run, artifacts=artifacts)
        self._upload(item, run, artifacts, notes)
        # Warn last, so that filterwarnings=error cannot stop an upload half-way.
        for note in notes:
            warnings.warn(MlexpWarning(note), stacklevel=1)

    def discover(self, item: pytest.Item, run: ExperimentRun, notes: list[str]) -> list[Artifact]:
        """The files this run made, each with its artifact folder."""
        found: list[tuple[Path, Path, str]] = []  # (file, its root, root label)
        output_dir = run.output_location
        if output_dir is not None and output_dir.is_dir():
            for path in self._scanner(None).scan(output_dir):
                found.append((Path(path), output_dir, OUTPUT_DIR))
        window = item.stash.get(_WINDOW_KEY, None)
        if window is not None:
            tmp_path = _tmp_path(item)
            if tmp_path is not None and tmp_path.is_dir():
                for path in self._scanner(self.settings.patterns).scan(tmp_path):
                    found.append((Path(path), tmp_path, TMP_PATH))
            scanner = self._scanner(self.settings.patterns)
            shared: list[tuple[Path, Path, str]] = []
            for root, before in window.snapshots.items():
                for path in changed(before, scanner.scan(root)):
                    shared.append((Path(path), root, str(root)))
            found.extend(shared)
            if shared and window.others is not None and self._concurrency is not None:
                if self._concurrency.end(window.others):
                    notes.append(
                        f"{item.nodeid}: {len(shared)} new file(s) in a shared artifact root "
                        f"appeared while another xdist worker ran an experiment, e.g. "
                        f"{shared[0][0]}; they are uploaded to this run but may belong to the "
                        "other one. Save outputs in mlflow_run.output_dir or tmp_path to "
                        "attribute them for certain."
                    )
            elif window.others is not None and self._concurrency is not None:
                self._concurrency.end(window.others)
        return self._as_artifacts(found, run)

    def _as_artifacts(
        self, found: list[tuple[Path, Path, str]], run: ExperimentRun
    ) -> list[Artifact]:
        logged = run.logged_paths
        artifacts: list[Artifact] = []
        taken: set[str] = set()
        seen: set[Path] = set()
        for path, root, label in found:
            real = path.resolve()
            if real in seen or real in logged or any(p in logged for p in real.parents):
                continue
            seen.add(real)
            relative = path.relative_to(root)
            folder = kind_folder(path)
            parent = relative.parent.as_posix()
            if parent == folder or parent.startswith(folder + "/"):  # plots/roc.png: no plots/plots
                parent = parent[len(folder) + 1 :] or "."
            artifact_path = folder if parent == "." else f"{folder}/{parent}"
            destination = f"{artifact_path}/{path.name}"
            if destination in taken:  # the same name in two roots
                artifact_path = f"{folder}/{self._root_name(label)}" + (
                    "" if parent == "." else f"/{parent}"
                )
            taken.add(f"{artifact_path}/{path.name}")
            artifacts.append(Artifact(path=path, artifact_path=artifact_path, root=label))
        return artifacts

    def _root_name(self, label: str) -> str:
        if label in (OUTPUT_DIR, TMP_PATH):
            return label
        if Path(label) == self.tracking.rootdir.resolve():
            return "rootdir"
        return _slug(Path(label).name)

    def _upload(
        self, item: pytest.Item, run: ExperimentRun, artifacts: list[Artifact], notes: list[str]
    ) -> None:
        for artifact in artifacts:
            path = Path(artifact.path)
            if is_secret(path):
                continue
            try:
                size = path.stat().st_size
            except OSError:
                continue
            cap = self.settings.max_size
            if cap and size > cap:
                notes.append(
                    f"{item.nodeid}: {path} is {format_size(size)}, over the artifact size cap "
                    f"of {format_size(cap)} (mlexp_artifact_max_size); it is not uploaded. "
                    "Raise the cap with --mlexp-artifact-max-size, or log it yourself."
                )
                continue
            try:
                run.log_artifact(path, artifact.artifact_path)
            except Exception as exc:
                notes.append(f"{item.nodeid}: could not upload {path}: {type(exc).__name__}: {exc}")

    def pytest_sessionfinish(self) -> None:
        if self._concurrency is not None:
            self._concurrency.close()


def _concurrency(config: pytest.Config) -> Concurrency | None:
    """Marker files shared by the workers of one xdist test run, when there are several."""
    workerinput = getattr(config, "workerinput", None)
    if workerinput is None or int(workerinput.get("workercount", 1)) < 2:
        return None
    directory = Path(tempfile.gettempdir()) / f"mlexp-xdist-{workerinput['testrunuid']}"
    return Concurrency(directory, str(workerinput["workerid"]))


def _tmp_path(item: pytest.Item) -> Path | None:
    funcargs = getattr(item, "funcargs", None) or {}
    value = funcargs.get("tmp_path")
    return value.resolve() if isinstance(value, Path) else None


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-")[:80] or "run"
