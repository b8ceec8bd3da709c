"""A tracking server lost mid-session: bounded retries, then fail the item or spool to a journal.

``mlexp_on_tracking_error = fail`` (default): once MLflow's HTTP retries are
spent, the item fails with the reason; its run is left to the next session's
sweep (see ``grid.sweep_dead_runs``). ``spool``: what the run still had to
send goes to ``<rootdir>/.mlexp/journal/<id>.jsonl`` instead, and the item
keeps its own outcome; ``mlexp sync`` replays journals later.

A journal is one file per run, one JSON operation a line: ``create`` (a run
that never reached the server), ``attach`` (a run that exists on the server),
``batch`` (params, metrics, tags), ``text``, ``artifact`` (a copy kept beside
the journal), ``terminate``. Replay records each operation done in
``<id>.done``, and a created run carries ``mlexp.journal_id``, so a replay
cut short and started again neither loses nor duplicates anything.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .config import TrackingConfig, lookup
from .redaction import redact_uri
from .warning_types import MlexpWarning

if TYPE_CHECKING:
    from .tracking import Tracker

POLICIES = ("fail", "spool")
POLICY_ENV = "MLEXP_ON_TRACKING_ERROR"
JOURNAL_DIR = Path(".mlexp") / "journal"

#: Bounded defaults for MLflow's HTTP retries (its own allow minutes per request).
#: A value the user exported wins.
HTTP_RETRY_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0.5",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
}


def resolve_policy(config: pytest.Config) -> str:
    found = lookup(
        config, option="mlexp_on_tracking_error", env=POLICY_ENV, key="on_tracking_error"
    )
    if found is None:
        return "fail"
    value, source = str(found[0]).strip().lower(), found[1]
    if value not in POLICIES:
        raise pytest.UsageError(
            f"{source}: unknown policy {found[0]!r} for a lost tracking server; "
            f"accepted: {', '.join(POLICIES)}"
        )
    return value


def is_transient(exc: BaseException) -> bool:
    """A lost connection or timeout after MLflow's retries, not a refused request."""
    import requests
    from mlflow.exceptions import MlflowException, RestException

    if isinstance(exc, requests.RequestException | ConnectionError | TimeoutError):
        return True
    if isinstance(exc, MlflowException) and not isinstance(exc, RestException):
        return "API request to" in exc.message or "Max retries exceeded" in exc.message
    return False


