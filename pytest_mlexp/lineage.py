"""Code lineage: the source, git state and environment behind every run.

Logged at the start of every tracked item's run, so that a run can be
re-created from MLflow alone:

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

import ast
import functools
import importlib.util
import os
import platform
import re
import shlex
import subprocess
import sys
import warnings
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from .feature_options import list_setting
from .redaction import redact_text, redact_uri
from .warning_types import MlexpWarning

if TYPE_CHECKING:
    from .config import TrackingConfig
    from .tracking import ExperimentRun

#: The parts of lineage a user can switch on or off.
PARTS = ("code", "git", "env")
#: Seconds a single git command may take before lineage gives up on git.
GIT_TIMEOUT = 10.0
GIT_DIFF_ARTIFACT = "lineage/git_diff.patch"
REQUIREMENTS_ARTIFACT = "lineage/requirements.txt"
_MAX_TAG = 5000


def add_options(group: Any, parser: pytest.Parser) -> None:
    group.addoption(
        "--mlexp-lineage",
        dest="mlexp_lineage",
        metavar="PARTS",
        action="append",
        default=None,
        help="Lineage logged with every run: any of code, git, env (comma separated), "
        "all or none (default: all).",
    )
    parser.addini(
        "mlexp_lineage", "Lineage parts to log: code, git, env, all or none.", type="linelist"
    )


def configure(config: pytest.Config, settings: TrackingConfig) -> None:
    """Register the lineage plugin when any part is switched on."""
    parts = parts_from_config(config)
    if parts:
        config.pluginmanager.register(Lineage(config, settings.rootdir, parts), "mlexp-lineage")


def parts_from_config(config: pytest.Config) -> frozenset[str]:
    """The lineage parts switched on, or ``UsageError`` for an unknown part."""
    found = list_setting(config, "mlexp_lineage", "lineage")
    if found is None:
        return frozenset(PARTS)
    items, source = found
    parts: set[str] = set()
    for item in (i.lower() for i in items):
        if item == "all":
            parts.update(PARTS)
        elif item == "none":
            parts.clear()
        elif item in PARTS:
            parts.add(item)
        else:
            raise pytest.UsageError(
                f"{source}: unknown lineage part {item!r}; accepted: "
                f"{', '.join(PARTS)}, all, none (e.g. --mlexp-lineage=code,env)"
            )
    return frozenset(parts)


class Lineage:
    """Plugin: logs code, git and environment lineage when a run starts."""

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
            self._code[key] = sorted(f for f in files if _is_under(f, self.rootdir))
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
            "mlexp.python_version": platform.python_version(),
            "mlexp.platform": platform.platform(),
            "mlexp.command": command_line(self.config)[:_MAX_TAG],
        }
        seed = random_seed(self.config)
        if seed is not None:
            tags["mlexp.random_seed"] = str(seed)
        run.set_tags(tags)
        run.log_text(requirements(), REQUIREMENTS_ARTIFACT)


# -- project imports ---------------------------------------------------------------


def project_imports(module: ModuleType, rootdir: Path) -> set[Path]:
    """Files under ``rootdir`` (outside any virtualenv) that ``module`` imports, transitively.

    Only modules already imported (in ``sys.modules``) count: what the
    experiment actually ran with, never a module it merely mentions.
    """
    found: set[Path] = set()
    pending = [module]
    seen = {module.__name__}
    # The packages holding the module itself (their __init__.py run first).
    for name in _with_parents(module.__name__)[:-1]:
        package = sys.modules.get(name)
        file = _module_file(package) if package is not None else None
        if file is not None and _is_project_file(file, rootdir):
            found.add(file)
    while pending:
        current = pending.pop()
        for name in _imported_names(current.__name__, _module_file(current), current.__package__):
            imported = sys.modules.get(name)
            if imported is None or name in seen:
                continue
            seen.add(name)
            file = _module_file(imported)
            if file is None or not _is_project_file(file, rootdir):
                continue
            found.add(file)
            pending.append(imported)
    return found


@functools.cache
def _imported_names(name: str, file: Path | None, package: str | None) -> frozenset[str]:
    """Names of the modules (and their parent packages) a module's source imports."""
    if file is None or file.suffix != ".py":
        return frozenset()
    try:
        tree = ast.parse(file.read_bytes(), filename=str(file))
    except (OSError, SyntaxError, ValueError):
        return frozenset()
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                names.update(_with_parents(alias.name))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                try:
                    base = importlib.util.resolve_name("." * node.level + base, package or "")
                except (ImportError, ValueError):
                    continue
            if not base:
                continue
            names.update(_with_parents(base))
            # ``from pkg import sub`` may import the submodule ``pkg.sub``.
            names.update(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")
    return frozenset(names)


def _with_parents(dotted: str) -> list[str]:
    """``a.b.c`` -> ``a``, ``a.b``, ``a.b.c``: importing a module imports its packages."""
    pieces = dotted.split(".")
    return [".".join(pieces[: i + 1]) for i in range(len(pieces))]


def _module_file(module: ModuleType) -> Path | None:
    file = getattr(module, "__file__", None)
    return Path(file).resolve() if isinstance(file, str) else None


@functools.cache
def _environment_dirs() -> tuple[Path, ...]:
    prefixes = {sys.prefix, sys.base_prefix, sys.exec_prefix}
    return tuple(Path(p).resolve() for p in prefixes)


def _is_project_file(path: Path, rootdir: Path) -> bool:
    if not _is_under(path, rootdir):
        return False
    if any(part in ("site-packages", "dist-packages") for part in path.parts):
        return False
    return not any(_is_under(path, env) for env in _environment_dirs())


def _is_under(path: Path, directory: Path) -> bool:
    return path == directory or directory in path.parents


# -- git -------------------------------------------------------------------------


@dataclass(frozen=True)
class GitState:
    commit: str
    branch: str | None
    repo_url: str | None
    diff: str

    @property
    def dirty(self) -> bool:
        return bool(self.diff)

    def tags(self) -> dict[str, str]:
        tags = {"mlflow.source.git.commit": self.commit, "mlexp.git.dirty": str(self.dirty).lower()}
        if self.branch:
            tags["mlflow.source.git.branch"] = self.branch
        if self.repo_url:
            tags["mlflow.source.git.repoURL"] = self.repo_url
        return tags


@functools.cache
def git_state(directory: Path) -> GitState | None:
    """The git state of the repository holding ``directory``; ``None`` without git or a repo."""
    commit = _git(directory, "rev-parse", "--verify", "HEAD")
    if not commit:
        return None
    branch = _git(directory, "rev-parse", "--abbrev-ref", "HEAD")
    remotes = (_git(directory, "remote") or "").split()
    remote = "origin" if "origin" in remotes else (remotes[0] if remotes else None)
    url = _git(directory, "remote", "get-url", remote) if remote else None
    diff = _git(directory, "diff", "HEAD", "--no-color", "--no-ext-diff", strip=False)
    return GitState(
        commit=commit,
        branch=branch if branch and branch != "HEAD" else None,
        repo_url=strip_credentials(url) if url else None,
        diff=diff or "",
    )


def _git(directory: Path, *args: str, strip: bool = True) -> str | None:
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_OPTIONAL_LOCKS": "0"}
    try:
        done = subprocess.run(
            ["git", "-C", str(directory), *args],
            capture_output=True,
            text=True,
            errors="replace",
            timeout=GIT_TIMEOUT,
            env=env,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        return None
    return done.stdout.strip() if strip else done.stdout


def strip_credentials(url: str) -> str:
    """A remote URL without its credentials: user and password (or token) are removed.

    ``ssh://`` URLs keep their user name (``git@``), which is not a secret;
    scp-like ``git@host:org/repo.git`` is returned as is.

    >>> strip_credentials("https://user:tok@github.com/org/repo.git")
    'https://github.com/org/repo.git'
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return redact_uri(url)
    if not parts.scheme or "@" not in parts.netloc:
        return redact_uri(url)
    userinfo, _, host = parts.netloc.rpartition("@")
    if parts.scheme.startswith("ssh") or parts.scheme.endswith("+ssh"):
        return urlunsplit(parts._replace(netloc=f"{userinfo.partition(':')[0]}@{host}"))
    return redact_uri(urlunsplit(parts._replace(netloc=host)))


# -- environment -------------------------------------------------------------------


@functools.cache
def requirements() -> str:
    """The installed distributions as a requirements file, computed once per process."""
    pins: dict[str, str] = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            pins.setdefault(re.sub(r"[-_.]+", "-", name).lower(), f"{name}=={dist.version}")
    header = (
        f"# Python {platform.python_version()} on {platform.platform()}\n"
        "# installed packages when the run was made (pytest-mlexp)\n"
    )
    return header + "".join(f"{pins[key]}\n" for key in sorted(pins))


def command_line(config: pytest.Config) -> str:
    """The pytest command line, credentials redacted; under xdist, the controller's."""
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None and workerinput.get("mainargv"):
        args = [str(a) for a in workerinput["mainargv"][1:]]
    else:
        args = [str(a) for a in config.invocation_params.args]
    return redact_text(shlex.join(["pytest", *args]))


def random_seed(config: pytest.Config) -> int | None:
    """pytest-randomly's seed when that plugin is active."""
    if not config.pluginmanager.hasplugin("randomly"):
        return None
    seed = config.getoption("randomly_seed", None)
    return seed if isinstance(seed, int) and not isinstance(seed, bool) else None
