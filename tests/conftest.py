"""Fixtures for pytest-mlexp's own tests: real MLflow stores, real servers."""

from __future__ import annotations

import contextlib
import fcntl
import gc
import importlib
import os
import pkgutil
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.request
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import _pytest.pytester
import pytest
from warm_workers import share_with_workers, warm_start, warm_workers

import pytest_mlexp

if TYPE_CHECKING:
    from mlflow.entities import Run
    from mlflow.tracking import MlflowClient

# mlflow is imported where used, not here: an xdist controller loads this file and runs no test.

#: Environment that would leak the developer's own MLflow setup into tests.
_LEAKY_ENV = (
    "MLFLOW_TRACKING_URI",
    "MLFLOW_EXPERIMENT_NAME",
    "MLFLOW_EXPERIMENT_ID",
    "MLFLOW_RUN_ID",
    "MLFLOW_TRACKING_USERNAME",
    "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_TRACKING_TOKEN",
    "MLEXP_SESSION_ID",
    "PYTEST_ADDOPTS",
    "MLEXP_EXPERIMENT_PATHS",
)


# -- in-process pytester runs --------------------------------------------------------------
#
# pytester runs pytest in this process (no ``--runpytest=subprocess``): the plugin
# puts back what it changes in the process at unconfigure (``process_state``).
# After each run pytester drops the modules the run imported; dropping mlflow's,
# SQLAlchemy's or the package's own modules half-way would leave the next run
# two copies of their classes and state, and importing them again costs seconds.
# Modules of installed libraries and of the package stay imported, as in a
# long-lived process; the experiment projects' own modules are still dropped.

#: Where installed libraries and the package live: their modules stay imported.
_LIBRARY_DIRS = tuple(
    os.path.realpath(path) + os.sep
    for path in {
        *(sysconfig.get_paths()[name] for name in ("stdlib", "platstdlib", "purelib", "platlib")),
        os.path.dirname(pytest_mlexp.__file__),
    }
)
_kept: dict[tuple[str, int], bool] = {}


def _is_library(name: str) -> bool:
    module = sys.modules.get(name)
    key = (name, id(module))
    if key not in _kept:
        file = getattr(module, "__file__", None)
        paths = [file] if file else list(getattr(module, "__path__", None) or [])
        # A name a test blocked (``sys.modules["optuna"] = None``) is no library: put back.
        _kept[key] = bool(paths) and all(
            os.path.realpath(path).startswith(_LIBRARY_DIRS) for path in paths
        )
    return _kept[key]


class _LibrariesKept(_pytest.pytester.SysModulesSnapshot):
    """pytester's snapshot of ``sys.modules`` (pytest 8-9), keeping libraries' modules."""

    def __init__(self, preserve: Callable[[str], bool] | None = None) -> None:
        def keep(name: str) -> bool:
            return (preserve is not None and preserve(name)) or _is_library(name)

        super().__init__(preserve=keep)


_pytest.pytester.SysModulesSnapshot = _LibrariesKept  # type: ignore[misc]

#: The warning filters of this process, without this suite's ``error`` (applied while
#: conftest files are imported).
_PROCESS_FILTERS = [entry for entry in warnings.filters if entry[0] != "error"]
_inline_run = pytest.Pytester.inline_run


def _inline_run_with_process_filters(self: pytest.Pytester, *args: Any, **kwargs: Any) -> Any:
    """An inner session sees the warning filters a fresh process would, not ``error``.

    Its xdist workers are forked from a warm interpreter (``warm_workers``), unless the
    test is marked ``cold_workers``.
    """
    cold = self._request.node.get_closest_marker("cold_workers") is not None
    cold_before = warm_start.cold_starts()
    with warnings.catch_warnings(), contextlib.nullcontext() if cold else warm_workers():
        warnings.resetwarnings()
        warnings.filters.extend(_PROCESS_FILTERS)
        result = _inline_run(self, *args, **kwargs)
    if not cold and warm_start.cold_starts() > cold_before:  # seconds of CPU, silently
        pytest.fail(
            "an inner xdist worker started cold (mark the test cold_workers if its subject "
            f"is a fresh process):\n{warm_start.why_cold()}"
        )
    return result