class Journal:
    """The journal folder of a project; one file per spooled run."""

    def __init__(self, root: Path, tracking_uri: str) -> None:
        self.root = root
        self.tracking_uri = redact_uri(tracking_uri)
        self._lock = threading.Lock()

    def append(self, local_id: str, op: Mapping[str, Any]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / f"{local_id}.jsonl"
        with self._lock, open(path, "a", encoding="utf-8") as out:
            if out.tell() == 0:
                out.write(json.dumps({"op": "header", "tracking_uri": self.tracking_uri}) + "\n")
            out.write(json.dumps(dict(op)) + "\n")
            out.flush()
            os.fsync(out.fileno())

    def keep_file(self, local_id: str, source: str) -> str:
        """Copy an artifact beside the journal; its path relative to the journal folder."""
        target = self.root / f"{local_id}.files" / uuid.uuid4().hex[:8] / Path(source).name
        target.parent.mkdir(parents=True, exist_ok=True)
        if Path(source).is_dir():
            shutil.copytree(source, target)
        else:
            shutil.copy2(source, target)
        return str(target.relative_to(self.root))


class SpoolingClient:
    """Wraps an ``MlflowClient``: a write that fails for good goes to the journal.

    Once a run has spooled one operation, all of its later writes are spooled
    too, so the journal keeps them in order.
    """

    spools = True

    def __init__(self, client: Any, journal: Journal) -> None:
        self._client = client
        self.journal = journal
        self._offline: dict[str, str] = {}  # run id -> journal id

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def spooled(self, run_id: str) -> bool:
        return run_id in self._offline

    def offline_run(
        self, exc: BaseException, experiment: str, run_name: str, tags: Mapping[str, str]
    ) -> str:
        """A run id for a run the server could not create; raises ``exc`` if it is not transient."""
        if not is_transient(exc):
            raise exc
        local_id = uuid.uuid4().hex
        self._warn(exc)
        self._offline[local_id] = local_id
        self.journal.append(
            local_id,
            {
                "op": "create",
                "experiment": experiment,
                "run_name": run_name,
                "tags": {**tags, "mlexp.journal_id": local_id},
                "start_time": int(time.time() * 1000),
            },
        )
        return local_id

    def _write(
        self,
        run_id: str,
        op: dict[str, Any] | Callable[[], dict[str, Any]],
        send: Callable[[], object],
    ) -> None:
        """Send now, or (the server being lost) append ``op`` to the run's journal.

        ``op`` may be a function, for entries that copy files only when spooled.
        """
        if run_id not in self._offline:
            try:
                send()
                return
            except Exception as exc:
                if not is_transient(exc):
                    raise
                self._warn(exc)
                self._offline[run_id] = run_id
                self.journal.append(run_id, {"op": "attach", "run_id": run_id})
        self.journal.append(self._offline[run_id], op() if callable(op) else op)

    def _warn(self, exc: BaseException) -> None:
        if not getattr(self, "_warned", False):
            self._warned = True
            warnings.warn(
                MlexpWarning(
                    f"tracking server {self.journal.tracking_uri} lost ({type(exc).__name__}); "
                    f"spooling runs to {self.journal.root}; replay them with `mlexp sync`"
                ),
                stacklevel=3,
            )

    # -- the writes ExperimentRun and Tracker make --------------------------------

    def log_batch(self, run_id: str, metrics: Any = (), params: Any = (), tags: Any = ()) -> None:
        op = {
            "op": "batch",
            "metrics": [[m.key, m.value, m.timestamp, m.step] for m in metrics],
            "params": [[p.key, p.value] for p in params],
            "tags": [[t.key, t.value] for t in tags],
        }
        self._write(
            run_id,
            op,
            lambda: self._client.log_batch(run_id, metrics=metrics, params=params, tags=tags),
        )

    def set_tag(self, run_id: str, key: str, value: Any) -> None:
        op = {"op": "batch", "metrics": [], "params": [], "tags": [[key, str(value)]]}
        self._write(run_id, op, lambda: self._client.set_tag(run_id, key, value))

    def set_terminated(
        self, run_id: str, status: str | None = None, end_time: int | None = None
    ) -> None:
        op = {
            "op": "terminate",
            "status": status or "FINISHED",
            "end_time": end_time or int(time.time() * 1000),
        }
        self._write(run_id, op, lambda: self._client.set_terminated(run_id, status, end_time))

    def log_text(self, run_id: str, text: str, artifact_file: str) -> None:
        op = {"op": "text", "text": text, "artifact_file": artifact_file}
        self._write(run_id, op, lambda: self._client.log_text(run_id, text, artifact_file))

    def log_dict(self, run_id: str, dictionary: Any, artifact_file: str) -> None:
        if run_id not in self._offline:
            try:
                self._client.log_dict(run_id, dictionary, artifact_file)
                return
            except Exception as exc:
                if not is_transient(exc):
                    raise
        import yaml

        if artifact_file.endswith((".yaml", ".yml")):
            text = yaml.safe_dump(dictionary)
        else:
            text = json.dumps(dictionary, indent=2)
        self.log_text(run_id, text, artifact_file)

    def log_artifact(self, run_id: str, local_path: str, artifact_path: str | None = None) -> None:
        def op() -> dict[str, Any]:
            kept = self.journal.keep_file(self._offline[run_id], local_path)
            return {"op": "artifact", "path": kept, "artifact_path": artifact_path, "dir": False}

        self._write(
            run_id, op, lambda: self._client.log_artifact(run_id, local_path, artifact_path)
        )

    def log_artifacts(self, run_id: str, local_dir: str, artifact_path: str | None = None) -> None:
        def op() -> dict[str, Any]:
            kept = self.journal.keep_file(self._offline[run_id], local_dir)
            return {"op": "artifact", "path": kept, "artifact_path": artifact_path, "dir": True}

        self._write(
            run_id, op, lambda: self._client.log_artifacts(run_id, local_dir, artifact_path)
        )


def add_options(group: Any, parser: pytest.Parser) -> None:
    group.addoption(
        "--mlexp-on-tracking-error",
        dest="mlexp_on_tracking_error",
        metavar="fail|spool",
        default=None,
        help="When the tracking server is lost mid-session (after retries): fail the item "
        "(default), or spool the run to .mlexp/journal for `mlexp sync`.",
    )
    parser.addini(
        "mlexp_on_tracking_error", "fail or spool, when the tracking server is lost.", default=""
    )


def configure(config: pytest.Config, settings: TrackingConfig) -> None:
    config.pluginmanager.register(JournalPlugin(config, settings), "mlexp-journal")


class JournalPlugin:
    """Registered as ``mlexp-journal``: sets retry bounds and installs the spooling client."""

    def __init__(self, config: pytest.Config, settings: TrackingConfig) -> None:
        self.config = config
        self.settings = settings
        self.policy = resolve_policy(config)
        self.journal_dir = settings.rootdir / JOURNAL_DIR
        self._installed = False
        if settings.is_server:
            for name, value in HTTP_RETRY_DEFAULTS.items():
                os.environ.setdefault(name, value)

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> Any:
        if self.policy == "spool" and not self._installed:
            from .session import PLUGIN_NAME, is_tracked

            if is_tracked(item):
                self._installed = True
                tracker: Tracker = self.config.pluginmanager.getplugin(PLUGIN_NAME).tracker
                journal = Journal(self.journal_dir, self.settings.tracking_uri)
                tracker.client = SpoolingClient(tracker.client, journal)  # type: ignore[assignment]
        return (yield)

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
        report: pytest.TestReport = yield
        summary = getattr(report, "mlexp_run", None)
        if summary is not None:
            from .session import RUN_KEY

            item_run = item.stash.get(RUN_KEY, None)
            client = getattr(item_run.run, "client", None) if item_run else None
            if isinstance(client, SpoolingClient) and client.spooled(item_run.run.run_id):  # type: ignore[union-attr]
                summary["spooled"] = True
        return report

    @pytest.hookimpl(trylast=True)
    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if hasattr(self.config, "workerinput"):
            return
        session = self.config.pluginmanager.getplugin("mlexp-session")
        spooled = [r for r in getattr(session, "results", []) if r.get("spooled")]
        if spooled:
            terminalreporter.write_line(
                f"mlexp: {len(spooled)} runs could not reach {self.settings.display_uri}; "
                f"they are kept in {self.journal_dir}. Replay them with: "
                f"cd {self.settings.rootdir} && mlexp sync",
                yellow=True,
            )


# -- mlexp sync -----------------------------------------------------------------------------


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "sync",
        help="replay runs spooled while the tracking server was unreachable",
        description="Send the runs kept in the journal (.mlexp/journal) to the tracking server. "
        "Replaying twice sends nothing twice.",
    )
    parser.add_argument(
        "--journal",
        default=str(JOURNAL_DIR),
        help="journal folder (default: .mlexp/journal in the current directory)",
    )
    parser.add_argument(
        "--tracking-uri",
        default=None,
        help="server to send to (default: MLFLOW_TRACKING_URI, else the URI the runs were "
        "recorded for); credentials come from MLflow's usual environment variables",
    )
    parser.set_defaults(handler=sync_command)


