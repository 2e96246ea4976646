"""Grades and feedback in the files Canvas and Moodle import: ``python -m grader export canvas|moodle OUT``.

Both read an output folder of ``python -m grader autograde`` whose submissions came from that
platform's export (so that grades.csv holds each student's ``lms_user_id``):

- Canvas: ``canvas_grades.csv`` in the Gradebook's import layout (``Student, ID, SIS User ID, SIS Login
  ID, Section``, then one column per assignment, titled ``Name (assignment id)``, and a ``Points
  Possible`` row); Canvas finds each student by ``ID``, its user id.  ``canvas_feedback.zip``: each
  student's feedback HTML named ``<name>_<user id>_<attachment id>_<notebook>_feedback.html``, the
  way "Re-Upload Submissions" matches a file to the submission it comments on.
- Moodle: ``moodle_grades.csv``, the assignment's offline grading worksheet (``Identifier`` =
  ``Participant <number>``, ``Grade``, ``Last modified (grade)``, ``Feedback comments``), for
  "Upload grading worksheet"; ``moodle_feedback.zip``: ``<name>_<number>_assignfeedback_file_/<notebook>.html``
  for "Upload multiple feedback files in a zip".  The number is the assignment's participant number
  that Moodle's download wrote into the folder names (not the Moodle user id), which is why the
  worksheet, not the gradebook's CSV import, is the way back in.
"""

from __future__ import annotations

import csv
import zipfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from . import lms
from .results import cell, read_grades, read_results

FIXED_COLUMNS = ("student_id", "name", "lms", "lms_user_id", "assignment", "score", "max_score", "status")


class ExportError(RuntimeError):
    """The output folder cannot be exported for that platform; the message says why and what to do."""


@dataclass
class Exported:
    grades: Path
    feedback: Path | None
    students: int  # rows written
    feedback_files: int
    left_out: list[str] = field(default_factory=list)  # "<student>: why"


def _points(value: float, max_score: float, out_of: float | None) -> str:
    if out_of is not None and max_score:
        value = value * out_of / max_score
    return f"{round(value, 2):g}"


def _rows(out: Path, platform: str) -> tuple[list[dict], list[str], dict[str, dict]]:
    out = Path(out)
    if not (out / "grades.csv").is_file():
        raise ExportError(f"no grades.csv in {out}: pass the --out folder of `python -m grader autograde`")
    rows = read_grades(out / "grades.csv")
    mine = [r for r in rows if r.get("lms") == platform and r.get("lms_user_id")]
    left_out = [
        f"{r['name'] or r['student_id']}: not from a {lms.PLATFORMS[platform]} export (no {platform} user id)"
        for r in rows
        if r not in mine
    ]
    if not mine:
        raise ExportError(
            f"no student in {out / 'grades.csv'} came from a {lms.PLATFORMS[platform]} export (its lms_user_id column "
            f"is empty for {platform}). Download the submissions from {lms.PLATFORMS[platform]} "
            f"({'Download Submissions' if platform == lms.CANVAS else 'Download all submissions'}), grade that zip "
            "with `python -m grader autograde`, then export."
        )
    return mine, left_out, read_results(out / "results.jsonl")


def _identity(row: dict, record: dict) -> lms.Identity:
    return lms.Identity(
        row["lms"], row["lms_user_id"], row["name"], bool(record.get("lms_late")), dict(record.get("lms_files", {}))
    )


def _feedback_files(out: Path, row: dict) -> list[Path]:
    folder = Path(out) / "feedback" / row["student_id"]
    return sorted(p for p in folder.glob("*.html") if p.is_file() and not p.is_symlink()) if folder.is_dir() else []