pytest.Pytester.inline_run = _inline_run_with_process_filters  # type: ignore[method-assign]

#: Imported once up front, so no test pays for it (and no test half-imports it).
_WARM_MODULES = (
    "mlflow.sklearn",
    "mlflow.pyfunc",
    "mlflow.models",
    "mlflow.store.tracking.rest_store",
    "mlflow.store.tracking.sqlalchemy_store",
    "optuna",
    "sklearn.datasets",
    "sklearn.linear_model",
    "xdist.plugin",
)


@pytest.fixture(scope="session", autouse=True)
def _package_imported() -> None:
    """Every module of the package and the libraries experiments use, imported once."""
    with warnings.catch_warnings():
        # What importing says (MLflow's type hint notes...), each session's run says again.
        warnings.simplefilter("ignore")
        for module in pkgutil.walk_packages(pytest_mlexp.__path__, "pytest_mlexp."):
            if module.name != "pytest_mlexp.__main__":
                importlib.import_module(module.name)
        for name in _WARM_MODULES:
            importlib.import_module(name)


@pytest.fixture(scope="session", autouse=True)
def _heap_frozen(_package_imported: None, _mlflow_fully_imported: None) -> None:
    """Once everything is imported, its objects are left out of the garbage collector's passes.

    mlflow, SQLAlchemy, sklearn and Optuna are hundreds of thousands of objects that
    live as long as the process; every full collection walked them again (about half
    of the collector's time in a pytester-heavy module). What tests create later is
    collected as usual.
    """
    gc.collect()
    gc.freeze()


@pytest.fixture(scope="session", autouse=True)
def _mlflow_fully_imported(tmp_path_factory: pytest.TempPathFactory, empty_store: Path) -> None:
    """Use a throwaway store once, before any test, so all of mlflow is imported.

    pytester drops the modules a test imported when the test ends; mlflow and
    SQLAlchemy modules imported lazily in one test and dropped would break
    the next test's reads. The store is a copy of ``empty_store`` (its tables made once).
    """
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    root = tmp_path_factory.mktemp("warmup")
    shutil.copy(empty_store, root / "mlflow.db")
    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    experiment_id = client.create_experiment("warmup", artifact_location=(root / "a").as_uri())
    run = client.create_run(experiment_id)
    client.log_batch(run.info.run_id, metrics=[Metric("m", 1.0, 0, 0)], params=[Param("p", "1")])
    client.log_text(run.info.run_id, "text", "t.txt")
    client.set_terminated(run.info.run_id)
    client.search_runs([experiment_id])
    client.get_metric_history(run.info.run_id, "m")
    client.download_artifacts(run.info.run_id, "t.txt", str(root))
    client.list_artifacts(run.info.run_id)


@pytest.fixture(autouse=True)
def _isolated_mlflow_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in _LEAKY_ENV:
        monkeypatch.delenv(name, raising=False)
    yield
    import mlflow

    assert mlflow.active_run() is None, "a test left a fluent MLflow run active"


@pytest.fixture
def ourtester(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """A pytester whose project has an ini file, so its rootdir is its own folder.

    Its whole folder is an experiment folder (``MLEXP_EXPERIMENT_PATHS=.``): tests
    write experiment files at the project's top. The tests of the default
    (``experiments/`` only) remove the variable; ``pytester`` alone has the default.
    """
    pytester.makeini("[pytest]\n")
    monkeypatch.setenv("MLEXP_EXPERIMENT_PATHS", ".")
    return pytester


def _store_uri(path: Path) -> str:
    """The embedded store pytest-mlexp creates by default in the project at ``path``."""
    return f"sqlite:///{path / 'mlflow.db'}"


@pytest.fixture
def store_uri() -> Callable[[Path], str]:
    """``store_uri(path)``: the default embedded store of the project at ``path``."""
    return _store_uri


@pytest.fixture
def client(ourtester: pytest.Pytester) -> MlflowClient:
    """An ``MlflowClient`` on the default embedded store of ``ourtester``'s project."""
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=_store_uri(ourtester.path))


