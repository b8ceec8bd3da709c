"""``--mlexp-ray``: a session's items on a real local Ray cluster of two nodes.

The cluster is started once for the module, so its sessions share one test
(``test_on_a_ray_cluster``): under ``-n 2`` the module's tests may go to
different xdist workers, and two clusters would cost twice the start and
clash on ports. Its nodes are ``ray start --block`` processes on 127.0.0.1,
each in its own process group, ended by ``os.killpg`` (never ``ray stop``,
which ends every Ray process of the machine); a real ``mlflow server`` runs
beside them. The fixture does not wait for the nodes to boot (``nodes()`` does):
the test runs its serial session meanwhile.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from mlflow import MlflowClient

import pytest_mlexp
from conftest import logged_metrics
from pytest_mlexp.backend import tags as T

ray = pytest.importorskip("ray")


def _free_block(size: int = 50) -> int:
    """The first of ``size`` consecutive free ports: sessions of other checkouts run beside."""
    import random
    import socket

    for _ in range(200):
        base = random.randrange(20000, 30000 - size)
        try:
            for port in range(base, base + size):
                with socket.socket() as probe:
                    probe.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise RuntimeError(f"no {size} consecutive free ports in 20000-30000")


#: This module's ports: a free block (a fixed one clashed with other checkouts' sessions).
HEAD_PORT = _free_block()
#: The project under test comes first on the nodes' path: their workers import this copy.
PROJECT = Path(pytest_mlexp.__file__).resolve().parent.parent
RAY_BIN = Path(sys.executable).parent / "ray"


@dataclass
class Node:
    process: subprocess.Popen[bytes]
    resource: str

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):  # the test lost it already
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)


@dataclass
class LocalCluster:
    address: str
    head: Node
    worker: Node
    #: The tracking server beside the cluster (``mlflow_server``, started while the nodes boot).
    server_url: str
    _nodes: dict[str, str] | None = None

    def nodes(self) -> dict[str, str]:
        """Once both nodes are up: each one's id by its custom resource (``node_a``, ``node_b``).

        The fixture does not wait for them: a test can do what needs no cluster meanwhile.
        """
        if self._nodes is None:
            self._nodes = _wait_for_nodes(self.address, 2)
        return self._nodes


def _ports(base: int) -> list[str]:
    return [
        "--node-manager-port", str(base + 1),
        "--object-manager-port", str(base + 2),
        "--dashboard-agent-listen-port", str(base + 3),
        "--dashboard-agent-grpc-port", str(base + 4),
        "--metrics-export-port", str(base + 5),
        "--runtime-env-agent-port", str(base + 6),
        "--min-worker-port", str(base + 10),
        "--max-worker-port", str(base + 23),
    ]  # fmt: skip


def _start(args: list[str], resource: str, env: dict[str, str], log: Path) -> Node:
    with open(log, "ab") as out:
        process = subprocess.Popen(
            [str(RAY_BIN), "start", "--block", "--num-cpus", "1", "--disable-usage-stats",
             "--node-ip-address", "127.0.0.1", "--resources", json.dumps({resource: 1}),
             "--object-store-memory", str(80 * 1024**2), *args],
            env={**env, "MLEXP_TEST_NODE": resource},
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    return Node(process, resource)


def _wait_for_nodes(address: str, count: int, timeout: float = 90.0) -> dict[str, str]:
    """Once ``count`` nodes are alive: each custom resource's node id (one connection for both)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ray.init(address=address, log_to_driver=False, configure_logging=False)
        try:
            deadline = time.monotonic() + timeout
            while sum(node["Alive"] for node in ray.nodes()) < count:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the Ray cluster has not {count} nodes: {ray.nodes()}")
                time.sleep(0.3)
            return {
                name: node["NodeID"]
                for node in ray.nodes()
                for name in node["Resources"]
                if name.startswith("node_")
            }
        finally:
            ray.shutdown()


