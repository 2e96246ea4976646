"""Canvas and Moodle exports of submissions: names parsed, each student's files gathered, feedback named back.

The zips are built here the way the platforms write them (file and folder names as in Canvas's
``ContentZipper`` and Moodle's ``download_submissions``); the feedback names are checked with the
rules the platforms use to read them back (Canvas's ``infer_comment_context_from_filename``, Moodle's
``is_valid_filename_for_import``), restated below.  Nothing is graded here.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from grader import course, lms
from grader.results import write_manifest
from grader.submissions import collect, match_notebooks, safe_id, sha256

LESSON = "02_conv_pool_arithmetic"
NB = f"{LESSON}.ipynb"
SOLUTION = (course.SOLUTIONS / LESSON / NB).read_bytes()


@pytest.mark.parametrize(
    "name, is_dir, expected",
    [
        (
            "lovelaceada_12345_67890_02_conv_pool_arithmetic.ipynb",
            False,
            ("canvas", "12345", "lovelaceada", "02_conv_pool_arithmetic.ipynb", False, "67890"),
        ),
        (
            "lovelaceada_LATE_12345_67890_02_conv_pool_arithmetic.ipynb",
            False,
            ("canvas", "12345", "lovelaceada", "02_conv_pool_arithmetic.ipynb", True, "67890"),
        ),
        ("müllerjürgen_7_8_my_work_v2.ipynb", False, ("canvas", "7", "müllerjürgen", "my_work_v2.ipynb", False, "8")),
        ("anon_aB3dE_67890_notebook.ipynb", False, ("canvas", "anon_aB3dE", "", "notebook.ipynb", False, "67890")),
        ("LATE_anon_aB3dE_67890_notebook.ipynb", False, ("canvas", "anon_aB3dE", "", "notebook.ipynb", True, "67890")),
        ("Ada Lovelace_101_assignsubmission_file_", True, ("moodle", "101", "Ada Lovelace", "", False, "")),
        ("Ada Lovelace_101_assignsubmission_file", True, ("moodle", "101", "Ada Lovelace", "", False, "")),
        (
            "Ünï Cödé_102_assignsubmission_file_02_conv_pool_arithmetic.ipynb",
            False,
            ("moodle", "102", "Ünï Cödé", "02_conv_pool_arithmetic.ipynb", False, ""),
        ),
        (
            "Team A-Ada Lovelace_103_assignsubmission_file_",
            True,
            ("moodle", "103", "Team A-Ada Lovelace", "", False, ""),
        ),
        ("Participant_104_assignsubmission_file_", True, ("moodle", "104", "Participant", "", False, "")),
    ],
)
def test_export_names_are_parsed(name, is_dir, expected):
    e = lms.parse(name, is_dir)
    assert (e.lms, e.user_id, e.name, e.file, e.late, e.file_id) == expected


@pytest.mark.parametrize(
    "name, is_dir",
    [
        ("ada", True),
        ("ada.ipynb", False),
        ("ünï cödé", True),
        ("lovelaceada_12345_text.html", False),
        ("lovelaceada_12345_link.html", False),
        ("x_1_2_y", True),
        (".hidden_1_2_x.ipynb", False),
        ("Ada Lovelace_101_assignsubmission_file_", False),  # a file needs a name after the plugin
    ],
)
def test_other_names_are_not_taken_for_exports(name, is_dir):
    assert lms.parse(name, is_dir) is None


class _NoUtf8Flag(zipfile.ZipInfo):
    """An entry whose UTF-8 name is stored without the zip's UTF-8 flag, as some zip writers do."""

    def _encodeFilenameFlags(self):
        return self.filename.encode("utf-8"), self.flag_bits & ~0x800


def _zip(path: Path, entries: dict[str, bytes], utf8_flag: bool = True) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in entries.items():
            zf.writestr((zipfile.ZipInfo if utf8_flag else _NoUtf8Flag)(name), data)
    if not utf8_flag:
        with zipfile.ZipFile(path) as zf:
            assert any(not i.filename.isascii() and not i.flag_bits & 0x800 for i in zf.infolist())
    return path


@pytest.mark.parametrize("utf8_flag", [True, False])
def test_a_canvas_download_becomes_one_submission_per_student(tmp_path, utf8_flag):
    archive = _zip(
        tmp_path / "submissions.zip",
        {
            "lovelaceada_12345_67890_02_conv_pool_arithmetic.ipynb": SOLUTION,
            "müllerjürgen_LATE_23456_78901_02_conv_pool_arithmetic-1.ipynb": SOLUTION,
            "müllerjürgen_LATE_23456_78902_mnist_model-1.keras": b"model",
            "smithbob_34567_text.html": b"<p>I did it on paper</p>",
        },
        utf8_flag,
    )
    subs, skipped = collect(archive, LESSON, tmp_path / "staging")
    by_name = {s.name: s for s in subs}
    assert set(by_name) == {"lovelaceada", "müllerjürgen"}
    ada, jurgen = by_name["lovelaceada"], by_name["müllerjürgen"]
    assert (ada.lms.lms, ada.lms.user_id, ada.lms.late, ada.lms.file_ids) == ("canvas", "12345", False, {NB: "67890"})
    assert list(ada.files) == [NB] and ada.student_id == "lovelaceada_12345"
    assert jurgen.lms.user_id == "23456" and jurgen.lms.late
    assert set(jurgen.files) == {NB, "mnist_model.keras"}  # Canvas's "-1" of a re-submitted file is undone
    assert jurgen.lms.file_ids == {NB: "78901", "mnist_model.keras": "78902"}
    assert "marked LATE by Canvas" in jurgen.notes
    assert jurgen.student_id == safe_id("müllerjürgen_23456") and jurgen.student_id.isascii()
    assert any("smithbob_34567_text.html" in s for s in skipped)
    chosen, _ = match_notebooks(jurgen, {NB: {"test_conv2d"}})
    assert chosen[NB][1]["cells"], "the notebook is read under its own name"
    assert write_manifest(tmp_path / "submissions.csv", subs, archive, sha256(archive))
    listed = (tmp_path / "submissions.csv").read_text(encoding="utf-8")
    assert "müllerjürgen_LATE_23456_78902_mnist_model-1.keras" in listed  # the file as it came, to find it again