def logged_metrics(run: Run) -> dict[str, float]:
    """A run's metrics as its experiment logged them, without the machine's ``system/...``.

    Every run records what it used (``runs.usage``: wall time, CPU time, GPUs), and
    ``--mlexp-system-metrics`` adds MLflow's samples: neither is the experiment's result.
    """
    return {k: v for k, v in run.data.metrics.items() if not k.startswith("system/")}


def _runs_of(client: MlflowClient, experiment: str, *, groups: bool = False) -> list[Run]:
    """The runs of ``experiment``, sorted by run name, as a user would list them.

    Group runs (grid parents, repeat cells: tag ``mlexp.kind``) only with ``groups=True``.
    """
    found = client.get_experiment_by_name(experiment)
    assert found is not None, f"experiment {experiment!r} does not exist"
    runs = list(client.search_runs([found.experiment_id], max_results=10_000))
    if not groups:
        runs = [run for run in runs if "mlexp.kind" not in run.data.tags]
    return sorted(runs, key=lambda run: str(run.info.run_name))


@pytest.fixture
def runs_of() -> Callable[..., list[Run]]:
    """``runs_of(client, experiment, groups=False)``: the runs of an experiment, by name."""
    return _runs_of


def _once_per_run(
    tmp_path_factory: pytest.TempPathFactory, name: str, make: Callable[[Path], None]
) -> Path:
    """``name``'s file in a folder the run's processes share, made by the first that asks.

    Under ``-n`` every worker's temporary folder is in the controller's (one per run):
    the first worker makes the file (``make(path)``) under a lock, the others wait for it.
    """
    basetemp = tmp_path_factory.getbasetemp()
    shared = basetemp.parent if os.environ.get("PYTEST_XDIST_WORKER") else basetemp
    target = shared / "once" / name / "mlflow.db"
    target.parent.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent.parent / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not target.exists():
            making = Path(tempfile.mkdtemp(prefix=name, dir=target.parent.parent))
            make(making / "mlflow.db")
            making.rename(target.parent)
    return target


def _make_empty_store(path: Path) -> None:
    from mlflow.tracking import MlflowClient

    MlflowClient(tracking_uri=_store_uri(path.parent)).search_experiments()


