"""The discovery plugin: snapshot the roots when a run starts, upload what is new when it ends."""

from __future__ import annotations

import re
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from ..warning_types import MlexpWarning
from ..workers import is_xdist_worker
from . import Artifact
from .concurrency import concurrency_for
from .scanner import Scanner, Stamp, changed, is_secret, kind_folder

if TYPE_CHECKING:
    from ..runs.experiment_run import ExperimentRun
    from ..settings import Settings

OUTPUT_DIR = "output_dir"
TMP_PATH = "tmp_path"


@dataclass
class _Window:
    snapshots: dict[Path, dict[str, Stamp]] = field(default_factory=dict)
    others: dict[str, tuple[bool, str]] | None = None


_WINDOW_KEY = pytest.StashKey[_Window]()


def output_location(request: pytest.FixtureRequest, run: ExperimentRun) -> Path:
    """Where ``mlflow_run.output_dir`` is made: ``<basetemp>/mlexp-outputs/<name>-<run id>``.

    Kept and cleaned by pytest like ``tmp_path``, through the ``tmp_path_factory`` fixture.
    """
    try:
        factory = request.getfixturevalue("tmp_path_factory")
        base = Path(factory.getbasetemp()) / "mlexp-outputs"
    except pytest.FixtureLookupError:  # -p no:tmpdir
        base = Path(tempfile.mkdtemp(prefix="mlexp-outputs-"))
    return base / f"{_slug(request.node.name)}-{run.run_id[:8]}"


class ArtifactDiscovery:
    """Registered as ``mlexp-artifacts``: snapshot at a run's start, upload new files at its end."""

    def __init__(self, config: pytest.Config, settings: Settings) -> None:
        self.config = config
        self.settings = settings.artifacts
        self.rootdir = settings.tracking.rootdir
        self._concurrency = concurrency_for(config)
        self._pruned = self._pruned_dirs(settings)

    def _pruned_dirs(self, settings: Settings) -> set[Path]:
        """Directories never part of a watched root: pytest's temp dirs, the tracking store."""
        pruned = set()
        basetemp = self.config.getoption("basetemp")
        if basetemp:
            pruned.add(Path(basetemp).resolve())
            if is_xdist_worker(self.config):
                # xdist workers' basetemps are siblings: <controller basetemp>/<worker>.
                pruned.add(Path(basetemp).resolve().parent)
        store = settings.tracking.store_artifact_dir
        if store is not None:
            pruned.add(store)
        return pruned

    def _scanner(self, patterns: Sequence[str] | None) -> Scanner:
        return Scanner(patterns, self.settings.exclude, self._pruned)

    # -- run start: snapshot -------------------------------------------------------------

    def pytest_mlexp_run_start(self, item: pytest.Item, run: ExperimentRun) -> None:
        if not self.settings.enabled:
            return
        window = _Window()
        scanner = self._scanner(self.settings.patterns)
        for root in self.settings.roots:
            window.snapshots[root] = scanner.scan(root)
        if self._concurrency is not None:
            window.others = self._concurrency.begin()
        item.stash[_WINDOW_KEY] = window

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
        if Path(label) == self.rootdir.resolve():
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


def _tmp_path(item: pytest.Item) -> Path | None:
    funcargs = getattr(item, "funcargs", None) or {}
    value = funcargs.get("tmp_path")
    return value.resolve() if isinstance(value, Path) else None


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-")[:80] or "run"


def format_size(size: int) -> str:
    for unit, factor in (("GB", 2**30), ("MB", 2**20), ("KB", 2**10)):
        if size >= factor:
            return f"{size / factor:.1f} {unit}"
    return f"{size} B"
