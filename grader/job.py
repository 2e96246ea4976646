"""Grading one submission: stage it, run nbgrader in the sandbox, read what came back.

``grade_one`` is the whole pipeline for one student, in named steps:

1. ``match`` the submitted notebooks to the lesson's (renamed ones by their cells) and refuse
   what cannot be a notebook or is over the size limits;
2. ``scan`` the student's code for reaching into the grading machinery (review notes);
3. ``stage`` a scratch nbgrader course: the master notebooks, a copy of the gradebook, the
   cleaned notebooks and only the files the lesson reads (lesson 06: its model), as regular
   files; the kernel never sees this folder, only those files, read-only;
4. ``run`` ``nbgrader autograde`` with the referee (``grader.preprocessors``), then
   ``generate_feedback``, under one deadline for the whole submission, their output going to
   a capped log file;
5. ``interpret`` the gradebook and the referee's report into a ``Result``.

Nothing here writes outside the job's scratch folder; the caller publishes the result.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import nbgrader_server, sandbox, scan
from .submissions import Submission, match_notebooks, without_duplicates

LOG_LIMIT = 200_000  # characters of nbgrader's log kept per submission
FEEDBACK_RESERVE = 60  # seconds of the submission's wall clock kept for writing its feedback


@dataclass
class Settings:
    """What every job of one grading run shares."""

    assignment: str
    max_scores: dict[str, dict[str, float]]  # notebook -> grade_id -> points
    master: Path  # generated course: gradebook.db, source/, share/ (kernelspec), plans.json
    timeout: int  # seconds per cell
    wall_clock: int  # seconds per submission, everything included
    limits: sandbox.Limits
    isolate: bool
    work: Path  # where jobs make their scratch folders
    lesson_files: list[str] = field(default_factory=list)  # files a lesson's notebooks read (e.g. its model)
    mounts: dict[str, Path] = field(default_factory=dict)  # sandbox path -> host path, read-only
    withheld: dict[str, Path] = field(default_factory=dict)  # data file name -> the real file, for the referee only
    threads: int = 0  # compute threads per kernel (sandbox.kernel_threads); 0: the libraries' defaults

    @property
    def grade_ids(self) -> list[str]:
        return [gid for nb in self.max_scores.values() for gid in nb]

    @property
    def max_score(self) -> float:
        return sum(sum(nb.values()) for nb in self.max_scores.values())


@dataclass
class Result:
    """One student's outcome: points per graded cell, and what went wrong or needs a look."""

    student_id: str
    name: str
    scores: dict[str, float]
    graded: bool = False  # nbgrader graded at least one notebook
    problems: list[str] = field(default_factory=list)  # limits hit, files refused, kernel deaths
    review: list[str] = field(default_factory=list)  # reaching into the grading machinery
    notes: list[str] = field(default_factory=list)  # renamed notebooks, duplicates, ignored files
    failures: dict[str, str] = field(default_factory=dict)  # grade_id -> why its test failed ("Error: message")
    seconds: float = 0.0
    timings: dict[str, dict[str, float]] = field(default_factory=dict)  # notebook -> phase -> seconds
    feedback: dict[str, bytes] = field(default_factory=dict)  # file name -> HTML
    log: str = ""

    @property
    def score(self) -> float:
        return sum(self.scores.values())

    @property
    def status(self) -> str:
        """``graded``, ``graded; <what happened>`` or ``<why it was not graded>``; review notes last."""
        parts = (["graded"] if self.graded else []) + self.problems + self.notes
        if self.review:
            parts.append("review: " + review_summary(self.review))
        return "; ".join(dict.fromkeys(parts)) or "not graded"


def review_summary(notes: list[str], cells_shown: int = 3) -> str:
    """Review notes grouped by what was seen: ``X (cells #2, conv2d and 4 more)``."""
    grouped: dict[str, list[str]] = {}
    for note in notes:
        what, _, where = note.rpartition(" (cell ")
        if not what:
            what, where = note, ""
        cells = grouped.setdefault(what, [])
        where = where.rstrip(")")
        if where and where not in cells:
            cells.append(where)
    out = []
    for what, cells in grouped.items():
        if not cells:
            out.append(what)
            continue
        shown = ", ".join(cells[:cells_shown]) + (
            f" and {len(cells) - cells_shown} more" if len(cells) > cells_shown else ""
        )
        out.append(f"{what} (cell{'s' if len(cells) > 1 else ''} {shown})")
    return ", ".join(out)


