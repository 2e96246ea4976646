"""Grade a whole class: ``python -m grader autograde ASSIGNMENT --submissions PATH``.

nbgrader is the engine: each submission is autograded by its own ``nbgrader
autograde`` process in its own scratch course (a copy of the gradebook, the clean
source notebooks, a copy of the submission), with the kernel in the sandbox of
``grader.sandbox``.  Around it this module

- reads submissions from a folder (nbgrader's ``<student>/<assignment>/*`` layout, or
  loose ``<student>.ipynb`` files) or a ``.zip`` of either, never writing to them, and
  records each file's SHA-256;
- rejects what cannot be a notebook (empty, not UTF-8, not JSON, not nbformat) with a
  status instead of failing the run, and matches renamed notebooks by their cells;
- grades submissions in parallel with a per-cell timeout and a per-submission limit;
- turns nbgrader's results into ``grades.csv`` (one row per student, one column per
  graded cell, a ``status``), HTML feedback per student, and a summary.
"""

from __future__ import annotations

import concurrent.futures
import csv
import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from . import course, sandbox

MAX_UNZIPPED = 2 * 2**30  # bytes a zip may expand to
MAX_OUTPUT_LINES = 1000  # per cell, in the graded notebook and the feedback


class GradingError(RuntimeError):
    """The grader itself cannot run (bad assignment, unreadable input): exit non-zero."""


@dataclass
class Submission:
    student_id: str
    files: dict[str, Path]  # name inside the assignment folder -> original file
    sha256: dict[str, str] = field(default_factory=dict)
    problem: str | None = None  # why it cannot be graded, found before grading


@dataclass
class Result:
    student_id: str
    scores: dict[str, float]  # grade_id -> points
    status: str
    seconds: float = 0.0

    @property
    def score(self) -> float:
        return sum(self.scores.values())


# -- submissions ---------------------------------------------------------------------------
def sanitize_id(raw: str) -> str:
    """A student id safe as a folder name: letters, digits, ``. _ -``; never empty or hidden."""
    clean = re.sub(r"[^A-Za-z0-9._-]+", "_", raw).strip("._-")[:64]
    return clean or "student"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def safe_extract(archive: Path, dest: Path) -> None:
    """Extract a zip, refusing absolute paths, ``..``, links and zip bombs (raises GradingError)."""
    try:
        zf = zipfile.ZipFile(archive)
    except zipfile.BadZipFile as exc:
        raise GradingError(f"{archive} is not a readable zip file ({exc})") from None
    with zf:
        total = 0
        for info in zf.infolist():
            name = info.filename
            parts = Path(name.replace("\\", "/")).parts
            if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name) or ".." in parts:
                raise GradingError(f"{archive}: refusing entry {name!r} (absolute path or '..'); nothing was extracted")
            if stat.S_ISLNK(info.external_attr >> 16):
                raise GradingError(f"{archive}: refusing entry {name!r} (a symbolic link); nothing was extracted")
            total += info.file_size
        if total > MAX_UNZIPPED:
            raise GradingError(f"{archive} expands to {total / 2**30:.1f} GiB, over the {MAX_UNZIPPED / 2**30:.0f} GiB limit")
        for info in zf.infolist():
            if "__MACOSX" in info.filename:
                continue
            target = dest / info.filename
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, open(target, "wb") as out:
                shutil.copyfileobj(src, out)


def _files(folder: Path) -> dict[str, Path]:
    """Regular files under ``folder`` by relative name; links are not followed."""
    found = {}
    for path in sorted(folder.rglob("*")):
        if path.is_symlink() or not path.is_file():
            continue
        rel = path.relative_to(folder)
        if any(part.startswith(".") or part == "__pycache__" for part in rel.parts):
            continue
        found[rel.as_posix()] = path
    return found


