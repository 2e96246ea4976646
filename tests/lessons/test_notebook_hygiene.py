"""Notebooks are committed clean and follow the course's nbgrader conventions."""

import re

import nbformat
import pytest

from grader import course

ALL = course.notebooks(course.SOLUTIONS) + course.notebooks(course.LESSONS)
GRADE_ID = re.compile(r"^[a-z][a-z0-9_]*$")


def _ids(path):
    return [f"{p.parent.parent.name}/{p.name}" for p in path]


def _nbgrader_cells(nb):
    return [c for c in nb.cells if "nbgrader" in c.metadata]


def test_there_are_notebooks():
    assert course.notebooks(course.SOLUTIONS), "no solution notebooks found"


@pytest.mark.parametrize("path", ALL, ids=_ids(ALL))
def test_valid_and_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert not cell.outputs, f"{path.name} cell {i} has outputs committed: clear them"
            assert cell.execution_count is None, f"{path.name} cell {i} has an execution count"
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3"


def test_grade_ids_unique_and_snake_case_across_the_course():
    seen = {}
    for path in course.notebooks(course.SOLUTIONS):
        for cell in _nbgrader_cells(nbformat.read(path, as_version=4)):
            gid = cell.metadata.nbgrader["grade_id"]
            assert GRADE_ID.match(gid), f"{path.name}: grade_id {gid!r} is not snake_case"
            assert gid not in seen, f"grade_id {gid!r} is used in {seen[gid]} and {path.name}"
            seen[gid] = path.name


@pytest.mark.parametrize("path", course.notebooks(course.SOLUTIONS), ids=_ids(course.notebooks(course.SOLUTIONS)))
def test_exercise_conventions(path):
    nb = nbformat.read(path, as_version=4)
    cells = nb.cells
    assert cells[0].cell_type == "markdown" and cells[0].source.startswith("# "), "a lesson opens with its title"
    opening = cells[0].source.lower()
    for part in ("what you will learn", "prerequisites", "time"):
        assert part in opening, f"the opening cell should state: {part}"
    graded = 0
    for cell in cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("solution") and cell.cell_type == "code":
            assert "### BEGIN SOLUTION" in cell.source and "### END SOLUTION" in cell.source
            assert '"""' in cell.source, (
                f"solution cell {meta['grade_id']} needs a docstring stating inputs, outputs and shapes"
            )
        if meta.get("grade") and cell.cell_type == "code":
            graded += 1
            assert meta.get("locked"), f"test cell {meta['grade_id']} must be locked"
            assert meta.get("points", 0) > 0
            assert "### BEGIN HIDDEN TESTS" in cell.source and "### END HIDDEN TESTS" in cell.source, (
                f"test cell {meta['grade_id']} needs hidden tests"
            )
            visible = cell.source.split("### BEGIN HIDDEN TESTS")[0]
            assert "assert" in visible, f"test cell {meta['grade_id']} needs visible tests"
    assert graded, "every lesson has at least one graded exercise"