@pytest.fixture(scope="module")
def ray_cluster(request: pytest.FixtureRequest) -> Iterator[LocalCluster]:
    """Two nodes on 127.0.0.1: the head with resource ``node_a``, a worker with ``node_b``.

    Started, not yet up: ``LocalCluster.nodes()`` waits for them.
    """
    temp_dir = Path(tempfile.mkdtemp(prefix="mlexp-test-ray-", dir="/tmp"))
    # No token in ~/.ray: pytester gives each test a HOME of its own, the nodes keep theirs.
    auth = pytest.MonkeyPatch.context()
    auth.__enter__().setenv("RAY_AUTH_MODE", "disabled")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT), os.environ.get("PYTHONPATH")])),
        # A lost node is noticed in about a second, not Ray's default half minute.
        "RAY_health_check_initial_delay_ms": "0",
        "RAY_health_check_period_ms": "500",
        "RAY_health_check_failure_threshold": "2",
        # No idle workers started ahead: every actor needs one with the session's runtime
        # env (its working_dir), which a prestarted worker has not.
        "RAY_enable_worker_prestart": "0",
        "RAY_prestart_worker_first_driver": "0",
        # Nothing here reads the metrics, and the OOM killer's monitor reads /proc 4x a second.
        "RAY_enable_metrics_collection": "0",
        "RAY_memory_monitor_refresh_ms": "0",
    }
    log = temp_dir / "nodes.log"
    address = f"127.0.0.1:{HEAD_PORT}"
    head = _start(
        ["--head", "--port", str(HEAD_PORT), "--include-dashboard=false", "--no-monitor",
         "--dashboard-port", str(HEAD_PORT + 8), "--ray-client-server-port", str(HEAD_PORT + 9),
         "--temp-dir", str(temp_dir), *_ports(HEAD_PORT)],
        "node_a", env, log,
    )  # fmt: skip
    # (The head's log monitor streams its workers' output to Ray Client; node_b's is unread.)
    worker = _start(
        ["--address", address, "--include-log-monitor=false", *_ports(HEAD_PORT + 25)],
        "node_b", env, log,
    )  # fmt: skip
    try:
        server = request.getfixturevalue("mlflow_server")
        yield LocalCluster(address, head, worker, server.url)
    finally:
        worker.kill()
        head.kill()
        shutil.rmtree(temp_dir, ignore_errors=True)
        auth.__exit__(None, None, None)


EXPERIMENTS = """
import os, signal, time
import pytest

def experiment_grid(mlflow_run, alpha):  # its grid and resources: in params.yaml
    mlflow_run.log_metric("score", 10.0 - (alpha - 2) ** 2)

@pytest.mark.mlexp(repeats=2, expect={"score": ">= 0.5"}, resources={"node_a": 1})
def experiment_repeated(mlflow_run, seed):
    mlflow_run.log_metric("score", 0.6 + seed / 100)

@pytest.mark.mlexp(repeats=2, expect={"score": ">= 0.9"}, resources={"node_a": 1})
def experiment_regressed(mlflow_run, seed):
    mlflow_run.log_metric("score", 0.5 + seed / 100)
    deadline = time.monotonic() + 30
    while seed == 1 and "MLEXP_TEST_NODE" in os.environ and not os.path.exists(LOST):
        assert time.monotonic() < deadline, "node_b was never lost"
        time.sleep(0.1)  # node_a stays busy: the next free CPU is node_b's

# Seeds on demand: 2 first seeds, inconclusive against b.yaml's baseline, then 2 more.
@pytest.mark.mlexp(repeats=(2, 4), resources={"node_a": 1})
def experiment_on_demand(mlflow_run, seed):
    mlflow_run.log_metric("score", 0.8 + 0.003 * (-1) ** seed)

def experiment_loses_its_node(mlflow_run):
    # On the cluster, its worker takes the first free CPU: node_b's, once the grid is done.
    if os.environ.get("MLEXP_TEST_NODE") == "node_b" and not os.path.exists(LOST):
        open(LOST, "w").close()
        os.killpg(os.getpgid(os.getppid()), signal.SIGKILL)  # the node: its raylet's group
        os.kill(os.getpid(), signal.SIGKILL)
    mlflow_run.log_metric("score", 1.0)
"""

