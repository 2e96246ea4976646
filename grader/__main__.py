"""``python -m grader``: the instructor's commands.

python -m grader release    regenerate lessons/ from solutions/
python -m grader check      solutions pass their tests, lessons fail them, lessons in sync
python -m grader autograde ASSIGNMENT --submissions PATH [--out DIR] [--jobs N] [--timeout SECONDS]
                           [--scheduler ADDRESS | --scheduler-file PATH] [--tls-ca-file F --tls-cert F --tls-key F]
                            grade a class in sandboxes (here, or on a dask cluster): grades.csv, results.jsonl,
                            report.html, feedback/, submissions.csv
python -m grader report OUT   write OUT/report.html again from OUT/grades.csv and OUT/results.jsonl
python -m grader export canvas|moodle OUT [--column NAME] [--out-of POINTS]
                            grades and feedback files in the layout Canvas or Moodle imports
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from pathlib import Path

from . import course

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _release(args) -> int:
    names = course.release()
    print(f"Regenerated {len(names)} lesson(s) in {course.LESSONS}: {', '.join(names)}")
    return 0


def _check(args) -> int:
    ok = True
    problems = course.out_of_sync()
    print("lessons/ in sync with solutions/:", "yes" if not problems else "NO")
    for p in problems:
        print("   ", p)
    ok &= not problems
    for nb in course.notebooks(course.SOLUTIONS):
        if args.lesson and nb.parent.name not in args.lesson:
            continue
        t = time.perf_counter()
        failed = course.validate(nb).get("failed", [])
        verdict = f"{len(failed)} test cell(s) FAIL" if failed else "all tests pass"
        print(f"{nb.relative_to(course.ROOT)}: {verdict} ({time.perf_counter() - t:.0f} s)")
        for cell in failed:
            print(
                f"    {cell['source'].splitlines()[0]}\n      "
                + "\n      ".join(_ANSI.sub("", cell["raw_error"]).strip().splitlines()[-3:])
            )
        ok &= not failed
    for nb in course.notebooks(course.LESSONS):
        if args.lesson and nb.parent.name not in args.lesson:
            continue
        t = time.perf_counter()
        passed = course.validate(nb, invert=True).get("passed", [])
        verdict = f"{len(passed)} test cell(s) PASS on the blank lesson" if passed else "every test fails"
        print(f"{nb.relative_to(course.ROOT)}: {verdict} ({time.perf_counter() - t:.0f} s)")
        ok &= not passed
    print("check:", "OK" if ok else "FAILED")
    return 0 if ok else 1


def _autograde(args) -> int:
    from . import autograde

    out = args.out or course.ROOT / "grader" / "output" / args.assignment
    cluster = None
    if args.scheduler or args.scheduler_file:
        cluster = {
            "address": args.scheduler,
            "scheduler_file": args.scheduler_file,
            "tls_ca_file": args.tls_ca_file,
            "tls_cert": args.tls_cert,
            "tls_key": args.tls_key,
        }
    elif args.tls_ca_file or args.tls_cert or args.tls_key:
        print("error: the --tls-* options go with --scheduler or --scheduler-file", file=sys.stderr)
        return 2
    try:
        autograde.autograde(
            args.assignment,
            args.submissions,
            out,
            jobs=args.jobs,
            timeout=args.timeout,
            wall_clock=args.wall_clock,
            cluster=cluster,
        )
    except autograde.GradingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def _report(args) -> int:
    from . import report

    try:
        path = report.write(args.out, args.output)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"class report: {path}")
    return 0


def _export(args) -> int:
    from . import export

    try:
        if args.platform == "canvas":
            done = export.canvas(args.out, column=args.column, out_of=args.out_of)
        else:
            done = export.moodle(args.out, out_of=args.out_of, comments=not args.no_comments)
    except export.ExportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{done.grades}: {done.students} student(s)")
    print(f"{done.feedback}: {done.feedback_files} feedback file(s)")
    for line in done.left_out:
        print(f"  left out: {line}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m grader", description="The course's grading tools.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("release", help="regenerate lessons/ from solutions/")
    p.set_defaults(func=_release)
    p = sub.add_parser("check", help="solutions pass, lessons fail, lessons in sync")
    p.add_argument("lesson", nargs="*", help="only these lessons (default: all)")
    p.set_defaults(func=_check)
    p = sub.add_parser(
        "autograde",
        help="grade every submission of a lesson, safely and in parallel",
        description="Grade a class's submissions of one lesson with nbgrader, each in its own sandbox. "
        "Writes grades.csv (one row per student), results.jsonl (failure messages, review notes, timings), "
        "report.html (the class report), feedback/<student>/*.html, submissions.csv (SHA-256 of every "
        "submitted file) and logs/. Submissions are only read.",
    )
    p.add_argument("assignment", help="lesson folder name, e.g. 02_conv_pool_arithmetic")
    p.add_argument(
        "--submissions",
        required=True,
        type=Path,
        help="folder of <student>/<assignment>/* or of <student>.ipynb files, a Canvas or Moodle "
        "download of the assignment's submissions, or a .zip of any of these",
    )
    p.add_argument("--out", type=Path, help="output folder (default: grader/output/ASSIGNMENT/)")
    p.add_argument(
        "--jobs",
        type=int,
        default=os.cpu_count() or 1,
        help="submissions graded at once on this machine (default: cores; with --scheduler, the workers' threads decide)",
    )
    p.add_argument(
        "--timeout", type=int, help="seconds per cell (default: the lesson's in grader/nbgrader_config.py, else 300)"
    )
    p.add_argument("--wall-clock", type=int, help="seconds per submission (default: 4 x timeout, at least 600)")
    where = p.add_mutually_exclusive_group()
    where.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="grade on the dask cluster whose scheduler is at ADDRESS (tls://host:8786, tcp://...); "
        "each worker's threads replace --jobs. Without TLS, anyone who can reach the scheduler "
        "can run code on the workers",
    )
    where.add_argument(
        "--scheduler-file",
        metavar="PATH",
        type=Path,
        help="the same, with the scheduler's address read from the file `dask scheduler --scheduler-file PATH` wrote",
    )
    p.add_argument("--tls-ca-file", type=Path, help="certificate authority that signed the cluster's certificates")
    p.add_argument("--tls-cert", type=Path, help="this client's certificate (PEM)")
    p.add_argument("--tls-key", type=Path, help="this client's private key (PEM)")
    p.set_defaults(func=_autograde)
    p = sub.add_parser(
        "report",
        help="write the class report (report.html) of a graded class again",
        description="Write OUT/report.html from OUT/grades.csv (as you may have edited it) and OUT/results.jsonl: "
        "score distribution, each test cell's pass rate, the most frequent failure messages per cell, "
        "the submissions to review, the time each took. One self-contained file, readable offline.",
    )
    p.add_argument("out", type=Path, help="the --out folder of `python -m grader autograde`")
    p.add_argument("--output", type=Path, help="write the page here instead (default: OUT/report.html)")
    p.set_defaults(func=_report)
    p = sub.add_parser(
        "export",
        help="grades and feedback files for Canvas or Moodle to import",
        description="For a class graded from a Canvas or Moodle export of submissions. canvas: OUT/canvas_grades.csv "
        "(Grades > Import) and OUT/canvas_feedback.zip (the assignment's Re-Upload Submissions). moodle: "
        "OUT/moodle_grades.csv (the assignment's Upload grading worksheet) and OUT/moodle_feedback.zip "
        "(Upload multiple feedback files in a zip).",
    )
    p.add_argument("platform", choices=["canvas", "moodle"])
    p.add_argument("out", type=Path, help="the --out folder of `python -m grader autograde`")
    p.add_argument(
        "--column",
        help="canvas: the assignment's column as Canvas's gradebook export titles it, "
        "'Name (id)' (default: the lesson's name; Canvas then offers a new assignment)",
    )
    p.add_argument(
        "--out-of",
        type=float,
        help="the assignment's points in the platform, when they differ from the lesson's (scores are scaled)",
    )
    p.add_argument("--no-comments", action="store_true", help="moodle: leave the 'Feedback comments' column out")
    p.set_defaults(func=_export)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except course.NbgraderError as exc:
        print(exc, file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
