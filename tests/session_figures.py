"""What a test session measured, printed at its end: solution notebooks' run times, browser latencies,
and when each pytest-xdist worker finished (the suite ends with the later one).

Tests add to this process's figures (``LATENCIES`` here, the runs in
``tests/lessons/solution_runs.py``). Under pytest-xdist each worker hands its figures to the
controller as plain data (``gather``), and the controller prints them all (``write_summary``).
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path

STARTED = time.monotonic()  # this process's start (conftest imports this module first thing)
# (visualizer, action, seconds): input event to the new picture on the page (tests/browser).
LATENCIES: list[tuple[str, str, float]] = []


def gather() -> dict:
    """This process's figures as JSON-ready data."""
    runs = sys.modules.get("tests.lessons.solution_runs")
    return {
        "runs": [[name, run.seconds, run.where] for name, run in runs.runs().items()] if runs else [],
        "latencies": [list(row) for row in LATENCIES],
        "worker": os.environ.get("PYTEST_XDIST_WORKER"),
        "seconds": time.monotonic() - STARTED,
    }


def write_summary(terminalreporter, figures: list[dict]) -> None:
    """The sections at the end of the run, from the figures of every process."""
    latencies = [tuple(row) for f in figures for row in f["latencies"]]
    if latencies:
        grouped: dict[tuple[str, str], list[float]] = {}
        for name, action, seconds in latencies:
            grouped.setdefault((name, action), []).append(seconds)
        rows = [
            {"visualizer": n, "action": a, "median_s": statistics.median(ts), "worst_s": max(ts), "n": len(ts)}
            for (n, a), ts in grouped.items()
        ]
        terminalreporter.section("browser: input to updated picture (median, worst)")
        for r in rows:
            terminalreporter.write_line(
                f"{r['visualizer']:<22} {r['action']:<40} {r['median_s'] * 1000:6.0f} ms "
                f"{r['worst_s'] * 1000:6.0f} ms  (n={r['n']})"
            )
        out = os.environ.get("DLCOURSE_LATENCY_JSON")
        if out:
            Path(out).write_text(json.dumps(rows, indent=1))
    runs = sorted((name, seconds, where) for f in figures for name, seconds, where in f["runs"])
    if runs:
        terminalreporter.section("solution notebooks: one run each, top to bottom")
        for name, seconds, where in runs:
            terminalreporter.write_line(f"{seconds:7.1f} s  {name}  ({where})")
    workers = sorted((f["worker"], f["seconds"]) for f in figures if f.get("worker"))
    if len(workers) > 1:
        terminalreporter.section("test workers: finished after")
        for name, seconds in workers:
            terminalreporter.write_line(f"{seconds:7.0f} s  {name}")
