"""The hand-outs: lessons are exactly what solutions generate, and leak no solution or hidden test.

Nothing here executes a notebook: whether the tests pass on the solutions is in
test_solutions.py, whether they fail on the blank lessons in test_exercise_integrity.py.
"""

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


@pytest.mark.parametrize("lesson", LESSONS, ids=_ids(LESSONS))
def test_locked_cells_match_their_checksums(lesson):
    """What nbgrader restores when a learner edits a locked cell is the cell as released."""
    from nbgrader.utils import compute_checksum

    locked = [
        cell for cell in nbformat.read(lesson, as_version=4).cells if cell.metadata.get("nbgrader", {}).get("checksum")
    ]
    assert locked, "no cell carries a checksum: was the lesson made by `make lessons`?"
    changed = [
        cell.metadata.nbgrader["grade_id"]
        for cell in locked
        if compute_checksum(cell) != cell.metadata.nbgrader["checksum"]
    ]
    assert not changed, f"locked or graded cells whose checksum does not match their content: {changed}"
