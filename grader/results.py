"""Publishing a grading run: grades.csv, results.jsonl, feedback, logs and the submissions' manifest.

Everything a student controls (names, file names, messages) is written so that opening it is
safe: a CSV field never starts with ``= + - @`` (spreadsheets would run it as a formula), and
feedback HTML was sanitized by ``grader.preprocessors.FeedbackSafety``.

``grades.csv`` is the table an instructor reads and edits; ``results.jsonl`` (one JSON object per
student) holds everything else the class report and the exports need: the failure message of each
test, the review notes, the timings and who the student is to Canvas or Moodle.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from .job import Result, Settings
from .lms import Identity
from .submissions import Submission, sha256

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "'")


def cell(value) -> str:
    """A CSV field that a spreadsheet shows as text, never evaluates (``uncell`` reads it back)."""
    text = value if isinstance(value, str) else f"{value:g}" if isinstance(value, float) else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def uncell(text: str) -> str:
    """The value ``cell`` wrote."""
    return text[1:] if text.startswith("'") and text[1:].startswith(_FORMULA_START) else text


def header(settings: Settings) -> list[str]:
    return [
        "student_id",
        "name",
        "lms",
        "lms_user_id",
        "assignment",
        "score",
        "max_score",
        *settings.grade_ids,
        "status",
    ]


def row(result: Result, settings: Settings, identity: Identity | None = None) -> list[str]:
    return [
        cell(result.student_id),
        cell(result.name),
        identity.lms if identity else "",
        cell(identity.user_id) if identity else "",
        cell(settings.assignment),
        cell(float(result.score)),
        cell(float(settings.max_score)),
        *[cell(float(result.scores.get(g, 0.0))) for g in settings.grade_ids],
        cell(result.status),
    ]


def record(result: Result, settings: Settings, identity: Identity | None = None) -> dict:
    """One line of results.jsonl: the student's whole outcome as plain data."""
    points = {g: p for nb in settings.max_scores.values() for g, p in nb.items()}
    return {
        "student_id": result.student_id,
        "name": result.name,
        "assignment": settings.assignment,
        "lms": identity.lms if identity else "",
        "lms_user_id": identity.user_id if identity else "",
        "lms_late": bool(identity and identity.late),
        "lms_files": dict(identity.file_ids) if identity else {},
        "score": result.score,
        "max_score": settings.max_score,
        "scores": result.scores,
        "points": points,
        "graded": result.graded,
        "status": result.status,
        "problems": result.problems,
        "review": result.review,
        "notes": result.notes,
        "failures": result.failures,
        "seconds": round(result.seconds, 2),
        "timings": result.timings,
        "feedback": sorted(Path(n).name for n in result.feedback),
    }


def read_grades(path: Path) -> list[dict[str, str]]:
    """The rows of a grades.csv as written (formula guards removed), as the instructor may have edited them."""
    with open(path, newline="", encoding="utf-8-sig") as f:
        return [{k: uncell(v or "") for k, v in r.items()} for r in csv.DictReader(f)]


def read_results(path: Path) -> dict[str, dict]:
    """results.jsonl by student_id ({} when there is none)."""
    if not Path(path).is_file():
        return {}
    records = (json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip())
    return {r["student_id"]: r for r in records}


class Publisher:
    """Writes each student's row, record, feedback and log as soon as they are done; sorted tables at the end."""

    def __init__(self, out: Path, settings: Settings, subs: list[Submission] = ()):
        self.out, self.settings = Path(out), settings
        self.identities = {s.student_id: s.lms for s in subs if s.lms}
        self.csv = self.out / "grades.csv"
        self.jsonl = self.out / "results.jsonl"
        with open(self.csv, "w", newline="", encoding="utf-8") as f:
            csv.writer(f).writerow(header(settings))
        self.jsonl.write_text("", encoding="utf-8")

    def add(self, result: Result) -> None:
        identity = self.identities.get(result.student_id)
        with open(self.csv, "a", newline="", encoding="utf-8") as f:
            csv.writer(f).writerow(row(result, self.settings, identity))
        with open(self.jsonl, "a", encoding="utf-8") as f:
            f.write(json.dumps(record(result, self.settings, identity), ensure_ascii=False) + "\n")
        if result.feedback:
            folder = self.out / "feedback" / result.student_id
            folder.mkdir(parents=True, exist_ok=True)
            for name, data in result.feedback.items():
                (folder / Path(name).name).write_bytes(data)
        if result.log:
            logs = self.out / "logs"
            logs.mkdir(exist_ok=True)
            (logs / f"{result.student_id}.log").write_text(result.log, encoding="utf-8")

    def finish(self, results: list[Result]) -> None:
        results = sorted(results, key=lambda r: r.student_id)
        with open(self.csv, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(header(self.settings))
            for r in results:
                w.writerow(row(r, self.settings, self.identities.get(r.student_id)))
        with open(self.jsonl, "w", encoding="utf-8") as f:
            for r in results:
                f.write(
                    json.dumps(record(r, self.settings, self.identities.get(r.student_id)), ensure_ascii=False) + "\n"
                )


def write_manifest(
    path: Path, subs: list[Submission], archive: Path | None = None, archive_digest: str | None = None
) -> bool:
    """Each submitted file's SHA-256 before grading, and whether it still matches (it must)."""
    unchanged = True
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["student_id", "file", "sha256", "unchanged_after_grading"])
        if archive is not None:
            same = sha256(archive) == archive_digest
            unchanged &= same
            w.writerow(["(zip)", cell(archive.name), archive_digest, "yes" if same else "NO"])
        for s in subs:
            for name, digest in s.sha256.items():
                path_ = s.files[name]
                same = path_.is_file() and not path_.is_symlink() and sha256(path_) == digest
                unchanged &= same
                shown = path_.name if name == "?" or s.lms else name  # a platform's file keeps its own long name
                w.writerow([cell(s.student_id), cell(shown), digest, "yes" if same else "NO"])
    return unchanged
