"""Every solution notebook runs top to bottom without an error, and passes every test it holds.

One run per notebook and session (tests/lessons/solution_runs.py): the browser's Run All
when the browser tests ran first, else an nbclient run made here. The solution notebooks
hold the hidden tests too, so a pass here is a pass of every visible and hidden test.
"""

from __future__ import annotations

import pytest

from grader import course
from tests.lessons import solution_runs

NOTEBOOKS = [solution_runs.key(p) for p in course.notebooks(course.SOLUTIONS)]


def _id(name: str) -> str:
    return name.removesuffix(".ipynb")


@pytest.mark.notebooks
@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=_id)
def test_solution_passes_every_test(notebook):
    run = solution_runs.run(notebook)
    graded = [c for c in run.notebook.cells if c.metadata.get("nbgrader", {}).get("grade")]
    assert graded, f"{notebook} has no graded test cell"
    failed = solution_runs.problems(run.notebook, graded_only=True)
    assert not failed, f"tests fail on the solution ({run.where}):\n" + "\n".join(failed)


@pytest.mark.notebooks
@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=_id)
def test_solution_runs_top_to_bottom(notebook):
    run = solution_runs.run(notebook)
    problems = solution_runs.problems(run.notebook)
    assert not problems, f"{notebook} ({run.where}, {run.seconds:.0f} s):\n" + "\n".join(problems)


@pytest.mark.parametrize("graded_only", [False, True])
def test_a_run_with_an_error_or_a_cell_not_run_is_reported(graded_only):
    """The checks above can fail: an error output, or a code cell without an execution count."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    test = {"nbgrader": {"grade": True, "grade_id": "test_x", "points": 1}}
    nb.cells = [
        nbformat.v4.new_code_cell("x = 1", execution_count=1),
        nbformat.v4.new_code_cell(
            "assert x == 2",
            execution_count=2,
            metadata=test,
            outputs=[nbformat.v4.new_output("error", ename="AssertionError", evalue="", traceback=[])],
        ),
        nbformat.v4.new_code_cell("y = 3"),
    ]
    found = solution_runs.problems(nb, graded_only=graded_only)
    assert found[0] == "cell 1 (test_x): AssertionError: "
    assert ("cell 2 did not run" in found) is not graded_only
