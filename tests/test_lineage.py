"""Code lineage: every run holds the code, git state and environment that made it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable

import pytest
from test_artifacts import artifact_files, read_artifact

from pytest_mlexp.lineage.environment import command_line
from pytest_mlexp.lineage.git import git_state, read_git_state, strip_credentials


@pytest.fixture
def project(ourtester: pytest.Pytester, git: Callable[..., str]) -> pytest.Pytester:
    """A project whose experiment imports a package of its own, in a dirty git repository."""
    ourtester.makeini("[pytest]\npythonpath = .\n")
    ourtester.makeconftest(
        """
        def pytest_addoption(parser):
            parser.addoption("--data-url")
        """
    )
    ourtester.mkpydir("mylib")
    files = {
        "mylib/features.py": "from . import helpers\n\ndef scale(x):\n    return helpers.k * x\n",
        "mylib/helpers.py": "k = 2\n",
        "mylib/unused.py": "raise RuntimeError('never imported')\n",
        "experiments/conftest.py": "import pytest\n",
        "experiments/__init__.py": "",
        "other/conftest.py": "OTHER = True\n",
        "experiments/experiment_lin.py": (
            "import json\n"
            "from mylib.features import scale\n\n"
            "def experiment_lin(mlflow_run):\n"
            "    return {'y': scale(1)}\n"
        ),
    }
    for name, text in files.items():
        path = ourtester.path / name
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)
    git(ourtester.path, "init", "-q", "-b", "main")
    git(ourtester.path, "add", ".")
    git(ourtester.path, "commit", "-qm", "first")
    git(ourtester.path, "remote", "add", "origin", "https://bob:ghp_secret@git.example/o/r.git")
    (ourtester.path / "mylib" / "helpers.py").write_text("k = 3  # tuned\n")
    return ourtester


def test_code_git_and_environment_are_logged(project, read_runs, client, git):
    result = project.runpytest(
        "experiments",
        "--mlexp-experiment", "demo",
        "--data-url", "https://bob:hunter2@data.example/train.csv",
        "--randomly-seed=1234",
    )  # fmt: skip
    result.assert_outcomes(passed=1)
    (run,) = read_runs("demo")
    files = artifact_files(client, run.info.run_id)
    code = sorted(f for f in files if f.startswith("code/"))
    assert code == [
        "code/conftest.py",
        "code/experiments/__init__.py",
        "code/experiments/conftest.py",
        "code/experiments/experiment_lin.py",
        "code/mylib/__init__.py",
        "code/mylib/features.py",
        "code/mylib/helpers.py",
    ]
    into = project.path / "downloads"
    for name in code:
        local = project.path / name.removeprefix("code/")
        assert read_artifact(client, run.info.run_id, name, into) == local.read_bytes(), name

    tags = run.data.tags
    head = git(project.path, "rev-parse", "HEAD").strip()
    assert tags["mlflow.source.git.commit"] == head
    assert tags["mlflow.source.git.branch"] == "main"
    assert tags["mlflow.source.git.repoURL"] == "https://git.example/o/r.git"
    assert tags["mlexp.git.dirty"] == "true"
    diff = read_artifact(client, run.info.run_id, "lineage/git_diff.patch", into).decode()
    assert diff == git(project.path, "diff", "HEAD")
    assert "+k = 3  # tuned" in diff

    import platform

    assert tags["mlexp.python_version"] == platform.python_version()
    assert tags["mlexp.platform"] == platform.platform()
    assert tags["mlexp.random_seed"] == "1234"
    assert tags["mlexp.command"].startswith("pytest ")
    assert "--randomly-seed=1234" in tags["mlexp.command"]
    assert "https://bob:***@data.example/train.csv" in tags["mlexp.command"]
    requirements = read_artifact(client, run.info.run_id, "lineage/requirements.txt", into)
    assert b"\nmlflow==" in requirements
    assert b"\npytest==" in requirements
    everything = str(run.data.tags) + str(run.data.params) + diff
    assert "hunter2" not in everything
    assert "ghp_secret" not in everything


def test_no_git_and_each_part_switched_off(ourtester, read_runs, client, empty_store):
    shutil.copy(empty_store, ourtester.path / "mlflow.db")  # its creation is not the subject
    ourtester.makepyfile(experiment_plain="def experiment_plain(mlflow_run): pass")
    args = ("--mlexp-experiment", "demo", "-p", "no:randomly")
    ourtester.runpytest(*args).assert_outcomes(passed=1)
    ourtester.makefile(".yaml", mlexp="lineage: [code]\n")
    ourtester.runpytest(*args).assert_outcomes(passed=1)
    ourtester.runpytest(*args, "--mlexp-lineage=none").assert_outcomes(passed=1)
    everything, code_only, nothing = sorted(read_runs("demo"), key=lambda r: r.info.start_time)

    # Not a git repository: no git tags, no error.
    assert not [t for t in everything.data.tags if "git" in t]
    assert "mlexp.python_version" in everything.data.tags
    assert "mlexp.random_seed" not in everything.data.tags  # randomly is off
    assert sorted(artifact_files(client, everything.info.run_id)) == [
        "code/experiment_plain.py",
        "lineage/requirements.txt",
    ]
    assert sorted(artifact_files(client, code_only.info.run_id)) == ["code/experiment_plain.py"]
    assert "mlexp.python_version" not in code_only.data.tags
    assert artifact_files(client, nothing.info.run_id) == {}
    assert "mlexp.command" not in nothing.data.tags


def test_unknown_lineage_part_is_refused(ourtester):
    ourtester.makepyfile(experiment_x="def experiment_x(): pass")
    result = ourtester.runpytest("--mlexp-lineage=code,gti")
    assert result.ret == 4
    result.stderr.fnmatch_lines(
        [
            "ERROR: --mlexp-lineage: unknown lineage part 'gti'; accepted: code, git, env, "
            "all, none (e.g. --mlexp-lineage=code,env)"
        ]
    )


# -- units -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "stripped"),
    [
        ("https://user:tok@github.com/org/repo.git", "https://github.com/org/repo.git"),
        ("https://ghp_token@github.com/org/repo.git", "https://github.com/org/repo.git"),
        ("https://github.com/org/repo.git", "https://github.com/org/repo.git"),
        ("ssh://git:pw@host:2222/org/repo.git", "ssh://git@host:2222/org/repo.git"),
        ("git@github.com:org/repo.git", "git@github.com:org/repo.git"),
        ("https://host/repo.git?access_token=abc", "https://host/repo.git?access_token=***"),
    ],
)
def test_credentials_are_stripped_from_remote_urls(url, stripped):
    assert strip_credentials(url) == stripped


def test_command_line_is_redacted(ourtester):
    config = ourtester.parseconfig("--mlexp-tracking-uri", "http://u:p4ss@h:5000", "-x")
    command = command_line(config)
    assert command.startswith("pytest ")
    assert "--mlexp-tracking-uri http://u:***@h:5000 -x" in command
    assert "p4ss" not in command


def test_git_state_of_a_clean_repo_and_of_no_repo(tmp_path, monkeypatch, git):
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "dev")
    (repo / "a.txt").write_text("a")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "a")
    state = git_state(repo)
    assert state is not None
    assert state.tags() == {
        "mlflow.source.git.commit": git(repo, "rev-parse", "HEAD").strip(),
        "mlflow.source.git.branch": "dev",
        "mlexp.git.dirty": "false",
    }
    # An untracked Python file (a conftest.py left out of the commit) makes the tree dirty;
    # other untracked files (data, outputs) do not.
    (repo / "notes.txt").write_text("n")
    assert read_git_state(repo) == state
    (repo / "conftest.py").write_text("# not committed\n")
    untracked = read_git_state(repo)
    assert untracked is not None
    assert (untracked.untracked, untracked.tags()["mlexp.git.dirty"]) == (("conftest.py",), "true")
    plain = tmp_path / "plain"
    plain.mkdir()
    assert git_state(plain) is None
    no_git = tmp_path / "no_git"
    no_git.mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert git_state(no_git) is None


def test_environment_fingerprint_is_the_same_after_importing_ray(tmp_path):
    """Libraries put vendored packages on ``sys.path`` at run time: they are not installed ones.

    ``import ray`` adds ``ray/thirdparty_files`` (colorama, psutil); a library's
    own vendored folder is added the same way here, so the test fails in an
    environment that happens to hold Ray's versions too.
    """
    pytest.importorskip("ray")
    vendored = tmp_path / "vendored"
    (vendored / "only_vendored-0.0.1.dist-info").mkdir(parents=True)
    (vendored / "only_vendored-0.0.1.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: only-vendored\nVersion: 0.0.1\n"
    )
    script = tmp_path / "fingerprint.py"
    script.write_text(
        "import sys\n"
        "from pytest_mlexp.lineage.environment import requirements\n"
        "before = requirements()\n"
        "requirements.cache_clear()\n"
        "import ray\n"
        "assert any('thirdparty_files' in p for p in sys.path), 'Ray adds no vendored folder'\n"
        f"sys.path.insert(0, {str(vendored)!r})\n"
        "after = requirements()\n"
        "assert after == before, (before, after)\n"
        "print('pytest-mlexp==' in after)\n"
    )
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "True"  # the editable install of the package is listed
