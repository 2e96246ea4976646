"""A demonstration class of lesson 02, as Canvas's "Download Submissions" delivers it, graded for real.

    PYTHONPATH=. .venv/bin/python -m tests.grader.demo_class [DEST]

builds the zip (eleven students: the solution, the blank lesson, partial work, five common bugs
among six students, a cell that never ends, a cheat), grades it with ``grader.autograde`` and keeps what the class
report is written from, ``grades.csv`` and ``results.jsonl``, in DEST (default
``tests/grader/data/demo_class/``).  The browser test that draws docs/images/class_report.png
writes its report from that recording.  Grading takes about ten minutes on 2 busy cores.
"""

from __future__ import annotations

import copy
import json
import shutil
import sys
import tempfile
import zipfile
from pathlib import Path

from grader import autograde
from tests.grader.classes import CONV_POOL, LIMITS, TIMEOUT, Class, cell, lean, solved, with_cell_after_setup
from tests.grader.test_referee import TRICKS

LESSON, NB = CONV_POOL.name, CONV_POOL.nb
DEST = Path(__file__).resolve().parent / "data" / "demo_class"


def _bug(nb: dict, gid: str, old: str, new: str) -> dict:
    nb = copy.deepcopy(nb)
    code = cell(nb, gid)
    assert old in code["source"], (gid, old)
    code["source"] = code["source"].replace(old, new)
    return nb


def submissions() -> dict[str, dict]:
    """Canvas file name -> notebook."""
    k = Class(Path(tempfile.gettempdir()) / "unused", CONV_POOL)
    solution, blank = lean(k.solution), lean(k.blank)
    partial = solved(blank, solution, "conv_output_size", "conv_param_count")
    unpadded = _bug(
        solution, "conv2d", "xp = np.pad(x, ((0, 0), (padding, padding), (padding, padding), (0, 0)))", "xp = x"
    )
    no_bias = _bug(
        _bug(solution, "conv_param_count", "return (f * f * d_in) * k + k", "return (f * f * d_in) * k"),
        "layer_table",
        "(f * f * c) * k + k",
        "(f * f * c) * k",
    )
    never_ends = copy.deepcopy(solution)
    cell(never_ends, "layer_table")["source"] = "while True:\n    pass\n" + cell(never_ends, "layer_table")["source"]
    classes = {
        "lovelaceada": solution,
        "müllerjürgen_LATE": partial,
        "ødegårdzoë": unpadded,
        "brownoliver": _bug(unpadded, "receptive_field", "        jump *= s\n", ""),
        "nguyễnhoa": _bug(solution, "pool2d", "return _pool(x, f, s, np.mean)", "return _pool(x, f, s, np.max)"),
        "okaforchidi": _bug(
            solution,
            "conv_output_size",
            '    if span % s:\n        raise ValueError(f"(W1 - F + 2P) / S = {span}/{s} is not a whole number")\n',
            "",
        ),
        "garcíaana": no_bias,
        "williamsnoah": _bug(solution, "receptive_field", "        jump *= s\n", ""),
        "chenmia": never_ends,
        "smithbob": blank,
        "taylorsam": with_cell_after_setup(blank, TRICKS["checks patched"]),
    }
    return {f"{name}_{1001 + i}_{5001 + i}_{NB}": nb for i, (name, nb) in enumerate(classes.items())}


def main(dest: Path = DEST) -> None:
    with tempfile.TemporaryDirectory(prefix="demo-class-") as tmp:
        archive = Path(tmp) / "submissions.zip"
        with zipfile.ZipFile(archive, "w") as zf:
            for name, nb in submissions().items():
                zf.writestr(name, json.dumps(nb, indent=1))
        out = Path(tmp) / "out"
        autograde.autograde(
            LESSON, archive, out, jobs=2, timeout=TIMEOUT, wall_clock=240, limits=LIMITS, progress=print
        )
        dest.mkdir(parents=True, exist_ok=True)
        for name in ("grades.csv", "results.jsonl"):
            shutil.copyfile(out / name, dest / name)
    print(f"recorded in {dest}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else DEST)
