"""CI shards sharing a session that end together leave the group run with every shard's members.

A grid parent gets every shard's cells, a search parent every shard's trials.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SHARDED = """
import os, time
from pathlib import Path

import pytest

SHARD = os.environ["SHARD"]
CELLS = [0, 1] if SHARD == "A" else [2, 3]

@pytest.mark.mlexp(best="score:max")
@pytest.mark.parametrize("i", CELLS)
def experiment_sharded(mlflow_run, i):
    if i == 3:
        # B's last cell is still running when A reads the grid's cells.
        signal = Path(os.environ["SIGNALS"]) / "a-read"
        deadline = time.monotonic() + 120
        while not signal.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
    mlflow_run.log_metric("score", float(i))
"""

#: Shard A reads the grid's cells, then writes only after shard B has finished.
CONFTEST = """
import os, time
from pathlib import Path

def _wait_for(path):
    deadline = time.monotonic() + 120
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.1)

def pytest_configure(config):
    if os.environ["SHARD"] != "A":
        return
    from pytest_mlexp.groups import members

    read_cells = members.children
    first = []

    def children(backend, run_id):
        runs = read_cells(backend, run_id)
        if not first:
            first.append(run_id)
            signals = Path(os.environ["SIGNALS"])
            (signals / "a-read").write_text("")
            _wait_for(signals / "b-done")
        return runs

    members.children = children

def pytest_unconfigure(config):
    if os.environ["SHARD"] == "B":
        (Path(os.environ["SIGNALS"]) / "b-done").write_text("")
"""


def run_two_shards(project: Path, tmp_path: Path, session_id: str) -> dict[str, str]:
    """Shards A and B of one CI build (one session id), each a process, ending together.

    ``CONFTEST`` makes A read its group run's members while B's last one runs,
    and write after B. Returns each shard's output; both must pass.
    """
    signals = tmp_path / "signals"
    signals.mkdir()
    command = [sys.executable, "-m", "pytest", "-p", "no:randomly", "--mlexp-lineage=none"]
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


def test_shards_ending_together_keep_every_shards_counts(ourtester, read_runs, tmp_path) -> None:
    ourtester.makepyfile(experiment_sharded=SHARDED)
    ourtester.makeconftest(CONFTEST)
    outputs = run_two_shards(ourtester.path, tmp_path, "ci-build-7")
    # A read B's last cell RUNNING, then wrote after B: it read again and wrote all four.
    assert "2 passed" in outputs["A"]
    last_a = [line for line in outputs["A"].splitlines() if line.startswith("mlexp grid")]
    assert last_a, outputs["A"]
    assert "4 cells, 4 passed, 0 failed" in last_a[-1], outputs["A"]

    runs = read_runs(ourtester.path.name, groups=True)
    (parent,) = [r for r in runs if r.data.tags.get("mlexp.kind") == "grid"]
    cells = {r.info.run_name: r for r in runs if r is not parent}
    assert sorted(cells) == [f"experiment_sharded[{i}]" for i in range(4)]
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["mlexp.grid_size"] == "4"
    assert parent.data.tags["mlexp.passed"] == "4"
    assert parent.data.tags["mlexp.killed"] == "0"
    assert parent.data.metrics["mlexp.cells"] == 4
    assert parent.data.tags["mlexp.best_run_id"] == cells["experiment_sharded[3]"].info.run_id


SEARCH_SHARDED = """
import os, time
from pathlib import Path

import pytest

SHARD = os.environ["SHARD"]
CALLS = []

@pytest.mark.mlexp(search={"x": "uniform(0, 1)"}, trials=2, objective="score:max",
                   sampler="random", seed=0)
def experiment_searched(mlflow_run, x):
    CALLS.append(x)
    if SHARD == "B" and len(CALLS) == 2:
        # B's last trial is still running when A reads the search's trials.
        signal = Path(os.environ["SIGNALS"]) / "a-read"
        deadline = time.monotonic() + 120
        while not signal.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
    return {"score": x}
"""


def test_shards_ending_together_keep_every_shards_trials(ourtester, read_runs, tmp_path) -> None:
    """A search parent gets the trials of both shards, as a grid parent gets their cells."""
    ourtester.makepyfile(experiment_searched=SEARCH_SHARDED)
    ourtester.makeconftest(CONFTEST)
    outputs = run_two_shards(ourtester.path, tmp_path, "ci-build-8")
    # A read B's last trial RUNNING, then wrote after B: it read again and wrote all four.
    assert "2 passed" in outputs["A"]
    last_a = [line for line in outputs["A"].splitlines() if line.startswith("mlexp search")]
    assert last_a, outputs["A"]
    assert "4 trials, 4 complete, 0 pruned, 0 failed" in last_a[-1], outputs["A"]

    runs = read_runs(ourtester.path.name, groups=True)
    (parent,) = [r for r in runs if r.data.tags.get("mlexp.kind") == "search"]
    trials = [r for r in runs if r is not parent]
    assert len(trials) == 4
    assert {t.data.tags["mlflow.parentRunId"] for t in trials} == {parent.info.run_id}
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["mlexp.trials"] == "4"
    assert parent.data.tags["mlexp.trials_complete"] == "4"
    assert parent.data.tags.get("mlexp.killed", "0") == "0"
    # Both shards seed their sampler alike: trials may tie, so the best is told by its score.
    best = max(t.data.metrics["score"] for t in trials)
    assert parent.data.metrics["best.score"] == best
