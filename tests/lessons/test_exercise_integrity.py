"""The grade measures the skill: shortcuts lose points, correct answers written differently keep them.

For every lesson, through the real grader (``grader.autograde.autograde``), in one run per
lesson that grades together:

- the *variants* submission: the solution notebook with every exercise answered another
  correct way (``tests/lessons/exercise_variants.py``). Every test cell must give full marks;
- the *blank* submission: the lesson as released. Every test cell must give no points;
- one or more *shortcuts* submissions: the blank notebook the shortcuts are in (that one
  alone, where a lesson has two) with shortcut answers pasted into its exercises (Keras in a
  NumPy exercise, a test's helper reused, the answer read from the input, a model that does
  not learn, a model fitted to the test images ...). The test cells each shortcut names must
  score below full marks.

Submissions hold only the notebooks' nbgrader cells (setup, exercises, tests): the test cells
may use nothing else, and grading them alone is fast. Lesson 06's submissions carry their
``mnist_model.keras`` (``tests/lessons/project_models.py``). A table of every answer and its points is printed (run
with ``-s`` to see it) and written to the test's temporary folder.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

from grader import course
from tests.lessons import exercise_variants as ev
from tests.lessons import project_models as project_models_kept

pytestmark = pytest.mark.notebooks

REFEREE = (course.GRADER_DIR / "referee.py").exists()  # the grader that keeps test data from the learner's code
TIMEOUT = 300  # seconds per cell: the lessons' training tests need about a minute on 2 cores


def _nbgrader(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def _load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _points(assignment: str) -> dict[str, float]:
    points = {}
    for nb in sorted((course.SOLUTIONS / assignment).glob("*.ipynb")):
        for cell in _load(nb)["cells"]:
            meta = _nbgrader(cell)
            if meta.get("grade"):
                points[meta["grade_id"]] = float(meta["points"])
    return points


def _source(code: str) -> list[str]:
    return code.strip("\n").splitlines(keepends=True) if code.strip() else []


def _write_notebook(assignment: str, name: str, base: str, cells: dict, support: tuple, dest: Path) -> None:
    """The nbgrader cells of ``base``/``name`` (lessons or solutions), with ``cells`` pasted into the exercises."""
    nb = _load((course.LESSONS if base == "lessons" else course.SOLUTIONS) / assignment / name)
    reference = {_nbgrader(c).get("grade_id"): c for c in _load(course.SOLUTIONS / assignment / name)["cells"]}
    nb["cells"] = [c for c in nb["cells"] if _nbgrader(c)]
    for cell in nb["cells"]:
        gid = _nbgrader(cell).get("grade_id")
        if gid in support:
            cell["source"] = list(reference[gid]["source"])
        answer = cells.get(gid)
        code = answer.code if isinstance(answer, ev.Shortcut) else answer
        if code:
            cell["source"] = _source(code)
    missing = set(cells) - {_nbgrader(c).get("grade_id") for c in nb["cells"]}
    assert not missing, f"{name}: no solution cells {missing}"
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(json.dumps(nb, indent=1), encoding="utf-8")


def _submissions(assignment: str, root: Path, models: dict[str, Path]) -> dict[str, list]:
    """Write the lesson's submissions under ``root``; student id -> the shortcuts it must lose points to."""
    notebooks = [p.name for p in sorted((course.SOLUTIONS / assignment).glob("*.ipynb"))]
    students = {}
    variants = {v.notebook: v for v in ev.VARIANTS[assignment]}
    folder = root / "variants" / assignment
    for name in notebooks:
        v = variants.get(name, ev.Submission(name, {}))
        _write_notebook(assignment, name, "solutions", v.cells, (), folder / name)
        if v.model:
            shutil.copy(models[v.model], folder / "mnist_model.keras")
    students["variants"] = []
    for name in notebooks:  # the blank lesson as released: every test must fail on it
        _write_notebook(assignment, name, "lessons", {}, (), root / "blank" / assignment / name)
    students["blank"] = []
    for i, sub in enumerate(ev.SHORTCUTS[assignment], 1):
        # Only the notebook the shortcuts are in: its tests are the ones checked (a lesson's
        # other notebooks would be blank ones, graded again for nothing).
        folder = root / f"shortcuts{i}" / assignment
        _write_notebook(assignment, sub.notebook, "lessons", sub.cells, sub.support, folder / sub.notebook)
        if sub.model:
            shutil.copy(models[sub.model], folder / "mnist_model.keras")
        students[f"shortcuts{i}"] = [(gid, s) for gid, s in sub.cells.items()]
    return students


