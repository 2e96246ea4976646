"""Grades and feedback for Canvas and Moodle, in the layouts their importers read.

The importers' rules are restated here from their sources: Canvas's ``GradebookImporter`` (header
row ``Student, ID, [SIS User ID,] SIS Login ID, Section``, a ``Points Possible`` row, students found
by ``ID``) and Moodle's ``assignfeedback_offline_grade_importer`` (columns found by their English
titles ``Identifier``, ``Grade``, ``Last modified (grade)``; ``Participant <number>``).
"""

from __future__ import annotations

import csv
import re
import subprocess
import sys
import zipfile
from datetime import datetime

import pytest

from grader import course, export
from tests.grader.outputs import FULL, write_class
from tests.grader.test_lms import _canvas_reads, _moodle_reads


@pytest.fixture
def out(tmp_path):
    write_class(tmp_path / "out")
    return tmp_path / "out"


def _csv(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


def _canvas_header_ok(row: list[str]) -> bool:
    """Canvas's header check: Student, ID, then SIS columns, and Section last of the student columns."""
    if not (len(row) > 3 and re.search("Student", row[0]) and re.search("ID", row[1])):
        return False
    columns = 3
    if re.search(r"SIS\s+Login\s+ID", row[2]):
        columns += 1
    elif re.search(r"SIS\s+User\s+ID", row[2]) and re.search(r"SIS\s+Login\s+ID", row[3]):
        columns += 2
    return bool(re.search("Section", row[columns - 1]))


def test_canvas_grades_are_in_the_gradebook_import_layout(out):
    done = export.canvas(out, column="Lesson 2: convolution (4567)")
    rows = _csv(done.grades)
    assert _canvas_header_ok(rows[0]) and rows[0][5] == "Lesson 2: convolution (4567)"
    assert re.fullmatch(r"(.*)\s+\((\d+)\)", rows[0][5]).group(2) == "4567"  # how Canvas finds the assignment
    assert rows[1][0] == "Points Possible" and rows[1][5] == str(FULL)
    students = {r[1]: r for r in rows[2:]}
    assert {i: r[5] for i, r in students.items()} == {"101": "16", "102": "9", "103": "6", "104": "0"}
    assert students["102"][0] == "müllerjürgen" and students["104"][0] == "<script>alert(1)</script>"
    assert done.students == 4
    assert any("anonymous in Canvas" in line for line in done.left_out)
    assert any(line.startswith("plain: not from a Canvas export") for line in done.left_out)


def test_canvas_feedback_files_name_the_user_and_the_submitted_file(out):
    done = export.canvas(out)
    with zipfile.ZipFile(done.feedback) as zf:
        names = zf.namelist()
        assert all(zf.read(n).startswith(b"<html>") for n in names)
    assert sorted(_canvas_reads(n) for n in names) == [
        ("101", "50101"),
        ("102", "50102"),
        ("103", "50103"),
        ("104", "50104"),
    ]
    assert "müllerjürgen_LATE_102_50102_02_conv_pool_arithmetic_feedback.html" in names
    assert done.feedback_files == 4


def test_canvas_scores_scale_to_the_assignment_points(out):
    rows = _csv(export.canvas(out, out_of=100).grades)
    assert rows[1][5] == "100" and {r[1]: r[5] for r in rows[2:]}["102"] == "56.25"  # 9 of 16


def test_moodle_grades_are_an_offline_grading_worksheet(out):
    # The class came from Canvas; relabel it as a Moodle download (participant numbers) for this test.
    table = _csv(out / "grades.csv")
    lms_col = table[0].index("lms")
    for line in table[1:]:
        line[lms_col] = "moodle" if line[lms_col] == "canvas" else line[lms_col]
    with open(out / "grades.csv", "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(table)
    done = export.moodle(out)
    rows = _csv(done.grades)
    header = rows[0]
    for required in ("Identifier", "Grade", "Last modified (grade)"):
        assert required in header
    by_id = {r[header.index("Identifier")]: dict(zip(header, r)) for r in rows[1:]}
    assert set(by_id) == {"Participant 101", "Participant 102", "Participant 103", "Participant 104"}
    assert any("'anon_aB3dE' is not a Moodle participant number" in line for line in done.left_out)
    assert by_id["Participant 102"]["Grade"] == "9" and by_id["Participant 102"]["Full name"] == "müllerjürgen"
    assert "Tests not passed: test_conv2d, test_layer_table." in by_id["Participant 102"]["Feedback comments"]
    assert "Every test passed." in by_id["Participant 101"]["Feedback comments"]
    assert datetime.fromisoformat(by_id["Participant 101"]["Last modified (grade)"]).tzinfo is not None
    with zipfile.ZipFile(done.feedback) as zf:
        reads = sorted(_moodle_reads(n) for n in zf.namelist())
    assert reads[0] == ("101", "assignfeedback", "file", "02_conv_pool_arithmetic.html") and len(reads) == 4
    assert "Feedback comments" not in _csv(export.moodle(out, comments=False).grades)[0]


def test_a_class_from_elsewhere_cannot_be_exported_and_says_what_to_do(out, tmp_path):
    with pytest.raises(export.ExportError, match="Download all submissions"):
        export.moodle(out)
    run = subprocess.run(
        [sys.executable, "-m", "grader", "export", "moodle", str(out)], cwd=course.ROOT, capture_output=True, text=True
    )
    assert run.returncode == 2 and "no student" in run.stderr
    run = subprocess.run(
        [sys.executable, "-m", "grader", "export", "canvas", str(out), "--column", "L2 (7)"],
        cwd=course.ROOT,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0 and "canvas_grades.csv: 4 student(s)" in run.stdout and "left out" in run.stdout
    help_text = subprocess.run(
        [sys.executable, "-m", "grader", "--help"], cwd=course.ROOT, capture_output=True, text=True
    ).stdout
    assert "report" in help_text and "export" in help_text and "Canvas or Moodle" in help_text
