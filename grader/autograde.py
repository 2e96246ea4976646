"""Grade a whole class: ``python -m grader autograde ASSIGNMENT --submissions PATH``.

The pipeline, after otter-grader's shape:

- ``grader.submissions``: find and read the submissions (folder or zip), never writing to them;
- ``grader.job``: one submission's run, in its own scratch nbgrader course, with its kernel in the
  sandbox (``grader/launcher.py``) and its tests judged by the referee (``grader/referee.py``);
- ``grader.results``: publish grades.csv, results.jsonl, feedback, logs and the manifest of the
  submissions; ``grader.report`` then writes the class report (report.html).

This module prepares the assignment once, checks the machine can take the class, grades the
submissions in parallel (a thread pool here, or a dask cluster: ``grader.cluster``) and reports
progress.
"""

from __future__ import annotations

import concurrent.futures
import functools
import json
import shutil
import tempfile
import threading
import time
from dataclasses import fields
from pathlib import Path

from . import course, nbgrader_server, plans, sandbox
from .job import Result, Settings, grade_one
from .results import Publisher, write_manifest
from .submissions import GradingError, collect, grade_ids, sha256

__all__ = ["GradingError", "autograde", "prepare"]


def prepare(assignment: str, work: Path) -> tuple[Path, dict[str, dict[str, float]]]:
    """Generate the assignment once (gradebook, plans, kernelspec) from clean copies of the master notebooks."""
    source = course.SOLUTIONS / assignment
    if not source.is_dir():
        raise GradingError(f"no assignment {assignment!r}: choose one of {', '.join(course.assignments())}")
    master = work / "master"
    (master / "source" / assignment).mkdir(parents=True)
    for nb in sorted(source.glob("*.ipynb")):  # notebooks only: nothing else may overwrite students' files
        shutil.copy(nb, master / "source" / assignment / nb.name)
    course.nbgrader(
        "generate_assignment",
        assignment,
        "--force",
        f"--CourseDirectory.root={master}",
        "--CourseDirectory.source_directory=source",
        "--CourseDirectory.release_directory=release",
        f"--CourseDirectory.db_url=sqlite:///{master}/gradebook.db",
    )
    from nbgrader.api import Gradebook

    max_scores: dict[str, dict[str, float]] = {}
    with Gradebook(f"sqlite:///{master}/gradebook.db") as gb:
        for nb in gb.find_assignment(assignment).notebooks:
            max_scores[f"{nb.name}.ipynb"] = {c.name: float(c.max_score) for c in nb.grade_cells}
    ordered = {}
    for path in sorted(source.glob("*.ipynb")):
        order = [
            c.get("metadata", {}).get("nbgrader", {}).get("grade_id")
            for c in json.loads(path.read_text(encoding="utf-8"))["cells"]
        ]
        ids = max_scores.get(path.name, {})
        ordered[path.name] = {
            g: ids[g] for g in sorted(ids, key=lambda g: order.index(g) if g in order else len(order))
        }
    plans.write_plans(master / "source" / assignment, master / "plans.json")
    sandbox.kernelspec(master / "share")
    grading_data(master / "data")
    return master, ordered


def sandbox_data(master: Path) -> tuple[dict[str, Path], dict[str, Path]]:
    """The folders the sandbox sees in place of the course's (``data/``: the grading copy), and the withheld files."""
    from dlcourse import data

    return {str(data.DATA_DIR): master / "data"}, {"mnist.npz": data.mnist_path()}


def grading_data(dest: Path) -> None:
    """The copy of ``data/`` the sandbox sees: every file as shipped, but MNIST's test split withheld."""
    from dlcourse import data

    dest.mkdir()
    for path in sorted(data.DATA_DIR.iterdir()):
        if path.is_file() and path.name != "mnist.npz":
            shutil.copyfile(path, dest / path.name)
    data.withheld_copy(data.mnist_path(), dest / "mnist.npz")


def _limits(config, overrides: dict) -> sandbox.Limits:
    values = dict(config.CourseGrader.get("limits", {}) or {})
    values.update({k: v for k, v in overrides.items() if v})
    known = {f.name for f in fields(sandbox.Limits)}
    unknown = set(values) - known
    if unknown:
        raise GradingError(
            f"unknown limit(s) {', '.join(sorted(unknown))} in CourseGrader.limits; known: {', '.join(sorted(known))}"
        )
    return sandbox.Limits(**values)


