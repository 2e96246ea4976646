"""Each solution notebook runs once per test session; every check that needs the run reads it.

The browser tests (``tests/browser/test_lessons.py``) run each solution with *Run All* in
JupyterLab and record the notebook, outputs included, here. A check that finds no run
(Chromium missing, browser tests deselected) executes the notebook itself with nbclient,
in a kernel of the course's environment, from a copy in an empty folder (so files it
writes, like lesson 06's ``mnist_model.keras``, never land in the repository).

A notebook's run answers: did every code cell run, without an error (the hidden tests
included, since the solution holds them)?
"""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat

from grader import course

CELL_TIMEOUT = 300  # seconds; the slowest solution cell trains for about a minute on 2 cores


@dataclass
class Run:
    notebook: nbformat.NotebookNode  # as it stood after the run, outputs included
    seconds: float  # wall time of the whole run
    where: str  # "JupyterLab (Run All)" or "nbclient"


_RUNS: dict[str, Run] = {}


def key(path: Path | str) -> str:
    """A solution's name for the record: its path under solutions/, e.g. '03_cnns/03_cnns.ipynb'."""
    path = Path(path)
    return path.relative_to(course.SOLUTIONS).as_posix() if path.is_absolute() else path.as_posix()


def record(name: str, notebook: dict, seconds: float, where: str) -> None:
    """Keep a run made elsewhere (the browser's) for the checks that come later."""
    _RUNS[key(name)] = Run(nbformat.from_dict(notebook), seconds, where)


def runs() -> dict[str, Run]:
    return dict(_RUNS)


def run(name: str) -> Run:
    """The session's run of solutions/``name``, made now if no test has made it yet."""
    name = key(name)
    if name not in _RUNS:
        from nbclient import NotebookClient

        source = course.SOLUTIONS / name
        nb = nbformat.read(source, as_version=4)
        with tempfile.TemporaryDirectory(prefix="dlcourse-run-") as folder:
            shutil.copy(source, Path(folder) / source.name)
            client = NotebookClient(
                nb,
                timeout=CELL_TIMEOUT,
                kernel_name="python3",
                allow_errors=True,
                resources={"metadata": {"path": folder}},
            )
            start = time.perf_counter()
            client.execute()
            _RUNS[name] = Run(nb, time.perf_counter() - start, "nbclient")
    return _RUNS[name]


def problems(nb: nbformat.NotebookNode, *, graded_only: bool = False) -> list[str]:
    """Code cells of ``nb`` that did not run or that show an error (only nbgrader's test cells if ``graded_only``)."""
    found = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or not cell.source.strip():
            continue
        meta = cell.metadata.get("nbgrader", {})
        if graded_only and not meta.get("grade"):
            continue
        label = f"cell {i}" + (f" ({meta['grade_id']})" if meta.get("grade_id") else "")
        if cell.get("execution_count") is None:
            found.append(f"{label} did not run")
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                found.append(f"{label}: {out.get('ename')}: {out.get('evalue', '')[:300]}")
    return found
