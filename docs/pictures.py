"""Make the documentation's pictures: re-run after a change to what users see.

    python docs/pictures.py            # writes docs/ui-runs.png, docs/report.png

Copies this repository's ``experiments/`` (and the ``conftest.py`` with their
data fixtures) into a fresh project named
``project`` under a temporary folder, runs ``pytest experiments/
--mlexp-html report.html`` there as a user would, then photographs, in
headless Chromium (Debian's ``/usr/bin/chromium``, driven by playwright):

- the MLflow UI's runs table, opened by the link the session printed, with
  ``mlflow ui`` on a free port (``ui-runs.png``), at twice the pixels so that
  it stays readable scaled into a page's column;
- the session's HTML report (``report.png``), down to the end of its first plot,
  the temporary folder shown as ``/home/me/project`` as in the README.

Terminal sessions are not pictures: the pages show them as text, which
``tests/test_readme.py`` and ``tests/test_docs.py`` run and check.

Not run by the test suite: it takes a minute (the classifier grid logs models).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
TERMINAL_COLUMNS = 120


def run_session(project: Path) -> str:
    """``pytest experiments/`` in ``project``: its terminal output."""
    shutil.copytree(REPO / "experiments", project / "experiments")
    shutil.copy(REPO / "conftest.py", project / "conftest.py")  # the examples' data fixtures
    (project / "pytest.ini").write_text("[pytest]\n")
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": str(TERMINAL_COLUMNS)}
    command = [sys.executable, "-m", "pytest", "experiments/", "-p", "no:randomly"]
    done = subprocess.run(
        [*command, "--mlexp-html", "report.html"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"the session failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def free_port() -> int:
    """A port of 5190-5199 nothing listens on (this project's range on shared machines)."""
    for port in range(5190, 5200):
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) != 0:
                return port
    raise SystemExit("ports 5190-5199 are all taken")


def start_ui(command: list[str], port: int, log: Path) -> subprocess.Popen[bytes]:
    """``mlflow ui`` in a process group of its own, without MLflow's job runner."""
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    process = subprocess.Popen(
        [*command[:-1], str(port)],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                return process
        except OSError:
            time.sleep(0.5)
    os.killpg(process.pid, signal.SIGKILL)
    raise SystemExit(f"mlflow ui did not answer: {log.read_text()[-2000:]}")


def printed(output: str, label: str) -> str:
    found = re.search(rf"^{re.escape(label)} (.+)$", output, re.M)
    if found is None:
        raise SystemExit(f"the session did not print {label!r}")
    return found.group(1)


def main() -> None:
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="mlexp-pictures-") as tmp:
        project = Path(tmp) / "project"
        project.mkdir()
        output = run_session(project)
        port = free_port()
        command = shlex.split(printed(output, "open the MLflow UI with:"))
        link = printed(output, "then open:").replace(":5000/", f":{port}/")
        process = start_ui(command, port, Path(tmp) / "ui.log")
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                page = browser.new_page(
                    viewport={"width": 1280, "height": 720}, device_scale_factor=2
                )
                page.goto(link)
                page.get_by_text("matching runs").wait_for(timeout=120_000)
                page.locator(".ag-header-cell[col-id='metrics.`accuracy`']").wait_for(
                    timeout=30_000
                )
                # MLflow 3.17 opens its assistant beside the table: close it.
                close = page.get_by_role("button", name="Close")
                if close.count():
                    close.first.click()
                # Unfold the classifier grid's parent: its cells, their metrics beside the
                # parent's best.* (the view's first columns).
                parent = page.locator(".ag-row", has_text="experiment_classifier · ").first
                parent.locator("[col-id='attributes.`Run Name`'] button").first.click()
                page.locator(".ag-row", has_text="experiment_classifier[0.1-logreg]").wait_for(
                    timeout=30_000
                )
                page.wait_for_timeout(1000)
                page.screenshot(path=str(DOCS / "ui-runs.png"))

                # The report as the README's project would show it, not the temporary folder.
                report = project / "report.html"
                shown = report.read_text(encoding="utf-8").replace(str(project), "/home/me/project")
                report.write_text(shown, encoding="utf-8")
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.goto(report.as_uri())
                page.wait_for_timeout(3000)
                end = page.locator(".plot").first.bounding_box()
                assert end is not None
                height = end["y"] + end["height"] + 12
                page.screenshot(
                    path=str(DOCS / "report.png"),
                    full_page=True,
                    clip={"x": 0, "y": 0, "width": 1400, "height": height},
                )
                browser.close()
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=30)
    for name in ("ui-runs.png", "report.png"):
        print(f"wrote {DOCS / name}")


if __name__ == "__main__":
    main()