UNHOSTABLE = """
import pytest

@pytest.mark.mlexp(resources={"GPU": 1, "slurm": {"partition": "gpu"}})
def experiment_on_a_gpu(mlflow_run):
    mlflow_run.log_metric("score", 1.0)
"""

ON_DEMAND = "experiment_cluster.py::experiment_on_demand"

SEARCHED = """
import pytest
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression

X, y = make_classification(n_samples=120, n_features=4, random_state=0)

@pytest.mark.mlexp(search={"C": "loguniform(1e-4, 10)"}, trials=2, objective="accuracy:max",
                   sampler="random", seed=0, register="ray-clf", resources={"node_a": 1})
def experiment_clf(mlflow_run, C):
    model = LogisticRegression(C=C).fit(X[:80], y[:80])
    mlflow_run.log_model(model, pip_requirements=["scikit-learn"])
    return {"accuracy": model.score(X[80:], y[80:])}
"""

AS_IN_A_TERMINAL = """
import signal
from pytest_mlexp.workers import is_controller

def pytest_configure(config):
    if is_controller(config):  # not a cluster's worker
        signal.signal(signal.SIGINT, signal.default_int_handler)
"""

INTERRUPTED = """
import os, signal, time
import pytest
from pytest_mlexp.workers import given

@pytest.mark.parametrize("i", [1, 2])
def experiment_interrupted(mlflow_run, request, i):
    mlflow_run.log_metric("score", i)
    os.kill(given(request.config).controller_pid, signal.SIGINT)
    time.sleep(60)
"""


SPOOLED = """
import os, signal, time, urllib.request

def experiment_spooled(mlflow_run):
    mlflow_run.log_metric("before", 1.0)
    os.killpg(SERVER_PID, signal.SIGTERM)  # the tracking server is lost mid-item
    while True:
        try:
            urllib.request.urlopen(SERVER_URL + "/health", timeout=1)
            time.sleep(0.2)
        except OSError:
            break
    mlflow_run.log_metric("after", 2.0)
"""


def _runs(client: MlflowClient, experiment: str) -> list[Any]:
    found = client.get_experiment_by_name(experiment)
    assert found is not None, experiment
    return list(client.search_runs([found.experiment_id], max_results=1000))


def _started(run: Any) -> int:
    return int(run.info.start_time)


def _groups(runs: list[Any]) -> dict[str, dict[str, Any]]:
    """Each group run (grid parent, repeated cell) by kind and name: its status, tags, metrics."""
    varying = (T.SESSION_ID, T.PID, T.HOST, "mlflow.", "mlexp.git", "mlexp.group", "mlexp.best_run")
    groups = {}
    for run in runs:
        tags = run.data.tags
        if T.KIND not in tags:
            continue
        key = f"{tags[T.KIND]} {run.info.run_name.split(' ·')[0]}"
        groups[key] = {
            "status": run.info.status,
            **{k: v for k, v in tags.items() if not k.startswith(varying)},
            **run.data.metrics,
        }
    return groups