@pytest.fixture(scope="session")
def empty_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty embedded store to copy: creating the tables costs seconds per test.

    One for the whole run (both workers of ``-n 2``).
    """
    return _once_per_run(tmp_path_factory, "empty-store", _make_empty_store)


#: Where the suite's temporary files go when the machine has a memory-backed folder.
MEMORY_TMP = Path("/dev/shm")
#: The free room it needs (a whole run writes a few hundred MiB).
MEMORY_TMP_ROOM = 4 * 2**30


def _temporary_files_in_memory(config: pytest.Config) -> None:
    """The suite's temporary files (``tmp_path``, its stores, servers', children's) in memory.

    Most of the suite's sessions write small sqlite stores, and each commit waits for
    its fsync on a disk: a core idles while it does. On a tmpfs (``/dev/shm``) it does
    not. Only in the process pytest started (its workers and children inherit
    ``TMPDIR``), and only if the user chose neither ``TMPDIR`` nor ``--basetemp``.
    """
    if hasattr(config, "workerinput") or "TMPDIR" in os.environ or config.option.basetemp:
        return
    if not (MEMORY_TMP.is_dir() and os.access(MEMORY_TMP, os.W_OK | os.X_OK)):
        return
    room = os.statvfs(MEMORY_TMP)
    if room.f_bavail * room.f_frsize < MEMORY_TMP_ROOM:  # a container's 64 MiB /dev/shm
        return
    folder = MEMORY_TMP / f"suite-tmp-{os.getuid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    os.environ["TMPDIR"] = str(folder)
    tempfile.tempdir = None  # read TMPDIR again


def pytest_configure(config: pytest.Config) -> None:
    _temporary_files_in_memory(config)
    if config.getoption("numprocesses", None) and not hasattr(config, "workerinput"):
        # The controller of ``-n``: its workers are forked from one warm zygote, theirs too.
        config.add_cleanup(share_with_workers().close)
    config.addinivalue_line(
        "markers",
        "fresh_store: in a PREMADE_STORE module, the session creates its own default store",
    )
    config.addinivalue_line(
        "markers",
        "cold_workers: the test's inner xdist workers start as fresh interpreters, not warm "
        "(the test's subject is a fresh process; see tests/warm_workers.py)",
    )


#: The suite's longest tests, longest first (a ``--durations`` profile of the README's
#: command). A few of them are a large part of the suite's time: started last, one of them
#: would leave the other worker idle at the end. A name no longer collected is skipped.
LONGEST_FIRST = (
    "tests/test_ray.py::test_on_a_ray_cluster",
    "tests/test_slurm.py::test_on_a_slurm_cluster",
    "tests/test_ui.py::test_printed_ui_command_opens_the_runs_table_and_figures_offline",
    "tests/test_docs.py::test_examples_run",
    "tests/test_repeats_gate.py::test_an_undecided_cell_runs_more_seeds_until_the_gate_decides",
    "tests/test_outage.py::test_values_of_both_apis_and_autolog_come_back_after_sync",
    "tests/test_confidence.py::test_noise_passes_a_regression_fails_few_seeds_are_inconclusive",
    "tests/test_regression.py::test_verdicts_from_xdist_workers_reach_the_controller",
    "tests/test_compositions.py::test_fluent_and_autolog_metrics_reach_the_summary_the_best_cell_and_the_gate",
    "tests/test_compositions.py::test_reuse_registers_no_second_version_of_the_same_model",
    "tests/test_shared_server.py::test_four_workers_against_a_postgres_server_lose_nothing",
    "tests/test_reproduce.py::test_a_run_comes_back_from_its_logged_code_and_a_session_says_what_moved",
)


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> None:
    """``-n`` distributes this suite with ``--dist worksteal`` unless told otherwise.

    Each worker starts on half of the items and takes half of the other's queue when
    it runs out: with the longest tests first (below) no worker is left idle at the
    end while the other runs a long test that started last. Before xdist's own
    ``pytest_cmdline_main``, which picks ``load`` for ``-n`` without ``--dist``.
    """
    if config.getoption("numprocesses", None) and config.getoption("dist", "no") == "no":
        config.option.dist = "worksteal"


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The longest tests first, the others in their (pytest-randomly's) order.

    Every worker sorts alike, so their collections stay the same.
    """
    rank = {nodeid: place for place, nodeid in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid, len(rank)))


@pytest.fixture(autouse=True)
def _premade_store(request: pytest.FixtureRequest) -> None:
    """In a module with ``PREMADE_STORE = True``, ``ourtester``'s default store already exists.

    A copy of ``empty_store``: creating the tables is most of a small session's time.
    Such modules' tests do not check the store's creation; a test that does (or that
    checks no store is made) is marked ``fresh_store``.
    """
    if (
        "ourtester" not in request.fixturenames
        or not getattr(request.module, "PREMADE_STORE", False)
        or request.node.get_closest_marker("fresh_store") is not None
    ):
        return
    project: pytest.Pytester = request.getfixturevalue("ourtester")
    shutil.copy(request.getfixturevalue("empty_store"), project.path / "mlflow.db")


