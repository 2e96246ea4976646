"""An output folder of ``python -m grader autograde`` written without grading, for the report and export tests.

The rows go through ``grader.results.Publisher`` as the grader's own would; the failure messages
are the ones lesson 02's tests give (numbers differ from student to student, as they do).
"""

from __future__ import annotations

from pathlib import Path

from grader import lms
from grader.job import Result, Settings
from grader.results import Publisher
from grader.submissions import Submission
from tests.grader.classes import CONV_POOL

LESSON, NB, POINTS, FULL = CONV_POOL.name, CONV_POOL.nb, CONV_POOL.points, CONV_POOL.full
BLANK = "NotImplementedError"


def settings(tmp: Path) -> Settings:
    return Settings(LESSON, {NB: {g: float(p) for g, p in POINTS.items()}}, tmp, 30, 600, None, True, tmp)


def result(student_id: str, name: str, failures: dict[str, str], seconds: float = 20.0, **kwargs) -> Result:
    scores = {g: 0.0 if g in failures else float(p) for g, p in POINTS.items()}
    r = Result(
        student_id,
        name,
        scores,
        graded=kwargs.pop("graded", True),
        failures=failures,
        seconds=seconds,
        timings={
            NB: {"cells": seconds * 0.6, "tests": seconds * 0.3, "checks": seconds * 0.05, "total": seconds * 0.95}
        },
        **kwargs,
    )
    r.feedback = {f"{LESSON}.html": f"<html><body>feedback for {name}</body></html>".encode()} if r.graded else {}
    return r


def write_class(out: Path) -> list[Result]:
    """A class of six from a Canvas download and two plain folders: one of each kind of outcome."""
    out.mkdir(parents=True, exist_ok=True)
    canvas = lambda user, name, late=False: lms.Identity("canvas", user, name, late, {NB: str(int(user) + 50000)})  # noqa: E731
    subs = [
        Submission("lovelaceada_101", "lovelaceada", {}, lms=canvas("101", "lovelaceada")),
        Submission("mullerjurgen_102-1a2b3c", "müllerjürgen", {}, lms=canvas("102", "müllerjürgen", late=True)),
        Submission("smithbob_103", "smithbob", {}, lms=canvas("103", "smithbob")),
        Submission(
            "script_104-abcdef", "<script>alert(1)</script>", {}, lms=canvas("104", "<script>alert(1)</script>")
        ),
        Submission("anon_aB3dE_0", "", {}, lms=lms.Identity("canvas", "anon_aB3dE", "")),
        Submission("plain", "plain", {}),
    ]
    results = [
        result("lovelaceada_101", "lovelaceada", {}, seconds=18.0),
        result(
            "mullerjurgen_102-1a2b3c",
            "müllerjürgen",
            {
                "test_conv2d": "AssertionError: conv2d: expected shape (2, 26, 26, 16), got (2, 27, 27, 16). Check your padding.",
                "test_layer_table": "AssertionError: layer 2 (pool): expected (63, 63, 16), got (64, 64, 16)",
            },
            seconds=25.0,
            notes=["marked LATE by Canvas"],
        ),
        result(
            "smithbob_103",
            "smithbob",
            {
                "test_conv2d": "AssertionError: conv2d: expected shape (1, 5, 5, 3), got (1, 6, 6, 3). Check your padding.",
                "test_max_pool2d": BLANK,
                "test_avg_pool2d": BLANK,
                "test_layer_table": BLANK,
            },
            seconds=31.0,
        ),
        result(
            "script_104-abcdef",
            "<script>alert(1)</script>",
            {g: BLANK for g in POINTS},
            seconds=12.0,
            review=["numpy.testing.assert_allclose replaced (cell #5)"],
        ),
        result(
            "anon_aB3dE_0",
            "",
            {"test_layer_table": "NotReached: not reached (time limit): an earlier test did not stop"},
            seconds=240.0,
            problems=["timeout in cell layer_table"],
        ),
        result(
            "plain",
            "plain",
            {},
            seconds=0.0,
            graded=False,
            problems=["02_conv_pool_arithmetic.ipynb: not a notebook: invalid JSON (line 1)"],
        ),
    ]
    for r in results:
        if not r.graded:
            r.scores = dict.fromkeys(POINTS, 0.0)
    publisher = Publisher(out, settings(out), subs)
    for r in results:
        publisher.add(r)  # grades.csv and results.jsonl rows, feedback/<student_id>/*.html
    publisher.finish(results)
    return results
