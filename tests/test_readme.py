"""The README's examples print what the README shows.

The Quick start's experiment is run as written; its terminal summary and the
``mlexp compare`` example are compared line by line with the README's, once
run ids, paths and times, which differ on every machine, are put in place.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from pytest_mlexp import cli

README = Path(__file__).resolve().parent.parent / "README.md"
#: Where the README's examples pretend to be.
README_ROOT = "/home/me/project"
RUN_ID = re.compile(r"\b[0-9a-f]{32}\b")


def block(after: str, language: str) -> list[str]:
    """The lines of the first ``language`` code block after the text ``after``."""
    text = README.read_text(encoding="utf-8")
    start = text.index(f"```{language}\n", text.index(after)) + len(language) + 4
    return text[start : text.index("```", start)].rstrip("\n").splitlines()


def comparable(line: str) -> str:
    """A line without what differs between machines and sessions."""
    line = RUN_ID.sub("<run id>", line)
    line = re.sub(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}", "<time>", line)
    line = re.sub(r"\b[0-9.]+ (s|min|h) (wall|CPU)\b", r"<duration> \2", line)
    return re.sub(r"\b\d{8}-\d{6}-[0-9a-f]{8}\b", "<session>", line)


def test_quick_start_prints_what_the_readme_shows(ourtester, monkeypatch, capsys):
    code = block("## Quick start", "python")
    assert code[0] == "# experiments/experiment_ridge.py"
    # A project named "project", as in the README: the experiment takes its name.
    project = ourtester.mkdir("project")
    (project / "pytest.ini").write_text("[pytest]\n")
    (project / "experiments").mkdir()
    (project / "experiments" / "experiment_ridge.py").write_text("\n".join(code) + "\n")
    monkeypatch.chdir(project)
    result = ourtester.runpytest("experiments/", "-p", "no:randomly")
    result.assert_outcomes(passed=3)

    shown = block("## Quick start", "console")
    assert shown[0] == "$ .venv/bin/pytest experiments/"
    expected = [
        comparable(line)
        .replace(f"{README_ROOT}/.venv/bin/python3", sys.executable)
        .replace(README_ROOT, str(project))
        for line in shown[shown.index("tracking URI: sqlite:////home/me/project/mlflow.db") :]
    ]
    lines = [comparable(line) for line in result.stdout.lines]
    start = lines.index(expected[0])
    assert lines[start : start + len(expected)] == expected

    # The mlexp compare example, from the project's folder.
    compare = block("### The `mlexp` command", "console")
    command = re.findall(r'"([^"]+)"', compare[0])
    capsys.readouterr()
    assert cli.main(["compare", *command]) == 0
    printed = [comparable(line) for line in capsys.readouterr().out.splitlines()]
    for line in compare[1:]:
        if line == "...":
            continue
        assert comparable(line) in printed, line


def test_readme_test_command_names_its_prerequisites():
    text = README.read_text(encoding="utf-8")
    assert "sudo apt-get install chromium" in text
    assert 'export MLEXP_TEST_POSTGRES_URI="$(bash .ci/postgres.sh /tmp/mlexp-pg)"' in text


@pytest.mark.parametrize("png", ["docs/report.png", "docs/ui-runs.png"])
def test_readme_images_exist(png):
    assert f"({png})" in README.read_text(encoding="utf-8")
    assert (README.parent / png).is_file()
