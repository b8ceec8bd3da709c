"""Warm xdist workers for the suite's in-process inner sessions (the suite's budget).

Many tests run an inner ``pytest -n 2`` in this process (pytester). xdist starts each
of its workers with execnet's popen gateway: a fresh ``python`` that imports pytest,
xdist, the plugin, then mlflow, SQLAlchemy, sklearn, Optuna... about 3.5 s of CPU a
worker, most of it importing the same third-party libraries again and again.

What is warm: a *zygote*, one process per run (started by the first test process that
needs it; under ``-n`` by the controller, ``share_with_workers``), has imported those
third-party libraries once; the run's own xdist workers and every inner worker are
forked from it.
What stays fresh: everything else. The zygote never imports the plugin
(``pytest_mlexp.plugin``) nor any project module, so the plugin's import and its
import-time behaviour happen in every worker as in a cold one. (Importing mlflow loads
the package's spool store, its ``mlflow.tracking_store`` entry point, as in any process
that imports mlflow: the zygote has the test process's ``PYTHONPATH``, so that a
worktree first on it is the copy it loads; where it still is not the one this test
process runs, workers stay cold.)
Each worker gets the client's stdin/stdout/stderr, cwd,
environment (HOME, TMPDIR, MLFLOW_* as pytester set them), ``sys.path`` as a fresh
``python -c`` builds it, Python's default signal handlers, fresh warning filters
(``PYTHONWARNINGS``/``-W``), a fresh ``__main__``, reseeded random generators; then
it runs execnet's bootstrap line, and xdist's real worker session follows over the
real execnet channel. Only the interpreter's start is warm.

How: while an inner session runs, ``execnet.gateway_io.popen_args`` puts this file
in front of the worker's command (``python -I -S warm_workers.py client SOCKET --
python -u -c ...``). The client (stdlib only, a few ms) hands its file descriptors,
argv, cwd and environment to the zygote over a Unix socket, forwards SIGTERM/SIGINT
to the forked worker and exits with its status. Whatever cannot be warm (the zygote
did not start, a Python flag or ``PYTHON*`` variable a fork cannot change) falls back
to the cold start: the client execs the original command. A test whose subject is a
fresh process is marked ``cold_workers`` and keeps cold workers. A worker started cold
otherwise is said in the zygote's folder (``WarmStart.why_cold``), and fails the test
whose session started it (``tests/conftest.py``): it costs seconds of CPU, silently.
"""

from __future__ import annotations

import marshal
import os
import signal
import socket
import sys

#: What a worker imports anyway, imported once in the zygote (never the plugin).
WARM_LIBRARIES = (
    "pytest",
    "execnet",
    "execnet.gateway_base",
    "numpy",
    "pandas",
    "sqlalchemy",
    "mlflow",
    "mlflow.models",
    "mlflow.pyfunc",
    "mlflow.sklearn",
    "mlflow.store.tracking.rest_store",
    "mlflow.store.tracking.sqlalchemy_store",
    "optuna",
    "sklearn.datasets",
    "sklearn.linear_model",
)

#: ``PYTHON*`` variables a forked worker can honour; any other must match the zygote's.
#: ``PYTHONBREAKPOINT`` is read by ``breakpoint()`` when called, not at start-up (and
#: ``ray.init`` sets it in its driver's environment, so every test after a Ray one has it).
_APPLIED_ENV = (
    "PYTHONPATH",
    "PYTHONWARNINGS",
    "PYTHONUNBUFFERED",
    "PYTHONDONTWRITEBYTECODE",
    "PYTHONBREAKPOINT",
)

#: Flags of execnet's worker command a forked worker can honour (``-W`` takes a value).
_APPLIED_FLAGS = ("-u", "-B", "-W")


# -- the client: the worker's command, a few ms of builtins -----------------------------------


def client(address: str, command: list[str]) -> None:
    """Have the zygote fork ``command``'s worker on this process's stdio, or run it cold."""
    try:
        connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        connection.connect(address)
        request = marshal.dumps({"argv": command, "cwd": os.getcwd(), "env": dict(os.environ)})
        socket.send_fds(connection, [b"R"], [0, 1, 2])
        connection.sendall(len(request).to_bytes(4, "big") + request)
        answers = connection.makefile("rb")
        first = answers.readline().strip()
        if not first.isdigit():
            raise ValueError(f"the zygote answered {first.decode(errors='replace')!r}")
        pid = int(first)
    except (OSError, ValueError) as why:  # the cold start, as execnet would have made it
        try:
            with open(os.path.join(os.path.dirname(address), "cold.log"), "a") as log:
                log.write(f"{os.getpid()} of {os.getppid()}: cold, {why!r}\n")
        except OSError:
            pass
        os.execv(command[0], command)

    def forward(signum: int, _frame: object) -> None:
        try:  # noqa: SIM105  (contextlib costs the client's start more than the rest)
            os.kill(pid, signum)
        except ProcessLookupError:
            pass

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    status = answers.readline().strip()
    code = int(status) if status else 1  # the zygote went away: its worker was killed
    if code < 0:  # killed by a signal: die the same way
        signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
    sys.exit(code)


