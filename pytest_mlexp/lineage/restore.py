"""A run's code, rebuilt from its lineage in a folder of its own (``mlexp reproduce``).

The ``code/`` artifacts are laid out as they were under the rootdir, so the
run's test id names the same test; the params file comes back as the run
loaded it, with its session's overrides applied. What lineage does not hold
is taken from the project, copied, never linked: its ini file (as it is now)
and the declared inputs (lineage holds their digests, not their data).
Nothing is written to the project's working tree.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Artifact folder of the code part of lineage.
CODE_DIR = "code"
#: The params file as loaded, and with the session's ``--mlexp-set`` overrides applied
#: (the artifacts ``params.plugin`` logs).
PARAMS_ARTIFACTS = ("lineage/params_overridden.yaml", "lineage/params.yaml")


class LineageError(Exception):
    """A run whose lineage cannot rebuild its code; the message says why and what to do."""


@dataclass(frozen=True)
class RestoredCode:
    """The rebuilt project: its root (the scratch rootdir), files and params file."""

    root: Path
    #: The restored files, by their path from the root.
    files: tuple[str, ...]
    #: The params file the run read (overrides applied), or ``None`` when it read none.
    params_file: Path | None
    #: Folders to put first on ``sys.path``: the roots of the restored packages and modules.
    import_roots: tuple[Path, ...]


def has_code(client: Any, run_id: str) -> bool:
    """Whether the run logged its code (the ``code`` part of lineage)."""
    return bool(client.list_artifacts(run_id, CODE_DIR))


def restore_code(client: Any, run_id: str, destination: Path) -> RestoredCode:
    """Download the run's ``code/`` artifacts and params file into ``destination``.

    ``destination`` becomes the rootdir of the rebuilt project; the params file
    goes beside it (``destination/../params.yaml``), outside the rootdir.
    """
    if not has_code(client, run_id):
        raise LineageError(f"run {run_id} logged no code (no artifacts under {CODE_DIR}/)")
    # MLflow draws a tqdm progress bar on stderr when tqdm is installed: noise for a command.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    downloads = destination.parent / "artifacts"
    downloads.mkdir(parents=True, exist_ok=True)
    code = Path(client.download_artifacts(run_id, CODE_DIR, str(downloads)))
    shutil.copytree(code, destination, dirs_exist_ok=True)
    files = tuple(
        path.relative_to(destination).as_posix()
        for path in sorted(destination.rglob("*"))
        if path.is_file()
    )
    return RestoredCode(
        root=destination,
        files=files,
        params_file=_params_file(client, run_id, downloads, destination.parent),
        import_roots=import_roots(destination, files),
    )


def import_roots(root: Path, files: tuple[str, ...]) -> tuple[Path, ...]:
    """The folders the restored modules are imported from: above each package's top ``__init__``.

    ``src/mylib/features.py`` with ``src/mylib/__init__.py`` -> ``src``; a
    plain module ``helpers.py`` -> its own folder. The root comes first.
    """
    present = set(files)
    roots = [root]
    for name in files:
        if not name.endswith(".py") or Path(name).name == "conftest.py":
            continue
        folder = Path(name).parent
        while folder != Path(".") and (folder / "__init__.py").as_posix() in present:
            folder = folder.parent
        path = root / folder
        if path not in roots:
            roots.append(path)
    return tuple(roots)


def _params_file(client: Any, run_id: str, downloads: Path, into: Path) -> Path | None:
    logged = {artifact.path for artifact in client.list_artifacts(run_id, "lineage")}
    for name in PARAMS_ARTIFACTS:
        if name in logged:
            local = Path(client.download_artifacts(run_id, name, str(downloads)))
            target = into / "params.yaml"
            shutil.copy2(local, target)
            return target
    return None


def copy_ini(inipath: Path | None, rootpath: Path, root: Path) -> None:
    """The project's ini file at the same place under ``root``; a bare ``pytest.ini`` without.

    Either way the rootdir of a pytest started in ``root`` is ``root``, so that
    test ids are the run's.
    """
    if inipath is not None and inipath.is_file():
        try:
            target = root / inipath.resolve().relative_to(rootpath.resolve())
        except ValueError:
            target = root / inipath.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(inipath, target)
        if target.parent == root:
            return
    (root / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")


def copy_inputs(names: Iterable[str], project: Path, root: Path) -> None:
    """Declared inputs (paths from the rootdir) copied from ``project``; absolute ones stay."""
    for name in names:
        if Path(name).is_absolute():
            continue
        source, target = project / name, root / name
        if source.is_file() and not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            # A copy, not a link: what the experiment does to it stays in the scratch folder.
            shutil.copy2(source, target)