def collect(path: Path, assignment: str, staging: Path) -> list[Submission]:
    """Find the submissions under ``path`` (a folder or a .zip; zips are extracted into ``staging``)."""
    path = Path(path)
    if not path.exists():
        raise GradingError(f"submissions not found: {path}")
    if path.is_file():
        if path.suffix.lower() != ".zip":
            raise GradingError(f"{path} is a file but not a .zip: pass a folder of submissions or a .zip of one")
        safe_extract(path, staging)
        path = staging
        entries = [p for p in path.iterdir() if not p.name.startswith((".", "__MACOSX"))]
        if len(entries) == 1 and entries[0].is_dir() and not (entries[0] / assignment).is_dir():
            path = entries[0]  # the zip held one folder that holds the submissions
    raw: list[tuple[str, dict[str, Path]]] = []
    for entry in sorted(path.iterdir()):
        if entry.name.startswith(".") or entry.is_symlink():
            continue
        if entry.is_dir():
            folder = entry / assignment if (entry / assignment).is_dir() else entry
            raw.append((entry.name, _files(folder)))
        elif entry.suffix == ".ipynb":
            raw.append((entry.stem, {"?": entry}))  # loose notebook: matched to the assignment's notebook later
    if not raw:
        raise GradingError(f"no submissions in {path}: expected <student>/{assignment}/*.ipynb or <student>.ipynb")
    submissions, seen = [], set()
    for raw_id, files in raw:
        sid, n = sanitize_id(raw_id), 2
        while sid in seen:
            sid, n = f"{sanitize_id(raw_id)}-{n}", n + 1
        seen.add(sid)
        sub = Submission(sid, files, {name: _sha256(p) for name, p in files.items()})
        if not files:
            sub.problem = "empty submission: no files"
        submissions.append(sub)
    return submissions


def read_notebook(path: Path) -> tuple[dict | None, str | None]:
    """(notebook JSON, None) or (None, what is wrong with the file)."""
    import nbformat

    data = path.read_bytes()
    if not data.strip():
        return None, "not a notebook: the file is empty"
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, f"not a notebook: not UTF-8 text (byte {exc.start})"
    try:
        nb = json.loads(text)
    except json.JSONDecodeError as exc:
        return None, f"not a notebook: invalid JSON (line {exc.lineno})"
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        return None, "not a notebook: no list of cells"
    try:
        nbformat.validate(nbformat.from_dict(nb))
    except Exception as exc:
        return None, f"not a notebook: {str(exc).splitlines()[0][:120]}"
    return nb, None


def without_duplicates(nb: dict) -> tuple[dict, list[str]]:
    """Keep the first cell of each grade_id as the graded one; later copies become plain cells.

    nbgrader refuses a notebook whose graded cells repeat; a student's copied cell still
    runs (its code counts), it just is not graded twice.
    """
    seen, notes = set(), []
    for cell in nb["cells"]:
        meta = cell.get("metadata", {})
        gid = meta.get("nbgrader", {}).get("grade_id")
        if gid is None:
            continue
        if gid in seen:
            meta.pop("nbgrader")
            notes.append(f"duplicate cell {gid} run as a plain cell")
        seen.add(gid)
    return nb, notes


def _grade_ids(nb: dict) -> set[str]:
    return {c.get("metadata", {}).get("nbgrader", {}).get("grade_id") for c in nb["cells"]} - {None}


def match_notebooks(sub: Submission, expected: dict[str, set[str]]) -> tuple[dict[str, Path], list[str]]:
    """Map each expected notebook name to a submitted file, and list notes and problems.

    A notebook under its own name is taken as is; otherwise the submitted notebook that
    shares the most graded cells with it (renamed, or a loose ``<student>.ipynb``).
    """
    chosen, notes, readable = {}, [], {}
    for name, path in sub.files.items():
        if name == "?" or name.endswith(".ipynb"):
            nb, problem = read_notebook(path)
            if problem:
                notes.append(f"{Path(path).name}: {problem}")
            else:
                readable[name] = _grade_ids(nb)
    used = {target for target in expected if target in readable}
    for target, ids in expected.items():
        if target in readable:
            chosen[target] = sub.files[target]
            continue
        candidates = [(len(ids & got), name) for name, got in readable.items() if name not in used]
        best = max(candidates, default=(0, None))
        if best[1] is not None and (best[0] > 0 or (len(expected) == 1 and len(readable) == 1)):
            used.add(best[1])
            chosen[target] = sub.files[best[1]]
            notes.append(f"{Path(sub.files[best[1]]).name} graded as {target}")
    return chosen, notes


# -- one submission ------------------------------------------------------------------------
@dataclass
class Settings:
    assignment: str
    max_scores: dict[str, dict[str, float]]  # notebook -> grade_id -> points
    master: Path  # generated course: gradebook.db and source/
    timeout: int
    wall_clock: int
    limits: sandbox.Limits
    isolate: bool
    work: Path

    @property
    def grade_ids(self) -> list[str]:
        return [gid for nb in self.max_scores.values() for gid in nb]


