"""python -m grader autograde: a class of submissions built from lesson 02, good and hostile.

Each submission is a real lesson-02 notebook (the solution, the blank lesson, or one of
them altered the way a student or an attacker might). One grading run at --jobs 2 covers
them all; every row's exact score and status is asserted, the originals must be
byte-identical afterwards, and a second run at --jobs 1 must agree.
"""

from __future__ import annotations

import copy
import csv
import hashlib
import json
import shutil
import socket
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import pytest

from grader import autograde, course, sandbox

pytestmark = pytest.mark.notebooks

LESSON = "02_conv_pool_arithmetic"
NB = f"{LESSON}.ipynb"
POINTS = {"test_conv_output_size": 2, "test_conv_param_count": 1, "test_conv2d": 4, "test_pool_output_size": 1,
          "test_max_pool2d": 2, "test_avg_pool2d": 1, "test_receptive_field": 2, "test_layer_table": 3}
FULL = sum(POINTS.values())
TIMEOUT = 25  # seconds per cell in these tests: the lesson's slowest cell takes a few

needs_isolation = pytest.mark.skipif(sandbox.isolation() is not None, reason=f"no sandbox here: {sandbox.isolation()}")


def _load(folder: Path) -> dict:
    nb = json.loads((folder / LESSON / NB).read_text(encoding="utf-8"))
    for cell in nb["cells"]:
        cell["source"] = "".join(cell["source"])
    return nb


def _cell(nb: dict, grade_id: str) -> dict:
    return next(c for c in nb["cells"] if c["metadata"].get("nbgrader", {}).get("grade_id") == grade_id)


def _prepend(nb: dict, grade_id: str, code: str) -> dict:
    nb = copy.deepcopy(nb)
    cell = _cell(nb, grade_id)
    cell["source"] = code + "\n" + "".join(cell["source"])
    return nb


class Class:
    """Builds the submissions folder: one entry per case, with what grading must give."""

    def __init__(self, root: Path):
        self.root = root
        self.submissions = root / "submissions"
        self.expected: dict[str, tuple[float, str]] = {}  # student -> (score, status substring)
        self.solution = _load(course.SOLUTIONS)
        self.blank = _load(course.LESSONS)

    def add(self, student: str, nb: dict | bytes, score: float, status: str = "graded", name: str = NB, extra=None):
        folder = self.submissions / student / LESSON
        folder.mkdir(parents=True)
        data = nb if isinstance(nb, bytes) else json.dumps(nb, indent=1).encode()
        (folder / name).write_bytes(data)
        for fname, content in (extra or {}).items():
            (folder / fname).write_bytes(content)
        self.expected[student] = (score, status)

    def damaged(self, code: str) -> dict:
        """The solution with ``code`` run first in the last exercise's cell (only its test depends on it)."""
        return _prepend(self.solution, "layer_table", code)