def sync_command(args: argparse.Namespace) -> int:
    root = Path(args.journal)
    files = sorted(root.glob("*.jsonl")) if root.is_dir() else []
    if not files:
        print(f"mlexp sync: nothing to replay in {root}")
        return 0
    done = failed = 0
    for path in files:
        try:
            replay(path, args.tracking_uri)
        except Exception as exc:
            failed += 1
            print(f"mlexp sync: {path.name}: {type(exc).__name__}: {exc}; kept for the next sync")
            continue
        done += 1
    print(f"mlexp sync: replayed {done} runs, {failed} left in {root}")
    return 1 if failed else 0


def replay(path: Path, tracking_uri: str | None = None) -> str:
    """Send one journal file; returns the run id. Moves it to ``replayed/`` once complete."""
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.tracking import MlflowClient

    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    header = lines[0] if lines and lines[0].get("op") == "header" else {}
    uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or header.get("tracking_uri")
    client = MlflowClient(tracking_uri=uri)
    progress = path.with_suffix(".done")
    done_up_to, run_id = -1, None
    if progress.exists():
        for line in progress.read_text(encoding="utf-8").splitlines():
            if line.strip():
                state = json.loads(line)
                done_up_to, run_id = int(state["done"]), state["run_id"]

    def mark(index: int) -> None:
        with open(progress, "a", encoding="utf-8") as out:
            out.write(json.dumps({"done": index, "run_id": run_id}) + "\n")
            out.flush()
            os.fsync(out.fileno())

    for index, op in enumerate(lines):
        if index <= done_up_to:
            continue
        kind = op["op"]
        if kind == "header":
            pass
        elif kind == "attach":
            run_id = op["run_id"]
        elif kind == "create":
            run_id = _find_or_create(client, op)
        elif kind == "batch":
            assert run_id is not None
            client.log_batch(
                run_id,
                metrics=[Metric(k, v, ts, step) for k, v, ts, step in op["metrics"]],
                params=[Param(k, v) for k, v in op["params"]],
                tags=[RunTag(k, v) for k, v in op["tags"]],
            )
        elif kind == "text":
            assert run_id is not None
            client.log_text(run_id, op["text"], op["artifact_file"])
        elif kind == "artifact":
            assert run_id is not None
            local = str(path.parent / op["path"])
            if op["dir"]:
                client.log_artifacts(run_id, local, op["artifact_path"])
            else:
                client.log_artifact(run_id, local, op["artifact_path"])
        elif kind == "terminate":
            assert run_id is not None
            client.set_terminated(run_id, op["status"], op["end_time"])
        mark(index)
    done_dir = path.parent / "replayed"
    done_dir.mkdir(exist_ok=True)
    for suffix in (".jsonl", ".done", ".files"):
        source = path.with_suffix(suffix)
        if source.exists():
            shutil.move(str(source), str(done_dir / source.name))
    assert run_id is not None
    return str(run_id)


def _find_or_create(client: Any, op: Mapping[str, Any]) -> str:
    """Create the spooled run, unless an interrupted replay already did."""
    experiment = client.get_experiment_by_name(op["experiment"])
    experiment_id = (
        experiment.experiment_id if experiment else client.create_experiment(op["experiment"])
    )
    journal_id = op["tags"]["mlexp.journal_id"]
    found = client.search_runs(
        [experiment_id], filter_string=f"tags.`mlexp.journal_id` = '{journal_id}'", max_results=1
    )
    if found:
        return str(found[0].info.run_id)
    run = client.create_run(
        experiment_id, start_time=op["start_time"], tags=op["tags"], run_name=op["run_name"]
    )
    return str(run.info.run_id)