if __name__ == "__main__" and sys.argv[1:2] == ["client"]:
    client(sys.argv[2], sys.argv[4:])  # argv: client SOCKET -- COMMAND...


# -- the zygote: one warm process that forks workers ----------------------------------------

import contextlib  # noqa: E402  (the client above needs none of these)
import gc  # noqa: E402
import importlib  # noqa: E402
import io  # noqa: E402
import resource  # noqa: E402
import selectors  # noqa: E402
import threading  # noqa: E402
import types  # noqa: E402
import warnings  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from typing import Any  # noqa: E402


@dataclass
class _Request:
    """One worker to start: the client's stdio, command, folder and environment."""

    fds: list[int]
    argv: list[str]
    cwd: str
    env: dict[str, str]


def _options(argv: list[str]) -> tuple[list[str], str] | None:
    """The ``-W`` options and ``-c`` code of execnet's command; None if a fork cannot honour it."""
    warnoptions: list[str] = []
    args = iter(argv[1:])
    for arg in args:
        if arg == "-c":
            return warnoptions, next(args, "")
        if arg == "-W":
            warnoptions.append(next(args, ""))
        elif arg.startswith("-W"):
            warnoptions.append(arg[2:])
        elif arg not in _APPLIED_FLAGS:
            return None
    return None


def _plugin_packages_imported() -> list[str]:
    """The top-level packages of pytest plugins (entry points) that importing imported."""
    from importlib.metadata import entry_points

    packages = {entry.value.split(".")[0].split(":")[0] for entry in entry_points(group="pytest11")}
    return sorted(packages.intersection(sys.modules))


def _python_env(env: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if k.startswith("PYTHON") and k not in _APPLIED_ENV}