@pytest.fixture(scope="module")
def klass(tmp_path_factory):
    root = tmp_path_factory.mktemp("class")
    k = Class(root)
    s, b = k.solution, k.blank
    k.add("correct", s, FULL)
    k.add("blank", b, 0)
    partial = copy.deepcopy(b)
    for gid in ("conv_output_size", "conv_param_count"):
        _cell(partial, gid)["source"] = _cell(s, gid)["source"]
    k.add("partial", partial, 3)
    lose_table = FULL - POINTS["test_layer_table"]
    k.add("infinite_loop", k.damaged("while True:\n    pass"), lose_table, "timeout in cell layer_table")
    k.add("memory_hog", k.damaged("hog = bytearray(64 * 2**30)"), lose_table, "out of memory in cell layer_table")
    # Bounded (2,000 forks at most), so that a missing process limit fails the test instead of the machine.
    k.add("fork_bomb", k.damaged(
        "import os, time\nchildren = 0\ntry:\n    for _ in range(2000):\n        if os.fork() == 0:\n            time.sleep(120)\n"
        "            os._exit(0)\n        children += 1\nexcept OSError as exc:\n    print('fork ' + f'refused after {children} processes')\n"
        "assert children < 2000, 'no process limit'"), FULL)
    k.add("sys_exit", k.damaged("import sys\nsys.exit(3)"), lose_table)
    k.add("crash", k.damaged("import os\nos._exit(1)"), 0, "kernel died")
    k.add("segfault", k.damaged("import ctypes\nctypes.string_at(0)"), 0, "kernel died")
    # Attacks that would earn points if they worked: a blank lesson that copies the solutions in.
    steal = (f"import json, pathlib\nfor _p in {[str(course.SOLUTIONS / LESSON / NB), str(k.submissions / 'correct' / LESSON / NB)]!r}:\n"
             "    try:\n        _nb = json.loads(pathlib.Path(_p).read_text())\n"
             "        exec('\\n'.join(''.join(c['source']) for c in _nb['cells'] if 'def ' in ''.join(c['source'])"
             " and c['cell_type'] == 'code'))\n        print('stole' + 'n from', _p)\n        break\n"
             "    except OSError as exc:\n        print('can' + 'not read', _p, type(exc).__name__)")
    stealer = copy.deepcopy(b)
    stealer["cells"].append({"cell_type": "code", "execution_count": None, "id": "steal", "metadata": {}, "outputs": [],
                             "source": steal})
    # Run the theft before the tests: right after the last solution cell.
    cells = stealer["cells"]
    cells.insert(cells.index(_cell(stealer, "conv_output_size")) + 1, cells.pop())
    k.add("read_solutions", stealer, 0)
    k.outside = root / "outside.txt"
    k.own_copy = k.submissions / "write_outside" / LESSON / NB
    k.add("write_outside", k.damaged(
        f"for _p in [{str(k.outside)!r}, {str(k.own_copy)!r}, {str(course.ROOT / 'README.md')!r}]:\n"
        "    try:\n        open(_p, 'a').write('tampered')\n        print('wr' + 'ote', _p)\n"
        "    except OSError as exc:\n        print('can' + 'not write', _p, type(exc).__name__)"), FULL)
    k.server = socket.socket()
    k.server.bind(("127.0.0.1", 0))
    k.server.listen()
    k.server.settimeout(0.2)
    port = k.server.getsockname()[1]
    k.add("network", k.damaged(
        f"import socket\nfor _addr in [('127.0.0.1', {port}), ('1.1.1.1', 80)]:\n    try:\n"
        "        socket.create_connection(_addr, timeout=3)\n        print('re' + 'ached', _addr)\n"
        "    except OSError as exc:\n        print('no ' + 'network', _addr, type(exc).__name__)"), FULL)
    edited = copy.deepcopy(b)
    _cell(edited, "test_conv_output_size")["source"] = "print('all good')"
    k.add("edited_test", edited, 0)  # the test is restored, and fails on the blank answer
    deleted = copy.deepcopy(s)
    deleted["cells"].remove(_cell(deleted, "test_conv2d"))
    k.add("deleted_test", deleted, FULL - POINTS["test_conv2d"], "deleted test cell test_conv2d (0 points)")
    dup = copy.deepcopy(b)
    twin = copy.deepcopy(_cell(s, "conv_output_size"))
    twin["id"] = "twin"
    dup["cells"].insert(dup["cells"].index(_cell(dup, "conv_output_size")) + 1, twin)  # a second, solved copy
    k.add("duplicate_cell", dup, POINTS["test_conv_output_size"], "duplicate cell conv_output_size run as a plain cell")
    retyped = copy.deepcopy(s)
    test = _cell(retyped, "test_max_pool2d")
    test.update(cell_type="markdown")
    test.pop("outputs", None)
    test.pop("execution_count", None)
    k.add("changed_type", retyped, FULL)
    k.add("renamed", s, FULL, "my_work.ipynb graded as " + NB, name="my_work.ipynb")
    k.add("malformed", b'{"cells": [', 0, "not a notebook: invalid JSON")
    k.add("empty", b"", 0, "not a notebook: the file is empty")
    k.add("not_utf8", b"\xff\xfe\x00{\x00", 0, "not a notebook: not UTF-8")
    k.add("huge_output", k.damaged("for _ in range(300000):\n    print('spam ' * 20)"), FULL)
    k.add("Mallory O'Brien; rm -rf ~", s, FULL)  # an unsafe folder name: sanitized
    k.expected["Mallory_O_Brien_rm_-rf"] = k.expected.pop("Mallory O'Brien; rm -rf ~")
    k.before = {p: p.read_bytes() for p in k.submissions.rglob("*") if p.is_file()}
    return k