def test_on_a_ray_cluster(
    ray_cluster: LocalCluster,
    ourtester: pytest.Pytester,
    request: pytest.FixtureRequest,
    mlexp: Callable[..., subprocess.CompletedProcess[str]],
    git: Callable[..., str],
) -> None:
    """Placement by resources, the same results as serially, a lost node, Ctrl-C, the spool."""
    client = MlflowClient(ray_cluster.server_url)
    lost = ourtester.path / "lost"
    project = ourtester.path
    project.joinpath("experiment_cluster.py").write_text(f"LOST = {str(lost)!r}\n{EXPERIMENTS}")
    project.joinpath("params.yaml").write_text(
        "experiment_grid:\n  grid: {alpha: [1, 2, 3]}\n  resources: {node_b: 1}\n"
    )
    uri = ("-p", "no:randomly", "--mlexp-tracking-uri", ray_cluster.server_url)
    uri += ("--mlexp-params-file", "params.yaml")
    on_cluster = ("--mlexp-ray", ray_cluster.address)
    # experiment_on_demand's baseline: its 2 first seeds leave it undecided, 4 pass it.
    project.joinpath("b.yaml").write_text(
        f"{ON_DEMAND}:\n  score: 0.8\n  score.std: 0.002\n  score.n: 4\n"
    )
    gated = ("--mlexp-baseline-file", "b.yaml")
    verdicts = [
        f"{ON_DEMAND}: passed after 4 seeds (2 + 2: inconclusive at 2)",
        "* items have a baseline (b.yaml); 4 repeats by their expect= bounds; 2 repeated cells "
        "by the confidence bound over seeds: 2 regressed, 3 passed, 5 no-baseline",
    ]

    # The cells serially first, while the nodes boot (the fixture does not wait for them):
    # the session on the cluster below must give the same grid parent, repeated cells and
    # verdicts (the group runs carry no lineage but git's, left out of the comparison).
    quick = ("--mlexp-lineage", "none", "--mlexp-artifacts", "off")
    serial = ourtester.runpytest(*uri, *gated, "--mlexp-experiment", "serial", *quick)
    serial.assert_outcomes(passed=10, failed=2)
    serial.stdout.fnmatch_lines(verdicts)

    project.joinpath("experiment_gpu.py").write_text(UNHOSTABLE)
    nodes = ray_cluster.nodes()
    # A git project: the nodes get its files without .git, and its state from the controller.
    git(project, "init", "-q")
    git(project, "add", "experiment_cluster.py", "experiment_gpu.py", "b.yaml")  # clean
    git(project, "commit", "-qm", "cells")
    commit = git(project, "rev-parse", "HEAD").strip()

    # Each item where its resources are; the GPU item fails, naming the GPU; node_b is lost
    # under experiment_loses_its_node, which runs again on node_a; experiment_on_demand's
    # extra seeds run on the cluster too.
    result = ourtester.runpytest(*uri, *gated, "-v", "--mlexp-experiment", "on-ray", *on_cluster)
    result.assert_outcomes(passed=10, failed=2, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*experiment_cluster.py::experiment_grid?2? PASSED*",
            "*no node of the Ray cluster can ever host GPU=1 (the most a node has: 0)*",
            "*1 attempt superseded by a rerun*experiment_loses_its_node*",
            *verdicts,
        ]
    )
    assert lost.exists(), "experiment_loses_its_node never ran on node_b"
    on_ray = _runs(client, "on-ray")
    ran = [r for r in on_ray if T.KIND not in r.data.tags]
    assert not any("gpu" in r.info.run_name for r in ran)  # it never started a run
    attempts = sorted((r for r in ran if "loses" in r.info.run_name), key=_started)
    where = {r.info.run_name: r.data.tags[T.CLUSTER_NODE] for r in ran if r not in attempts}
    on_a = [f"experiment_{f}[seed{s}]" for f in ("repeated", "regressed") for s in (0, 1)]
    on_a += [f"experiment_on_demand[seed{s}]" for s in range(4)]
    assert where == {
        **{f"experiment_grid[{alpha}]": nodes["node_b"] for alpha in (1, 2, 3)},
        **dict.fromkeys(on_a, nodes["node_a"]),
    }
    ended = [(r.info.status, r.data.tags[T.OUTCOME], r.data.tags[T.CLUSTER_NODE]) for r in attempts]
    assert ended == [
        ("KILLED", T.OUTCOME_RERUN, nodes["node_b"]),
        ("FINISHED", "passed", nodes["node_a"]),
    ]
    assert "RUNNING" not in {r.info.status for r in on_ray}
    assert {r.data.tags[T.CLUSTER_BACKEND] for r in ran} == {"ray"}
    assert T.CLUSTER_LOST in attempts[0].data.tags  # why Ray says the worker was lost
    # The extra seeds are tracked runs of the same cell run, as its first seeds are.
    [cell] = [r for r in on_ray if r.data.tags.get(T.CELL) == ON_DEMAND and T.KIND in r.data.tags]
    seeds = {r.data.tags[T.PARENT_RUN_ID] for r in ran if "on_demand" in r.info.run_name}
    assert (seeds, cell.data.tags[T.REPEATS]) == ({cell.info.run_id}, "4")
    # Git lineage on every run, made on a node or by the controller.
    # (not on the attempt whose node died before its lineage was sent)
    finished = [r for r in on_ray if r.info.status != "KILLED"]
    assert {r.data.tags.get(T.GIT_COMMIT) for r in finished} == {commit}
    assert {r.data.tags.get(T.GIT_DIRTY) for r in finished} == {"false"}

    # The same grid parent, repeated cells and verdicts as serially (above).
    assert _groups(on_ray) == _groups(_runs(client, "serial"))
    assert len(_groups(on_ray)) == 4  # the grid's parent and three repeated cells
    project.joinpath("experiment_gpu.py").unlink()

    # Ray Client: a repeated cell and a search through the head's client server (ray://),
    # placed as before (on node_a, one worker for both: node_b is lost by now). In a
    # process of its own: a client connection leaves process-wide state behind (Ctrl-C
    # below went unseen under xdist). The search (its study in this project's journal: the
    # cluster is local) registers its best trial's model, and the HTML report shows it.
    project.joinpath("experiment_search.py").write_text(SEARCHED)
    through = ("--mlexp-ray", f"ray://127.0.0.1:{HEAD_PORT + 9}", "-k", "repeated or clf")
    client_session = ourtester.runpytest_subprocess(
        *uri, "--mlexp-experiment", "client", "--mlexp-html", "report.html",
        "-W", "ignore::UserWarning", *through,
    )  # fmt: skip
    client_session.assert_outcomes(passed=4, deselected=10)
    # Ray Client streams the workers' output to this terminal: MLflow's INFO lines stay out
    # (but the controller's own, waiting for the model version it registers, as serially).
    streamed = client_session.stdout.lines + client_session.stderr.lines
    assert [line for line in streamed if " INFO mlflow" in line] == [
        line for line in streamed if " INFO mlflow.store.model_registry" in line
    ]
    on_client = _runs(client, "client")
    seeds = [r for r in on_client if T.KIND not in r.data.tags and "repeated" in r.info.run_name]
    assert [r.data.tags[T.CLUSTER_NODE] for r in seeds] == [nodes["node_a"]] * 2
    (parent,) = [r for r in on_client if r.data.tags.get(T.KIND) == "search"]
    version = client.get_model_version_by_alias("ray-clf", "candidate")
    assert version.run_id == parent.data.tags[T.BEST_RUN_ID]
    assert client.get_run(version.run_id).data.tags[T.CLUSTER_NODE] == nodes["node_a"]
    assert "registered ray-clf v1 @candidate" in (project / "report.html").read_text()
    project.joinpath("experiment_search.py").unlink()

    # Ctrl-C: the cluster's work is cancelled, the run in flight ends KILLED, and so does
    # its grid's parent, with its counts (node_b is lost: one cell at a time).
    project.joinpath("experiment_cluster.py").write_text(INTERRUPTED)
    # As in a terminal: a shell starting a job in the background (CI, often) starts it
    # with SIGINT ignored, and Python then installs no KeyboardInterrupt handler.
    project.joinpath("conftest.py").write_text(AS_IN_A_TERMINAL)
    # (pytest-randomly on: the workers take the controller's seed, as xdist's do.) In a
    # process of its own, as a user's pytest is: the signal goes to the controller's pid,
    # and an xdist worker's state (other tests before this one) is not what is tested.
    stopped = ourtester.runpytest_subprocess(
        "--mlexp-tracking-uri", ray_cluster.server_url, "--mlexp-experiment", "ctrl-c",
        *on_cluster,
    )  # fmt: skip
    assert stopped.ret == pytest.ExitCode.INTERRUPTED
    stopped.stdout.fnmatch_lines(
        ["mlexp grid experiment_cluster.py::experiment_interrupted: 1 of 2 cells ran this "
         "session, 0 passed, 0 failed, 1 killed; *"]
    )  # fmt: skip
    [interrupted, parent] = sorted(_runs(client, "ctrl-c"), key=lambda r: T.KIND in r.data.tags)
    assert (interrupted.info.status, interrupted.data.tags[T.OUTCOME]) == ("KILLED", "interrupted")
    assert interrupted.data.tags[T.PARENT_RUN_ID] == parent.info.run_id
    assert (parent.info.status, parent.data.tags[T.KILLED]) == ("KILLED", "1")
    assert parent.data.metrics["mlexp.cells"] == 1

    project.joinpath("conftest.py").unlink()  # the sessions below run in this process

    # The spool on a node: the journal comes back to this project, and `mlexp sync` replays it.
    # Lost and back: a relay in front of the session's server (conftest's LosableServer).
    server = request.getfixturevalue("_losable")
    server.stop()
    server.start()
    header = f"SERVER_PID = {server.process.pid}\nSERVER_URL = {server.url!r}\n"
    project.joinpath("experiment_cluster.py").write_text(header + SPOOLED)
    with pytest.MonkeyPatch.context() as patch:
        # Forwarded to the workers (MLFLOW_*): the lost server is given up at once.
        patch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        patch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
        spooled = ourtester.runpytest(
            "-p", "no:randomly", "--mlexp-tracking-uri", server.url, "--mlexp-experiment", "spool",
            "--mlexp-on-tracking-error", "spool", "-W", "ignore::pytest_mlexp.MlexpWarning",
            *on_cluster,
        )  # fmt: skip
    server.process.wait(timeout=30)
    spooled.assert_outcomes(passed=1)
    spooled.stdout.fnmatch_lines([f"mlexp: 1 run could not reach {server.url}; it is kept in *"])
    assert len(list((project / ".mlexp" / "journal").glob("*.jsonl"))) == 1
    server.start()
    synced = mlexp(project, "sync")
    assert synced.returncode == 0, synced.stdout + synced.stderr
    [run] = _runs(MlflowClient(server.url), "spool")
    assert (run.info.status, logged_metrics(run)) == ("FINISHED", {"before": 1.0, "after": 2.0})