def per_job_bytes(limits: sandbox.Limits) -> int:
    """Disk one submission's grading can need: runtime folder, notebooks, feedback, log."""
    return limits.runtime_bytes + 4 * limits.notebook_output + (64 << 20)


def check_room(work: Path, out: Path, jobs: int, limits: sandbox.Limits, class_bytes: int) -> list[str]:
    """Stop before grading when the disk cannot hold what the class can need; warnings about memory."""
    need = jobs * per_job_bytes(limits) + 2 * class_bytes
    for folder in {work, out}:
        free = shutil.disk_usage(folder).free
        if free < need:
            raise GradingError(
                f"not enough free disk in {folder}: {free / 2**30:.1f} GiB free, grading {jobs} at once "
                f"can need {need / 2**30:.1f} GiB; free some space or use fewer --jobs"
            )
    warnings = []
    try:
        meminfo = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines())
        available = int(meminfo["MemAvailable"].split()[0]) * 1024
        worst = jobs * (limits.files + limits.memory)
        if available < worst:
            warnings.append(
                f"note: {available / 2**30:.0f} GiB of memory available; {jobs} submission(s) at their limits "
                f"could use {worst / 2**30:.0f} GiB (each: {limits.memory >> 30} GiB memory, "
                f"{limits.files >> 30} GiB of files in memory)"
            )
    except (OSError, KeyError, ValueError):
        pass
    return warnings


def _time_left(seconds: float) -> str:
    return f"~{seconds / 60:.0f} min left" if seconds >= 90 else f"~{seconds:.0f} s left"