@pytest.fixture
def read_runs(ourtester: pytest.Pytester):  # type: ignore[no-untyped-def]
    """``read_runs(experiment, uri=None, groups=False)``: the runs of an experiment, by name.

    Reads ``ourtester``'s default store, or the store at ``uri``; grid parents
    and cell runs only with ``groups=True``.
    """

    def read(experiment: str, uri: str | None = None, groups: bool = False) -> list:  # type: ignore[type-arg]
        from mlflow.tracking import MlflowClient

        client = MlflowClient(uri or _store_uri(ourtester.path))
        return _runs_of(client, experiment, groups=groups)

    return read


def _mlexp_in_process(
    capsys: pytest.CaptureFixture[str], cwd: Path, *args: str
) -> subprocess.CompletedProcess[str]:
    from pytest_mlexp.cli import main
    from pytest_mlexp.process_state import ProcessState

    capsys.readouterr()  # what the test printed before is not the command's
    before, state = os.getcwd(), ProcessState()
    os.chdir(cwd)
    try:
        code = main(list(args))
    except SystemExit as exc:  # argparse: --help, bad usage
        code = exc.code if isinstance(exc.code, int) else 1
    finally:
        os.chdir(before)
        state.pytest_unconfigure()  # what the command changed in the process (tracking URI)
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(["mlexp", *args], code, out, err)


@pytest.fixture
def mlexp(capsys: pytest.CaptureFixture[str]) -> Callable[..., subprocess.CompletedProcess[str]]:
    """``mlexp(cwd, *args)``: the ``mlexp`` command run in this process, from ``cwd``.

    A process of its own costs an MLflow import (seconds); tests of the printed
    commands and of the console script still spawn one.
    """
    return lambda cwd, *args: _mlexp_in_process(capsys, cwd, *args)


def _git(path: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.email=a@b.c", "-c", "user.name=me", *args],
        cwd=path,
        check=True,
        capture_output=True,
        text=True,
    ).stdout


@pytest.fixture
def git() -> Callable[..., str]:
    """``git(path, *args)``: run git in ``path`` with a test identity; its output."""
    return _git


@pytest.fixture
def unused_port() -> int:
    """A TCP port on 127.0.0.1 nothing listens on."""
    return _free_port()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class MlflowServer:
    """A real ``mlflow server`` on 127.0.0.1, started and stopped by tests."""

    def __init__(
        self,
        root: Path,
        backend_uri: str | None = None,
        *extra: str,
        template: Path | None = None,
        stores: Path | None = None,
    ) -> None:
        self.root = root
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # Its own sqlite store, in ``stores`` when given (see ``server_stores``), else in root.
        self.store = Path(tempfile.mkdtemp(dir=stores)) if stores else root
        self.backend_uri = backend_uri or f"sqlite:///{self.store / 'server.db'}"
        self.extra = extra
        # Its own sqlite store starts as a copy of ``template``, when given (see ``server_store``).
        self.template = None if backend_uri else template
        self.process: subprocess.Popen[bytes] | None = None
        self.log = root / "server.log"

    def start(self, timeout: float = 90.0) -> None:
        if self.template is not None and not (self.store / "server.db").exists():
            shutil.copy(self.template, self.store / "server.db")
        mlflow_cli = shutil.which("mlflow", path=os.path.dirname(sys.executable)) or "mlflow"
        command = [
            mlflow_cli, "server",
            "--backend-store-uri", self.backend_uri,
            "--artifacts-destination", str(self.root / "artifacts"),
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--workers", "1",
            *self.extra,
        ]  # fmt: skip
        # MLflow's job runner (for its GenAI jobs) is eight more Python processes per server.
        env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"mlflow server exited: {self.log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.3)
        self.stop()
        raise RuntimeError(
            f"mlflow server did not answer in {timeout}s: {self.log.read_text()[-3000:]}"
        )

    def stop(self) -> None:
        if self.process is not None:
            stop_mlflow_server(self.process)