# -- lesson 06's model files ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def project_models(tmp_path_factory):
    """The mnist_model.keras files of lesson 06's submissions: the kept ones, checked, else trained."""
    pytest.importorskip("keras")
    return project_models_kept.kept_or_built(lambda: tmp_path_factory.mktemp("models"))


# -- the runs ---------------------------------------------------------------------------------------
def _grade(assignment: str, tmp_path: Path, models: dict[str, Path]) -> tuple[dict[str, dict], dict[str, list]]:
    from grader import autograde

    subs = tmp_path / "submissions"
    students = _submissions(assignment, subs, models)
    out = tmp_path / "out"
    autograde.autograde(assignment, subs, out, jobs=2, timeout=TIMEOUT, progress=print)
    with open(out / "grades.csv", newline="", encoding="utf-8") as f:
        rows = {row["student_id"]: row for row in csv.DictReader(f)}
    return rows, students


def _report(assignment: str, rows: dict, students: dict, points: dict, path: Path) -> str:
    totals = ", ".join(f"{s} {row['score']}/{row['max_score']} ({row['status']})" for s, row in rows.items())
    lines = [f"{assignment}: {totals}"]
    for student, shortcuts in students.items():
        for gid, shortcut in shortcuts:
            scored = ", ".join(f"{t} {rows[student][t]}/{points[t]:g}" for t in shortcut.loses)
            lines.append(f"  shortcut {gid:22s} {shortcut.kind}: {scored}")
    lines.append("  variants: " + ", ".join(f"{t} {rows['variants'][t]}/{p:g}" for t, p in points.items()))
    text = "\n".join(lines)
    path.write_text(text + "\n", encoding="utf-8")
    print(text)
    return text


@pytest.mark.parametrize("assignment", sorted(ev.SHORTCUTS))
def test_shortcuts_lose_points_and_correct_variants_keep_them(assignment, tmp_path, request):
    models = request.getfixturevalue("project_models") if assignment == "06_mnist_project" else {}
    rows, students = _grade(assignment, tmp_path, models)
    points = _points(assignment)
    _report(assignment, rows, students, points, tmp_path / "report.txt")
    problems = []
    variants = rows["variants"]
    for gid, full in points.items():
        if float(variants[gid]) < full:
            problems.append(f"correct variant lost points in {gid}: {variants[gid]}/{full:g} ({variants['status']})")
    for honest in ("variants", "blank"):  # honest work is graded without a problem or a flag for review
        if rows[honest]["status"] != "graded":
            problems.append(f"{honest}: status {rows[honest]['status']!r}, expected 'graded'")
    passed_blank = [gid for gid in points if float(rows["blank"][gid]) > 0]
    if passed_blank:
        problems.append(f"tests pass on the blank lesson (they cannot catch a missing answer): {passed_blank}")
    for student, shortcuts in students.items():
        for gid, shortcut in shortcuts:
            if shortcut.needs_referee and not REFEREE:
                continue  # the learner's kernel still sees the test data: only the referee stops this one
            for test in shortcut.loses:
                if float(rows[student][test]) >= points[test]:
                    problems.append(f"shortcut in {gid} ({shortcut.kind}) kept full marks in {test}")
    assert not problems, "\n".join(problems)