def _config(settings: Settings, course_dir: Path, runtime: Path) -> str:
    return "\n".join([
        "c = get_config()",
        f"c.CourseDirectory.root = {str(course_dir)!r}",
        f"c.CourseDirectory.db_url = {'sqlite:///' + str(course_dir / 'gradebook.db')!r}",
        "c.CourseDirectory.ignore = ['.ipynb_checkpoints', '*.pyc', '__pycache__', 'feedback']",
        f"c.Execute.timeout = {settings.timeout}",
        "c.Execute.interrupt_on_timeout = True",
        f"c.Execute.kernel_name = {sandbox.KERNEL_NAME!r}",
        "c.Execute.startup_timeout = 120",
        "c.KernelManager.transport = 'ipc'",
        f"c.KernelManager.ip = {str(runtime / 'kernel')!r}",
        f"c.LimitOutput.max_lines = {MAX_OUTPUT_LINES}",
        "c.LimitOutput.max_traceback = 100",
        "c.Autograde.create_student = True",
    ]) + "\n"


def _cell_label(cell: dict, index: int) -> str:
    gid = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
    return gid or f"#{index + 1}"


def _problems_in_output(nb_path: Path) -> list[str]:
    """Timeouts and other limits that show in the graded notebook's outputs."""
    if not nb_path.exists():
        return []
    nb = json.loads(nb_path.read_text(encoding="utf-8"))
    found = []
    for i, cell in enumerate(nb["cells"]):
        for out in cell.get("outputs", []):
            if out.get("output_type") != "error":
                continue
            ename = out.get("ename", "")
            if ename == "CellTimeoutError":
                found.append(f"timeout in cell {_cell_label(cell, i)}")
            elif ename == "MemoryError":
                found.append(f"out of memory in cell {_cell_label(cell, i)}")
    return found


def _kernel_death(log: str) -> str | None:
    if "DeadKernelError" in log or "Kernel died" in log:
        return "kernel died (os._exit, a crash, or the memory or CPU limit)"
    if "UnresponsiveKernelError" in log or "became unresponsive" in log:
        return "kernel unresponsive after a timeout"
    if "startup_timeout" in log or "Kernel didn't respond" in log:
        return "kernel did not start"
    return None


def grade_one(sub: Submission, settings: Settings) -> Result:
    start = time.perf_counter()
    zero = dict.fromkeys(settings.grade_ids, 0.0)
    if sub.problem:
        return Result(sub.student_id, zero, sub.problem)
    expected = {name: set(ids) for name, ids in settings.max_scores.items()}
    chosen, notes = match_notebooks(sub, expected)
    if not chosen:
        status = "; ".join(notes) or f"no notebook of {settings.assignment} in the submission"
        return Result(sub.student_id, zero, status)
    missing = [name for name in expected if name not in chosen]
    notes += [f"{name} missing (0 points)" for name in missing]

    job = Path(tempfile.mkdtemp(prefix=f"{sub.student_id[:12]}-", dir=settings.work))
    course_dir, runtime = job / "course", job / "run"
    runtime.mkdir(mode=0o700)
    shutil.copytree(settings.master / "source", course_dir / "source")
    shutil.copy(settings.master / "gradebook.db", course_dir / "gradebook.db")
    dest = course_dir / "submitted" / sub.student_id / settings.assignment
    dest.mkdir(parents=True)
    for name, path in sub.files.items():  # the student's other files (e.g. mnist_model.keras)
        if name != "?" and not name.endswith(".ipynb"):
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, dest / name)
    for target, path in chosen.items():  # a cleaned copy; the original stays as it was
        nb, dup_notes = without_duplicates(json.loads(path.read_text(encoding="utf-8")))
        notes += dup_notes
        (dest / target).write_text(json.dumps(nb), encoding="utf-8")
    (course_dir / "nbgrader_config.py").write_text(_config(settings, course_dir, runtime))
    env = {k: v for k, v in course._env().items() if not k.startswith(("JUPYTER", "NBGRADER", "DLCOURSE"))}
    env.update({"JUPYTER_PATH": str(settings.master / "share"), "JUPYTER_RUNTIME_DIR": str(runtime),
                "JUPYTER_CONFIG_DIR": str(job / "config"), "PYTHONPATH": str(course.ROOT)})
    env.update(sandbox.settings_env(settings.limits, runtime, settings.isolate))
    log_lines = []

    def run(*args: str, limit: float) -> int | None:
        cmd = [sys.executable, "-m", "nbgrader", *args, "--student", sub.student_id, "--force"]
        proc = subprocess.Popen(cmd, cwd=course_dir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, errors="replace", start_new_session=True)
        try:
            out, _ = proc.communicate(timeout=max(limit, 1))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            out, _ = proc.communicate()
            log_lines.append(out)
            return None
        log_lines.append(out)
        return proc.returncode

    rc = run("autograde", settings.assignment, limit=settings.wall_clock)
    statuses = []
    if rc is None:
        statuses.append(f"stopped at the {settings.wall_clock} s limit per submission")
    autograded = course_dir / "autograded" / sub.student_id / settings.assignment
    scores = dict(zero)
    graded_any = False
    if autograded.exists():
        scores, deleted, graded_any = _scores(settings, course_dir, sub.student_id)
        statuses += [f"deleted test cell {gid} (0 points)" for gid in deleted]
        for target in chosen:
            statuses += _problems_in_output(autograded / target)
        if graded_any:
            run("generate_feedback", settings.assignment, limit=300)
    if rc not in (0, None) or not graded_any:
        death = _kernel_death("".join(log_lines))
        statuses.insert(0, death or "nbgrader could not grade it (see the log)")
    feedback = course_dir / "feedback" / sub.student_id / settings.assignment
    out_dir = settings.work.parent / "feedback" / sub.student_id
    if feedback.exists():
        out_dir.mkdir(parents=True, exist_ok=True)
        for html in feedback.glob("*.html"):
            shutil.copy(html, out_dir / html.name)
    logs = settings.work.parent / "logs"
    logs.mkdir(exist_ok=True)
    (logs / f"{sub.student_id}.log").write_text(_truncate("".join(log_lines)))
    status = "; ".join(dict.fromkeys(statuses + notes)) or "graded"
    if status != "graded" and graded_any and not statuses:
        status = "graded; " + status
    shutil.rmtree(job, ignore_errors=True)
    return Result(sub.student_id, scores, status, time.perf_counter() - start)