def test_a_moodle_download_becomes_one_submission_per_participant(tmp_path):
    archive = _zip(
        tmp_path / "Course-Lesson 2-12345.zip",
        {
            "Ünï Cödé_101_assignsubmission_file_/02_conv_pool_arithmetic.ipynb": SOLUTION,  # Moodle 3.1 to 4.0
            "Ada Lovelace_102_assignsubmission_file/my work.ipynb": SOLUTION,  # Moodle 4.1 and later
            "Ada Lovelace_102_assignsubmission_onlinetext_/onlinetext.html": b"<p>see the notebook</p>",
            "Bob Smith_103_assignsubmission_file_02_conv_pool_arithmetic.ipynb": SOLUTION,  # not in folders
        },
    )
    subs, _ = collect(archive, LESSON, tmp_path / "staging")
    by_name = {s.name: s for s in subs}
    assert set(by_name) == {"Ünï Cödé", "Ada Lovelace", "Bob Smith"}
    assert [(s.lms.lms, s.lms.user_id) for s in sorted(subs, key=lambda s: s.lms.user_id)] == [
        ("moodle", "101"),
        ("moodle", "102"),
        ("moodle", "103"),
    ]
    assert list(by_name["Ünï Cödé"].files) == [NB] and list(by_name["Bob Smith"].files) == [NB]
    assert list(by_name["Ada Lovelace"].files) == ["my work.ipynb"]
    assert any("onlinetext submission ignored" in n for n in by_name["Ada Lovelace"].notes)
    assert len({s.student_id for s in subs}) == 3


def test_a_moodle_download_of_one_student_is_not_taken_for_a_wrapping_folder(tmp_path):
    archive = _zip(
        tmp_path / "one.zip", {"Ada Lovelace_102_assignsubmission_file_/02_conv_pool_arithmetic.ipynb": SOLUTION}
    )
    subs, _ = collect(archive, LESSON, tmp_path / "staging")
    assert [(s.name, s.lms.user_id, list(s.files)) for s in subs] == [("Ada Lovelace", "102", [NB])]


def test_plain_layouts_keep_no_platform_identity(tmp_path):
    (tmp_path / "class" / "ada" / LESSON).mkdir(parents=True)
    (tmp_path / "class" / "ada" / LESSON / NB).write_bytes(SOLUTION)
    (tmp_path / "class" / "bob.ipynb").write_bytes(SOLUTION)
    subs, _ = collect(tmp_path / "class", LESSON, tmp_path / "staging")
    assert sorted((s.name, s.lms) for s in subs) == [("ada", None), ("bob", None)]


def _canvas_reads(filename: str) -> tuple[str, str] | None:
    """Canvas's rule for a re-uploaded file: the first two all-digit parts are the user and attachment ids."""
    if filename.startswith("._"):
        return None
    digits = [part for part in filename.split("_") if part.isdigit()]
    return (digits[0], digits[1]) if len(digits) >= 2 else None


def _moodle_reads(path: str) -> tuple[str, str, str, str] | None:
    """Moodle's rule for an uploaded feedback file: the first path part 'name_number_type_plugin[_rest]'."""
    parts = path.split("/")
    while parts:
        info = parts.pop(0).split("_", 4)
        if len(info) < 4 or not info[1].isdigit():
            continue
        rest = info[4] if len(info) == 5 else ""
        return info[1], info[2], info[3], "/".join([rest, *parts]).lstrip("/")
    return None


@pytest.mark.parametrize(
    "name, late", [("lovelaceada", False), ("müllerjürgen", True), ("o_1_brien", False), ("", False)]
)
def test_canvas_feedback_names_lead_back_to_the_submission(name, late):
    identity = lms.Identity("canvas", "12345", name, late, {"notes.txt": "11111", NB: "67890"})
    filename = lms.canvas_feedback_name(identity, NB, "02_conv_pool_arithmetic.html")
    assert _canvas_reads(filename) == ("12345", "67890") and filename.endswith(".html")
    renamed = lms.Identity("canvas", "12345", name, late, {"my_work.ipynb": "22222", "notes.txt": "11111"})
    assert _canvas_reads(lms.canvas_feedback_name(renamed, NB, "02_conv_pool_arithmetic.html")) == ("12345", "22222")
    assert lms.canvas_feedback_name(lms.Identity("canvas", "anon_aB3dE", ""), NB, "x.html") is None


@pytest.mark.parametrize("name", ["Ada Lovelace", "Ünï Cödé", "Team A-Ada Lovelace", "Participant"])
def test_moodle_feedback_names_lead_back_to_the_participant(name):
    path = lms.moodle_feedback_name(lms.Identity("moodle", "101", name), "02_conv_pool_arithmetic.html")
    assert _moodle_reads(path) == ("101", "assignfeedback", "file", "02_conv_pool_arithmetic.html")
