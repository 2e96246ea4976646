"""``python -m grader autograde`` on a class built from lesson 00: honest, hostile and cheating work.

Each submission is a real lesson-00 notebook: the solution, the blank lesson, or one of them
altered as a student or an attacker might. One grading run at --jobs 2 covers them all; every
row's exact score and status is asserted, the originals must be byte-identical afterwards, the
host must be untouched, and a run at --jobs 1 must agree. Most hostile and cheating notebooks
are "lean" (the demo cells removed, as a student may do) so that they grade quickly. Lesson 00's
kernels import no TensorFlow, so the forty of them start in under a second each; a lesson with
TensorFlow is graded for real in test_lms_class.py, test_cluster.py and the lessons' integrity tests.
"""

from __future__ import annotations

import copy
import csv
import hashlib
import json
import os
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

from grader import autograde, course, sandbox
from grader.submissions import safe_id
from tests.grader.classes import (
    GETTING_STARTED,
    LIMITS,
    TIMEOUT,
    Class,
    cell,
    lean,
    load,
    solved,
    with_cell_after_setup,
)
from tests.grader.test_referee import TRICKS

pytestmark = [pytest.mark.notebooks, pytest.mark.sandbox]

LESSON, NB, POINTS, FULL = GETTING_STARTED.name, GETTING_STARTED.nb, GETTING_STARTED.points, GETTING_STARTED.full
LOSE_LAST = GETTING_STARTED.lose_last  # the solution with its last exercise (one_hot) broken
# One form of each kind of trick through the whole grader (all forms: tests/grader/test_referee.py).
CLASS_TRICKS = [
    "input transformer",
    "AST transformer",
    "run_cell replaced",
    "checks patched",
    "keyword defaults",
    "numpy.testing patched",
    "builtins patched",
    "trace function",
    "background patcher thread",
    "forged record",
    "signal handler",
]

needs_isolation = pytest.mark.skipif(sandbox.isolation() is not None, reason=f"no sandbox here: {sandbox.isolation()}")


