"""The referee's plan for each notebook of a lesson, read from the instructor's master notebook.

A plan holds what the referee needs before any student code runs (``grader/referee.py``):
the test cells' code by ``grade_id`` (hidden tests included), the setup cells' code (the
read-only cells the tests may take names from), the names the exercises define (the
solution cells' top-level ``def``/``class``/assignments), and the modules to import first.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

from .submissions import GradingError

# Imported before any student code, so that the referee's record of them is pristine.
ALWAYS_PRELOAD = ["numpy", "numpy.testing", "dlcourse", "dlcourse.checks", "dlcourse.data"]
NEVER_PRELOAD = ("matplotlib", "ipywidgets", "ipycanvas", "IPython")


def _meta(cell: dict) -> dict:
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return meta if isinstance(meta, dict) else {}


def _source(cell: dict) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def defined_names(source: str) -> list[str]:
    """Top-level names a solution cell binds (functions, classes, assignments)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    names = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.append(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                names += [n.id for n in ast.walk(target) if isinstance(n, ast.Name)]
    return names


def imported_modules(source: str, keep_all: bool = False) -> list[str]:
    """The modules ``source`` imports (absolute imports only), those never preloaded left out unless ``keep_all``."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.append(node.module)
    return found if keep_all else [m for m in found if not m.startswith(NEVER_PRELOAD)]


def plan_for(nb: dict, name: str) -> dict:
    """The plan of one master notebook; raises GradingError when a test cell breaks the authoring rules."""
    tests, setup, student, preload = {}, [], [], list(ALWAYS_PRELOAD)
    first_plain = None
    for cell in nb["cells"]:
        if cell.get("cell_type") != "code":
            continue
        meta, source = _meta(cell), _source(cell)
        if meta.get("grade") and not meta.get("solution"):
            tree = ast.parse(source)
            if any(isinstance(n, ast.ClassDef) for n in ast.walk(tree)):
                raise GradingError(
                    f"{name}: test cell {meta['grade_id']} defines a class; test cells may define "
                    "functions only (docs/authoring.md)"
                )
            tests[meta["grade_id"]] = source
            preload += imported_modules(source)
        elif meta.get("solution"):
            student += defined_names(source)
        elif meta.get("locked"):
            setup.append(source)
            preload += imported_modules(source)
        elif first_plain is None:
            first_plain = source
    if not setup and first_plain is not None:  # no cell marked read-only: the first code cell sets up
        setup.append(first_plain)
        preload += imported_modules(first_plain)
    if any(_imports_matplotlib(source) for source in [*setup, *tests.values()]):
        # Its font list is built once per kernel, by running fc-list: before the referee is armed,
        # not under the student's first cell (where starting a process is refused).
        preload.append("matplotlib.font_manager")
    return {
        "tests": tests,
        "setup": setup,
        "student_names": sorted(set(student)),
        "preload": list(dict.fromkeys(preload)),
    }


def _imports_matplotlib(source: str) -> bool:
    return any(m.split(".")[0] == "matplotlib" for m in imported_modules(source, keep_all=True))


def write_plans(source_folder: Path, dest: Path) -> dict:
    """Plans for every notebook of a lesson's master folder, written to ``dest`` as JSON."""
    plans = {}
    for path in sorted(Path(source_folder).glob("*.ipynb")):
        plans[path.name] = plan_for(json.loads(path.read_text(encoding="utf-8")), path.name)
    dest.write_text(json.dumps(plans), encoding="utf-8")
    return plans