class _Zygote:
    """The warm process: imports the libraries once, then forks a worker per request."""

    def __init__(self, address: str) -> None:
        self.address = address
        # A fresh interpreter's, after its own script's folder and PYTHONPATH's entries (the
        # zygote has the test process's PYTHONPATH, so that it imports the same copy of the
        # package; a worker puts its own in front).
        python_path = os.environ.get("PYTHONPATH", "")
        self.base_path = sys.path[1 + (len(python_path.split(os.pathsep)) if python_path else 0) :]
        self.start_env = _python_env(dict(os.environ))
        self.initial_filters = list(warnings.filters)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # what importing says, the worker's import said
            for name in WARM_LIBRARIES:
                with contextlib.suppress(ImportError):
                    importlib.import_module(name)
        added = len(warnings.filters) - len(self.initial_filters)
        self.library_filters = list(warnings.filters[:added])  # what imports added, in front
        self.plugin_packages = _plugin_packages_imported()
        streams = (sys.__stdin__, sys.__stdout__, sys.__stderr__)
        self.stdio = [(s.encoding, s.errors) if s else ("utf-8", "strict") for s in streams]
        self.children: dict[int, socket.socket] = {}
        self.pid = os.getpid()
        self.workers_cpu = 0.0
        self._write_cpu()
        gc.collect()
        gc.freeze()  # shared with every worker, never walked again

    def serve(self) -> _Request | None:
        """Fork workers until this process's stdin closes; in a worker, return its request."""
        wake_read, wake_write = os.pipe()
        os.set_blocking(wake_write, False)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.set_wakeup_fd(wake_write)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(self.address)
        listener.listen(16)
        selector = selectors.DefaultSelector()
        selector.register(listener, selectors.EVENT_READ, "accept")
        selector.register(wake_read, selectors.EVENT_READ, "reap")
        selector.register(sys.stdin, selectors.EVENT_READ, "stop")
        # mlflow's import loads the package's spool store (its ``mlflow.tracking_store``
        # entry point): say which copy, so that a test process importing another one
        # (a worktree first on PYTHONPATH) keeps cold workers.
        package = sys.modules.get("pytest_mlexp")
        sys.stdout.write(f"ready {os.path.dirname(getattr(package, '__file__', '') or '')}\n")
        sys.stdout.flush()
        try:
            while True:
                for key, _ in selector.select():
                    if key.data == "accept":
                        request = self._accept(listener, selector)
                        if request is not None:  # this is the worker now
                            listener.close()
                            os.close(wake_read)
                            os.close(wake_write)
                            return request
                    elif key.data == "reap":
                        while len(os.read(wake_read, 512)) == 512:
                            pass
                        self._reap(selector)
                    elif key.data == "stop":
                        return None
                    else:  # a client went away (killed): so does its worker
                        selector.unregister(key.fileobj)
                        self._kill(key.data)
        finally:
            if self.children and os.getpid() == self.pid:
                for pid in self.children:
                    self._kill(pid)

    def _accept(self, listener: socket.socket, selector: selectors.BaseSelector) -> _Request | None:
        connection, _ = listener.accept()
        try:
            connection.settimeout(30)
            _, fds, _, _ = socket.recv_fds(connection, 1, 3)
            stream = connection.makefile("rb")
            request = marshal.loads(stream.read(int.from_bytes(stream.read(4), "big")))
            work = _Request(fds, request["argv"], request["cwd"], request["env"])
        except (OSError, ValueError, EOFError, TypeError, KeyError):
            connection.close()
            return None
        if not self._can_fork(work):
            print(  # into the zygote's log
                f"cold: threads {threading.active_count()}, options {_options(work.argv)}, "
                f"env {sorted(set(_python_env(work.env).items()) ^ set(self.start_env.items()))}",
                file=sys.stderr,
                flush=True,
            )
            connection.sendall(b"cold\n")
            connection.close()
            for fd in fds:
                os.close(fd)
            return None
        pid = os.fork()
        if pid == 0:
            selector.close()
            for other in self.children.values():
                other.close()
            connection.close()
            return work
        for fd in fds:
            os.close(fd)
        connection.sendall(f"{pid}\n".encode())
        connection.setblocking(False)
        self.children[pid] = connection
        selector.register(connection, selectors.EVENT_READ, pid)
        return None

    def _can_fork(self, work: _Request) -> bool:
        return (
            threading.active_count() == 1
            and _options(work.argv) is not None
            and _python_env(work.env) == self.start_env
        )

    def _reap(self, selector: selectors.BaseSelector) -> None:
        while self.children:
            try:
                pid, status, usage = os.wait4(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            self.workers_cpu += usage.ru_utime + usage.ru_stime
            self._write_cpu()
            connection = self.children.pop(pid, None)
            if connection is not None:
                with contextlib.suppress(KeyError):  # its client went away first
                    selector.unregister(connection)
                try:
                    connection.setblocking(True)
                    connection.sendall(f"{os.waitstatus_to_exitcode(status)}\n".encode())
                except OSError:
                    pass
                connection.close()

    def _write_cpu(self) -> None:
        """Its own CPU and its ended workers', in seconds, for the suite's CPU profile."""
        own = resource.getrusage(resource.RUSAGE_SELF)
        with open("cpu.tmp", "w") as file:
            file.write(f"{own.ru_utime + own.ru_stime:.3f} {self.workers_cpu:.3f}\n")
        os.replace("cpu.tmp", "cpu")

    def _kill(self, pid: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)

    def become(self, work: _Request) -> None:
        """In the forked worker: be what ``python <argv>`` would be, then run its code."""
        signal.set_wakeup_fd(-1)
        for signum in (signal.SIGCHLD, signal.SIGTERM):
            signal.signal(signum, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        for target, fd in enumerate(work.fds):
            os.dup2(fd, target)
            os.close(fd)
        os.chdir(work.cwd)
        os.environ.clear()
        os.environ.update(work.env)
        options = _options(work.argv)
        assert options is not None
        warnoptions, code = options
        if work.env.get("PYTHONWARNINGS"):
            warnoptions[:0] = work.env["PYTHONWARNINGS"].split(",")
        unbuffered = "-u" in work.argv or bool(work.env.get("PYTHONUNBUFFERED"))
        sys.dont_write_bytecode = "-B" in work.argv or bool(work.env.get("PYTHONDONTWRITEBYTECODE"))
        python_path = [p for p in work.env.get("PYTHONPATH", "").split(os.pathsep) if p]
        sys.path[:] = ["", *python_path, *self.base_path]
        sys.argv[:] = ["-c"]
        sys.orig_argv[:] = work.argv
        sys.warnoptions[:] = warnoptions
        filters: list[Any] = warnings.filters  # type: ignore[assignment]
        filters[:] = self.initial_filters
        warnings._processoptions(warnoptions)  # type: ignore[attr-defined]
        filters[:0] = self.library_filters
        warnings._filters_mutated()  # type: ignore[attr-defined]
        self._stdio(unbuffered)
        for name in self.plugin_packages:
            # Imported by a library (anyio by mlflow), where a cold worker imports it only
            # after pytest marked the plugins for rewriting: pytest's own marker keeps away
            # the "already imported so cannot be rewritten" warning a cold worker never gives.
            module = sys.modules[name]
            module.__doc__ = f"{module.__doc__ or ''}\nPYTEST_DONT_REWRITE"
        if "numpy" in sys.modules:  # Python's own random reseeds itself after a fork
            sys.modules["numpy"].random.seed()
        main = types.ModuleType("__main__")
        main.__dict__.update(__builtins__=__builtins__, __annotations__={})
        sys.modules["__main__"] = main
        exec(compile(code, "<string>", "exec"), main.__dict__)

    def _stdio(self, unbuffered: bool) -> None:
        streams = []
        for fd, (encoding, errors) in enumerate(self.stdio):
            write = fd > 0
            binary = open(  # noqa: SIM115  (they live as long as the process)
                fd,
                "wb" if write else "rb",
                buffering=0 if write and unbuffered else -1,
                closefd=False,
            )
            streams.append(
                io.TextIOWrapper(
                    binary,
                    encoding=encoding,
                    errors=errors,
                    line_buffering=not unbuffered and write and os.isatty(fd),
                    write_through=unbuffered,
                )
            )
        sys.stdin, sys.stdout, sys.stderr = streams
        sys.__stdin__, sys.__stdout__, sys.__stderr__ = streams  # type: ignore[misc]


def _zygote_main(address: str) -> None:
    zygote = _Zygote(address)
    work = zygote.serve()
    if work is None:
        return
    del zygote.children
    zygote.become(work)


# -- in the test process: start the zygote once, point execnet's popen workers at it ------

import atexit  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
from collections.abc import Iterator  # noqa: E402

#: The environment this process started with (before pytester changed HOME and the like).
_START_ENV = dict(os.environ)


def _same_package(zygote_copy: str) -> bool:
    """Whether the zygote loaded no copy of the package, or the one this process runs."""
    import pytest_mlexp

    return not zygote_copy or os.path.samefile(zygote_copy, os.path.dirname(pytest_mlexp.__file__))


class WarmStart:
    """The zygote of this test process: started on first use, ended with the process."""

    def __init__(self, shared: str | None = None) -> None:
        """``shared``: the socket of a zygote another process started, to use (not to stop)."""
        self._process: subprocess.Popen[bytes] | None = None
        self._folder = os.path.dirname(shared) if shared else ""
        self._address = shared or None
        self._failed = False
        self._owner = os.getpid()
        #: Why workers stay cold, if the zygote was started and not used.
        self.cold_reason: str | None = None

    def address(self) -> str | None:
        """The zygote's socket, started now if need be; None if it cannot start (go cold).

        A worker of a run that shares its zygote (``share_with_workers``) uses that one.
        """
        if self._address is None and not self._failed:
            self._failed = True
            # In this process's own temporary folder, not a test's (TMPDIR, tempfile.tempdir
            # patched): a test may empty or remove its folder, and with it the zygote's socket.
            folder = self._folder = tempfile.mkdtemp(
                prefix="mlexp-zygote-", dir=_START_ENV.get("TMPDIR") or "/tmp"
            )
            address = os.path.join(folder, "socket")
            # PYTHONPATH kept: importing mlflow imports the package (above), the same copy.
            env = {
                k: v for k, v in _START_ENV.items() if k not in _APPLIED_ENV or k == "PYTHONPATH"
            }
            with open(os.path.join(folder, "log"), "wb") as log:
                self._process = subprocess.Popen(
                    [sys.executable, __file__, "serve", address],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=log,
                    cwd=folder,
                    env=env,
                    start_new_session=True,  # a Ctrl-C in the terminal is for the tests
                )
            self._owner = os.getpid()
            atexit.register(self.stop)
            assert self._process.stdout is not None
            selected = selectors.DefaultSelector()
            selected.register(self._process.stdout, selectors.EVENT_READ)
            ready = selected.select(timeout=120) and self._process.stdout.readline()
            if ready and ready.startswith(b"ready ") and _same_package(ready[6:-1].decode()):
                self._address, self._failed = address, False
            else:
                self.cold_reason = (
                    f"the zygote loaded another copy of pytest_mlexp ({ready[6:-1].decode()})"
                    if ready and ready.startswith(b"ready ")
                    else "the zygote did not start (see its log)"
                )
                self.stop()
            selected.close()
        return self._address

    def cold_starts(self) -> int:
        """How many of this process's workers started cold so far, though asked to be warm.

        Each client says so in the zygote's folder, with its parent: this process.
        """
        mine = f" of {os.getpid()}: "
        if self._folder:
            with contextlib.suppress(OSError), open(os.path.join(self._folder, "cold.log")) as f:
                return sum(mine in line for line in f)
        return 0

    def why_cold(self) -> str:
        """What the zygote and its clients said of workers started cold (their logs)."""
        said = []
        for name in ("log", "cold.log") if self._folder else ():
            with contextlib.suppress(OSError), open(os.path.join(self._folder, name)) as file:
                said.append(file.read())
        return "".join(said)

    @property
    def pid(self) -> int | None:
        """The zygote's process id, if it runs."""
        return self._process.pid if self._process is not None else None

    def cpu(self) -> float:
        """The CPU seconds the zygote and its ended workers used so far (0 if none started).

        Forked workers are the zygote's children, not this process's: a profile of this
        process's children (``RUSAGE_CHILDREN``) counts them only when the zygote ends.
        """
        if self._process is None:
            return 0.0
        try:
            with open(os.path.join(self._folder, "cpu")) as file:
                own, workers = file.read().split()
        except (OSError, ValueError):
            return 0.0
        return float(own) + float(workers)

    def stop(self) -> None:
        """End the zygote: its stdin closes, it ends any worker left and exits (else killed)."""
        process = self._process
        if process is None or os.getpid() != self._owner:
            # None started, another process's (``shared``), or this is a forked copy of the
            # process that started it, exiting (its atexit): the zygote and its socket stay.
            return
        self._process, self._address = None, None
        for stream in (process.stdin, process.stdout):  # its stdin's end: it ends its workers
            if stream is not None:
                stream.close()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        folder = self._folder
        with contextlib.suppress(OSError):
            os.unlink(os.path.join(folder, "socket"))
        for name in ("log", "cpu", "cold.log"):
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(folder, name))
        with contextlib.suppress(OSError):
            os.rmdir(folder)


#: The environment variable that gives a run's processes one zygote: its socket's address.
SHARED_ZYGOTE = "MLEXP_TESTS_ZYGOTE"

#: This process's zygote: its own, or its run's (an xdist worker of ``share_with_workers``).
warm_start = WarmStart(_START_ENV.get(SHARED_ZYGOTE))


def share_with_workers() -> contextlib.ExitStack:
    """In an xdist controller: its workers are forked warm, and use its zygote for theirs.

    One zygote for the run (its imports paid once, not once per worker); close the
    returned stack when the workers have ended.
    """
    stack = contextlib.ExitStack()
    if _START_ENV.get("MLEXP_TESTS_COLD_WORKERS"):
        return stack
    address = warm_start.address()
    if address is not None:
        os.environ[SHARED_ZYGOTE] = address
        stack.callback(os.environ.pop, SHARED_ZYGOTE, None)
        stack.enter_context(warm_workers())
    return stack


@contextlib.contextmanager
def warm_workers() -> Iterator[None]:
    """While in this block, xdist's popen workers started in this process are forked warm.

    ``MLEXP_TESTS_COLD_WORKERS=1`` keeps every worker cold (to compare, or to rule it out).
    """
    import execnet.gateway_io

    if _START_ENV.get("MLEXP_TESTS_COLD_WORKERS"):
        yield
        return

    cold = execnet.gateway_io.popen_args

    def popen_args(spec: Any) -> list[str]:
        command = cold(spec)
        if not spec.popen or spec.python or spec.via:
            return command
        address = warm_start.address()
        if address is None:
            return command
        return [sys.executable, "-I", "-S", __file__, "client", address, "--", *command]

    execnet.gateway_io.popen_args = popen_args
    try:
        yield
    finally:
        execnet.gateway_io.popen_args = cold


if __name__ == "__main__" and sys.argv[1:2] == ["serve"]:
    _zygote_main(sys.argv[2])