def _truncate(text: str, limit: int = 200_000) -> str:
    return text if len(text) <= limit else text[: limit // 2] + "\n... log truncated ...\n" + text[-limit // 2 :]


def _scores(settings: Settings, course_dir: Path, student: str) -> tuple[dict[str, float], list[str], bool]:
    """Points per grade_id from the job's gradebook; deleted test cells score zero."""
    from nbgrader.api import Gradebook, MissingEntry

    scores = dict.fromkeys(settings.grade_ids, 0.0)
    deleted, graded_any = [], False
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


# -- the class -----------------------------------------------------------------------------
def prepare(assignment: str, work: Path) -> tuple[Path, dict[str, dict[str, float]]]:
    """Generate the assignment once (gradebook, release) from clean copies of the source notebooks."""
    source = course.SOLUTIONS / assignment
    if not source.is_dir():
        raise GradingError(f"no assignment {assignment!r}: choose one of {', '.join(course.assignments())}")
    master = work / "master"
    (master / "source" / assignment).mkdir(parents=True)
    for nb in sorted(source.glob("*.ipynb")):  # notebooks only: nothing else may overwrite students' files
        shutil.copy(nb, master / "source" / assignment / nb.name)
    course.nbgrader("generate_assignment", assignment, "--force", f"--CourseDirectory.root={master}",
                    "--CourseDirectory.source_directory=source", "--CourseDirectory.release_directory=release",
                    f"--CourseDirectory.db_url=sqlite:///{master}/gradebook.db")
    from nbgrader.api import Gradebook

    max_scores: dict[str, dict[str, float]] = {}
    with Gradebook(f"sqlite:///{master}/gradebook.db") as gb:
        for nb in sorted(gb.find_assignment(assignment).notebooks, key=lambda n: n.name):
            max_scores[f"{nb.name}.ipynb"] = {c.name: float(c.max_score) for c in sorted(nb.grade_cells, key=lambda c: c.id)}
    order = [nb.name for nb in sorted(source.glob("*.ipynb"))]
    max_scores = {name: _in_notebook_order(source / name, ids) for name, ids in sorted(max_scores.items(), key=lambda kv: order.index(kv[0]))}
    sandbox.kernelspec(master / "share")
    return master, max_scores


def _in_notebook_order(path: Path, ids: dict[str, float]) -> dict[str, float]:
    nb = json.loads(path.read_text(encoding="utf-8"))
    order = [c.get("metadata", {}).get("nbgrader", {}).get("grade_id") for c in nb["cells"]]
    return {gid: ids[gid] for gid in sorted(ids, key=lambda g: order.index(g) if g in order else len(order))}


def write_csv(path: Path, assignment: str, results: list[Result], settings: Settings) -> None:
    max_score = sum(sum(nb.values()) for nb in settings.max_scores.values())
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["student_id", "assignment", "score", "max_score", *settings.grade_ids, "status"])
        for r in sorted(results, key=lambda r: r.student_id):
            w.writerow([r.student_id, assignment, _num(r.score), _num(max_score),
                        *[_num(r.scores[g]) for g in settings.grade_ids], r.status])