@pytest.fixture(scope="module")
def graded(klass):
    out = klass.root / "out"
    results = autograde.autograde(LESSON, klass.submissions, out, jobs=2, timeout=TIMEOUT, wall_clock=240, progress=print)
    rows = {r["student_id"]: r for r in csv.DictReader(open(out / "grades.csv", encoding="utf-8"))}
    return out, rows, results


@needs_isolation
def test_every_submission_gets_its_exact_score_and_status(klass, graded):
    _, rows, _ = graded
    assert set(rows) == set(klass.expected), set(rows) ^ set(klass.expected)
    wrong = []
    for student, (score, status) in klass.expected.items():
        row = rows[student]
        if float(row["score"]) != score or status not in row["status"]:
            wrong.append((student, row["score"], row["status"], score, status))
    assert not wrong, "\n".join(map(str, wrong))
    for row in rows.values():
        assert row["max_score"] == str(FULL) and row["assignment"] == LESSON
        assert sum(float(row[g]) for g in POINTS) == float(row["score"])


@needs_isolation
def test_originals_are_byte_identical_and_listed_with_their_sha256(klass, graded):
    out, _, _ = graded
    after = {p: p.read_bytes() for p in klass.submissions.rglob("*") if p.is_file()}
    assert after == klass.before
    manifest = list(csv.DictReader(open(out / "submissions.csv", encoding="utf-8")))
    assert len(manifest) == len(klass.before)
    for row in manifest:
        assert row["unchanged_after_grading"] == "yes"
    digests = {hashlib.sha256(d).hexdigest() for d in klass.before.values()}
    assert {r["sha256"] for r in manifest} == digests


@needs_isolation
def test_the_sandbox_held(klass, graded):
    out, _, _ = graded
    assert not klass.outside.exists(), "student code wrote outside its scratch folder"
    assert "tampered" not in (course.ROOT / "README.md").read_text()
    with pytest.raises(socket.timeout):
        klass.server.accept()  # nobody connected to the host's loopback
    text = {s: "\n".join(p.read_text(errors="replace") for p in (out / "feedback" / s).glob("*.html"))
            for s in ("network", "read_solutions", "fork_bomb", "write_outside")}
    assert "no network" in text["network"] and "reached" not in text["network"]
    assert "cannot read" in text["read_solutions"] and "stolen from" not in text["read_solutions"]
    assert "fork refused after" in text["fork_bomb"]
    assert text["write_outside"].count("cannot write") == 2 and "wrote " + str(klass.own_copy) not in text["write_outside"]


@needs_isolation
def test_feedback_and_output_limits(graded):
    out, rows, _ = graded
    for student, row in rows.items():
        if row["status"].startswith("graded") or "timeout in cell" in row["status"] or "out of memory in cell" in row["status"]:
            assert list((out / "feedback" / student).glob("*.html")), f"no feedback for {student}"
    huge = (out / "feedback" / "huge_output" / NB.replace(".ipynb", ".html")).read_text()
    assert "Output truncated" in huge and len(huge) < 3_000_000


