"""Test-suite set-up: lesson markers, and the solution notebooks' run times in the summary.

Each solution notebook runs once per session (tests/lessons/solution_runs.py); the summary
at the end lists how long each run took and where it ran. Each lesson is prepared for grading
once per session too (``prepared_once``).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))  # for `import grader` and `import bench`

LESSON_FOLDERS = sorted(p.name for p in (ROOT / "solutions").iterdir() if p.is_dir() and p.name[:2].isdigit())


def pytest_configure(config):
    config.addinivalue_line("markers", "notebooks: executes notebooks (slow)")
    for folder in LESSON_FOLDERS:
        config.addinivalue_line(
            "markers",
            f"lesson{folder[:2]}: the checks of lesson {folder} (its notebooks, exercises, widget and browser checks)",
        )
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def lessons_of(item) -> set[str]:
    """The lessons a test belongs to: named in its id (a notebook path, a parameter) or by its module's LESSONS."""
    found = {folder[:2] for folder in LESSON_FOLDERS if folder in item.nodeid}
    module = getattr(item, "module", None)
    if found:  # a parametrized test names its own lesson
        return found
    named = getattr(module, "LESSONS", None) or (getattr(module, "LESSON", None),)
    for value in named:
        # LESSON may be a folder name or a path into one: keep only what names a lesson.
        found.update(folder[:2] for folder in LESSON_FOLDERS if value is not None and folder in str(value))
    return found


def pytest_collection_modifyitems(items):
    for item in items:
        for number in lessons_of(item):
            item.add_marker(getattr(pytest.mark, f"lesson{number}"))


def pytest_terminal_summary(terminalreporter):
    runs = sys.modules.get("tests.lessons.solution_runs")
    if runs is None or not runs.runs():
        return
    terminalreporter.section("solution notebooks: one run each, top to bottom")
    for name, run in sorted(runs.runs().items()):
        terminalreporter.write_line(f"{run.seconds:7.1f} s  {name}  ({run.where})")


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT


@pytest.fixture(scope="session", autouse=True)
def prepared_once(tmp_path_factory):
    """``grader.autograde.prepare`` runs once per lesson; later calls get a copy of its master.

    Preparing (nbgrader's generate_assignment, the plans, the grading data) takes seconds and
    gives the same master for the same solutions and data; dozens of tests grade or start a
    referee kernel. The copy lands where the caller asked, as the real call would put it.
    """
    from grader import autograde, course

    real = autograde.prepare
    cache = tmp_path_factory.mktemp("prepared")
    done: dict[str, tuple[Path, dict]] = {}

    def key(assignment: str) -> str:
        from dlcourse import data

        h = hashlib.sha256(f"{course.SOLUTIONS}|{data.DATA_DIR}|{assignment}".encode())
        for nb in sorted((course.SOLUTIONS / assignment).glob("*.ipynb")):
            h.update(nb.name.encode() + nb.read_bytes())
        return h.hexdigest()[:16]

    def prepare(assignment: str, work: Path):
        k = key(assignment) if (course.SOLUTIONS / assignment).is_dir() else None
        if k is None:
            return real(assignment, work)
        if k not in done:
            master, scores = real(assignment, cache / k)
            done[k] = (master, scores)
        master, scores = done[k]
        shutil.copytree(master, Path(work) / "master", symlinks=True)
        return Path(work) / "master", {nb: dict(ids) for nb, ids in scores.items()}

    autograde.prepare = prepare
    yield
    autograde.prepare = real