def test_refused_without_a_cluster(
    ourtester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing answering at the address, or Ray missing: a usage error before anything runs."""
    ourtester.makepyfile(experiment_one="def experiment_one(mlflow_run):\n    pass\n")
    result = ourtester.runpytest("--mlexp-ray", f"127.0.0.1:{HEAD_PORT + 49}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [f"*--mlexp-ray 127.0.0.1:{HEAD_PORT + 49}: the Ray cluster is unreachable: nothing*"]
    )
    assert not (ourtester.path / "mlflow.db").exists()

    # Bad resources are refused with or without a cluster.
    ourtester.makepyfile(
        experiment_one="import pytest\n\n"
        "@pytest.mark.mlexp(resources={'num_gpus': 'one'})\n"
        "def experiment_one(mlflow_run):\n    pass\n"
    )
    result = ourtester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*experiment_one*resources=: resource 'num_gpus' must be a number*"]
    )

    monkeypatch.setitem(sys.modules, "ray", None)
    result = ourtester.runpytest("--mlexp-ray", "auto")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--mlexp-ray needs Ray*pip install 'pytest-mlexp?ray?'"])


def test_refusals_for_nodes_on_other_machines(tmp_path: Path) -> None:
    """An embedded store, or a journal study, cannot be shared by nodes on other machines."""
    from pytest_mlexp.cluster.checks import check_store, check_study_storage
    from pytest_mlexp.cluster.connect import is_local
    from pytest_mlexp.cluster.ray_backend import actor_options
    from pytest_mlexp.cluster.resources import Demand, capacity, demand_of, missing
    from pytest_mlexp.settings.search import SearchSettings
    from pytest_mlexp.settings.tracking import TrackingConfig

    assert is_local({"127.0.0.1", "10.0.0.5"}, {"10.0.0.5"})
    assert not is_local({"127.0.0.1", "10.0.0.6"}, {"10.0.0.5"})
    remote = "--mlexp-ray 10.0.0.6:6379"
    embedded = TrackingConfig(
        tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
        experiment="e",
        tags={},
        rootdir=tmp_path,
        session_id="s",
        artifact_location=None,
        sources={},
    )
    with pytest.raises(pytest.UsageError, match=r"embedded store .* run a tracking server"):
        check_store(False, remote, embedded)
    with pytest.raises(pytest.UsageError, match=r"journal file .* --mlexp-search-storage"):
        check_study_storage(False, remote, SearchSettings())
    check_study_storage(False, remote, SearchSettings(storage="postgresql://db/optuna"))
    check_store(True, "--mlexp-ray 127.0.0.1:6379", embedded)

    # Neutral names (Ray's num_gpus is read as GPU); a backend's own options ride apart.
    demand = demand_of({"GPU": 1, "memory": "8GiB", "ssd": 1, "slurm": {"time": 9}}, "here")
    assert demand == Demand(
        gpus=1.0, memory=8 * 1024**3, custom={"ssd": 1.0}, options={"slurm": {"time": 9}}
    )
    assert demand_of({"num_gpus": 1}, "here").gpus == 1.0
    assert actor_options(demand) == {
        "num_cpus": 1.0, "num_gpus": 1.0, "memory": 8 * 1024**3, "resources": {"ssd": 1.0},
    }  # fmt: skip
    nodes = [{"CPU": 8.0, "GPU": 2.0, "memory": 64e9, "ssd": 1.0}, {"CPU": 4.0, "memory": 8e9}]
    assert missing(demand, nodes) is None
    assert capacity(demand, nodes) == 1
    assert missing(demand_of({"num_gpus": 4}, "here"), nodes) == (
        "no node of the Ray cluster can ever host GPU=4 (the most a node has: 2)"
    )


def test_spooled_journals_travel_to_the_controller(tmp_path: Path) -> None:
    """A node's journal files (its runs kept while the server was lost) reach the project's."""
    from pytest_mlexp.cluster.journal import keep, take
    from pytest_mlexp.spool.journal import Journal, read_journal

    node, project = tmp_path / "node" / "journal", tmp_path / "project" / "journal"
    journal = Journal(node, "http://user:secret@tracking:5000")
    journal.append("run1", {"op": "create", "experiment": "e"})
    artifact = tmp_path / "model.txt"
    artifact.write_text("weights")
    kept = journal.keep_file("run1", str(artifact))
    assert keep(take(node), project) == 1
    # The same run goes on spooling during the worker's next item: one file, one header.
    journal.append("run1", {"op": "terminate", "status": "FINISHED"})
    assert keep(take(node), project) == 0
    assert not list(node.iterdir())  # nothing left on the node
    ops = read_journal(project / "run1.jsonl")
    assert [op["op"] for op in ops] == ["header", "create", "terminate"]
    assert "secret" not in (project / "run1.jsonl").read_text()
    assert (project / kept).read_text() == "weights"
