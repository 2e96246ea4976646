"""Fixtures for the real-browser tests: a JupyterLab server and headless Chromium.

The server runs on a free loopback port with a random token, on a temporary folder
holding a copy of ``lessons/`` (what learners get) and of ``solutions/`` as
``solved/`` (working code, for the tests that run whole lessons). Chromium is the
system's (Debian package ``chromium``), driven by Playwright.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests import session_figures

REPO = Path(__file__).resolve().parents[2]
CHROMIUM_CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
# Chromium's own background connections are refused on an offline machine and would
# show up as console noise; the course never needs them.
CHROMIUM_ARGS = [
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
    "--disable-dev-shm-usage",
]
# Front-end settings for the temporary user: every cell stays in the page (no windowing),
# and no news or update check (they would need the internet).
LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false", "checkForUpdates": False},
}
SERVER_START_TIMEOUT = 120  # seconds; a cold start imports nbgrader's server extension


def find_chromium() -> str | None:
    """Path of a Chromium binary: $DLCOURSE_CHROMIUM, else the first on PATH."""
    explicit = os.environ.get("DLCOURSE_CHROMIUM")
    if explicit:
        return explicit
    for name in CHROMIUM_CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Lab:
    """A running JupyterLab: ``url(path)`` gives a page address with the token."""

    def __init__(self, root: Path, port: int, token: str, process: subprocess.Popen, log: Path):
        self.root, self.port, self.token, self.process, self.log = root, port, token, process, log

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        # `reset`: a fresh workspace, so that the notebooks of earlier tests are not reopened (each
        # with a kernel of its own) and the one asked for is the current one.
        return f"{self.base}/lab/tree/{path}?reset&token={self.token}"

    def api(self, path: str, method: str = "GET"):
        request = urllib.request.Request(
            f"{self.base}/api/{path}", method=method, headers={"Authorization": f"token {self.token}"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            body = response.read()
        return json.loads(body) if body else None

    def shutdown_kernels(self) -> None:
        for kernel in self.api("kernels"):
            self.api(f"kernels/{kernel['id']}", method="DELETE")

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


@pytest.fixture(scope="session")
def lab(tmp_path_factory):
    """JupyterLab on a copy of lessons/ and solutions/ (as solved/), stopped afterwards."""
    root = tmp_path_factory.mktemp("lab")
    skip = shutil.ignore_patterns(".ipynb_checkpoints", "*.keras", "baselines.json", "__pycache__")
    shutil.copytree(REPO / "lessons", root / "lessons", ignore=skip)
    shutil.copytree(REPO / "solutions", root / "solved", ignore=skip)
    home = tmp_path_factory.mktemp("lab-home")
    settings = home / "settings"
    for name, values in LAB_SETTINGS.items():
        path = settings / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))

    port, token = free_port(), secrets.token_hex(16)
    env = dict(os.environ)
    env.update(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        JUPYTER_CONFIG_PATH=str(REPO / "grader"),  # the course's nbgrader config, as `make lab`
        JUPYTERLAB_SETTINGS_DIR=str(settings),
        JUPYTERLAB_WORKSPACES_DIR=str(home / "workspaces"),
        JUPYTER_RUNTIME_DIR=str(home / "runtime"),
    )
    command = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
        "--LabApp.expose_app_in_browser=True",
    ]
    if hasattr(os, "getuid") and os.getuid() == 0:
        command.append("--allow-root")
    log = home / "lab.log"
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=root)
    server = Lab(root, port, token, process, log)
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while True:
            if process.poll() is not None:
                pytest.fail(f"JupyterLab exited with code {process.returncode}:\n{server.log_tail()}")
            try:
                server.api("status")
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(
                        f"JupyterLab did not answer /api/status in {SERVER_START_TIMEOUT} s:\n{server.log_tail()}"
                    )
                time.sleep(0.5)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def browser():
    """Headless Chromium (the system's), through Playwright."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("Playwright is not installed: run `make test` (it installs the course's environment)")
    executable = find_chromium()
    if executable is None:
        pytest.skip(
            "no Chromium found: `apt-get install chromium` (make test installs it when run as root), "
            "or set DLCOURSE_CHROMIUM to a Chromium binary"
        )
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser, lab):
    """A fresh browser page; console errors and page errors are collected in ``page.errors``."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, device_scale_factor=1)
    page = context.new_page()
    page.errors = []
    page.on("console", lambda m: m.type == "error" and page.errors.append(f"console: {m.text}"))
    page.on("pageerror", lambda e: page.errors.append(f"page error: {e}"))
    try:
        yield page
    finally:
        context.close()
        lab.shutdown_kernels()


@pytest.fixture
def screenshots(tmp_path):
    """Folder for the visualizer screenshots (the diagrams' in its ``diagrams/``):
    $DLCOURSE_SCREENSHOTS (`make screenshots` sets docs/images), else a temporary one."""
    chosen = os.environ.get("DLCOURSE_SCREENSHOTS")
    folder = Path(chosen) if chosen else tmp_path / "screenshots"
    (folder / "diagrams").mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def latencies():
    """Append (visualizer, action, seconds) rows; printed at the end of the run."""
    return session_figures.LATENCIES