def stop_mlflow_server(process: subprocess.Popen[bytes]) -> None:
    """Stop an ``mlflow server`` / ``mlflow ui`` started in a process group of its own.

    The server is the command's child (uvicorn), which SIGTERM shuts down as usual. The
    command's own process only waits for it; once it is gone, that process would spend
    seconds of CPU collecting its heap at exit, so it is killed then.
    """
    if process.poll() is not None:
        return
    servers = _children(process.pid)
    os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + 15
    while process.poll() is None and time.monotonic() < deadline:
        if servers and not any(_running(pid) for pid in servers):
            break
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def _children(pid: int) -> list[int]:
    with contextlib.suppress(OSError):
        return [
            int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        ]
    return []


def _running(pid: int) -> bool:
    """Whether ``pid`` is a process that has not exited (a zombie has)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.fixture(scope="session")
def server_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty sqlite store as ``mlflow server`` creates it, to copy into each server.

    Creating and migrating the tables is most of a server's start (seconds per
    server); the schema and the Default experiment (its artifacts served by the
    server: ``mlflow-artifacts:/0``) are what the server itself would write.
    """
    return _once_per_run(tmp_path_factory, "server-store", _make_server_store)


def _make_server_store(path: Path) -> None:
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    store = SqlAlchemyStore(f"sqlite:///{path}", "mlflow-artifacts:/")
    store.engine.dispose()