@pytest.fixture(scope="module")
def klass(tmp_path_factory):
    root = tmp_path_factory.mktemp("class")
    k = Class(root, GETTING_STARTED)
    s, b = k.solution, k.blank
    # Honest work.
    k.add("correct", s, FULL)
    k.add("blank", b, 0)
    k.add("partial", solved(lean(b), s, "preprocess_images"), POINTS["test_preprocess_images"])
    # The names that test identity (Unicode, ids that sanitize alike, a spreadsheet formula) are
    # given to cases that run a kernel anyway: each kernel costs seconds of the suite.
    k.add("ünï cödé", lean(s), FULL, "my_work.ipynb graded as " + NB, name="my_work.ipynb")  # renamed notebook
    dup = copy.deepcopy(lean(b))
    twin = copy.deepcopy(cell(s, "preprocess_images"))
    twin["id"] = "twin"
    dup["cells"].insert(dup["cells"].index(cell(dup, "preprocess_images")) + 1, twin)  # a second, solved copy
    k.add(
        "duplicate_cell", dup, POINTS["test_preprocess_images"], "duplicate cell preprocess_images run as a plain cell"
    )
    retyped = copy.deepcopy(lean(s))
    test = cell(retyped, "test_one_hot")
    test.update(cell_type="markdown")
    test.pop("outputs", None)
    test.pop("execution_count", None)
    k.add("bob-2", retyped, FULL)  # a test cell changed to Markdown; must not be confused with bob!
    deleted = copy.deepcopy(lean(s))
    deleted["cells"].remove(cell(deleted, "test_one_hot"))
    k.add("=cmd|' calc'!A0", deleted, LOSE_LAST, "deleted test cell test_one_hot (0 points)")
    edited = copy.deepcopy(lean(b))
    cell(edited, "test_preprocess_images")["source"] = "print('all good')"
    k.add("bob!", edited, 0)  # an edited test: restored, and it fails on the blank answer
    k.add("malformed", b'{"cells": [', 0, "not a notebook: invalid JSON")
    k.add("empty", b"", 0, "not a notebook: the file is empty")
    k.add("not_utf8", b"\xff\xfe\x00{\x00", 0, "not a notebook: not UTF-8")
    # Hostile work: limits.
    k.add("infinite_loop", k.damaged("while True:\n    pass"), LOSE_LAST, "timeout in cell one_hot")
    k.add(
        "stuck_in_c",
        k.damaged("import re\nre.match(r'(a+)+$', 'a' * 64 + 'b')"),
        LOSE_LAST,
        "test_one_hot not reached",
    )
    k.add("memory_hog", k.damaged("hog = bytearray(64 * 2**30)"), LOSE_LAST, "out of memory in cell one_hot")
    k.add(
        "fork_bomb",
        k.damaged(
            "import os, time\nchildren = 0\ntry:\n    for _ in range(2000):\n        if os.fork() == 0:\n            time.sleep(120)\n"
            "            os._exit(0)\n        children += 1\nexcept OSError as exc:\n    print('fork ' + f'refused after {children} processes')\n"
            "assert children < 2000, 'no process limit'"
        ),
        FULL,
        "review:",
    )
    k.add("crash", k.damaged("import os\nos._exit(1)"), LOSE_LAST, "kernel died in cell one_hot")
    k.add(
        "segfault",
        k.damaged("import faulthandler\nfaulthandler._sigsegv()"),
        LOSE_LAST,
        "kernel died in cell one_hot",
    )
    k.add(
        "disk_hog",
        k.damaged("for i in range(1000):\n    open(f'hog{i}', 'wb').write(b'x' * 2**20)"),
        LOSE_LAST,
        "file limit reached in cell one_hot",
    )
    k.add(
        "tmp_hog",
        k.damaged("for i in range(1000):\n    open(f'/tmp/hog{i}', 'wb').write(b'x' * 2**20)"),
        LOSE_LAST,
        "file limit reached in cell one_hot",
    )
    k.add(
        "runtime_flood",
        k.damaged(
            "import os, sys\nrun = os.path.dirname(sys.argv[sys.argv.index('-f') + 1])\n"
            "for i in range(1000):\n    open(f'{run}/flood{i}', 'wb').write(b'x' * 2**20)"
        ),
        LOSE_LAST,
        "into the grader's runtime folder",
    )
    k.add("output_flood", k.damaged("for _ in range(300000):\n    print('spam ' * 20)"), FULL, "output over the limit")
    k.add(
        "display_flood",
        k.damaged(
            "from IPython.display import display\nfor _ in range(200):\n"
            "    display({'text/plain': 'x' * 2**20}, raw=True)"
        ),
        FULL,
        "output over the limit",
    )
    # 96 MiB: three times the runtime folder's cap (kernel.log is cut back; no reason to stop the kernel)
    k.add("stderr_flood", k.damaged("import os\nfor _ in range(96):\n    os.write(2, b'x' * 2**20)"), FULL, "graded")
    k.add("sys_exit", k.damaged("import sys\nsys.exit(3)"), LOSE_LAST)
    k.outside = root / "outside.txt"
    k.own_copy = k.submissions / "write_outside" / LESSON / NB
    k.add(
        "write_outside",
        k.damaged(
            f"for _p in [{str(k.outside)!r}, {str(k.own_copy)!r}, {str(course.ROOT / 'README.md')!r}]:\n"
            "    try:\n        open(_p, 'a').write('tampered')\n        print('wr' + 'ote', _p)\n"
            "    except OSError as exc:\n        print('can' + 'not write', _p, type(exc).__name__)"
        ),
        FULL,
    )
    k.add(
        "leave_links",
        k.damaged(
            "import os, sys\nrun = os.path.dirname(sys.argv[sys.argv.index('-f') + 1])\n"
            "for name in ('x.html', '00_getting_started.ipynb', 'kernel.log.1'):\n"
            "    for where in ('.', run):\n        try:\n            os.symlink('/etc/passwd', os.path.join(where, name))\n"
            "        except OSError:\n            pass"
        ),
        FULL,
    )
    k.server = socket.socket()
    k.server.bind(("127.0.0.1", 0))
    k.server.listen()
    k.server.settimeout(0.2)
    port = k.server.getsockname()[1]
    k.add(
        "network",
        k.damaged(
            f"import socket\nfor _addr in [('127.0.0.1', {port}), ('1.1.1.1', 80)]:\n    try:\n"
            "        socket.create_connection(_addr, timeout=3)\n        print('re' + 'ached', _addr)\n"
            "    except OSError as exc:\n        print('no ' + 'network', _addr, type(exc).__name__)"
        ),
        FULL,
    )
    steal = (
        f"import json, pathlib\nfor _p in {[str(course.SOLUTIONS / LESSON / NB), str(k.submissions / 'correct' / LESSON / NB)]!r}:\n"
        "    try:\n        _nb = json.loads(pathlib.Path(_p).read_text())\n"
        "        exec('\\n'.join(''.join(c['source']) for c in _nb['cells'] if 'def ' in ''.join(c['source'])"
        " and c['cell_type'] == 'code'))\n        print('stole' + 'n from', _p)\n        break\n"
        "    except OSError as exc:\n        print('can' + 'not read', _p, type(exc).__name__)"
    )
    k.add("read_solutions", with_cell_after_setup(lean(b), steal), 0)
    k.marker = root / "host_marker.txt"
    payload = f"open({str(k.marker)!r}, 'w').write('ran on the host')\n".encode()
    k.add(
        "shadow_launcher",
        lean(b),
        0,
        extra={
            "grader/__init__.py": payload,
            "grader/launcher.py": payload,
            "grader/sandbox.py": payload,
            "ipykernel_launcher.py": payload,
            "sitecustomize.py": payload,
            "nbgrader/__init__.py": payload,
        },
    )
    k.add(
        "script_in_feedback",
        with_cell_after_setup(
            lean(s),
            "from IPython.display import HTML, Javascript, display\n"
            "display(HTML('<script>alert(\"pwned-by-html\")</script>'))\n"
            "display(Javascript('alert(\"pwned-by-js\")'))",
        ),
        FULL,
    )
    # Cheating: the blank lesson and one trick earn what the blank earns, and are flagged.
    for trick in CLASS_TRICKS:
        k.add(f"cheat {trick}", with_cell_after_setup(lean(b), TRICKS[trick]), 0, "review:")
    k.before = {p: p.read_bytes() for p in k.submissions.rglob("*") if p.is_file()}
    (k.submissions / "linked").symlink_to(course.SOLUTIONS)  # a student folder that is a link: refused
    k.expected["linked"] = (0, "refused: a symbolic link")
    (k.submissions / ".hidden" / LESSON).mkdir(parents=True)
    (k.submissions / ".hidden" / LESSON / NB).write_text(json.dumps(s))
    k.expected[".hidden"] = (0, "refused: a hidden folder name")
    return k


