"""Reading a class: ids, folders, zips, notebooks and the CSV, without running anything."""

from __future__ import annotations

import csv
import json
import os
import sys
import zipfile
from pathlib import Path

import pytest

from grader import course, sandbox
from grader.job import Result, Settings
from grader.results import Publisher, cell, uncell
from grader.submissions import GradingError, collect, grade_ids, match_notebooks, read_notebook, safe_id

LESSON = "02_conv_pool_arithmetic"
NB = f"{LESSON}.ipynb"
SOLUTION = course.SOLUTIONS / LESSON / NB


@pytest.mark.parametrize("raw, clean", [("ada", "ada"), ("bob-2", "bob-2"), ("x.y_z", "x.y_z")])
def test_safe_names_stay_as_they_are(raw, clean):
    assert safe_id(raw) == clean


@pytest.mark.parametrize(
    "raw", ["../../etc/passwd", ".hidden", "名前", "a b\tc", "bob!", "-rf", "ünï cödé", "", "=cmd"]
)
def test_other_names_become_safe_and_traceable(raw):
    sid = safe_id(raw)
    assert sid and not sid.startswith((".", "-")) and all(c.isalnum() or c in "._-" for c in sid)
    assert sid != raw and sid == safe_id(raw)  # deterministic


def test_names_that_clean_alike_never_collide(tmp_path):
    for name in ("bob!", "bob_", "bob-2", "bob", "bob?"):
        folder = tmp_path / name / LESSON
        folder.mkdir(parents=True)
        (folder / NB).write_bytes(SOLUTION.read_bytes())
    subs, _ = collect(tmp_path, LESSON, tmp_path / "staging")
    ids = [s.student_id for s in subs]
    assert len(set(ids)) == 5 and {s.name for s in subs} == {"bob!", "bob_", "bob-2", "bob", "bob?"}
    assert dict((s.name, s.student_id) for s in subs)["bob-2"] == "bob-2"


def test_every_entry_gets_a_row_or_a_reason(tmp_path):
    root = tmp_path / "class"
    (root / "ada" / LESSON).mkdir(parents=True)
    (root / "ada" / LESSON / NB).write_bytes(SOLUTION.read_bytes())
    (root / ".sneaky" / LESSON).mkdir(parents=True)
    (root / ".sneaky" / LESSON / NB).write_bytes(SOLUTION.read_bytes())
    (root / "linked").symlink_to(course.SOLUTIONS)  # a student folder that is a link to the solutions
    (root / "cy").mkdir()
    (root / "cy" / LESSON).symlink_to(course.SOLUTIONS / LESSON)
    (root / "dan" / LESSON).mkdir(parents=True)
    (root / "dan" / LESSON / NB).symlink_to(SOLUTION)
    (root / "notes.txt").write_text("hello")
    (root / ".DS_Store").write_text("x")
    subs, skipped = collect(root, LESSON, tmp_path / "staging")
    by_name = {s.name: s for s in subs}
    assert set(by_name) == {"ada", ".sneaky", "linked", "cy", "dan"}
    assert by_name["ada"].problem is None
    assert "hidden folder" in by_name[".sneaky"].problem
    assert "symbolic link" in by_name["linked"].problem and not by_name["linked"].files
    assert "symbolic link" in by_name["cy"].problem
    assert by_name["dan"].problem == "empty submission: no files" and "symbolic link" in by_name["dan"].notes[0]
    assert any("notes.txt" in s for s in skipped)


def test_loose_notebooks_and_zips(tmp_path):
    loose = tmp_path / "loose"
    loose.mkdir()
    (loose / "ada lovelace.ipynb").write_bytes(SOLUTION.read_bytes())
    (loose / "bob.ipynb").write_bytes(b"not json")
    subs, _ = collect(loose, LESSON, tmp_path / "staging")
    assert [(s.name, s.student_id) for s in subs] == [("ada lovelace", safe_id("ada lovelace")), ("bob", "bob")]
    archive = tmp_path / "class.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(loose / "bob.ipynb", "export/bob.ipynb")
        zf.write(loose / "ada lovelace.ipynb", f"export/cy/{LESSON}/{NB}")
    subs, _ = collect(archive, LESSON, tmp_path / "staging2")
    assert sorted((s.student_id, list(s.files)) for s in subs) == [("bob", ["?"]), ("cy", [NB])]
    bob = next(s for s in subs if s.student_id == "bob")
    matched, notes = match_notebooks(bob, {NB: {"test_conv2d"}})
    assert matched == {} and "invalid JSON" in notes[0]


