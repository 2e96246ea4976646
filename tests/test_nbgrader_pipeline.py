"""The nbgrader pipeline: lessons are generated from solutions, leak nothing, and grade right.

These tests execute notebooks (through nbgrader) and are marked ``notebooks``.
"""

import csv
import shutil

import nbformat
import pytest

from grader import course

SOLUTIONS = course.notebooks(course.SOLUTIONS)
LESSONS = course.notebooks(course.LESSONS)


def _ids(paths):
    return [f"{p.parent.name}/{p.stem}" if p.stem != p.parent.name else p.stem for p in paths]


def _marked_lines(source, begin, end):
    """Non-trivial lines between two markers (the code a lesson must not show)."""
    lines, inside = [], False
    for line in source.splitlines():
        if begin in line:
            inside = True
        elif end in line:
            inside = False
        elif inside and len(line.strip()) > 12 and not line.strip().startswith("#"):
            lines.append(line.strip())
    return lines


def _unmarked(source):
    """Lines outside any solution or hidden-test region."""
    inside = False
    for line in source.splitlines():
        if "### BEGIN SOLUTION" in line or "### BEGIN HIDDEN TESTS" in line:
            inside = True
        elif "### END SOLUTION" in line or "### END HIDDEN TESTS" in line:
            inside = False
        elif not inside:
            yield line


def test_lessons_are_exactly_what_solutions_generate():
    problems = course.out_of_sync()
    assert not problems, "lessons/ is out of date; run `make lessons`:\n" + "\n".join(problems)


def test_every_solution_has_a_lesson():
    assert [p.relative_to(course.SOLUTIONS) for p in SOLUTIONS] == [p.relative_to(course.LESSONS) for p in LESSONS]


@pytest.mark.parametrize("solution", SOLUTIONS, ids=_ids(SOLUTIONS))
def test_no_solution_code_or_hidden_test_in_lessons(solution):
    lesson_text = (course.LESSONS / solution.relative_to(course.SOLUTIONS)).read_text(encoding="utf-8")
    for marker in ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS"):
        assert marker not in lesson_text, f"marker {marker!r} appears in the lesson"
    lesson = nbformat.read(course.LESSONS / solution.relative_to(course.SOLUTIONS), as_version=4)
    lesson_sources = "\n".join(c.source for c in lesson.cells)
    secret, public = [], []
    for cell in nbformat.read(solution, as_version=4).cells:
        secret += _marked_lines(cell.source, "### BEGIN SOLUTION", "### END SOLUTION")
        secret += _marked_lines(cell.source, "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS")
        public += [line.strip() for line in _unmarked(cell.source)]
    assert secret, "the solution notebook has no solution or hidden-test code to protect"
    # A line that is also in the open part of the notebook (`except ValueError:`) is no secret.
    public_text = "\n".join(public)
    leaked = [line for line in secret if line in lesson_sources and line not in public_text]
    assert not leaked, f"solution or hidden-test lines appear in the lesson: {leaked[:3]}"


@pytest.mark.notebooks
@pytest.mark.parametrize("solution", SOLUTIONS, ids=_ids(SOLUTIONS))
def test_solutions_pass_every_test(solution):
    results = course.validate(solution)
    failed = results.get("failed", []) + results.get("changed", []) + results.get("type_changed", [])
    assert not failed, "tests fail on the solution:\n" + "\n\n".join(
        f.get("raw_error", f["source"][:300]) for f in failed
    )


@pytest.mark.notebooks
@pytest.mark.parametrize("lesson", LESSONS, ids=_ids(LESSONS))
def test_blank_lessons_fail_every_test(lesson):
    results = course.validate(lesson, invert=True)
    assert "changed" not in results, "the lesson's locked cells do not match their checksums"
    passed = results.get("passed", [])
    assert not passed, "graded tests pass on the blank lesson (they cannot catch a missing answer):\n" + "\n\n".join(
        p["source"][:300] for p in passed
    )


@pytest.mark.notebooks
def test_autograde_round_trip(tmp_path):
    """A solution submitted as a student's work gets full marks, a blank lesson zero."""
    name = "00_getting_started"
    nb_name = f"{name}.ipynb"
    shutil.copytree(course.SOLUTIONS / name, tmp_path / "source" / name)
    for student, src in (("ada", course.SOLUTIONS), ("blank", course.LESSONS)):
        dest = tmp_path / "submitted" / student / name
        dest.mkdir(parents=True)
        shutil.copy(src / name / nb_name, dest / nb_name)
    overrides = [
        f"--CourseDirectory.root={tmp_path}",
        "--CourseDirectory.source_directory=source",
        "--CourseDirectory.release_directory=release",
        "--CourseDirectory.submitted_directory=submitted",
        "--CourseDirectory.autograded_directory=autograded",
        "--CourseDirectory.feedback_directory=feedback",
        f"--CourseDirectory.db_url=sqlite:///{tmp_path}/gradebook.db",
    ]
    course.nbgrader("generate_assignment", name, *overrides)
    course.nbgrader("autograde", name, *overrides)
    course.nbgrader("generate_feedback", name, *overrides)
    course.nbgrader("export", f"--to={tmp_path}/grades.csv", *overrides)

    rows = {r["student_id"]: r for r in csv.DictReader(open(tmp_path / "grades.csv"))}
    assert set(rows) == {"ada", "blank"}
    assert float(rows["ada"]["max_score"]) > 0
    assert float(rows["ada"]["score"]) == float(rows["ada"]["max_score"]), rows["ada"]
    assert float(rows["blank"]["score"]) == 0.0, rows["blank"]
    for student in ("ada", "blank"):
        assert (tmp_path / "feedback" / student / name / f"{name}.html").exists()
    # The submissions themselves are untouched.
    assert (tmp_path / "submitted" / "ada" / name / nb_name).read_bytes() == (course.SOLUTIONS / name / nb_name).read_bytes()