def _available_memory() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return 0


@pytest.fixture(scope="module")
def graded(klass):
    out = klass.root / "out"
    os.environ["SECRET_GRADER_TOKEN"] = "hunter2"
    low = {"disk": shutil.disk_usage("/tmp").free, "memory": _available_memory()}
    klass.start = dict(low)
    done = threading.Event()

    def sample():
        while not done.wait(0.2):
            low["disk"] = min(low["disk"], shutil.disk_usage("/tmp").free)
            low["memory"] = min(low["memory"], _available_memory())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        results = autograde.autograde(
            LESSON, klass.submissions, out, jobs=2, timeout=TIMEOUT, wall_clock=240, limits=LIMITS, progress=print
        )
    finally:
        done.set()
        del os.environ["SECRET_GRADER_TOKEN"]
    klass.low = low
    with open(out / "grades.csv", encoding="utf-8") as f:
        rows = {r["name"].lstrip("'"): r for r in csv.DictReader(f)}
    return out, rows, results


@needs_isolation
def test_the_hogs_stay_within_their_caps(klass, graded):
    """Disk and memory never drop by more than two submissions' caps (the hogs try for 1 GiB and 64 GiB)."""
    disk_drop = klass.start["disk"] - klass.low["disk"]
    memory_drop = klass.start["memory"] - klass.low["memory"]
    assert disk_drop < 2 * (LIMITS.runtime_bytes + LIMITS.notebook_output * 4) + 300 * 2**20, disk_drop / 2**20
    assert memory_drop < 2 * (LIMITS.memory + LIMITS.files), memory_drop / 2**30


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
    for student, row in rows.items():
        assert row["max_score"] == str(FULL) and row["assignment"] == LESSON
        assert sum(float(row[g]) for g in POINTS) == float(row["score"])
        if float(row["score"]) == LOSE_LAST:
            # Both tests are worth 3: the points must be the first exercise's, never the damaged last one's.
            assert (float(row["test_preprocess_images"]), float(row["test_one_hot"])) == (LOSE_LAST, 0), student
    honest = ("correct", "blank", "partial", "ünï cödé", "duplicate_cell", "bob-2")
    assert all("review" not in rows[s]["status"] for s in honest), [rows[s]["status"] for s in honest]


@needs_isolation
def test_ids_are_unique_and_names_kept(graded):
    _, rows, _ = graded
    ids = [r["student_id"] for r in rows.values()]
    assert len(set(ids)) == len(ids)
    assert rows["bob-2"]["student_id"] == "bob-2" and rows["bob!"]["student_id"] == safe_id("bob!")
    assert rows["ünï cödé"]["name"] == "ünï cödé"
    assert rows["=cmd|' calc'!A0"]["name"].startswith("'=")


@needs_isolation
def test_originals_are_byte_identical_and_listed_with_their_sha256(klass, graded):
    out, _, _ = graded
    after = {
        p: p.read_bytes()
        for p in klass.submissions.rglob("*")
        if p.is_file() and ".hidden" not in p.parts and "linked" not in p.parts
    }
    assert after == klass.before
    with open(out / "submissions.csv", encoding="utf-8") as f:
        manifest = list(csv.DictReader(f))
    assert all(row["unchanged_after_grading"] == "yes" for row in manifest)
    digests = {hashlib.sha256(d).hexdigest() for d in klass.before.values()}
    assert {r["sha256"] for r in manifest} >= digests


@needs_isolation
def test_the_host_is_untouched(klass, graded):
    out, rows, _ = graded
    assert not klass.outside.exists(), "student code wrote outside its sandbox"
    assert not klass.marker.exists(), "a file of the submission ran on the host"
    assert "tampered" not in (course.ROOT / "README.md").read_text()
    with pytest.raises(socket.timeout):
        klass.server.accept()  # nobody connected to the host's loopback
    feedback = {
        s: "\n".join(p.read_text(errors="replace") for p in (out / "feedback" / rows[s]["student_id"]).glob("*.html"))
        for s in ("network", "read_solutions", "fork_bomb", "write_outside", "leave_links")
    }
    assert "no network" in feedback["network"] and "reached (" not in feedback["network"]
    assert "cannot read" in feedback["read_solutions"] and "stolen from" not in feedback["read_solutions"]
    assert "fork refused after 0 processes" in feedback["fork_bomb"]
    for target in (klass.outside, klass.own_copy):  # the README is checked above (inside, it may be a tmpfs path)
        assert f"cannot write {target}" in feedback["write_outside"], target
    assert "root:x:0:0" not in "".join(feedback.values())
    for path in out.rglob("*"):
        assert not path.is_symlink(), path
        assert "hunter2" not in path.read_text(errors="replace") if path.is_file() else True


@needs_isolation
def test_feedback_keeps_hidden_tests_hidden_and_runs_no_script(graded):
    out, rows, _ = graded
    source = json.loads((course.SOLUTIONS / LESSON / NB).read_text())
    hidden = []
    for c in source["cells"]:
        text = "".join(c["source"])
        if "### BEGIN HIDDEN TESTS" in text:
            block = text.split("### BEGIN HIDDEN TESTS")[1].split("### END HIDDEN TESTS")[0]
            hidden += [line.strip() for line in block.splitlines() if len(line.strip()) > 25]
    assert len(hidden) > 20
    for student in ("correct", "blank", "partial"):
        html = (out / "feedback" / rows[student]["student_id"] / NB.replace(".ipynb", ".html")).read_text()
        import html as html_lib

        text = html_lib.unescape(html)
        leaked = [line for line in hidden if line in text]
        assert not leaked, (student, leaked[:3])
        assert "hidden tests of this cell ran in the grader" in text
    blank = (out / "feedback" / rows["blank"]["student_id"] / NB.replace(".ipynb", ".html")).read_text()
    assert "NotImplementedError" in blank
    scripted = (out / "feedback" / rows["script_in_feedback"]["student_id"] / NB.replace(".ipynb", ".html")).read_text()
    import re

    scripts = re.findall(r"<script[^>]*>(.*?)</script>", scripted, re.S)
    assert scripts and not [s for s in scripts if "pwned" in s], "a script from the student's output would run"
    assert "<script>alert(" not in scripted
    cheat = (out / "feedback" / rows["cheat checks patched"]["student_id"] / NB.replace(".ipynb", ".html")).read_text()
    assert "Notes from the grader" in cheat and "review:" in cheat


@needs_isolation
def test_output_limits_hold_and_feedback_is_written(graded):
    out, rows, _ = graded
    for student, row in rows.items():
        if row["status"].startswith("graded"):
            assert list((out / "feedback" / row["student_id"]).glob("*.html")), f"no feedback for {student}"
    for student in ("output_flood", "display_flood", "stderr_flood"):
        html = out / "feedback" / rows[student]["student_id"] / NB.replace(".ipynb", ".html")
        assert html.stat().st_size < 4_000_000, student
    assert all(p.stat().st_size < 1_000_000 for p in (out / "logs").glob("*.log"))