@pytest.mark.parametrize("entry", ["../escape.ipynb", "/abs/path.ipynb", "a/../../b.ipynb"])
def test_zip_traversal_is_refused(tmp_path, entry):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(entry, "{}")
    with pytest.raises(GradingError, match="refusing entry"):
        collect(archive, LESSON, tmp_path / "staging")
    assert not (tmp_path / "escape.ipynb").exists()


def test_zip_links_are_refused(tmp_path):
    archive = tmp_path / "link.zip"
    info = zipfile.ZipInfo("alice/link")
    info.external_attr = 0o120777 << 16
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(GradingError, match="symbolic link"):
        collect(archive, LESSON, tmp_path / "staging")


def test_zip_with_a_name_clash_or_bad_data_names_the_entry(tmp_path):
    clash = tmp_path / "clash.zip"
    with zipfile.ZipFile(clash, "w") as zf:
        zf.writestr("ada/02", "a file")
        zf.writestr("ada/02/x.ipynb", "{}")
    with pytest.raises(GradingError, match="'ada/02"):
        collect(clash, LESSON, tmp_path / "s1")
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(bad, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr("bob/bob.ipynb", "A" * 1000)
    data = bytearray(bad.read_bytes())
    at = data.index(b"A" * 100)
    data[at : at + 4] = b"BBBB"  # corrupt the stored bytes: the CRC no longer matches
    bad.write_bytes(bytes(data))
    with pytest.raises(GradingError, match="bob/bob.ipynb"):
        collect(bad, LESSON, tmp_path / "s2")


def test_notebooks_over_the_limits_are_refused(tmp_path):
    big = tmp_path / "big.ipynb"
    nb = json.loads(SOLUTION.read_text())
    nb["cells"] = [
        {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [], "source": "1", "id": f"c{i}"}
        for i in range(100_000)
    ]
    big.write_text(json.dumps(nb))
    _, problem = read_notebook(big)
    assert problem.startswith("notebook too large (100000 cells")


def test_each_submitted_notebook_is_graded_as_one_notebook_at_most(tmp_path):
    """Lesson 06 has two notebooks: a renamed part 2 fills part 2 only, never part 1 as well."""
    lesson = "06_mnist_project"
    folder = tmp_path / "ada" / lesson
    folder.mkdir(parents=True)
    (folder / "my project.ipynb").write_bytes((course.SOLUTIONS / lesson / "06b_project.ipynb").read_bytes())
    sub = collect(tmp_path, lesson, tmp_path / "staging")[0][0]
    ids = {
        name: grade_ids(json.loads((course.SOLUTIONS / lesson / name).read_text()))
        for name in ("06a_notes_pipeline.ipynb", "06b_project.ipynb")
    }
    chosen, notes = match_notebooks(sub, ids)
    assert list(chosen) == ["06b_project.ipynb"] and chosen["06b_project.ipynb"][0] == folder / "my project.ipynb"
    assert notes == ["my project.ipynb graded as 06b_project.ipynb"]


@pytest.mark.parametrize("text", ['=HYPERLINK("x")', "+1", "-2+3", "@SUM(A1)", "\tx", "\rx", "'=x"])
def test_csv_fields_never_start_a_formula(text):
    assert cell(text).startswith("'") and cell(text)[1:] == text
    assert uncell(cell(text)) == text  # read back exactly (grader.report, grader.export)
    assert cell("ada") == "ada" and cell(3.0) == "3" and uncell("ada") == "ada"


def test_grades_csv_is_safe_to_open_and_keeps_names(tmp_path):
    settings = Settings(LESSON, {NB: {"test_a": 2.0}}, tmp_path, 10, 60, None, True, tmp_path)
    publisher = Publisher(tmp_path, settings)
    r = Result(
        "x-1a2b3c", "=cmd|' /C calc'!A0 ünï", {"test_a": 2.0}, graded=True, problems=["=evil.ipynb: not a notebook"]
    )
    publisher.add(r)
    publisher.finish([r])
    with open(tmp_path / "grades.csv", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert rows[0][:5] == ["student_id", "name", "lms", "lms_user_id", "assignment"]
    assert all(not field.startswith(("=", "+", "-", "@")) for field in rows[1])
    assert rows[1][1] == "'=cmd|' /C calc'!A0 ünï"


def test_cli_help_and_errors(tmp_path):
    import subprocess
    import sys

    run = lambda *a: subprocess.run(
        [sys.executable, "-m", "grader", *a], cwd=course.ROOT, capture_output=True, text=True
    )  # noqa: E731
    help_text = run("autograde", "--help").stdout
    for option in ("--submissions", "--out", "--jobs", "--timeout"):
        assert option in help_text
    missing = run("autograde", LESSON, "--submissions", str(tmp_path / "nowhere"))
    assert missing.returncode == 2 and "submissions not found" in missing.stderr
    wrong = run("autograde", "99_nothing", "--submissions", str(tmp_path))
    assert wrong.returncode == 2


def test_per_lesson_settings_come_from_the_course_config():
    config = course.load_config()
    assert config.CourseGrader.timeouts[LESSON] < config.Execute.timeout
    assert config.CourseGrader.lesson_files["06_mnist_project"] == ["mnist_model.keras"]


def test_the_launcher_and_the_nbgrader_runner_use_the_standard_library_only():
    import ast

    for name in ("launcher.py", "nbgrader_run.py"):
        tree = ast.parse((Path(course.ROOT) / "grader" / name).read_text())
        imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level == 0}
        stdlib = {"gc", "importlib", "json", "os", "resource", "shutil", "sys", "traceback"}
        allowed = stdlib | {"nbgrader", "jupyter_core", "traitlets", "alembic"}
        assert imported <= allowed, (
            name,
            imported,
        )


def test_the_kernels_share_the_cores_out():
    """With --jobs N each kernel gets its share of the cores for its compute threads, at least one."""
    from grader import launcher

    cores = sandbox.kernel_threads(1)
    assert cores >= 1 and sandbox.kernel_threads(cores) == 1 and sandbox.kernel_threads(10 * cores) == 1
    if cores >= 2:
        assert sandbox.kernel_threads(2) == cores // 2
    settings = json.loads(sandbox.settings(sandbox.Limits(), Path("/tmp"), True, threads=3)[sandbox.SETTINGS_ENV])
    env = launcher._kernel_env("/tmp/home", "/tmp", settings)
    assert {var: env[var] for var in launcher.THREAD_VARS} == dict.fromkeys(launcher.THREAD_VARS, "3")
    settings["threads"] = 0  # not asked: the libraries decide, as in a learner's kernel
    assert not set(launcher.THREAD_VARS) & set(launcher._kernel_env("/tmp/home", "/tmp", settings))


def test_a_new_gradebook_gets_the_revision_alembic_names(monkeypatch):
    """The runner reads the schema's newest revision in its own process; nbgrader asks `alembic heads`."""
    import nbgrader.api

    from grader import nbgrader_run

    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    assert nbgrader_run.alembic_head() == nbgrader.api.get_alembic_version()


def test_the_course_package_is_byte_compiled_for_the_sandbox(tmp_path):
    """Inside the sandbox dlcourse/ is read-only: a module without a current .pyc would be compiled
    there, under a student's cell, which the referee refuses (a fresh clone has none)."""
    import importlib.util

    module = sandbox.ROOT / "dlcourse" / "diagrams.py"
    cached = Path(importlib.util.cache_from_source(str(module)))
    cached.unlink(missing_ok=True)
    sandbox.kernelspec(tmp_path)
    assert cached.exists(), "kernelspec() left dlcourse/diagrams.py without its .pyc"
