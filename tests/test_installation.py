"""The Installation page states the versions ``pyproject.toml`` declares and ``.ci/run`` tests."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def declared_floors() -> dict[str, str]:
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    floors = {"Python": re.fullmatch(r">=\s*([\d.]+)", project["requires-python"]).group(1)}
    for requirement in project["dependencies"]:
        found = re.match(r"(mlflow|pytest|pluggy)>=([\d.]+)", requirement)
        if found:
            floors[found[1]] = found[2]
    return floors


def test_the_installation_page_lists_the_declared_floors():
    floors = declared_floors()
    assert set(floors) == {"Python", "mlflow", "pytest", "pluggy"}
    page = (ROOT / "docs" / "installation.md").read_text()
    for name, version in floors.items():
        row = re.search(rf"^\| {name} \| ([\d.]+) \|", page, flags=re.M)
        assert row is not None, f"docs/installation.md has no row for {name}"
        shown = row.group(1)
        # 3.11 in pyproject would be 3.11.0 on the page.
        assert shown == version or shown == f"{version}.0", (name, version, shown)
    # .ci/run reads the same floors from pyproject.toml rather than repeating them.
    assert 'tomllib.load(open("pyproject.toml"' in (ROOT / ".ci" / "run").read_text()
