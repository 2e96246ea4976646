"""Test-suite set-up shared by tests/ and the notebooks in solutions/.

Solution notebooks are executed by nbval (``pytest --nbval-lax``, configured in
pyproject.toml); the summary at the end lists how long each one took.
"""

from __future__ import annotations

import collections
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))  # for `import grader` and `import bench`

_notebook_seconds: dict[str, float] = collections.defaultdict(float)


def pytest_configure(config):
    config.addinivalue_line("markers", "notebooks: executes notebooks (slow)")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def pytest_collection_modifyitems(items):
    for item in items:
        if str(item.fspath).endswith(".ipynb"):
            item.add_marker(pytest.mark.notebooks)


def pytest_runtest_logreport(report):
    if report.nodeid.split("::")[0].endswith(".ipynb"):
        _notebook_seconds[report.nodeid.split("::")[0]] += report.duration


def pytest_terminal_summary(terminalreporter):
    if not _notebook_seconds:
        return
    terminalreporter.section("notebook execution times (nbval, top to bottom)")
    for path, seconds in sorted(_notebook_seconds.items()):
        terminalreporter.write_line(f"{seconds:7.1f} s  {path}")
    terminalreporter.write_line(f"{sum(_notebook_seconds.values()):7.1f} s  total")


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT
