"""The Optuna study of a search: its name, its storage, its sampler and pruner.

Every process running trials of the same search (xdist workers, CI shards
sharing ``MLEXP_SESSION_ID``) opens the same study by name in the same
storage, and asks it for trials: Optuna's storages make sharing safe. The
default storage is a journal file per study under ``<rootdir>/.mlexp/optuna/``
(Optuna's ``JournalStorage`` with ``JournalFileBackend``, file-locked); a
database URL or Optuna's gRPC storage proxy (``--mlexp-search-storage``) serves
shards on several machines and a team on one server.

A seeded study that is continued (a named study, a later session) gets a
sampler seed of its own for this session, derived from the study's seed, the
number of trials it holds and the worker: seeded alike, a continued study
would propose its first points again.
"""

from __future__ import annotations

import re
import warnings
import zlib
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pytest

from ..redaction import redact_uri
from .declaration import EXTRA, SearchSpec

if TYPE_CHECKING:
    import optuna

    from ..settings.search import SearchSettings

#: Where the journal files of studies go, under the rootdir.
JOURNAL_DIR = Path(".mlexp") / "optuna"

#: The port Optuna's gRPC storage proxy listens on unless told otherwise.
DEFAULT_GRPC_PORT = 13000
#: Seconds a session waits for the gRPC storage proxy to answer.
GRPC_READY_TIMEOUT = 10.0

#: gRPC proxies that did not answer in this process: the next trials fail at once.
_UNANSWERED: set[str | None] = set()

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
    grpc = grpc_address(settings.storage) if settings.storage is not None else None
    if grpc is not None:
        from optuna.storages import GrpcStorageProxy

        with warnings.catch_warnings():
            # Chosen by the user's setting: Optuna's "experimental" notice each session is noise.
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            storage = GrpcStorageProxy(host=grpc[0], port=grpc[1])
        try:
            if settings.storage in _UNANSWERED:
                raise ConnectionError(settings.storage)  # waited for once per process
            storage.wait_server_ready(timeout=GRPC_READY_TIMEOUT)
        except ConnectionError:
            _UNANSWERED.add(settings.storage)
            raise pytest.UsageError(
                f"{settings.source}: Optuna's gRPC storage proxy at {settings.storage} does not "
                f"answer (waited {GRPC_READY_TIMEOUT:g} s); start it "
                "(optuna.storages.run_grpc_proxy_server) or fix the address"
            ) from None
    elif settings.storage is not None:
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
            sampler=_sampler(optuna, spec, name, worker, tried=0),
            pruner=_pruner(optuna, spec),
            direction=spec.optuna_direction,
            load_if_exists=True,
        )
    except ImportError as exc:
        raise pytest.UsageError(
            f"{spec.source}: the search's storage or sampler needs a package that is not "
            f"installed: {exc}"
        ) from None
    tried = len(study.get_trials(deepcopy=False)) if spec.seed is not None else 0
    if tried and isinstance(spec.sampler, str):
        study.sampler = _sampler(optuna, spec, name, worker, tried=tried)
    if study.direction.name.lower() != spec.optuna_direction:
        raise pytest.UsageError(
            f"{spec.source}: study {name!r} in {storage_label(settings, rootdir, name)} was "
            f"created to {study.direction.name.lower()}, but objective={spec.objective_spec!r} "
            "asks to "
            f"{spec.optuna_direction}; name another study (study=...) or fix the objective"
        )
    return study  # type: ignore[no-any-return]


def grpc_address(storage: str) -> tuple[str, int] | None:
    """``grpc://host:port`` -> (host, port): Optuna's gRPC storage proxy; else None."""
    parts = urlsplit(storage)
    if parts.scheme != "grpc":
        return None
    return parts.hostname or "localhost", parts.port or DEFAULT_GRPC_PORT


def session_seed(seed: int, tried: int, worker: int) -> int:
    """The sampler's seed in this process: the study's own for a new study's first worker.

    Parallel workers seeded alike would propose the same points, and so would a
    continued study seeded as when it began: ``tried`` (the trials the study
    held when this process opened it) and ``worker`` give each its own seed.
    """
    if tried == 0:
        return seed + worker
    return zlib.crc32(f"{seed}/{tried}/{worker}".encode())


def _sampler(optuna: ModuleType, spec: SearchSpec, name: str, worker: int, tried: int) -> Any:
    sampler = spec.sampler
    if not isinstance(sampler, str):
        return sampler
    if sampler == "qmc":
        # Workers and sessions share the seed: QMC points are indexed by trial number (a
        # count the study keeps), so a continued study goes on along its sequence.
        seed = spec.seed if spec.seed is not None else zlib.crc32(name.encode())
        return optuna.samplers.QMCSampler(seed=seed)
    own_seed = None if spec.seed is None else session_seed(spec.seed, tried, worker)
    if sampler == "random":
        return optuna.samplers.RandomSampler(seed=own_seed)
    return optuna.samplers.TPESampler(seed=own_seed)


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
