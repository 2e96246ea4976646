"""``python -m grader``: the instructor's commands.

    python -m grader release    regenerate lessons/ from solutions/
    python -m grader check      solutions pass their tests, lessons fail them, lessons in sync
    python -m grader autograde ASSIGNMENT --submissions PATH [--out DIR] [--jobs N] [--timeout SECONDS]
                               [--scheduler ADDRESS | --scheduler-file PATH] [--tls-ca-file F --tls-cert F --tls-key F]
                                grade a class in sandboxes (here, or on a dask cluster): grades.csv, feedback/,
                                submissions.csv
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
        print(f"{nb.relative_to(course.ROOT)}: {'all tests pass' if not failed else f'{len(failed)} test cell(s) FAIL'} ({time.perf_counter() - t:.0f} s)")
        for cell in failed:
            print(f"    {cell['source'].splitlines()[0]}\n      " + "\n      ".join(_ANSI.sub("", cell["raw_error"]).strip().splitlines()[-3:]))
        ok &= not failed
    for nb in course.notebooks(course.LESSONS):
        if args.lesson and nb.parent.name not in args.lesson:
            continue
        t = time.perf_counter()
        passed = course.validate(nb, invert=True).get("passed", [])
        print(f"{nb.relative_to(course.ROOT)}: {'every test fails' if not passed else f'{len(passed)} test cell(s) PASS on the blank lesson'} ({time.perf_counter() - t:.0f} s)")
        ok &= not passed
    print("check:", "OK" if ok else "FAILED")
    return 0 if ok else 1


def _autograde(args) -> int:
    from . import autograde

    out = args.out or course.ROOT / "grader" / "output" / args.assignment
    cluster = None
    if args.scheduler or args.scheduler_file:
        cluster = {"address": args.scheduler, "scheduler_file": args.scheduler_file, "tls_ca_file": args.tls_ca_file,
                   "tls_cert": args.tls_cert, "tls_key": args.tls_key}
    elif args.tls_ca_file or args.tls_cert or args.tls_key:
        print("error: the --tls-* options go with --scheduler or --scheduler-file", file=sys.stderr)
        return 2
    try:
        autograde.autograde(args.assignment, args.submissions, out, jobs=args.jobs, timeout=args.timeout,
                            wall_clock=args.wall_clock, cluster=cluster)
    except autograde.GradingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
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
        "autograde", help="grade every submission of a lesson, safely and in parallel",
        description="Grade a class's submissions of one lesson with nbgrader, each in its own sandbox. "
                    "Writes grades.csv (one row per student), feedback/<student>/*.html, submissions.csv "
                    "(SHA-256 of every submitted file) and logs/. Submissions are only read.")
    p.add_argument("assignment", help="lesson folder name, e.g. 02_conv_pool_arithmetic")
    p.add_argument("--submissions", required=True, type=Path,
                   help="folder of <student>/<assignment>/* or of <student>.ipynb files, or a .zip of either")
    p.add_argument("--out", type=Path, help="output folder (default: grader/output/ASSIGNMENT/)")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="submissions graded at once on this machine (default: cores; with --scheduler, the workers' threads decide)")
    p.add_argument("--timeout", type=int,
                   help="seconds per cell (default: the lesson's in grader/nbgrader_config.py, else 300)")
    p.add_argument("--wall-clock", type=int, help="seconds per submission (default: 4 x timeout, at least 600)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--scheduler", metavar="ADDRESS",
                       help="grade on the dask cluster whose scheduler is at ADDRESS (tls://host:8786, tcp://...); "
                            "each worker's threads replace --jobs. Without TLS, anyone who can reach the scheduler "
                            "can run code on the workers")
    where.add_argument("--scheduler-file", metavar="PATH", type=Path,
                       help="the same, with the scheduler's address read from the file `dask scheduler "
                            "--scheduler-file PATH` wrote")
    p.add_argument("--tls-ca-file", type=Path, help="certificate authority that signed the cluster's certificates")
    p.add_argument("--tls-cert", type=Path, help="this client's certificate (PEM)")
    p.add_argument("--tls-key", type=Path, help="this client's private key (PEM)")
    p.set_defaults(func=_autograde)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except course.NbgraderError as exc:
        print(exc, file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
