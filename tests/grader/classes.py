"""Building classes of submissions for the grading tests: real lesson notebooks, altered as students would.

Two lessons serve: lesson 00 for the class test (``test_class.py``), whose grading kernels import
no TensorFlow (under a second to start, where lesson 02's take 3 to 4 s of CPU each: the class
test starts about forty), and lesson 02 for the demonstration class, the LMS downloads and the
cluster, which show a lesson with more exercises, TensorFlow in its kernels and classic bugs.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path

from grader import course, sandbox

TIMEOUT = 25  # seconds per cell: the slowest takes about one here, over 12 on a slower machine under load
LIMITS = sandbox.Limits(files=256 * 2**20, runtime_bytes=32 * 2**20)


@dataclass(frozen=True)
class Lesson:
    """A lesson as the tests grade it: its test cells' points, in order, and its last exercise."""

    name: str
    points: dict[str, int]
    last: str  # the last exercise's grade_id: ``Class.damaged`` puts code there (only its test depends on it)

    @property
    def nb(self) -> str:
        return f"{self.name}.ipynb"

    @property
    def full(self) -> int:
        return sum(self.points.values())

    @property
    def lose_last(self) -> int:
        """The score of the solution with its last exercise broken."""
        return self.full - self.points[f"test_{self.last}"]


GETTING_STARTED = Lesson("00_getting_started", {"test_preprocess_images": 3, "test_one_hot": 3}, "one_hot")
CONV_POOL = Lesson(
    "02_conv_pool_arithmetic",
    {
        "test_conv_output_size": 2,
        "test_conv_param_count": 1,
        "test_conv2d": 4,
        "test_pool_output_size": 1,
        "test_max_pool2d": 2,
        "test_avg_pool2d": 1,
        "test_receptive_field": 2,
        "test_layer_table": 3,
    },
    "layer_table",
)


def load(folder: Path, lesson: Lesson) -> dict:
    """The lesson's notebook in ``folder`` (solutions/ or lessons/), each cell's source one string."""
    nb = json.loads((folder / lesson.name / lesson.nb).read_text(encoding="utf-8"))
    for cell in nb["cells"]:
        cell["source"] = "".join(cell["source"])
    return nb


def cell(nb: dict, grade_id: str) -> dict:
    return next(c for c in nb["cells"] if c["metadata"].get("nbgrader", {}).get("grade_id") == grade_id)


def lean(nb: dict) -> dict:
    """Without the demo cells (a student may delete them): the first code cell and the graded ones stay."""
    nb = copy.deepcopy(nb)
    first = next(c for c in nb["cells"] if c["cell_type"] == "code")
    nb["cells"] = [c for c in nb["cells"] if c is first or c["metadata"].get("nbgrader")]
    return nb


def solved(nb: dict, solution: dict, *grade_ids: str) -> dict:
    """A copy of ``nb`` with the named exercises' cells as ``solution`` has them (partial work)."""
    nb = copy.deepcopy(nb)
    for gid in grade_ids:
        cell(nb, gid)["source"] = cell(solution, gid)["source"]
    return nb


def code_cell(code: str, cid: str) -> dict:
    return {"cell_type": "code", "execution_count": None, "id": cid, "metadata": {}, "outputs": [], "source": code}


def with_cell_after_setup(nb: dict, code: str) -> dict:
    nb = copy.deepcopy(nb)
    cells = nb["cells"]
    first = next(i for i, c in enumerate(cells) if c["cell_type"] == "code")
    cells.insert(first + 1, code_cell(code, "trick"))
    return nb


class Class:
    """Builds the submissions folder: one entry per case, with what grading must give."""

    def __init__(self, root: Path, lesson: Lesson):
        self.root = root
        self.lesson = lesson
        self.submissions = root / "submissions"
        self.expected: dict[str, tuple[float, str]] = {}  # submitted name -> (score, status substring)
        self.solution = load(course.SOLUTIONS, lesson)
        self.blank = load(course.LESSONS, lesson)

    def add(self, student: str, nb: dict | bytes, score: float, status: str = "graded", name: str = "", extra=None):
        folder = self.submissions / student / self.lesson.name
        folder.mkdir(parents=True)
        data = nb if isinstance(nb, bytes) else json.dumps(nb, indent=1).encode()
        (folder / (name or self.lesson.nb)).write_bytes(data)
        for fname, content in (extra or {}).items():
            (folder / fname).parent.mkdir(parents=True, exist_ok=True)
            (folder / fname).write_bytes(content)
        self.expected[student] = (score, status)

    def damaged(self, code: str) -> dict:
        """The lean solution with ``code`` run first in the last exercise's cell (only its test depends on it)."""
        nb = lean(self.solution)
        last = cell(nb, self.lesson.last)
        last["source"] = code + "\n" + last["source"]
        return nb
