"""Lineage: the source, git state and environment behind every run, logged when it starts.

- ``code``: the experiment module, the ``conftest.py`` files that apply to
  it, and the project modules it imports (transitively), under artifact path
  ``code/`` with their paths relative to the rootdir.
- ``git``: MLflow's ``mlflow.source.git.*`` tags, ``mlexp.git.dirty``, and
  ``git diff HEAD`` as ``lineage/git_diff.patch`` when the tree is dirty.
- ``env``: Python version, platform, pytest command line and random seed as
  tags; the installed packages as ``lineage/requirements.txt``.

Expensive facts (git state, package list, a module's imports) are computed
once per process and cached; what a run uploads is staged once per module
and sent with one call. Nothing here imports mlflow.
"""

from __future__ import annotations

import platform
import shutil
import tempfile
import warnings
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import pytest

from ..backend import tags as T
from ..keys import REUSE_KEY, SETTINGS_KEY
from ..redaction import redact_text
from ..warning_types import MlexpWarning
from .code import guard_artifact_root, item_code_files
from .environment import command_line, random_seed, requirements
from .git import session_git_state

if TYPE_CHECKING:
    from ..runs.experiment_run import ExperimentRun

GIT_DIFF_ARTIFACT = "lineage/git_diff.patch"
REQUIREMENTS_ARTIFACT = "lineage/requirements.txt"
_MAX_TAG = 5000


class Lineage:
    """Registered as ``mlexp-lineage``: logs code, git and environment lineage when a run starts.

    What a run uploads is staged once per experiment module in a folder of
    this process (the module's code files, the requirements, the git diff),
    and each run sends that folder with one ``log_artifacts`` call; its tags
    go with the run's other tags in one batch.
    """

    def __init__(self, config: pytest.Config, rootdir: Path, parts: frozenset[str]) -> None:
        self.config = config
        self.rootdir = rootdir.resolve()
        self.parts = parts
        self._code: dict[str, list[Path]] = {}
        self._staging: Path | None = None
        #: Module key -> (staged folder or None when it holds nothing, code files, tags).
        self._bundles: dict[str, tuple[Path | None, list[Path], dict[str, str]]] = {}

    def pytest_mlexp_run_start(self, item: pytest.Item, run: ExperimentRun) -> None:
        folder, files, tags = self._bundle(item)
        run.set_tags(tags)
        reuse = item.stash.get(REUSE_KEY, None)
        if folder is None or (reuse is not None and reuse.reused_from):
            # A reused run's code and packages are its source's (equal fingerprints): not again.
            return
        try:
            run.log_artifact(folder)
        except Exception as exc:
            self._warn(item, "code and environment", exc)
        # Artifact discovery must not upload them again.
        run.logged_paths.update(files)

    def pytest_unconfigure(self) -> None:
        if self._staging is not None:
            shutil.rmtree(self._staging, ignore_errors=True)

    # -- staged once per module -------------------------------------------------------

    def _bundle(self, item: pytest.Item) -> tuple[Path | None, list[Path], dict[str, str]]:
        key = _module_key(item)
        if key not in self._bundles:
            if self._staging is None:
                self._staging = Path(tempfile.mkdtemp(prefix="mlexp-lineage-"))
            folder = self._staging / str(len(self._bundles))
            folder.mkdir()
            tags: dict[str, str] = {}
            files: list[Path] = []
            for part in ("code", "git", "env"):
                if part not in self.parts:
                    continue
                try:
                    if part == "code":
                        files = self._stage_code(item, folder)
                    elif part == "git":
                        tags.update(self._stage_git(folder))
                    else:
                        tags.update(self._stage_env(folder))
                except Exception as exc:
                    self._warn(item, part, exc)
            holds_files = any(path.is_file() for path in folder.rglob("*"))
            self._bundles[key] = (folder if holds_files else None, files, tags)
        return self._bundles[key]

    def _warn(self, item: pytest.Item, part: str, exc: Exception) -> None:
        warnings.warn(
            MlexpWarning(
                f"{item.nodeid}: could not log {part} lineage: {type(exc).__name__}: "
                f"{redact_text(str(exc))}; turn it off with --mlexp-lineage"
            ),
            stacklevel=1,
        )

    # -- code ---------------------------------------------------------------------

    def _stage_code(self, item: pytest.Item, folder: Path) -> list[Path]:
        if not self._bundles:
            # Once per process: the copies are no test modules of the project.
            store = self.config.stash[SETTINGS_KEY].tracking.store_artifact_dir
            if store is not None:
                guard_artifact_root(store, self.rootdir)
        files = self.code_files(item)
        for path in files:
            target = folder / "code" / path.relative_to(self.rootdir)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
        return files

    def code_files(self, item: pytest.Item) -> list[Path]:
        """The files under the rootdir a run of ``item`` needs, cached per module."""
        key = _module_key(item)
        if key not in self._code:
            self._code[key] = item_code_files(self.config, item, self.rootdir)
        return self._code[key]

    # -- git ----------------------------------------------------------------------

    def _stage_git(self, folder: Path) -> dict[str, str]:
        state = session_git_state(self.config, self.rootdir)
        if state is None:
            return {}
        if state.diff:
            _write(folder / GIT_DIFF_ARTIFACT, state.diff)
        return state.tags()

    # -- environment --------------------------------------------------------------

    def _stage_env(self, folder: Path) -> dict[str, str]:
        tags = {
            T.PYTHON_VERSION: platform.python_version(),
            T.PLATFORM: platform.platform(),
            T.COMMAND: command_line(self.config)[:_MAX_TAG],
        }
        seed = random_seed(self.config)
        if seed is not None:
            tags[T.RANDOM_SEED] = str(seed)
        _write(folder / REQUIREMENTS_ARTIFACT, requirements())
        return tags


def _module_key(item: pytest.Item) -> str:
    module = getattr(item, "module", None)
    return module.__name__ if isinstance(module, ModuleType) else str(item.path)


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
