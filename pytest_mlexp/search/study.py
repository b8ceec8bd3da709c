"""The Optuna study of a search: its name, its storage, its sampler and pruner.

Every process running trials of the same search (xdist workers, CI shards
sharing ``MLEXP_SESSION_ID``) opens the same study by name in the same
storage, and asks it for trials: Optuna's storages make sharing safe. The
default storage is a journal file per study under ``<rootdir>/.mlexp/optuna/``
(Optuna's ``JournalStorage`` with ``JournalFileBackend``, file-locked); a
database URL (``--mlexp-search-storage``) serves shards on several machines.
"""

from __future__ import annotations

import re
import zlib
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import pytest

from ..redaction import redact_uri
from .declaration import EXTRA, SearchSpec

if TYPE_CHECKING:
    import optuna

    from ..settings.search import SearchSettings

#: Where the journal files of studies go, under the rootdir.
JOURNAL_DIR = Path(".mlexp") / "optuna"

_UNSAFE = re.compile(r"[^A-Za-z0-9_.@-]+")


def require_optuna() -> ModuleType:
    """``import optuna``, or ``UsageError`` naming the extra to install."""
    try:
        import optuna
    except ImportError as exc:
        raise pytest.UsageError(
            f"pytest-mlexp searches run on Optuna, which cannot be imported ({exc}): {EXTRA}"
        ) from None
    return optuna


def quiet(optuna: ModuleType) -> None:
    """Optuna's INFO lines off, unless the user changed its verbosity.

    Each trial is a run and a test report already; "Trial 3 finished with
    value..." lines would repeat them.
    """
    if optuna.logging.get_verbosity() == optuna.logging.INFO:
        optuna.logging.set_verbosity(optuna.logging.WARNING)


def study_name(spec: SearchSpec, session_id: str) -> str:
    """The marker's ``study=``, else one study per session and function."""
    return spec.study or f"{spec.function}@{session_id}"


def journal_path(rootdir: Path, name: str) -> Path:
    """The journal file of study ``name`` under the rootdir."""
    return rootdir / JOURNAL_DIR / f"{_UNSAFE.sub('_', name)}.log"


def storage_label(settings: SearchSettings, rootdir: Path, name: str) -> str:
    """Where the study is, as messages and the parent run show it (no password)."""
    if settings.storage is not None:
        return redact_uri(settings.storage)
    rootdir = settings.journal_root or rootdir
    path = journal_path(rootdir, name)
    try:
        return f"journal {path.relative_to(rootdir)}"
    except ValueError:
        return f"journal {path}"


def open_study(
    spec: SearchSpec,
    settings: SearchSettings,
    *,
    rootdir: Path,
    session_id: str,
    worker: int,
) -> optuna.Study:
    """Create the study, or load it when another process (or an earlier session) made it."""
    optuna = require_optuna()
    quiet(optuna)
    name = study_name(spec, session_id)
    storage: Any
    if settings.storage is not None:
        storage = settings.storage
    else:
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        path = journal_path(settings.journal_root or rootdir, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        storage = JournalStorage(JournalFileBackend(str(path)))
    try:
        study = optuna.create_study(
            study_name=name,
            storage=storage,
            sampler=_sampler(optuna, spec, name, worker),
            pruner=_pruner(optuna, spec),
            direction=spec.optuna_direction,
            load_if_exists=True,
        )
    except ImportError as exc:
        raise pytest.UsageError(
            f"{spec.source}: the search's storage or sampler needs a package that is not "
            f"installed: {exc}"
        ) from None
    if study.direction.name.lower() != spec.optuna_direction:
        raise pytest.UsageError(
            f"{spec.source}: study {name!r} in {storage_label(settings, rootdir, name)} was "
            f"created to {study.direction.name.lower()}, but objective={spec.objective_spec!r} "
            "asks to "
            f"{spec.optuna_direction}; name another study (study=...) or fix the objective"
        )
    return study  # type: ignore[no-any-return]


def _sampler(optuna: ModuleType, spec: SearchSpec, name: str, worker: int) -> Any:
    sampler = spec.sampler
    if not isinstance(sampler, str):
        return sampler
    if sampler == "qmc":
        # Workers must share the seed: QMC points are indexed by trial number.
        seed = spec.seed if spec.seed is not None else zlib.crc32(name.encode())
        return optuna.samplers.QMCSampler(seed=seed)
    # Parallel workers seeded alike would propose the same points: one seed each.
    worker_seed = None if spec.seed is None else spec.seed + worker
    if sampler == "random":
        return optuna.samplers.RandomSampler(seed=worker_seed)
    return optuna.samplers.TPESampler(seed=worker_seed)


def _pruner(optuna: ModuleType, spec: SearchSpec) -> Any:
    pruner = spec.pruner
    if pruner is None:
        return optuna.pruners.NopPruner()
    if not isinstance(pruner, str):
        return pruner
    return {
        "median": optuna.pruners.MedianPruner,
        "hyperband": optuna.pruners.HyperbandPruner,
        "successive_halving": optuna.pruners.SuccessiveHalvingPruner,
    }[pruner]()