def grade_one(sub: Submission, settings: Settings) -> Result:
    """Grade one submission in its own scratch course and sandbox; never raises for the student's doing."""
    start = time.monotonic()
    result = Result(sub.student_id, sub.name, dict.fromkeys(settings.grade_ids, 0.0), notes=list(sub.notes))
    if sub.problem:
        result.problems.append(sub.problem)
        return result
    expected = {name: set(ids) for name, ids in settings.max_scores.items()}
    chosen, notes = match_notebooks(sub, expected)
    if not chosen:
        result.problems += notes or [f"no notebook of {settings.assignment} in the submission"]
        return result
    result.notes += [n for n in notes if " graded as " in n]
    result.problems += [n for n in notes if " graded as " not in n]
    result.problems += [f"{name} missing (0 points)" for name in expected if name not in chosen]
    locked = _locked_sources(settings)
    for _, nb in chosen.values():
        result.review += scan.scan_notebook(nb, locked)
    job = Path(tempfile.mkdtemp(prefix=f"{sub.student_id[:12]}-", dir=settings.work))
    try:
        course_dir, runtime = _stage(sub, settings, chosen, job, result)
        _run(sub, settings, course_dir, runtime, job, result, deadline=start + settings.wall_clock)
    finally:
        shutil.rmtree(job, ignore_errors=True)
    result.seconds = time.monotonic() - start
    return result


