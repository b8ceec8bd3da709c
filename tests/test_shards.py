"""CI shards sharing a session that end together leave the group runs with every shard's members.

A grid parent gets every shard's cells, a search parent every shard's trials (one pair of
shards shows both: each a process, an MLflow import each).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

#: The project's default store exists before the shards start (conftest ``_premade_store``):
#: two processes creating its tables at once is not what shards are about.
PREMADE_STORE = True

#: ``signals.py`` in the shards' project: a shard waits for the other's signal file.
SIGNALS = """
import time

def wait_for(path):
    deadline = time.monotonic() + 120
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
"""

#: Both shards run a search (its file first), then a grid. Each one's last member of B is
#: still running when A first reads its group run's members (signals ``a-read-1``, then
#: ``a-read-2``); B says when its search is over (``b-1``) and when it has ended (``b-2``).
SEARCHED = """
import os
from pathlib import Path

import pytest
from signals import wait_for

SHARD = os.environ["SHARD"]
CALLS = []

@pytest.mark.mlexp(search={"x": "uniform(0, 1)"}, trials=2, objective="score:max",
                   sampler="random", seed=0)
def experiment_searched(mlflow_run, x):
    CALLS.append(x)
    if SHARD == "B" and len(CALLS) == 2:
        # B's last trial is still running when A reads the search's trials.
        wait_for(Path(os.environ["SIGNALS"]) / "a-read-1")
    return {"score": x}
"""

SHARDED = """
import os
from pathlib import Path

import pytest
from signals import wait_for

SHARD = os.environ["SHARD"]
CELLS = [0, 1] if SHARD == "A" else [2, 3]

@pytest.mark.mlexp(best="score:max")
@pytest.mark.parametrize("i", CELLS)
def experiment_sharded(mlflow_run, i):
    if i == 3:
        # B's search is over; its last cell is still running when A reads the grid's cells.
        signals = Path(os.environ["SIGNALS"])
        (signals / "b-1").write_text("")
        wait_for(signals / "a-read-2")
    mlflow_run.log_metric("score", float(i))
"""

#: Shard A reads each group run's members (the search's first, then the grid's), then
#: writes only after B has finished that group's members.
CONFTEST = """
import os
from pathlib import Path

from signals import wait_for

def pytest_configure(config):
    if os.environ["SHARD"] != "A":
        return
    from pytest_mlexp.groups import members

    read_members = members.children
    read = []

    def children(backend, run_id):
        runs = read_members(backend, run_id)
        if run_id not in read:
            read.append(run_id)
            signals = Path(os.environ["SIGNALS"])
            (signals / f"a-read-{len(read)}").write_text("")
            wait_for(signals / f"b-{len(read)}")
        return runs

    members.children = children

def pytest_unconfigure(config):
    if os.environ["SHARD"] == "B":  # B is over: every group A waits on may be written
        for done in ("b-1", "b-2"):
            (Path(os.environ["SIGNALS"]) / done).write_text("")
"""


def run_two_shards(project: Path, tmp_path: Path, session_id: str) -> dict[str, str]:
    """Shards A and B of one CI build (one session id), each a process, ending together.

    ``CONFTEST`` makes A read its group runs' members while B's last ones run,
    and write after B. Returns each shard's output; both must pass.
    """
    signals = tmp_path / "signals"
    signals.mkdir()
    (project / "signals.py").write_text(SIGNALS)
    command = [
        sys.executable, "-m", "pytest", "-p", "no:randomly",
        "--mlexp-lineage=none", "--mlexp-artifacts=off",
    ]  # fmt: skip
    shards = {}
    for shard in ("A", "B"):
        env = {
            **os.environ,
            "SHARD": shard,
            "SIGNALS": str(signals),
            "MLEXP_SESSION_ID": session_id,
        }
        shards[shard] = subprocess.Popen(
            command, cwd=project, env=env, stdout=subprocess.PIPE, text=True
        )
    outputs = {shard: process.communicate(timeout=600)[0] for shard, process in shards.items()}
    for shard, process in shards.items():
        assert process.returncode == 0, outputs[shard]
    return outputs


def test_shards_ending_together_keep_every_shards_trials_and_counts(
    ourtester, read_runs, tmp_path
) -> None:
    """A search parent gets the trials of both shards, a grid parent their cells."""
    ourtester.makepyfile(experiment_searched=SEARCHED, experiment_sharded=SHARDED)
    ourtester.makeconftest(CONFTEST)
    outputs = run_two_shards(ourtester.path, tmp_path, "ci-build-7")
    # A read B's last trial and cell RUNNING, then wrote after B: it read again, wrote all four.
    assert "4 passed" in outputs["A"]
    last_a = [line for line in outputs["A"].splitlines() if line.startswith("mlexp search")]
    assert last_a, outputs["A"]
    assert "4 trials, 4 complete, 0 pruned, 0 failed" in last_a[-1], outputs["A"]
    last_a = [line for line in outputs["A"].splitlines() if line.startswith("mlexp grid")]
    assert last_a, outputs["A"]
    assert "4 cells, 4 passed, 0 failed" in last_a[-1], outputs["A"]

    runs = read_runs(ourtester.path.name, groups=True)
    (search,) = [r for r in runs if r.data.tags.get("mlexp.kind") == "search"]
    trials = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == search.info.run_id]
    assert len(trials) == 4
    assert search.info.status == "FINISHED"
    assert search.data.tags["mlexp.trials"] == "4"
    assert search.data.tags["mlexp.trials_complete"] == "4"
    assert search.data.tags.get("mlexp.killed", "0") == "0"
    # Both shards seed their sampler alike: trials may tie, so the best is told by its score.
    best = max(t.data.metrics["score"] for t in trials)
    assert search.data.metrics["best.score"] == best

    (parent,) = [r for r in runs if r.data.tags.get("mlexp.kind") == "grid"]
    cells = {r.info.run_name: r for r in runs if r not in (parent, search, *trials)}
    assert sorted(cells) == [f"experiment_sharded[{i}]" for i in range(4)]
    assert {c.data.tags["mlflow.parentRunId"] for c in cells.values()} == {parent.info.run_id}
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["mlexp.grid_size"] == "4"
    assert parent.data.tags["mlexp.passed"] == "4"
    assert parent.data.tags["mlexp.killed"] == "0"
    assert parent.data.metrics["mlexp.cells"] == 4
    assert parent.data.tags["mlexp.best_run_id"] == cells["experiment_sharded[3]"].info.run_id
