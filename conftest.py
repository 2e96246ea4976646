"""Test-suite set-up: lesson markers, and the solution notebooks' run times in the summary.

Each solution notebook runs once per session (tests/lessons/solution_runs.py); the summary
at the end lists how long each run took and where it ran. Each lesson is prepared for grading
once per session too (``prepared_once``).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))  # for `import grader` and `import bench`

from tests import session_figures  # noqa: E402 - needs the line above

LESSON_FOLDERS = sorted(p.name for p in (ROOT / "solutions").iterdir() if p.is_dir() and p.name[:2].isdigit())


def pytest_configure(config):
    config.addinivalue_line("markers", "notebooks: executes notebooks (slow)")
    for folder in LESSON_FOLDERS:
        config.addinivalue_line(
            "markers",
            f"lesson{folder[:2]}: the checks of lesson {folder} (its notebooks, exercises, widget and browser checks)",
        )
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    # What the suite starts (JupyterLab's kernels, nbgrader, dask workers, a second Python)
    # shares the cores among the test processes, as the grader shares them among its jobs:
    # with a thread per core in every process, the busy cores spin and switch (bench/README.md).
    # Set in the first process, before the workers start; a value set by hand is kept.
    from grader import launcher, sandbox

    workers = getattr(config.option, "numprocesses", None)
    threads = str(sandbox.kernel_threads(workers if isinstance(workers, int) and workers > 0 else 1))
    for var in launcher.THREAD_VARS:
        os.environ.setdefault(var, threads)


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


# -- running on two processes (pytest-xdist, `make test`) -------------------------------------
# Each file's tests run together on one worker (their module fixtures are made once), and a
# few files share a worker with another: the checks that read the browser's solution runs go
# with the browser tests; the install test (a fresh environment on disk) with the class grading
# test, which watches the free disk space. Heavy groups are sent first, so the two workers end
# about together.
SAME_WORKER = {
    "tests/lessons/test_solutions.py": "tests/browser/test_lessons.py",
    "tests/test_install.py": "tests/grader/test_class.py",
}
HEAVY_FIRST = [  # the longest first: about 10 minutes, 8, then 1 to 4 each (bench/README.md)
    "tests/browser/test_lessons.py",
    "tests/grader/test_class.py",
    "tests/lessons/test_exercise_integrity.py::06",
    "tests/grader/test_cluster.py",
    "tests/grader/test_referee.py",
    "tests/lessons/test_exercise_integrity.py::05",
    "tests/lessons/test_exercise_integrity.py::03",
    "tests/lessons/test_exercise_integrity.py::04",
    "tests/test_backends.py",
]


def worker_group(nodeid: str) -> str:
    """The tests that run on one worker, in order: a file's (or the file it must share a worker with)."""
    path = nodeid.split("::")[0]
    if path.startswith("tests/browser/"):  # one JupyterLab and one Chromium for all of them
        path = "tests/browser/test_lessons.py"
    group = SAME_WORKER.get(path, path)
    if path == "tests/lessons/test_exercise_integrity.py":  # one lesson each; only 06 has a module fixture
        group += "::" + next((f[:2] for f in LESSON_FOLDERS if f in nodeid), "")
    return group


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    from xdist.scheduler import LoadScopeScheduling

    config.option.loadscopereorder = False  # hand the groups out in the order the workers sorted them

    class ByWorkerGroup(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return worker_group(nodeid)

    return ByWorkerGroup(config, log)


def pytest_collection_modifyitems(config, items):
    for item in items:
        for number in lessons_of(item):
            item.add_marker(getattr(pytest.mark, f"lesson{number}"))
    if hasattr(config, "workerinput"):  # an xdist worker: the order the groups are handed out in
        rank = {g: i for i, g in enumerate(HEAVY_FIRST)}
        items.sort(key=lambda item: rank.get(worker_group(item.nodeid), len(rank)))  # stable: file order otherwise


def pytest_sessionfinish(session):
    if hasattr(session.config, "workerinput"):  # an xdist worker: its figures go to the controller
        session.config.workeroutput["dlcourse_figures"] = json.dumps(session_figures.gather())


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    figures = getattr(node, "workeroutput", {}).get("dlcourse_figures")
    if figures:
        _WORKER_FIGURES.append(json.loads(figures))


_WORKER_FIGURES: list[dict] = []


def pytest_terminal_summary(terminalreporter):
    session_figures.write_summary(terminalreporter, [session_figures.gather(), *_WORKER_FIGURES])


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
