"""``python -m grader``: the instructor's commands.

    python -m grader release    regenerate lessons/ from solutions/
    python -m grader check      solutions pass their tests, lessons fail them, lessons in sync
"""

from __future__ import annotations

import argparse
import re
import sys
import time

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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m grader", description="The course's grading tools.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("release", help="regenerate lessons/ from solutions/")
    p.set_defaults(func=_release)
    p = sub.add_parser("check", help="solutions pass, lessons fail, lessons in sync")
    p.add_argument("lesson", nargs="*", help="only these lessons (default: all)")
    p.set_defaults(func=_check)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except course.NbgraderError as exc:
        print(exc, file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