@pytest.fixture(scope="session")
def server_stores(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Where the servers keep their sqlite stores: in memory (``/dev/shm``) where there is one.

    A server commits each request's writes; on a disk, the commit's fsync is tens of
    milliseconds of each request (their files, the artifacts, stay under ``tmp_path``).
    """
    if not os.access("/dev/shm", os.W_OK):
        yield tmp_path_factory.mktemp("server-stores")
        return
    stores = Path(tempfile.mkdtemp(prefix="mlexp-test-stores-", dir="/dev/shm"))
    yield stores
    shutil.rmtree(stores, ignore_errors=True)


@pytest.fixture
def server_factory(
    tmp_path: Path, server_store: Path, server_stores: Path
) -> Iterator[type[MlflowServer]]:
    """Start extra servers (own backend, auth, restarts); all are stopped after the test."""
    started: list[MlflowServer] = []

    def make(backend_uri: str | None = None, *extra: str) -> MlflowServer:
        server = MlflowServer(
            tmp_path / f"server{len(started)}",
            backend_uri,
            *extra,
            template=server_store,
            stores=server_stores,
        )
        server.root.mkdir()
        started.append(server)
        return server

    yield make  # type: ignore[misc]
    for server in started:
        server.stop()


#: ``from server_control import stop_server``: what an experiment calls to lose its server.
SERVER_CONTROL = """
import os, signal, time, urllib.request

def stop_server():
    os.killpg(int(os.environ["TEST_SERVER_PID"]), signal.SIGTERM)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(os.environ["TEST_SERVER_URL"] + "/health", timeout=1)
        except OSError:
            return
        time.sleep(0.2)
"""

#: MLflow's HTTP retries made short, so a lost server is given up in seconds.
FAST_RETRIES = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "0",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "5",
}


#: A TCP relay: ``python RELAY PORT TARGET_PORT`` passes every connection on to the target.
RELAY = """
import socket, sys, threading

def pipe(source, sink):
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        try:
            sink.shutdown(socket.SHUT_WR)
        except OSError:
            pass

def relay(client, server):
    back = threading.Thread(target=pipe, args=(server, client), daemon=True)
    back.start()
    pipe(client, server)
    back.join()
    client.close()
    server.close()

listener = socket.create_server(("127.0.0.1", int(sys.argv[1])))
while True:
    client, _ = listener.accept()
    try:
        server = socket.create_connection(("127.0.0.1", int(sys.argv[2])))
    except OSError:
        client.close()
        continue
    threading.Thread(target=relay, args=(client, server), daemon=True).start()
"""


class LosableServer:
    """A real server's address that a test loses and gets back: a relay in front of the server.

    Stopping the relay's process (``server_control.stop_server()``) closes its connections and
    refuses new ones, as a stopped ``mlflow server`` does; ``start`` opens the same address again.
    The server behind it runs on: no ``mlflow server`` start (seconds of CPU) per outage.
    """

    def __init__(self, server: MlflowServer) -> None:
        self.server = server
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> None:
        command = [sys.executable, "-S", "-c", RELAY, str(self.port), str(self.server.port)]
        self.process = subprocess.Popen(command, start_new_session=True)
        deadline = time.monotonic() + timeout
        while not _answers(self.url):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the relay to {self.server.url} did not answer on {self.url}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=15)


@pytest.fixture(scope="session")
def _losable(mlflow_server: MlflowServer) -> Iterator[LosableServer]:
    """The process's one losable server for outage tests: a test that loses it starts it again.

    So the next test finds it answering (each test reads its own experiment, named after its
    project). Behind it is the session's ``mlflow_server``.
    """
    server = LosableServer(mlflow_server)
    yield server
    server.stop()


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


@pytest.fixture
def losable_server(
    ourtester: pytest.Pytester,
    _losable: LosableServer,
    monkeypatch: pytest.MonkeyPatch,
) -> LosableServer:
    """A started server that ``ourtester``'s experiments stop with ``server_control.stop_server()``.

    Retries are short; the test reaps the stopped process (``server.process.wait``).
    """
    server = _losable
    if server.process is None or server.process.poll() is not None or not _answers(server.url):
        server.stop()
        server.start()
    assert server.process is not None
    monkeypatch.setenv("TEST_SERVER_PID", str(server.process.pid))
    monkeypatch.setenv("TEST_SERVER_URL", server.url)
    for name, value in FAST_RETRIES.items():
        monkeypatch.setenv(name, value)
    ourtester.makepyfile(server_control=SERVER_CONTROL)
    return server


@pytest.fixture
def lose_server(
    ourtester: pytest.Pytester, losable_server: LosableServer
) -> Callable[..., pytest.RunResult]:
    """``lose_server(*args, policy="spool", own_process=False)``: a session whose server is lost.

    Runs the project's experiments against ``losable_server`` (one of them stops
    it) with ``--mlexp-on-tracking-error policy``, reaps the stopped server and
    returns the session's result. ``own_process``: a process of its own, whose
    death the next session finds.
    """

    def run(*args: str, policy: str = "spool", own_process: bool = False) -> pytest.RunResult:
        session = ourtester.runpytest_subprocess if own_process else ourtester.runpytest
        result = session(
            "-p", "no:randomly", "--mlexp-tracking-uri", losable_server.url,
            "--mlexp-on-tracking-error", policy, "-W", "ignore::pytest_mlexp.MlexpWarning",
            *args,
        )  # fmt: skip
        assert losable_server.process is not None
        losable_server.process.wait(timeout=30)  # stopped by the experiment: reap it
        return result

    return run


@pytest.fixture(scope="session")
def mlflow_server(
    tmp_path_factory: pytest.TempPathFactory, server_store: Path, server_stores: Path
) -> Iterator[MlflowServer]:
    """One real tracking server for the whole test session."""
    server = MlflowServer(
        tmp_path_factory.mktemp("mlflow-server"), template=server_store, stores=server_stores
    )
    server.start()
    yield server
    server.stop()


# -- headless Chromium ------------------------------------------------------------------

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Headless Chromium, started once per process; skipped when it is missing here, but never
    in CI."""
    missing = []
    if not os.path.exists(CHROMIUM):
        missing.append(f"{CHROMIUM} (Debian/Ubuntu: sudo apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing.append("the playwright package (pip install -e '.[test]')")
    if missing:
        reason = "headless Chromium tests need " + " and ".join(missing)
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason + "; .ci/run installs them")
        pytest.skip(reason)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()