@needs_isolation
def test_one_job_grades_the_same_as_two(klass, graded, tmp_path):
    _, rows2, _ = graded
    subset = ["correct", "crash", "cheat checks patched"]  # full marks, a dead kernel, a cheat flagged with no points
    sub = tmp_path / "subset"
    for student in subset:
        shutil.copytree(klass.submissions / student, sub / student)
    autograde.autograde(
        LESSON, sub, tmp_path / "out", jobs=1, timeout=TIMEOUT, wall_clock=240, limits=LIMITS, progress=print
    )
    with open(tmp_path / "out" / "grades.csv", encoding="utf-8") as f:
        rows1 = {r["name"]: r for r in csv.DictReader(f)}
    assert set(rows1) == set(subset)
    for student in subset:
        assert rows1[student] == rows2[student], student


def test_a_submission_past_its_wall_clock_is_stopped_with_its_kernel(tmp_path, monkeypatch):
    """The whole submission's clock, not a cell's: nbgrader and the kernel it started are stopped."""
    from grader import job

    monkeypatch.setattr(job, "FEEDBACK_RESERVE", -1000)  # cells keep starting: only the process kill can end it
    k = Class(tmp_path, GETTING_STARTED)
    k.add("slowpoke", k.damaged("import time\nwhile True:\n    time.sleep(1)"), 0)
    start = time.monotonic()
    [result] = autograde.autograde(
        LESSON, k.submissions, tmp_path / "out", jobs=1, timeout=600, wall_clock=20, limits=LIMITS, progress=print
    )
    assert "stopped at the 20 s limit per submission" in result.status
    assert time.monotonic() - start < 120
    psutil = pytest.importorskip("psutil")
    for _ in range(50):
        left = [p for p in psutil.process_iter(["cmdline"]) if "/j/slowpoke-" in " ".join(p.info["cmdline"] or [])]
        if not left:
            break
        time.sleep(0.1)
    assert not left, "the submission's kernel outlived it"


@needs_isolation
def test_lesson_06_is_graded_from_the_saved_model_without_training(tmp_path):
    keras = pytest.importorskip("keras")
    lesson = "06_mnist_project"
    keras.utils.set_random_seed(0)
    untrained = keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            keras.layers.Conv2D(4, 3),
            keras.layers.Flatten(),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    subs = tmp_path / "subs"
    for student in ("with_model", "no_model"):
        folder = subs / student / lesson
        folder.mkdir(parents=True)
        for nb in (course.SOLUTIONS / lesson).glob("*.ipynb"):
            shutil.copy(nb, folder / nb.name)
    untrained.save(subs / "with_model" / lesson / "mnist_model.keras")
    autograde.autograde(lesson, subs, tmp_path / "out", jobs=2, timeout=120, wall_clock=400, progress=print)
    with open(tmp_path / "out" / "grades.csv", encoding="utf-8") as f:
        rows = {r["student_id"]: r for r in csv.DictReader(f)}
    exercises = {
        "test_prepare_mnist": 2,
        "test_confusion_matrix": 2,
        "test_per_class_accuracy": 1,
        "test_most_confused_pairs": 2,
    }
    tiers = ("project_tier_1", "project_tier_2", "project_tier_3")
    for student, rules in (("with_model", 1), ("no_model", 0)):
        row = rows[student]
        assert row["max_score"] == "14" and row["status"].startswith("graded"), row
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
    (subs / NB).write_text(json.dumps(lean(load(course.SOLUTIONS, GETTING_STARTED))))
    said = []
    autograde.autograde(LESSON, tmp_path / "subs", tmp_path / "out", jobs=1, timeout=TIMEOUT, progress=said.append)
    assert "WARNING: student code will NOT be isolated" in said[0]
    with open(tmp_path / "out" / "grades.csv", encoding="utf-8") as f:
        row = next(csv.DictReader(f))
    assert (row["score"], row["status"]) == (str(FULL), "graded")


def test_not_enough_disk_stops_before_grading(tmp_path, monkeypatch):
    import collections

    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10**9, 10**9 - 10**6, 10**6))
    subs = tmp_path / "subs" / "ada" / LESSON
    subs.mkdir(parents=True)
    (subs / NB).write_text("{}")
    with pytest.raises(autograde.GradingError, match="not enough free disk"):
        autograde.autograde(LESSON, tmp_path / "subs", tmp_path / "out", jobs=2, progress=print)
    assert not (tmp_path / "out" / "grades.csv").exists()
