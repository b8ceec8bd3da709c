"""Lineage: the source, git state and environment behind every run, logged when it starts.

- ``code``: the experiment module, the ``conftest.py`` files that apply to
  it, and the project modules it imports (transitively), under artifact path
  ``code/`` with their paths relative to the rootdir.
- ``git``: MLflow's ``mlflow.source.git.*`` tags, ``mlexp.git.dirty``, and
  ``git diff HEAD`` as ``lineage/git_diff.patch`` when the tree is dirty.
- ``env``: Python version, platform, pytest command line and random seed as
  tags; the installed packages as ``lineage/requirements.txt``.

Expensive facts (git state, package list, a module's imports) are computed
once per process and cached. Nothing here imports mlflow.
"""

from __future__ import annotations

import platform
import warnings
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import pytest

from ..backend import tags as T
from ..redaction import redact_text
from ..warning_types import MlexpWarning
from .code import is_under, project_imports
from .environment import command_line, random_seed, requirements
from .git import git_state

if TYPE_CHECKING:
    from ..runs.experiment_run import ExperimentRun

GIT_DIFF_ARTIFACT = "lineage/git_diff.patch"
REQUIREMENTS_ARTIFACT = "lineage/requirements.txt"
_MAX_TAG = 5000


class Lineage:
    """Registered as ``mlexp-lineage``: logs code, git and environment lineage when a run starts."""

    def __init__(self, config: pytest.Config, rootdir: Path, parts: frozenset[str]) -> None:
        self.config = config
        self.rootdir = rootdir.resolve()
        self.parts = parts
        self._code: dict[str, list[Path]] = {}

    def pytest_mlexp_run_start(self, item: pytest.Item, run: ExperimentRun) -> None:
        for part, log in (("code", self._log_code), ("git", self._log_git), ("env", self._log_env)):
            if part not in self.parts:
                continue
            try:
                log(item, run)
            except Exception as exc:
                warnings.warn(
                    MlexpWarning(
                        f"{item.nodeid}: could not log {part} lineage: {type(exc).__name__}: "
                        f"{redact_text(str(exc))}; turn it off with --mlexp-lineage"
                    ),
                    stacklevel=1,
                )

    # -- code ---------------------------------------------------------------------

    def _log_code(self, item: pytest.Item, run: ExperimentRun) -> None:
        for path in self.code_files(item):
            parent = path.parent.relative_to(self.rootdir).as_posix()
            run.log_artifact(path, "code" if parent == "." else f"code/{parent}")

    def code_files(self, item: pytest.Item) -> list[Path]:
        """The files under the rootdir a run of ``item`` needs, cached per module."""
        module = getattr(item, "module", None)
        key = module.__name__ if isinstance(module, ModuleType) else str(item.path)
        if key not in self._code:
            files = {item.path.resolve()}
            files.update(self._conftests(item.path.resolve()))
            if isinstance(module, ModuleType):
                files.update(project_imports(module, self.rootdir))
            self._code[key] = sorted(f for f in files if is_under(f, self.rootdir))
        return self._code[key]

    def _conftests(self, path: Path) -> list[Path]:
        found = []
        for plugin in self.config.pluginmanager.get_plugins():
            file = getattr(plugin, "__file__", None)
            if not isinstance(plugin, ModuleType) or not file:
                continue
            conftest = Path(file).resolve()
            if conftest.name == "conftest.py" and conftest.parent in path.parents:
                found.append(conftest)
        return found

    # -- git ----------------------------------------------------------------------

    def _log_git(self, item: pytest.Item, run: ExperimentRun) -> None:
        state = git_state(self.rootdir)
        if state is None:
            return
        run.set_tags(state.tags())
        if state.diff:
            run.log_text(state.diff, GIT_DIFF_ARTIFACT)

    # -- environment --------------------------------------------------------------

    def _log_env(self, item: pytest.Item, run: ExperimentRun) -> None:
        tags = {
            T.PYTHON_VERSION: platform.python_version(),
            T.PLATFORM: platform.platform(),
            T.COMMAND: command_line(self.config)[:_MAX_TAG],
        }
        seed = random_seed(self.config)
        if seed is not None:
            tags[T.RANDOM_SEED] = str(seed)
        run.set_tags(tags)
        run.log_text(requirements(), REQUIREMENTS_ARTIFACT)