def _locked_sources(settings: Settings) -> set[str]:
    sources = set()
    for nb_path in (settings.master / "source" / settings.assignment).glob("*.ipynb"):
        for cell in json.loads(nb_path.read_text(encoding="utf-8"))["cells"]:
            meta = cell.get("metadata", {}).get("nbgrader", {})
            if meta.get("locked") or meta.get("grade"):
                sources.add("".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"])
    return sources


def _stage(sub: Submission, settings: Settings, chosen: dict, job: Path, result: Result) -> tuple[Path, Path]:
    """A scratch nbgrader course holding this submission; and the runtime folder the sandbox shares."""
    course_dir, runtime = job / "course", job / "run"
    runtime.mkdir(mode=0o700)
    shutil.copytree(settings.master / "source", course_dir / "source")
    shutil.copy(settings.master / "gradebook.db", course_dir / "gradebook.db")
    dest = course_dir / "submitted" / sub.student_id / settings.assignment
    dest.mkdir(parents=True)
    for target, (_, nb) in chosen.items():  # a cleaned copy; the original stays as it was
        nb, dup_notes = without_duplicates(nb)
        result.notes += dup_notes
        (dest / target).write_text(json.dumps(nb), encoding="utf-8")
    files = {}
    lesson_files = job / "files"
    lesson_files.mkdir()
    for name in settings.lesson_files:  # only the files the lesson reads, as regular files of our own
        source = sub.files.get(name)
        if source is not None and source.is_file() and not source.is_symlink():
            shutil.copyfile(source, lesson_files / name)
            files[name] = lesson_files / name
    result_env = sandbox.settings(
        settings.limits, runtime, settings.isolate, files, settings.mounts, settings.withheld, settings.threads
    )
    (job / "sandbox.json").write_text(json.dumps(result_env))
    (course_dir / "nbgrader_config.py").write_text(_config(settings, course_dir, runtime, job))
    return course_dir, runtime


def _config(settings: Settings, course_dir: Path, runtime: Path, job: Path, deadline: float | None = None) -> str:
    limits = settings.limits
    return (
        "\n".join(
            [
                "import sys",
                f"sys.path.insert(0, {str(sandbox.ROOT)!r})",
                "from grader.preprocessors import RefereedExecute, FeedbackSafety",
                "from nbgrader.preprocessors import IgnorePattern, LimitOutput, SaveAutoGrades, AssignLatePenalties, "
                "CheckCellMetadata, GetGrades",
                "from nbconvert.preprocessors import ClearMetadataPreprocessor, CSSHTMLHeaderPreprocessor",
                "c = get_config()",
                f"c.CourseDirectory.root = {str(course_dir)!r}",
                f"c.CourseDirectory.db_url = {'sqlite:///' + str(course_dir / 'gradebook.db')!r}",
                "c.CourseDirectory.ignore = ['.ipynb_checkpoints', '*.pyc', '__pycache__', 'feedback']",
                "c.Autograde.autograde_preprocessors = [RefereedExecute, IgnorePattern, ClearMetadataPreprocessor, LimitOutput,"
                " SaveAutoGrades, AssignLatePenalties, CheckCellMetadata]",
                "c.GenerateFeedback.preprocessors = [FeedbackSafety, GetGrades, CSSHTMLHeaderPreprocessor]",
                f"c.RefereedExecute.timeout = {settings.timeout}",
                "c.RefereedExecute.interrupt_on_timeout = True",
                f"c.RefereedExecute.kernel_name = {sandbox.KERNEL_NAME!r}",
                "c.RefereedExecute.startup_timeout = 120",
                f"c.RefereedExecute.plan_file = {str(settings.master / 'plans.json')!r}",
                f"c.RefereedExecute.report_file = {str(job / 'report.jsonl')!r}",
                f"c.FeedbackSafety.report_file = {str(job / 'report.jsonl')!r}",
                f"c.FeedbackSafety.notes_file = {str(job / 'feedback_notes.json')!r}",
                f"c.RefereedExecute.runtime_dir = {str(runtime)!r}",
                f"c.RefereedExecute.cell_output_bytes = {limits.cell_output}",
                f"c.RefereedExecute.notebook_output_bytes = {limits.notebook_output}",
                f"c.RefereedExecute.runtime_bytes = {limits.runtime_bytes}",
                f"c.RefereedExecute.deadline = float(open({str(job / 'deadline')!r}).read())",
                "c.KernelManager.transport = 'ipc'",
                f"c.KernelManager.ip = {str(runtime / 'kernel')!r}",
                "c.LimitOutput.max_lines = 1000",
                "c.LimitOutput.max_traceback = 100",
                "c.Autograde.create_student = True",
            ]
        )
        + "\n"
    )


def _run(
    sub: Submission, settings: Settings, course_dir: Path, runtime: Path, job: Path, result: Result, deadline: float
) -> None:
    """nbgrader autograde, then generate_feedback (one process), within the submission's wall clock."""
    env = _nbgrader_env(settings, runtime, job)
    log_path = job / "nbgrader.log"
    # Cells start only until the deadline minus the feedback's share; the process is killed at the deadline.
    (job / "deadline").write_text(str(time.time() + max(10, deadline - time.monotonic() - FEEDBACK_RESERVE)))
    (job / "feedback_notes.json").write_text(
        json.dumps(result.notes + (["review: " + review_summary(result.review)] if result.review else [])),
        encoding="utf-8",
    )
    student = ["--student", sub.student_id, "--force"]
    rc = _nbgrader(
        ["autograde", settings.assignment, *student, "--then", "generate_feedback", settings.assignment, *student],
        course_dir,
        env,
        log_path,
        limit=deadline - time.monotonic(),
    )
    if rc is None:
        result.problems.append(f"stopped at the {settings.wall_clock} s limit per submission")
    report = _read_report(job / "report.jsonl")
    if rc is not None and {nb["notebook"] for nb in report} != set(expected_notebooks(settings, course_dir, sub)):
        # nbgrader ran without the referee (a broken configuration): its scores must not count.
        result.problems.append("grader error: the notebooks were not run by the referee (see the log); no points given")
        result.log = _tail(log_path)
        return
    autograded = course_dir / "autograded" / sub.student_id / settings.assignment
    if autograded.exists():
        scores, deleted, graded_any = _scores(settings, course_dir, sub.student_id)
        result.scores.update(scores)
        result.graded = graded_any
        result.problems += [f"deleted test cell {gid} (0 points)" for gid in deleted]
    for nb in report:
        result.timings[nb["notebook"]] = nb.get("seconds", {})
        result.problems += nb["problems"]
        for where, what in nb["findings"]:
            result.review.append(f"{what} (cell {where})")
        for gid, test in nb["tests"].items():
            if test.get("not_reached"):
                result.problems.append(f"{gid} {test['not_reached']}")
            if not test.get("passed"):
                ename, evalue = (test.get("error") or ["NotReached", test.get("not_reached") or "not run"])[:2]
                result.failures[gid] = f"{ename}: {evalue}" if evalue else str(ename)
    if result.graded:
        feedback = course_dir / "feedback" / sub.student_id / settings.assignment
        for html in sorted(feedback.glob("*.html")) if feedback.is_dir() else []:
            if html.is_file() and not html.is_symlink():
                result.feedback[html.name] = html.read_bytes()
    elif rc not in (0, None) and not result.problems:
        result.problems.append("nbgrader could not grade it (see the log)")
    kernel_log = runtime / "kernel.log"
    result.log = _tail(log_path) + ("\n--- kernel ---\n" + _tail(kernel_log) if kernel_log.is_file() else "")


def expected_notebooks(settings: Settings, course_dir: Path, sub: Submission) -> list[str]:
    """The lesson notebooks staged for this student (the ones the referee must report on)."""
    folder = course_dir / "submitted" / sub.student_id / settings.assignment
    return sorted(p.name for p in folder.glob("*.ipynb") if p.name in settings.max_scores)


def _nbgrader_env(settings: Settings, runtime: Path, job: Path) -> dict[str, str]:
    env = {
        "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "HOME": str(job),
        "JUPYTER_PATH": str(settings.master / "share"),
        "JUPYTER_RUNTIME_DIR": str(runtime),
        "JUPYTER_CONFIG_DIR": str(job / "config"),
        "JUPYTER_DATA_DIR": str(job / "data"),
        "JUPYTER_PLATFORM_DIRS": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    env.update(json.loads((job / "sandbox.json").read_text()))
    return env


def _nbgrader(args: list[str], cwd: Path, env: dict, log_path: Path, limit: float) -> int | None:
    """Run nbgrader (a fresh fork of this thread's server); its output goes to ``log_path``; None when killed at ``limit``."""
    start = time.monotonic()
    server = nbgrader_server.for_this_thread()
    try:
        return server.run(args, cwd, env, log_path, limit)
    except nbgrader_server.ServerGone as exc:
        nbgrader_server.close({threading.get_ident()})  # the thread's next job starts another
        with open(log_path, "ab") as log:
            log.write(f"[grader] the nbgrader server failed ({exc}); running nbgrader on its own\n".encode())
        return _nbgrader_once(args, cwd, env, log_path, limit - (time.monotonic() - start))


def _nbgrader_once(args: list[str], cwd: Path, env: dict, log_path: Path, limit: float) -> int | None:
    """Run nbgrader in a process of its own (by path, isolated); as ``_nbgrader``."""
    cmd = [sys.executable, "-I", str(sandbox.ROOT / "grader" / "nbgrader_run.py"), *args]
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            return proc.wait(timeout=max(limit, 1))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()
            return None


def _read_report(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _tail(path: Path) -> str:
    if not path.exists():
        return ""
    size = path.stat().st_size
    with open(path, "rb") as f:
        if size <= LOG_LIMIT:
            return f.read().decode("utf-8", "replace")
        head = f.read(LOG_LIMIT // 2).decode("utf-8", "replace")
        f.seek(size - LOG_LIMIT // 2)
        return head + f"\n... {size - LOG_LIMIT} bytes of log left out ...\n" + f.read().decode("utf-8", "replace")


def _scores(settings: Settings, course_dir: Path, student: str) -> tuple[dict[str, float], list[str], bool]:
    """Points per grade_id from the job's gradebook, the test cells the notebook lacked, whether any was graded."""
    from nbgrader.api import Gradebook, MissingEntry

    scores, deleted, graded_any = {}, [], False
    with Gradebook(f"sqlite:///{course_dir / 'gradebook.db'}") as gb:
        for nb_name in settings.max_scores:
            try:
                nb = gb.find_submission_notebook(Path(nb_name).stem, settings.assignment, student)
            except MissingEntry:
                continue
            for grade in nb.grades:
                if grade.auto_score is None and grade.manual_score is None:
                    deleted.append(grade.name)
                    continue
                graded_any = True
                scores[grade.name] = float(grade.score)
    return scores, deleted, graded_any