@needs_isolation
def test_one_job_grades_the_same_as_two(klass, graded, tmp_path):
    _, rows2, _ = graded
    subset = ["correct", "blank", "partial", "infinite_loop", "crash", "deleted_test"]
    sub = tmp_path / "subset"
    for student in subset:
        shutil.copytree(klass.submissions / student, sub / student)
    autograde.autograde(LESSON, sub, tmp_path / "out", jobs=1, timeout=TIMEOUT, wall_clock=240, progress=print)
    rows1 = {r["student_id"]: r for r in csv.DictReader(open(tmp_path / "out" / "grades.csv", encoding="utf-8"))}
    assert set(rows1) == set(subset)
    for student in subset:
        assert rows1[student] == rows2[student], student


def test_loose_notebooks_and_zips(tmp_path):
    loose = tmp_path / "loose"
    loose.mkdir()
    (loose / "ada lovelace.ipynb").write_bytes((course.SOLUTIONS / LESSON / NB).read_bytes())
    (loose / "bob.ipynb").write_bytes(b"not json")
    subs = autograde.collect(loose, LESSON, tmp_path / "staging")
    assert [s.student_id for s in subs] == ["ada_lovelace", "bob"]
    archive = tmp_path / "class.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(loose / "bob.ipynb", "export/bob.ipynb")
        zf.write(loose / "ada lovelace.ipynb", f"export/cy/{LESSON}/{NB}")
    subs = autograde.collect(archive, LESSON, tmp_path / "staging2")
    assert sorted((s.student_id, list(s.files)) for s in subs) == [("bob", ["?"]), ("cy", [NB])]
    matched, notes = autograde.match_notebooks(subs[0] if subs[0].student_id == "bob" else subs[1],
                                               {NB: {"test_conv2d"}})
    assert matched == {} and "invalid JSON" in notes[0]


@pytest.mark.parametrize("entry", ["../escape.ipynb", "/abs/path.ipynb", "a/../../b.ipynb"])
def test_zip_traversal_is_refused(tmp_path, entry):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(entry, "{}")
    with pytest.raises(autograde.GradingError, match="refusing entry"):
        autograde.collect(archive, LESSON, tmp_path / "staging")
    assert not (tmp_path / "escape.ipynb").exists()


def test_zip_links_are_refused(tmp_path):
    archive = tmp_path / "link.zip"
    info = zipfile.ZipInfo("alice/link")
    info.external_attr = (0o120777 << 16)
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(autograde.GradingError, match="symbolic link"):
        autograde.collect(archive, LESSON, tmp_path / "staging")


def test_cli_help_and_errors(tmp_path):
    run = lambda *a: subprocess.run([sys.executable, "-m", "grader", *a], cwd=course.ROOT, capture_output=True, text=True)
    help_text = run("autograde", "--help").stdout
    for option in ("--submissions", "--out", "--jobs", "--timeout"):
        assert option in help_text
    missing = run("autograde", LESSON, "--submissions", str(tmp_path / "nowhere"))
    assert missing.returncode == 2 and "submissions not found" in missing.stderr
    wrong = run("autograde", "99_nothing", "--submissions", str(tmp_path))
    assert wrong.returncode == 2


@pytest.mark.parametrize("raw, clean", [("ada", "ada"), ("../../etc/passwd", "etc_passwd"), (".hidden", "hidden"),
                                        ("名前", "student"), ("a b\tc", "a_b_c")])
def test_student_ids_are_sanitized(raw, clean):
    assert autograde.sanitize_id(raw) == clean


