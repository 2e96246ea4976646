"""Publishing a grading run: grades.csv, feedback, logs and the submissions' manifest.

Everything a student controls (names, file names, messages) is written so that opening it is
safe: a CSV field never starts with ``= + - @`` (spreadsheets would run it as a formula), and
feedback HTML was sanitized by ``grader.preprocessors.FeedbackSafety``.
"""

from __future__ import annotations

import csv
from pathlib import Path

from .job import Result, Settings
from .submissions import Submission, sha256

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def cell(value) -> str:
    """A CSV field that a spreadsheet shows as text, never evaluates."""
    text = value if isinstance(value, str) else f"{value:g}" if isinstance(value, float) else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def header(settings: Settings) -> list[str]:
    return ["student_id", "name", "assignment", "score", "max_score", *settings.grade_ids, "status"]


def row(result: Result, settings: Settings) -> list[str]:
    return [cell(result.student_id), cell(result.name), cell(settings.assignment), cell(float(result.score)),
            cell(float(settings.max_score)), *[cell(float(result.scores.get(g, 0.0))) for g in settings.grade_ids],
            cell(result.status)]


class Publisher:
    """Writes each student's row, feedback and log as soon as they are done; the sorted table at the end."""

    def __init__(self, out: Path, settings: Settings):
        self.out, self.settings = Path(out), settings
        self.csv = self.out / "grades.csv"
        with open(self.csv, "w", newline="", encoding="utf-8") as f:
            csv.writer(f).writerow(header(settings))

    def add(self, result: Result) -> None:
        with open(self.csv, "a", newline="", encoding="utf-8") as f:
            csv.writer(f).writerow(row(result, self.settings))
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
        with open(self.csv, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(header(self.settings))
            for r in sorted(results, key=lambda r: r.student_id):
                w.writerow(row(r, self.settings))


def write_manifest(path: Path, subs: list[Submission], archive: Path | None = None,
                   archive_digest: str | None = None) -> bool:
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
                w.writerow([cell(s.student_id), cell(path_.name if name == "?" else name), digest, "yes" if same else "NO"])
    return unchanged
