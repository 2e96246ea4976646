"""The static scan: tricks are named for review; the course's own solutions raise nothing."""

from __future__ import annotations

import json

import pytest

from grader import course, scan
from tests.grader.test_referee import TRICKS


@pytest.mark.parametrize("trick", sorted(TRICKS))
def test_every_trick_is_named(trick):
    assert scan.findings_in(TRICKS[trick], "#3"), trick


@pytest.mark.parametrize(
    "code, what",
    [
        ("import builtins as b\nb.len = None", "changes b.len"),
        ("setattr(__import__('numpy'), 'allclose', None)", "setattr"),
        ("get_ipython().events.register('post_run_cell', print)", "event callback"),
        ("%time x = 1\nimport ctypes", "ctypes"),
    ],
)
def test_forms_of_reaching_in(code, what):
    found = scan.findings_in(code, "#1")
    assert any(what in f for f in found), found
    assert all(f.endswith("(cell #1)") for f in found)


@pytest.mark.parametrize("notebook", course.notebooks(course.SOLUTIONS), ids=lambda p: p.name)
def test_the_solutions_raise_nothing(notebook):
    nb = json.loads(notebook.read_text(encoding="utf-8"))
    assert scan.scan_notebook(nb, set()) == []