@needs_isolation
def test_lesson_06_is_graded_from_the_saved_model_without_training(tmp_path):
    keras = pytest.importorskip("keras")
    lesson = "06_mnist_project"
    keras.utils.set_random_seed(0)
    untrained = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Conv2D(4, 3), keras.layers.Flatten(),
                                  keras.layers.Dense(10, activation="softmax")])
    subs = tmp_path / "subs"
    for student in ("with_model", "no_model"):
        folder = subs / student / lesson
        folder.mkdir(parents=True)
        for nb in (course.SOLUTIONS / lesson).glob("*.ipynb"):
            shutil.copy(nb, folder / nb.name)
    untrained.save(subs / "with_model" / lesson / "mnist_model.keras")
    autograde.autograde(lesson, subs, tmp_path / "out", jobs=2, timeout=120, wall_clock=400, progress=print)
    rows = {r["student_id"]: r for r in csv.DictReader(open(tmp_path / "out" / "grades.csv", encoding="utf-8"))}
    exercises = {"test_prepare_mnist": 2, "test_confusion_matrix": 2, "test_per_class_accuracy": 1,
                 "test_most_confused_pairs": 2}
    tiers = ("project_tier_1", "project_tier_2", "project_tier_3")
    for student, rules in (("with_model", 1), ("no_model", 0)):
        row = rows[student]
        assert row["max_score"] == "14" and row["status"] == "graded", row
        assert float(row["project_rules"]) == rules
        assert all(float(row[t]) == 0 for t in tiers), "an untrained or missing model earns no tier"
        assert all(float(row[g]) == p for g, p in exercises.items())
    feedback = (tmp_path / "out" / "feedback" / "no_model" / "06b_project.html").read_text()
    assert "mnist_model.keras not found" in feedback
    assert "not training" in feedback, "grading must read the saved model, not train one"


def test_without_isolation_it_says_so_and_still_grades(tmp_path, monkeypatch):
    monkeypatch.setattr(sandbox, "isolation", lambda: "bubblewrap is not installed (test)")
    subs = tmp_path / "subs" / "ada" / LESSON
    subs.mkdir(parents=True)
    shutil.copy(course.SOLUTIONS / LESSON / NB, subs / NB)
    said = []
    autograde.autograde(LESSON, tmp_path / "subs", tmp_path / "out", jobs=1, timeout=TIMEOUT, progress=said.append)
    assert "WARNING: student code will NOT be isolated" in said[0]
    row = next(csv.DictReader(open(tmp_path / "out" / "grades.csv", encoding="utf-8")))
    assert (row["score"], row["status"]) == (str(FULL), "graded")


def test_per_lesson_timeouts_come_from_the_course_config():
    config = course.load_config()
    assert config.CourseGrader.timeouts[LESSON] < config.Execute.timeout


def test_kernel_environment_is_scrubbed(monkeypatch):
    monkeypatch.setenv("GITHUB_TOKEN", "secret")
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    env = sandbox.kernel_env("/tmp")
    assert "GITHUB_TOKEN" not in env and env["NBGRADER_EXECUTION"] == "autograde"
    args = sandbox.bwrap_args(Path("/tmp/scratch"), Path("/tmp/run"))
    assert "--clearenv" in args and "--unshare-all" in args and "secret" not in args
    assert str(course.SOLUTIONS) not in args and str(course.ROOT / "grader") not in args


def test_each_submitted_notebook_is_graded_as_one_notebook_at_most(tmp_path):
    """Lesson 06 has two notebooks: a renamed part 2 fills part 2 only, never part 1 as well."""
    lesson = "06_mnist_project"
    part2 = course.SOLUTIONS / lesson / "06b_project.ipynb"
    folder = tmp_path / "ada" / lesson
    folder.mkdir(parents=True)
    shutil.copy(part2, folder / "my project.ipynb")
    sub = autograde.collect(tmp_path, lesson, tmp_path / "staging")[0]
    ids = {name: autograde._grade_ids(json.loads((course.SOLUTIONS / lesson / name).read_text()))
           for name in ("06a_notes_pipeline.ipynb", "06b_project.ipynb")}
    chosen, notes = autograde.match_notebooks(sub, ids)
    assert chosen == {"06b_project.ipynb": folder / "my project.ipynb"}
    assert notes == ["my project.ipynb graded as 06b_project.ipynb"]
