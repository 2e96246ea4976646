"""The class report: numbers from the results, failure messages grouped, one self-contained and safe page."""

from __future__ import annotations

import csv
import re
import subprocess
import sys

import pytest

from grader import course, report
from grader.results import read_grades
from tests.grader.outputs import FULL, POINTS, write_class


@pytest.fixture
def out(tmp_path):
    write_class(tmp_path / "out")
    return tmp_path / "out"


def test_the_class_is_read_back_from_grades_and_results(out):
    klass = report.load(out)
    assert klass.assignment == "02_conv_pool_arithmetic" and klass.max_score == FULL and klass.has_records
    assert klass.cells == {g: float(p) for g, p in POINTS.items()}  # points and the notebook's order
    by_name = {s.name: s for s in klass.students}
    assert by_name["müllerjürgen"].lms_user_id == "102" and by_name["müllerjürgen"].score == FULL - 7
    assert by_name["<script>alert(1)</script>"].score == 0 and by_name["<script>alert(1)</script>"].review
    assert not by_name["plain"].graded and by_name["plain"].lms == ""
    assert by_name["smithbob"].phases == pytest.approx({"cells": 18.6, "tests": 9.3, "checks": 1.55})


def test_pass_rates_count_the_graded_submissions(out):
    outcomes = report.cell_outcomes(report.load(out))  # five graded: ada, jürgen, bob, script, anon
    assert outcomes["test_conv_output_size"] == {"full": 4, "partial": 0, "failed": 1}
    assert outcomes["test_conv2d"] == {"full": 2, "partial": 0, "failed": 3}
    assert outcomes["test_layer_table"] == {"full": 1, "partial": 0, "failed": 4}


def test_failures_that_differ_only_in_numbers_are_one_group(out):
    klass = report.load(out)
    groups = report.failure_groups(klass, "test_conv2d")
    assert [(count, sorted(s.name for s in who)) for count, _, who in groups] == [
        (2, ["müllerjürgen", "smithbob"]),
        (1, ["<script>alert(1)</script>"]),
    ]
    assert groups[0][1].startswith("AssertionError: conv2d: expected shape (") and "padding" in groups[0][1]
    assert report.pattern("expected (2, 26, 26, 16), got 2.5e-3") == "expected (#, #, #, #), got #"
    assert report.pattern("conv2d: W1=6 gives -2.5") == "conv2d: W1=# gives #"  # names keep their digits
    table = report.failure_groups(klass, "test_layer_table")
    assert [c for c, _, _ in table] == [2, 1, 1]  # two blanks, then the pool shape and the time limit


def test_the_page_is_self_contained_and_escapes_what_students_wrote(out):
    page = report.write(out).read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and page.count("<svg") == 3
    assert not re.search(r"<(script|link|iframe|img)\b", page, re.I), "the page runs and loads nothing"
    assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:)?//", page, re.I), "nothing is fetched from elsewhere"
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "müllerjürgen (102)" in page  # Unicode names intact, with their Canvas id
    for words in (
        "Check your padding",
        "numpy.testing.assert_allclose replaced",
        "timeout in cell layer_table",
        "not a notebook: invalid JSON",
        "Why tests failed",
        "Time per submission",
    ):
        assert words in page, words
    assert re.search(r"test_conv2d</code> \(4 points\): 3 of 5 without all points", page)


def test_edited_grades_and_a_missing_results_file_are_reported_as_they_are(out):
    rows = read_grades(out / "grades.csv")
    with open(out / "grades.csv", newline="", encoding="utf-8") as f:
        table = list(csv.reader(f))
    name_col, score_col = table[0].index("name"), table[0].index("score")
    for line in table[1:]:
        if line[name_col] == "smithbob":
            line[score_col] = "15"  # the instructor regraded by hand
    with open(out / "grades.csv", "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(table)
    (out / "results.jsonl").unlink()
    klass = report.load(out)
    assert {s.name: s.score for s in klass.students}["smithbob"] == 15 and len(klass.students) == len(rows)
    page = report.render(klass)
    assert "no results.jsonl" in page and "No timings" in page and page.count("<svg") == 2


def test_the_report_command_rewrites_the_page(out):
    (out / "report.html").write_text("old")
    run = subprocess.run(
        [sys.executable, "-m", "grader", "report", str(out)], cwd=course.ROOT, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr
    assert "class report:" in run.stdout and (out / "report.html").read_text().startswith("<!DOCTYPE html>")
    missing = subprocess.run(
        [sys.executable, "-m", "grader", "report", str(out / "nowhere")],
        cwd=course.ROOT,
        capture_output=True,
        text=True,
    )
    assert missing.returncode == 2 and "no grades.csv" in missing.stderr


def test_a_class_where_nothing_was_graded_still_gets_its_report(tmp_path):
    from grader.job import Result
    from grader.results import Publisher
    from tests.grader.outputs import POINTS, settings

    broken = [
        Result(f"s{i}", f"s{i}", dict.fromkeys(POINTS, 0.0), problems=["not a notebook: the file is empty"])
        for i in range(3)
    ]
    publisher = Publisher(tmp_path, settings(tmp_path))
    for r in broken:
        publisher.add(r)
    publisher.finish(broken)
    page = report.write(tmp_path).read_text(encoding="utf-8")
    assert page.count("<svg") == 3 and page.count("not a notebook: the file is empty") >= 3
    assert "No submission could be graded" in page and "passed every test" not in page
