"""From a Canvas or Moodle download to grades and feedback to upload back, graded for real.

A lesson-02 notebook (lean: the demo cells removed, as in test_class.py) per platform, named as
Canvas's "Download Submissions" and Moodle's "Download all submissions" name them, is graded by
``python -m grader autograde``'s own function; the rows, the failure messages, the class report
and both exports are checked.  The two arrive in one zip so that one grading run (two jobs side
by side) covers both: a platform never mixes them, and keeping them apart is part of the test.
How exports are read and named is tested without grading in test_lms.py and test_export.py.
"""

from __future__ import annotations

import csv
import json
import zipfile

import pytest

from grader import autograde, export, sandbox
from tests.grader.classes import CONV_POOL, LIMITS, TIMEOUT, Class, cell, lean, solved
from tests.grader.test_lms import _canvas_reads, _moodle_reads

pytestmark = [pytest.mark.notebooks, pytest.mark.sandbox]

LESSON, NB, FULL = CONV_POOL.name, CONV_POOL.nb, CONV_POOL.full


def _partial(tmp_path) -> bytes:
    """The blank lesson with the first two exercises solved: 3 points, five tests failing."""
    k = Class(tmp_path / "unused", CONV_POOL)
    return json.dumps(solved(lean(k.blank), k.solution, "conv_output_size", "conv_param_count")).encode()


def _unpadded(tmp_path) -> bytes:
    """The solution with a classic bug in conv2d: the padding is forgotten (loses its 4 points)."""
    nb = lean(Class(tmp_path / "unused", CONV_POOL).solution)
    code = cell(nb, "conv2d")
    code["source"] = code["source"].replace(
        "xp = np.pad(x, ((0, 0), (padding, padding), (padding, padding), (0, 0)))", "xp = x"
    )
    assert "xp = x\n" in code["source"]
    return json.dumps(nb).encode()


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("lms-class")
    archive = tmp / "submissions.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        # Canvas: a second upload of the notebook is numbered -1; a note beside it
        zf.writestr(f"müllerjürgen_LATE_1002_5002_{LESSON}-1.ipynb", _partial(tmp))
        zf.writestr("müllerjürgen_LATE_1002_5003_notes.txt", b"I ran out of time")
        # Moodle 4.1 and later: folders without the last underscore; a renamed notebook; an online text
        zf.writestr("Ünï Cödé_2001_assignsubmission_file/my work.ipynb", _unpadded(tmp))
        zf.writestr("Ünï Cödé_2001_assignsubmission_onlinetext_/onlinetext.html", b"<p>see my notebook</p>")
    out = tmp / "out"
    autograde.autograde(LESSON, archive, out, jobs=2, timeout=TIMEOUT, wall_clock=240, limits=LIMITS, progress=print)
    with open(out / "grades.csv", encoding="utf-8") as f:
        rows = {r["lms_user_id"]: r for r in csv.DictReader(f)}
    records = {
        json.loads(line)["lms_user_id"]: json.loads(line)
        for line in (out / "results.jsonl").read_text(encoding="utf-8").splitlines()
    }
    assert set(rows) == set(records) == {"1002", "2001"}
    return out, rows, records


needs_isolation = pytest.mark.skipif(sandbox.isolation() is not None, reason=f"no sandbox here: {sandbox.isolation()}")


@needs_isolation
def test_a_canvas_download_is_graded_reported_and_exported(graded):
    out, rows, records = graded
    jurgen = rows["1002"]
    assert (jurgen["name"], jurgen["lms"], jurgen["score"]) == ("müllerjürgen", "canvas", "3")
    assert "marked LATE by Canvas" in jurgen["status"] and jurgen["student_id"].isascii()
    assert records["1002"]["lms_files"] == {NB: "5002", "notes.txt": "5003"}
    failed = records["1002"]["failures"]
    assert set(failed) == {
        "test_conv2d",
        "test_pool_output_size",
        "test_max_pool2d",
        "test_avg_pool2d",
        "test_receptive_field",
        "test_layer_table",
    }
    assert all(message.startswith("NotImplementedError") for message in failed.values()), failed
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "müllerjürgen (1002)" in page and "NotImplementedError" in page

    done = export.canvas(out, column="Lesson 2 (77)")
    with open(done.grades, newline="", encoding="utf-8") as f:
        table = list(csv.reader(f))
    assert table[0] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", "Lesson 2 (77)"]
    assert {r[1]: r[5] for r in table[2:]} == {"1002": "3"}
    assert done.left_out == ["Ünï Cödé: not from a Canvas export (no canvas user id)"]
    with zipfile.ZipFile(done.feedback) as zf:
        assert [_canvas_reads(n) for n in zf.namelist()] == [("1002", "5002")]
        assert all(b"hidden tests of this cell ran in the grader" in zf.read(n) for n in zf.namelist())


@needs_isolation
def test_a_moodle_download_is_graded_reported_and_exported(graded):
    out, rows, records = graded
    row = rows["2001"]
    assert (row["name"], row["lms"], row["score"]) == ("Ünï Cödé", "moodle", str(FULL - 4))
    assert "my work.ipynb graded as" in row["status"] and "onlinetext submission ignored" in row["status"]
    message = records["2001"]["failures"]["test_conv2d"]
    assert set(records["2001"]["failures"]) == {"test_conv2d"}
    assert message.startswith("AssertionError: shape: expected") and "padding" in message  # the test's own hint
    assert records["2001"]["seconds"] > 0 and records["2001"]["timings"][NB]["tests"] > 0
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "Ünï Cödé (2001)" in page and "Hint: check padding" in page

    done = export.moodle(out)
    with open(done.grades, newline="", encoding="utf-8") as f:
        table = list(csv.DictReader(f))
    assert {r["Identifier"]: r["Grade"] for r in table} == {"Participant 2001": str(FULL - 4)}
    assert "Tests not passed: test_conv2d." in table[0]["Feedback comments"]
    with zipfile.ZipFile(done.feedback) as zf:
        assert [_moodle_reads(n) for n in zf.namelist()] == [("2001", "assignfeedback", "file", f"{LESSON}.html")]
        html = zf.read(zf.namelist()[0]).decode()
    # TensorFlow's start-up chatter (its kernels import it) stays out of what the student reads.
    assert "cudart" not in html and "I0000" not in html and "absl::InitializeLog" not in html
