"""Artifact discovery: the files a run made are uploaded once, safely; the hooks around it."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_mlexp.artifacts.concurrency import Concurrency
from pytest_mlexp.artifacts.scanner import Scanner, changed, kind_folder

EXPERIMENT = "demo"

#: The project's default store exists before each session (conftest ``_premade_store``).
PREMADE_STORE = True


def artifact_files(client, run_id: str, path: str | None = None) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """Every artifact file of a run and its size."""
    files: dict[str, int] = {}
    for info in client.list_artifacts(run_id, path):
        if info.is_dir:
            files.update(artifact_files(client, run_id, info.path))
        else:
            files[info.path] = info.file_size
    return files


def read_artifact(client, run_id: str, path: str, into: Path) -> bytes:  # type: ignore[no-untyped-def]
    return Path(client.download_artifacts(run_id, path, str(into))).read_bytes()


@pytest.fixture
def run_experiments(ourtester: pytest.Pytester):  # type: ignore[no-untyped-def]
    def run(*args: str) -> pytest.RunResult:
        return ourtester.runpytest(
            "--mlexp-experiment", EXPERIMENT, "-p", "no:randomly", "--mlexp-lineage=none", *args
        )

    return run


def test_new_files_uploaded_once_each_and_unsafe_ones_never(
    ourtester, run_experiments, read_runs, client, tmp_path_factory
):
    outside = tmp_path_factory.mktemp("outside")
    (outside / "stolen.joblib").write_bytes(b"outside the root")
    (outside / "weights.pt").write_bytes(b"outside the root")
    ourtester.path.joinpath("existing.csv").write_text("a,b\n")
    ourtester.path.joinpath("untouched.csv").write_text("a,b\n")
    ourtester.makepyfile(
        experiment_save=f"""
        import os
        from pathlib import Path

        import joblib
        import pytest

        OUTSIDE = Path({str(outside)!r})

        @pytest.fixture
        def report(tmp_path):
            yield
            (tmp_path / "report.html").write_text("<p>written at teardown</p>")

        def experiment_saves(mlflow_run, tmp_path, report):
            joblib.dump("cwd", "model.joblib")
            joblib.dump("tmp_path", tmp_path / "model.joblib")
            joblib.dump("output_dir", mlflow_run.output_dir / "model.joblib")
            (mlflow_run.output_dir / "notes.txt").write_text("anything in output_dir goes")
            os.makedirs("plots/roc", exist_ok=True)
            Path("plots/roc/roc.png").write_bytes(b"png")
            Path("notes.txt").write_text("not a pattern")
            with open("existing.csv", "a") as f:
                f.write("1,2\\n")
            explicit = tmp_path / "explicit.joblib"
            joblib.dump("explicit", explicit)
            mlflow_run.log_artifact(explicit, "model")
            # never uploaded:
            for folder in ("scratch", "node_modules", "__pycache__", ".git", "venv2"):
                os.makedirs(folder, exist_ok=True)
                Path(folder, "junk.json").write_text("{{}}")
            Path("venv2/pyvenv.cfg").write_text("home = /usr")
            Path(".env").write_text("TOKEN=hunter2")
            Path("server.pem").write_text("key")
            Path("id_rsa").write_text("key")
            Path("aws_credentials.json").write_text("{{}}")
            Path("big.pt").write_bytes(b"x" * 4096)
            os.symlink(OUTSIDE / "stolen.joblib", "link.joblib")
            os.symlink(OUTSIDE, "linked_dir")

        def experiment_writes_nothing(mlflow_run):
            pass
        """
    )
    result = run_experiments(
        "--mlexp-artifact-exclude=scratch", "--mlexp-artifact-max-size=2KB", "-W", "always"
    )
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        [
            f"*MlexpWarning: experiment_save.py::experiment_saves: {ourtester.path}/big.pt "
            "is 4.0 KB, over the artifact size cap of 2.0 KB (mlexp_artifact_max_size); it is "
            "not uploaded. Raise the cap with --mlexp-artifact-max-size*"
        ]
    )
    saves, nothing = read_runs(EXPERIMENT)
    assert artifact_files(client, nothing.info.run_id) == {}
    files = artifact_files(client, saves.info.run_id)
    assert sorted(files) == [
        "files/existing.csv",
        "files/notes.txt",
        "model/explicit.joblib",
        "models/model.joblib",
        "models/rootdir/model.joblib",
        "models/tmp_path/model.joblib",
        "plots/report.html",
        "plots/roc/roc.png",
    ]
    run_id, into = saves.info.run_id, ourtester.path / "downloads"
    assert b"output_dir" in read_artifact(client, run_id, "models/model.joblib", into)
    assert b"tmp_path" in read_artifact(client, run_id, "models/tmp_path/model.joblib", into)
    assert b"cwd" in read_artifact(client, run_id, "models/rootdir/model.joblib", into)
    assert read_artifact(client, run_id, "files/existing.csv", into) == b"a,b\n1,2\n"


def test_switched_off_custom_patterns_and_roots(ourtester, run_experiments, read_runs, client):
    ourtester.mkdir("watched")
    ourtester.makepyfile(
        experiment_cfg="""
        from pathlib import Path

        def experiment_cfg(mlflow_run, tmp_path):
            (mlflow_run.output_dir / "kept.txt").write_bytes(b"1")
            Path("model.joblib").write_bytes(b"1")
            Path("watched/log.txt").write_text("1")
            Path("watched/model.joblib").write_text("1")
            (tmp_path / "t.txt").write_text("1")
        """
    )
    run_experiments("--mlexp-artifacts=off").assert_outcomes(passed=1)
    ourtester.makefile(".yaml", mlexp="artifact_roots: [watched]\nartifact_patterns: '*.txt'\n")
    run_experiments().assert_outcomes(passed=1)
    off, on = sorted(read_runs(EXPERIMENT), key=lambda r: r.info.start_time)
    # Off: only the run's own output_dir is uploaded.
    assert sorted(artifact_files(client, off.info.run_id)) == ["files/kept.txt"]
    assert sorted(artifact_files(client, on.info.run_id)) == [
        "files/kept.txt",
        "files/log.txt",
        "files/t.txt",
    ]


def test_bad_settings_are_refused(ourtester, run_experiments):
    ourtester.makepyfile(experiment_x="def experiment_x(): pass")
    result = run_experiments("--mlexp-artifact-max-size=lots")
    assert result.ret == 4
    result.stderr.fnmatch_lines(
        [
            "ERROR: --mlexp-artifact-max-size: invalid size 'lots' for artifact_max_size; "
            "accepted: a number of bytes or a number with a unit, e.g. 500000, 100MB, 1.5GB*"
        ]
    )
    result = run_experiments("--mlexp-artifacts=maybe")
    assert result.ret == 4
    result.stderr.fnmatch_lines(
        ["ERROR: --mlexp-artifacts: invalid value 'maybe' for artifacts; accepted: true/false*"]
    )
    ourtester.makefile(".yaml", mlexp="artifact_roots: [nowhere]\n")
    result = run_experiments()
    assert result.ret == 4
    result.stderr.fnmatch_lines(
        [f"ERROR: mlexp.yaml artifact_roots: artifact root '{ourtester.path}/nowhere' is not a*"]
    )


def test_hooks_from_a_conftest(ourtester, run_experiments, read_runs, client):
    ourtester.makeconftest(
        """
        import json
        from pathlib import Path

        from pytest_mlexp.artifacts import Artifact

        def pytest_mlexp_run_start(item, run):
            run.set_tag("team", "vision")
            run.log_param("dataset_version", "v3")

        def pytest_mlexp_artifacts(item, run, artifacts):
            artifacts[:] = [a for a in artifacts if not a.path.name.startswith("ckpt")]
            extra = Path(str(run.output_dir) + "-bucket.json")
            extra.write_text(json.dumps({"bucket": "listing"}))
            artifacts.append(Artifact(extra, "bucket", root="s3"))
            secret = extra.with_name("id_rsa")
            secret.write_text("never")
            artifacts.append(Artifact(secret, "bucket", root="s3"))

        def pytest_mlexp_run_ending(item, run, status, outcome):
            run.log_text(f"{status} {outcome}", "ending.txt")

        def pytest_mlexp_run_finished(item, run, status, outcome):
            finished = run.client.get_run(run.run_id)
            Path("finished.txt").write_text(
                f"{item.name} {status} {outcome} {finished.info.status}"
            )
        """
    )
    ourtester.makepyfile(
        experiment_hooks="""
        def experiment_hooks(mlflow_run, tmp_path):
            (tmp_path / "ckpt-1.pt").write_bytes(b"1")
            (tmp_path / "final.pt").write_bytes(b"1")
        """
    )
    run_experiments().assert_outcomes(passed=1)
    (run,) = read_runs(EXPERIMENT)
    assert run.data.tags["team"] == "vision"
    assert run.data.params == {"dataset_version": "v3"}
    files = artifact_files(client, run.info.run_id)
    bucket = [f for f in files if f.startswith("bucket/")]
    assert sorted(files) == sorted(["ending.txt", "models/final.pt", *bucket])
    assert read_artifact(client, run.info.run_id, "ending.txt", ourtester.path / "d") == (
        b"FINISHED passed"
    )
    assert len(bucket) == 1
    assert bucket[0].endswith("-bucket.json")
    assert (ourtester.path / "finished.txt").read_text() == (
        "experiment_hooks FINISHED passed FINISHED"
    )


def test_xdist_shared_root_attribution_is_warned(ourtester, read_runs, client):
    ourtester.makepyfile(
        experiment_par="""
        import os
        import time
        from pathlib import Path

        import pytest

        BARRIER = Path(__file__).parent / "barrier"

        def meet(step):
            # Wait until both workers reached this step: their runs are open at once.
            BARRIER.mkdir(exist_ok=True)
            (BARRIER / f"{step}-{os.getpid()}").touch()
            deadline = time.monotonic() + 60
            while len(list(BARRIER.glob(f"{step}-*"))) < 2:
                assert time.monotonic() < deadline, f"the other worker never reached {step}"
                time.sleep(0.02)

        @pytest.mark.parametrize("n", [1, 2])
        def experiment_par(mlflow_run, tmp_path, n):
            meet("started")
            Path(f"shared{n}.json").write_text("{}")
            (tmp_path / "own.json").write_text("{}")
            meet("wrote")
        """
    )
    result = ourtester.runpytest(
        "--mlexp-experiment", EXPERIMENT, "-p", "no:randomly", "--mlexp-lineage=none",
        "-n", "2", "-W", "always",
    )  # fmt: skip
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        ["*MlexpWarning: experiment_par.py::experiment_par[[]*[]]: * new file(s) in a shared "
         "artifact root appeared while another xdist worker ran an experiment*"]
    )  # fmt: skip
    for run in read_runs(EXPERIMENT):
        files = artifact_files(client, run.info.run_id)
        # Its own tmp_path file is certain; shared files are uploaded to whoever saw them.
        assert "files/own.json" in files
        n = run.data.params["n"]
        assert any(f.endswith(f"shared{n}.json") for f in files)


# -- units ------------------------------------------------------------------------------


def test_scanner_prunes_and_never_leaves_the_root(tmp_path):
    root = tmp_path / "root"
    (root / "a" / "b").mkdir(parents=True)
    (root / "a" / "b" / "m.pt").write_bytes(b"1")
    (root / "a" / "x.txt").write_text("1")
    (root / ".git").mkdir()
    (root / ".git" / "m.pt").write_bytes(b"1")
    (root / "env").mkdir()
    (root / "env" / "pyvenv.cfg").write_text("")
    (root / "env" / "m.pt").write_bytes(b"1")
    (root / "skip").mkdir()
    (root / "skip" / "m.pt").write_bytes(b"1")
    (root / "key.pem").write_text("k")
    (tmp_path / "out.pt").write_bytes(b"1")
    (root / "in_link.pt").symlink_to(root / "a" / "b" / "m.pt")
    (root / "out_link.pt").symlink_to(tmp_path / "out.pt")
    scanner = Scanner(["*.pt", "*.pem"], exclude=["skip"], pruned=[root / "nothing"])
    found = scanner.scan(root)
    assert sorted(Path(p).relative_to(root).as_posix() for p in found) == [
        "a/b/m.pt",
        "in_link.pt",
    ]
    before = dict(found)
    (root / "a" / "b" / "m.pt").write_bytes(b"22")
    (root / "new.pt").write_bytes(b"1")
    after = scanner.scan(root)
    assert sorted(Path(p).name for p in changed(before, after)) == ["in_link.pt", "m.pt", "new.pt"]


def test_kind_folders():
    assert kind_folder(Path("m.safetensors")) == "models"
    assert kind_folder(Path("roc.PNG")) == "plots"
    assert kind_folder(Path("metrics.json")) == "files"


def test_concurrency_markers(tmp_path):
    gw0, gw1 = Concurrency(tmp_path, "gw0"), Concurrency(tmp_path, "gw1")
    window = gw0.begin()
    assert gw0.end(window) is False  # alone
    window = gw0.begin()
    other = gw1.begin()
    assert gw1.end(other) is True  # gw0 was active
    assert gw0.end(window) is True  # gw1 ran meanwhile
    window = gw0.begin()
    assert gw0.end(window) is False
    gw0.close()
    gw1.close()
    assert not tmp_path.exists()


def test_a_worker_that_finishes_first_does_not_break_the_others(tmp_path):
    shared = tmp_path / "markers"
    gw0, gw1 = Concurrency(shared, "gw0"), Concurrency(shared, "gw1")
    gw1.close()  # gw1 ran its last item before gw0 began its first: the directory goes
    assert not shared.exists()
    window = gw0.begin()
    assert gw0.end(window) is False
    gw0.close()
    assert not shared.exists()