def canvas(out: Path, column: str | None = None, out_of: float | None = None) -> Exported:
    """Write ``out/canvas_grades.csv`` and ``out/canvas_feedback.zip``.

    ``column``: the Canvas assignment as its gradebook export titles it, ``Name (id)``; without it
    Canvas matches an assignment of the lesson's name, or offers to create one.  ``out_of``: the
    assignment's points in Canvas, when they differ from the lesson's (scores are scaled).
    """
    out = Path(out)
    rows, left_out, records = _rows(out, lms.CANVAS)
    max_score = float(rows[0]["max_score"])
    column = column or rows[0]["assignment"]
    grades = out / "canvas_grades.csv"
    written = 0
    with open(grades, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["Student", "ID", "SIS User ID", "SIS Login ID", "Section", column])
        w.writerow(["Points Possible", "", "", "", "", _points(max_score, max_score, out_of)])
        for row in rows:
            if not row["lms_user_id"].isdigit():
                left_out.append(
                    f"{row['name'] or row['student_id']}: anonymous in Canvas ({row['lms_user_id']}); "
                    "download the submissions again once anonymous grading is turned off"
                )
                continue
            w.writerow(
                [cell(row["name"]), row["lms_user_id"], "", "", "", _points(float(row["score"]), max_score, out_of)]
            )
            written += 1
    feedback = out / "canvas_feedback.zip"
    count = 0
    with zipfile.ZipFile(feedback, "w", zipfile.ZIP_DEFLATED) as zf:
        for row in rows:
            identity = _identity(row, records.get(row["student_id"], {}))
            files = _feedback_files(out, row)
            if not files:
                left_out.append(f"{row['name'] or row['student_id']}: no feedback file (not graded)")
                continue
            for html in files:
                name = lms.canvas_feedback_name(identity, html.stem + ".ipynb", html.name)
                if name is None:
                    left_out.append(f"{row['name'] or row['student_id']}: feedback not matched to a Canvas file id")
                    break
                zf.write(html, name)
                count += 1
    return Exported(grades, feedback, written, count, left_out)


def moodle(out: Path, out_of: float | None = None, comments: bool = True) -> Exported:
    """Write ``out/moodle_grades.csv`` (the offline grading worksheet) and ``out/moodle_feedback.zip``.

    ``out_of``: the assignment's maximum grade in Moodle, when it differs from the lesson's (scores
    are scaled).  ``comments``: also fill "Feedback comments" (the score and the tests that failed).
    """
    out = Path(out)
    rows, left_out, records = _rows(out, lms.MOODLE)
    left_out += [
        f"{r['name'] or r['student_id']}: {r['lms_user_id']!r} is not a Moodle participant number"
        for r in rows
        if not r["lms_user_id"].isdigit()
    ]
    rows = [r for r in rows if r["lms_user_id"].isdigit()]
    if not rows:
        raise ExportError("no Moodle participant number in grades.csv: " + "; ".join(left_out))
    max_score = float(rows[0]["max_score"])
    cells = [c for c in rows[0] if c not in FIXED_COLUMNS]
    modified = datetime.now().astimezone().isoformat(timespec="seconds")  # Moodle reads it with strtotime
    grades = out / "moodle_grades.csv"
    header = ["Identifier", "Full name", "Grade", "Maximum grade", "Last modified (grade)"]
    with open(grades, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header + (["Feedback comments"] if comments else []))
        for row in rows:
            line = [
                f"Participant {row['lms_user_id']}",
                cell(row["name"]),
                _points(float(row["score"]), max_score, out_of),
                _points(max_score, max_score, out_of),
                modified,
            ]
            if comments:
                points = records.get(row["student_id"], {}).get("points", {})
                failed = [c for c in cells if c in points and float(row.get(c) or 0) < float(points[c])]
                text = f"Autograded: {float(row['score']):g} of {max_score:g} points."
                if points:
                    text += f" Tests not passed: {', '.join(failed)}." if failed else " Every test passed."
                if not row["status"].startswith("graded"):
                    text += f" Not graded: {row['status']}"
                line.append(cell(text))
            w.writerow(line)
    feedback = out / "moodle_feedback.zip"
    count = 0
    with zipfile.ZipFile(feedback, "w", zipfile.ZIP_DEFLATED) as zf:
        for row in rows:
            files = _feedback_files(out, row)
            if not files:
                left_out.append(f"{row['name'] or row['student_id']}: no feedback file (not graded)")
            for html in files:
                zf.write(html, lms.moodle_feedback_name(_identity(row, {}), html.name))
                count += 1
    return Exported(grades, feedback, len(rows), count, left_out)