def _num(x: float) -> str:
    return f"{x:g}"


def autograde(assignment: str, submissions: Path, out: Path, jobs: int, timeout: int | None = None,
              wall_clock: int | None = None, limits: sandbox.Limits | None = None, progress=print) -> list[Result]:
    """Grade every submission; write ``out/grades.csv``, ``out/feedback/``, ``out/submissions.csv``."""
    config = course.load_config()
    timeout = timeout or int(config.CourseGrader.get("timeouts", {}).get(assignment) or config.Execute.get("timeout", 300))
    wall_clock = wall_clock or max(4 * timeout, 600)
    reason = sandbox.isolation()
    if reason:
        progress(f"WARNING: student code will NOT be isolated: {reason}.\n"
                 "         It runs as you, with resource limits only. Install bubblewrap to isolate it.")
    problem = sandbox.process_limit_problem()
    if problem:
        progress(f"WARNING: {problem}; run the grader as an ordinary user, or where cgroups are writable.")
    out = Path(out)
    if out.resolve() == Path(submissions).resolve() or Path(submissions).resolve() in out.resolve().parents:
        raise GradingError("--out must not be inside the submissions: the grader never writes there")
    out.mkdir(parents=True, exist_ok=True)
    for old in ("feedback", "logs"):
        shutil.rmtree(out / old, ignore_errors=True)
    work = Path(tempfile.mkdtemp(prefix="g-", dir="/tmp" if Path("/tmp").is_dir() else None))
    try:
        archive = Path(submissions) if Path(submissions).is_file() else None
        archive_digest = _sha256(archive) if archive else None
        subs = collect(Path(submissions), assignment, work / "unzipped")
        master, max_scores = prepare(assignment, work)
        # Short paths: ZeroMQ's Unix socket names must stay under about 100 characters.
        settings = Settings(assignment, max_scores, master, timeout, wall_clock, limits or sandbox.Limits(),
                            reason is None, work / "j")
        settings.work.mkdir()
        (work / "feedback").mkdir()
        progress(f"grading {len(subs)} submission(s) of {assignment} with {jobs} job(s) "
                 f"(cell timeout {timeout} s, {wall_clock} s per submission)")
        results = []
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            futures = {pool.submit(grade_one, s, settings): s for s in subs}
            for i, fut in enumerate(concurrent.futures.as_completed(futures), 1):
                sub = futures[fut]
                try:
                    r = fut.result()
                except Exception as exc:  # a bug or a broken copy must not stop the class
                    r = Result(sub.student_id, dict.fromkeys(settings.grade_ids, 0.0), f"grader error: {exc}")
                results.append(r)
                progress(f"[{i}/{len(subs)}] {r.student_id}: {_num(r.score)}/{_num(sum(sum(v.values()) for v in max_scores.values()))}"
                         f"  {r.status}  ({r.seconds:.0f} s)")
        write_csv(out / "grades.csv", assignment, results, settings)
        shutil.copytree(work / "feedback", out / "feedback", dirs_exist_ok=True)
        if (work / "logs").exists():
            shutil.copytree(work / "logs", out / "logs", dirs_exist_ok=True)
        unchanged = _write_manifest(out / "submissions.csv", subs, archive, archive_digest)
        graded = [r for r in results if r.status.startswith("graded")]
        mean = sum(r.score for r in results) / len(results)
        progress(f"done: {len(graded)} graded, {len(results) - len(graded)} with problems; mean score {mean:.2f}; "
                 f"submissions unchanged: {'yes' if unchanged else 'NO'}; results in {out}")
        return results
    finally:
        sandbox.remove_stale_cgroups()
        shutil.rmtree(work, ignore_errors=True)


def _write_manifest(path: Path, subs: list[Submission], archive: Path | None = None, archive_digest: str | None = None) -> bool:
    """Each submitted file's SHA-256 before grading, and whether it still matches (it must)."""
    unchanged = True
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["student_id", "file", "sha256", "unchanged_after_grading"])
        if archive is not None:
            same = _sha256(archive) == archive_digest
            unchanged &= same
            w.writerow(["(zip)", archive.name, archive_digest, "yes" if same else "NO"])
        for s in subs:
            for name, digest in s.sha256.items():
                same = s.files[name].exists() and _sha256(s.files[name]) == digest
                unchanged &= same
                w.writerow([s.student_id, s.files[name].name if name == "?" else name, digest, "yes" if same else "NO"])
    return unchanged