def autograde(
    assignment: str,
    submissions: Path,
    out: Path,
    jobs: int,
    timeout: int | None = None,
    wall_clock: int | None = None,
    limits: sandbox.Limits | None = None,
    progress=print,
    cluster: dict | None = None,
) -> list[Result]:
    """Grade every submission; write ``out/grades.csv``, ``out/results.jsonl``, ``out/report.html``,
    ``out/feedback/``, ``out/logs/`` and ``out/submissions.csv``.

    ``cluster``: the arguments of ``grader.cluster.Cluster`` (``address`` or ``scheduler_file``, TLS
    files) to grade on a dask cluster instead of ``jobs`` threads here; this machine alone writes ``out``.
    """
    config = course.load_config()
    timeout = timeout or int(
        config.CourseGrader.get("timeouts", {}).get(assignment) or config.Execute.get("timeout", 300)
    )
    wall_clock = wall_clock or max(4 * timeout, 600)
    limits = limits or _limits(config, {})
    submissions, out = Path(submissions), Path(out)
    if out.resolve() == submissions.resolve() or submissions.resolve() in out.resolve().parents:
        raise GradingError("--out must not be inside the submissions: the grader never writes there")
    grid = None
    if cluster is not None:  # the workers, not this machine, run student code: they must all isolate it
        from .cluster import Cluster

        grid = Cluster(**cluster, progress=progress)
        reason = None
    else:
        reason = sandbox.isolation()
        if reason:
            progress(
                f"WARNING: student code will NOT be isolated: {reason}.\n"
                "         It runs as you, with resource limits only. Install bubblewrap to isolate it."
            )
        problem = sandbox.process_limit_problem()
        if problem:
            progress(f"WARNING: {problem}; run the grader as an ordinary user, or where cgroups are writable.")
    work = None
    slots: set[int] = set()  # the threads grading here
    try:
        if grid is not None:
            for warning in grid.check(per_job_bytes(limits)):
                progress(warning)
        out.mkdir(parents=True, exist_ok=True)
        for old in ("feedback", "logs"):
            shutil.rmtree(out / old, ignore_errors=True)
        work = Path(tempfile.mkdtemp(prefix="g-", dir="/tmp" if Path("/tmp").is_dir() else None))
        archive = submissions if submissions.is_file() else None
        archive_digest = sha256(archive) if archive else None
        class_bytes = (
            archive.stat().st_size
            if archive
            else sum(p.stat().st_size for p in submissions.rglob("*") if p.is_file() and not p.is_symlink())
        )
        for warning in check_room(work, out, jobs if grid is None else 0, limits, class_bytes):
            progress(warning)
        subs, skipped = collect(submissions, assignment, work / "unzipped")
        for line in skipped:
            progress(f"skipped {line}")
        master, max_scores = prepare(assignment, work)
        mounts, withheld = sandbox_data(master)
        settings = Settings(
            assignment,
            max_scores,
            master,
            timeout,
            wall_clock,
            limits,
            reason is None,
            work / "j",
            lesson_files=list(config.CourseGrader.get("lesson_files", {}).get(assignment, [])),
            mounts=mounts,
            withheld=withheld,
            threads=sandbox.kernel_threads(jobs),
        )
        settings.work.mkdir()
        if grid is not None:
            grid.send_master(master)
            pool, where = grid, grid.describe()
            submit = functools.partial(grid.submit, settings=settings)
        else:
            pool = concurrent.futures.ThreadPoolExecutor(
                max_workers=max(1, jobs), initializer=_note_thread, initargs=(slots,)
            )
            where = f"with {jobs} job(s)"
            submit = functools.partial(pool.submit, grade_one, settings=settings)
        publisher = Publisher(out, settings, subs)
        max_score = f"{settings.max_score:g}"
        progress(
            f"grading {len(subs)} submission(s) of {assignment} {where} "
            f"(cell timeout {timeout} s, {wall_clock} s per submission)"
        )
        results, started = [], time.monotonic()
        with pool:
            futures = {submit(s): s for s in subs}
            for i, fut in enumerate(concurrent.futures.as_completed(futures), 1):
                sub = futures[fut]
                try:
                    r = fut.result()
                except GradingError:  # a cluster's worker refused: stop the run
                    raise
                except Exception as exc:  # noqa: BLE001 - a bug or a broken copy must not stop the class
                    r = Result(
                        sub.student_id,
                        sub.name,
                        dict.fromkeys(settings.grade_ids, 0.0),
                        problems=[f"grader error: {type(exc).__name__}: {exc}"],
                    )
                results.append(r)
                publisher.add(r)
                left = (time.monotonic() - started) / i * (len(subs) - i)
                progress(
                    f"[{i}/{len(subs)}] {r.student_id}: {r.score:g}/{max_score}  {r.status}  ({r.seconds:.0f} s)"
                    + (f"  {_time_left(left)}" if i < len(subs) else "")
                )
        publisher.finish(results)
        unchanged = write_manifest(out / "submissions.csv", subs, archive, archive_digest)
        graded = sum(r.graded for r in results)
        troubled = sum(bool(r.problems) or not r.graded for r in results)
        review = sum(bool(r.review) for r in results)
        mean = sum(r.score for r in results) / len(results)
        progress(
            f"done: {graded} graded, {troubled} with problems, {review} to review; "
            f"mean score {mean:.2f}; submissions unchanged: {'yes' if unchanged else 'NO'}; results in {out}"
        )
        try:
            from . import report

            progress(f"class report: {report.write(out)}")
        except Exception as exc:  # noqa: BLE001 - the grades are written; a report that fails must not hide them
            progress(
                f"the class report could not be written ({type(exc).__name__}: {exc}); "
                f"retry with `python -m grader report {out}`"
            )
        platforms = sorted({s.lms.platform for s in subs if s.lms})
        for platform in platforms:
            progress(
                f"{platform} export recognised: `python -m grader export {platform.lower()} {out}` writes the grades "
                f"and the feedback files to upload"
            )
        return results
    finally:
        if grid is not None:
            grid.close()
        nbgrader_server.close(slots)
        sandbox.remove_stale_cgroups()
        if work is not None:
            shutil.rmtree(work, ignore_errors=True)


def _note_thread(slots: set[int]) -> None:
    """A grading slot's thread, noted so that its nbgrader server ends with the run."""
    slots.add(threading.get_ident())


def expected_grade_ids(assignment: str) -> dict[str, set[str]]:
    """Graded cells of each master notebook of ``assignment``."""
    return {
        p.name: grade_ids(json.loads(p.read_text(encoding="utf-8")))
        for p in sorted((course.SOLUTIONS / assignment).glob("*.ipynb"))
    }
