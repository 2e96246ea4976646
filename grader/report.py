"""The class report: what a class got right and wrong, as one self-contained HTML page.

``write(out)`` reads an output folder of ``python -m grader autograde`` (``grades.csv``, the
grades as the instructor may since have edited them, and ``results.jsonl``, the failure messages,
review notes and timings) and writes ``out/report.html``: the score distribution, each test cell's
pass rate, the most frequent failure messages of each cell (grouped: messages that differ only in
their numbers are one group), the submissions to look at and the time each one took.  The page
needs nothing else: the style is inline and the charts are inline SVG drawn by matplotlib.
Everything a student wrote (names, messages) is HTML-escaped and never drawn in a chart.
"""

from __future__ import annotations

import html
import io
import re
import statistics
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from .results import read_grades, read_results

FIXED_COLUMNS = ("student_id", "name", "lms", "lms_user_id", "assignment", "score", "max_score", "status")
MESSAGES_PER_CELL = 5  # failure groups listed per test cell
NAMES_PER_GROUP = 6  # students named per failure group
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_NUMBER = re.compile(r"(?<![\w.])[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")  # not the 2 of conv2d
COLOURS = {"full": "#2a9d8f", "partial": "#e9c46a", "failed": "#e76f51", "bar": "#457b9d", "line": "#1d3557"}


@dataclass
class Student:
    """One row of grades.csv with its record from results.jsonl."""

    student_id: str
    name: str
    lms: str
    lms_user_id: str
    score: float
    status: str
    scores: dict[str, float]
    graded: bool
    review: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)
    seconds: float | None = None
    phases: dict[str, float] = field(default_factory=dict)  # cells, tests, checks: seconds, over its notebooks

    @property
    def label(self) -> str:
        return f"{self.name} ({self.lms_user_id})" if self.lms_user_id else self.name


@dataclass
class ClassResults:
    assignment: str
    max_score: float
    cells: dict[str, float]  # grade_id -> points, in the notebook's order
    students: list[Student]
    has_records: bool  # results.jsonl was there (failure messages, review notes, timings)

    @property
    def graded(self) -> list[Student]:
        return [s for s in self.students if s.graded]


def _number(text: str, default: float = 0.0) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return default


def load(out: Path) -> ClassResults:
    """The class as ``out/grades.csv`` and ``out/results.jsonl`` describe it."""
    out = Path(out)
    if not (out / "grades.csv").is_file():
        raise FileNotFoundError(f"no grades.csv in {out}: pass the --out folder of `python -m grader autograde`")
    rows = read_grades(out / "grades.csv")
    records = read_results(out / "results.jsonl")
    if not rows:
        raise ValueError(f"{out / 'grades.csv'} has no students")
    cells = [c for c in rows[0] if c not in FIXED_COLUMNS]
    points: dict[str, float] = {}
    for r in records.values():
        points.update(r.get("points", {}))
    students = []
    for row in rows:
        rec = records.get(row["student_id"], {})
        phases: dict[str, float] = {}
        for timing in rec.get("timings", {}).values():
            for phase in ("cells", "tests", "checks"):
                phases[phase] = phases.get(phase, 0.0) + float(timing.get(phase, 0.0))
        students.append(
            Student(
                row["student_id"],
                row.get("name", ""),
                row.get("lms", ""),
                row.get("lms_user_id", ""),
                _number(row["score"]),
                row.get("status", ""),
                {c: _number(row.get(c)) for c in cells},
                rec.get("graded", row.get("status", "").startswith("graded")),
                rec.get("review", []),
                rec.get("problems", []),
                rec.get("failures", {}),
                rec.get("seconds"),
                phases,
            )
        )
    max_score = _number(rows[0].get("max_score"), sum(points.get(c, 0.0) for c in cells))
    # Without records a cell's points are the most any student got (a lower bound).
    cell_points = {c: points.get(c, max([s.scores[c] for s in students] + [0.0])) for c in cells}
    return ClassResults(rows[0].get("assignment", out.name), max_score, cell_points, students, bool(records))


# -- numbers -----------------------------------------------------------------------------------


def cell_outcomes(klass: ClassResults) -> dict[str, dict[str, int]]:
    """Per test cell: how many graded submissions earned its full points, part of them, or none."""
    outcomes = {}
    for gid, points in klass.cells.items():
        counts = {"full": 0, "partial": 0, "failed": 0}
        for s in klass.graded:
            got = s.scores.get(gid, 0.0)
            counts["full" if points and got >= points else "partial" if got > 0 else "failed"] += 1
        outcomes[gid] = counts
    return outcomes


def pattern(message: str) -> str:
    """The message with its numbers replaced by #: failures that differ only in values group together."""
    text = re.sub(r"\s+", " ", _ANSI.sub("", message)).strip()
    return _NUMBER.sub("#", text)[:300]


def failure_groups(klass: ClassResults, gid: str) -> list[tuple[int, str, list[Student]]]:
    """The failures of one cell, grouped: (how many, the most frequent wording, who), most frequent first."""
    points = klass.cells[gid]
    groups: dict[str, list[tuple[str, Student]]] = {}
    for s in klass.graded:
        if points and s.scores.get(gid, 0.0) >= points:
            continue
        message = s.failures.get(gid)
        if not message:
            deleted = f"deleted test cell {gid}" in s.status
            message = (
                "the test cell was deleted from the notebook"
                if deleted
                else ("partly passed" if s.scores.get(gid, 0.0) > 0 else "no message recorded")
            )
        groups.setdefault(pattern(message), []).append((message, s))
    ranked = []
    for members in groups.values():
        wording = Counter(m for m, _ in members).most_common(1)[0][0]
        ranked.append((len(members), wording, [s for _, s in members]))
    return sorted(ranked, key=lambda g: (-g[0], g[1]))


# -- charts ------------------------------------------------------------------------------------


def _svg(fig, salt: str) -> str:
    import matplotlib

    buf = io.StringIO()
    with matplotlib.rc_context({"svg.hashsalt": salt, "svg.fonttype": "path"}):
        fig.savefig(buf, format="svg", metadata={"Date": None}, bbox_inches="tight")
    text = buf.getvalue()
    return text[text.index("<svg") :]


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    ax = fig.add_subplot()
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    return fig, ax


def score_chart(klass: ClassResults) -> str:
    """Histogram of the scores, with the mean marked."""
    scores = [s.score for s in klass.students]
    top = max(klass.max_score, max(scores, default=0.0), 1.0)
    fig, ax = _figure(7.5, 2.6)
    if top <= 40:
        bins = [x - 0.5 for x in range(int(top) + 2)]
    else:
        bins = [top * i / 20 for i in range(21)]
    ax.hist(scores, bins=bins, color=COLOURS["bar"], edgecolor="white")
    mean = statistics.fmean(scores) if scores else 0.0
    ax.axvline(mean, color=COLOURS["line"], linestyle="--", linewidth=1.2)
    ax.text(mean, ax.get_ylim()[1] * 0.95, f" mean {mean:.1f}", color=COLOURS["line"], va="top", fontsize=9)
    ax.set_xlabel(f"score (out of {klass.max_score:g})")
    ax.set_ylabel("submissions")
    ax.set_xlim(-0.5 if top <= 40 else 0, top + (0.5 if top <= 40 else 0))
    ax.yaxis.get_major_locator().set_params(integer=True)
    return _svg(fig, "scores")


def pass_rate_chart(klass: ClassResults) -> str:
    """One bar per test cell: the share of graded submissions with full, partial and no points."""
    outcomes = cell_outcomes(klass)
    gids = list(klass.cells)[::-1]  # first cell on top
    n = max(len(klass.graded), 1)
    fig, ax = _figure(7.5, 0.42 * len(gids) + 0.9)
    left = [0.0] * len(gids)
    for kind, label in (("full", "all points"), ("partial", "some points"), ("failed", "no points")):
        shares = [100 * outcomes[g][kind] / n for g in gids]
        ax.barh(range(len(gids)), shares, left=left, color=COLOURS[kind], label=label, height=0.7)
        for i, (x0, w) in enumerate(zip(left, shares)):
            if w >= 9:
                ax.text(x0 + w / 2, i, f"{w:.0f}%", ha="center", va="center", fontsize=8, color="black")
        left = [a + b for a, b in zip(left, shares)]
    ax.set_yticks(range(len(gids)), [f"{g} ({klass.cells[g]:g})" for g in gids], fontsize=9)
    ax.set_xlim(0, 100)
    ax.set_xlabel(f"% of the {len(klass.graded)} graded submissions")
    ax.legend(ncol=3, loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False, fontsize=9)
    return _svg(fig, "cells")


def time_chart(klass: ClassResults) -> str:
    """Histogram of the seconds each submission took to grade."""
    seconds = [s.seconds for s in klass.students if s.seconds is not None]
    fig, ax = _figure(7.5, 2.4)
    ax.hist(seconds, bins=min(30, max(5, len(seconds))), color=COLOURS["bar"], edgecolor="white")
    ax.set_xlabel("seconds to grade one submission (its notebooks, tests and feedback)")
    ax.set_ylabel("submissions")
    ax.yaxis.get_major_locator().set_params(integer=True)
    return _svg(fig, "time")


# -- page --------------------------------------------------------------------------------------

STYLE = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; color: #1d2733;
       max-width: 1050px; margin: 0 auto; padding: 24px 28px 60px; background: #fff; }
h1 { font-size: 26px; margin: 0 0 4px; } h2 { font-size: 20px; margin: 36px 0 8px; border-bottom: 2px solid #e3e8ee;
padding-bottom: 4px; } h3 { font-size: 16px; margin: 22px 0 6px; }
.meta { color: #5b6b7b; margin: 0 0 18px; }
.cards { display: flex; flex-wrap: wrap; gap: 10px; margin: 14px 0; }
.card { border: 1px solid #dfe5eb; border-radius: 8px; padding: 8px 14px; min-width: 110px; background: #f8fafc; }
.card b { display: block; font-size: 22px; } .card span { color: #5b6b7b; font-size: 13px; }
table { border-collapse: collapse; width: 100%; margin: 8px 0 4px; font-size: 14px; }
th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid #e3e8ee; vertical-align: top; }
th { background: #f1f4f8; font-weight: 600; } td.num, th.num { text-align: right; white-space: nowrap; }
code, .msg { font-family: "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: 13px; }
.msg { white-space: pre-wrap; word-break: break-word; }
.who { color: #5b6b7b; font-size: 13px; } .muted { color: #5b6b7b; }
.bad { color: #b23a1e; } .ok { color: #1f7a6d; }
svg { width: 100%; max-width: 780px; height: auto; display: block; margin: 6px 0; }
table.fail td:first-child { width: 5em; } table.fail td:last-child { width: 30%; }
details summary { cursor: pointer; color: #1d3557; margin: 6px 0; }
"""


def _e(value) -> str:
    return html.escape(str(value), quote=True)


def _lines(notes: list[str], shown: int = 8) -> str:
    more = f'<br><span class="muted">and {len(notes) - shown} more</span>' if len(notes) > shown else ""
    return "<br>".join(_e(n) for n in notes[:shown]) + more


def _points(points: float) -> str:
    return f"{points:g} point{'' if points == 1 else 's'}"


def _card(value, label: str) -> str:
    return f'<div class="card"><b>{_e(value)}</b><span>{_e(label)}</span></div>'


def _names(students: list[Student]) -> str:
    shown = ", ".join(_e(s.label) for s in students[:NAMES_PER_GROUP])
    more = len(students) - NAMES_PER_GROUP
    return shown + (f" and {more} more" if more > 0 else "")


def _table(headers: list[str], rows: list[list[str]], numeric: set[int] = frozenset(), cls: str = "") -> str:
    head = "".join(
        f'<th class="num">{_e(h)}</th>' if i in numeric else f"<th>{_e(h)}</th>" for i, h in enumerate(headers)
    )
    body = "".join(
        "<tr>"
        + "".join(f'<td class="num">{c}</td>' if i in numeric else f"<td>{c}</td>" for i, c in enumerate(r))
        + "</tr>"
        for r in rows
    )
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def render(klass: ClassResults, generated: datetime | None = None) -> str:
    """The report page as HTML text."""
    generated = generated or datetime.now().astimezone()
    students, graded = klass.students, klass.graded
    scores = [s.score for s in students]
    full = sum(1 for s in students if klass.max_score and s.score >= klass.max_score)
    review = [s for s in students if s.review]
    troubled = [s for s in students if not s.graded or s.problems]
    parts = [
        f"<header><h1>{_e(klass.assignment)}: class report</h1>",
        f'<p class="meta">{len(students)} submission(s), graded out of {klass.max_score:g} points. '
        f"Written {_e(generated.strftime('%Y-%m-%d %H:%M %Z'))} from grades.csv"
        f"{' and results.jsonl' if klass.has_records else ' (no results.jsonl: no failure messages or timings)'}."
        "</p></header>",
    ]
    parts.append(
        '<section class="cards">'
        + "".join(
            [
                _card(len(students), "submissions"),
                _card(len(graded), "graded"),
                _card(f"{statistics.fmean(scores):.1f}" if scores else "-", "mean score"),
                _card(f"{statistics.median(scores):g}" if scores else "-", "median score"),
                _card(full, "full marks"),
                _card(len(review), "to review"),
                _card(len(troubled), "with problems"),
            ]
        )
        + "</section>"
    )

    parts.append("<section><h2>Scores</h2>" + score_chart(klass) + "</section>")

    outcomes = cell_outcomes(klass)
    rows = []
    for gid, points in klass.cells.items():
        o = outcomes[gid]
        n = max(len(graded), 1)
        mean = statistics.fmean([s.scores.get(gid, 0.0) for s in graded]) if graded else 0.0
        rows.append(
            [
                f"<code>{_e(gid)}</code>",
                f"{points:g}",
                f"{o['full']} ({100 * o['full'] / n:.0f}%)",
                str(o["partial"]),
                str(o["failed"]),
                f"{mean:.2f}",
            ]
        )
    parts.append(
        "<section><h2>Test cells</h2>"
        f'<p class="muted">Each test cell of the lesson, in the notebook\'s order: the share of the '
        f"{len(graded)} graded submissions that earned all, some or none of its points.</p>"
        + pass_rate_chart(klass)
        + _table(["test cell", "points", "all points", "some", "none", "mean points"], rows, {1, 2, 3, 4, 5})
        + "</section>"
    )

    parts.append(
        "<section><h2>Why tests failed</h2>"
        '<p class="muted">The failure messages of each test cell as the students saw them, most frequent '
        "first; messages that differ only in their numbers are counted together (one wording shown).</p>"
    )
    any_failure = False
    for gid, points in klass.cells.items():
        groups = failure_groups(klass, gid)
        if not groups:
            continue
        any_failure = True
        failed = sum(g[0] for g in groups)
        rows = [
            [
                str(count),
                f'<span class="msg">{_e(wording)}</span>'
                + (
                    ' <span class="muted">(left as handed out)</span>'
                    if wording.startswith("NotImplementedError")
                    else ""
                ),
                f'<span class="who">{_names(who)}</span>',
            ]
            for count, wording, who in groups[:MESSAGES_PER_CELL]
        ]
        rest = groups[MESSAGES_PER_CELL:]
        if rest:
            rows.append([str(sum(g[0] for g in rest)), f'<span class="muted">{len(rest)} other message(s)</span>', ""])
        parts.append(
            f"<h3><code>{_e(gid)}</code> ({_points(points)}): {failed} of {len(graded)} without all points</h3>"
            + _table(["students", "message", "who"], rows, {0}, cls="fail")
        )
    if not graded:
        parts.append('<p class="bad">No submission could be graded: see "Needs a look".</p>')
    elif not any_failure:
        parts.append('<p class="ok">Every graded submission passed every test.</p>')
    parts.append("</section>")

    parts.append("<section><h2>Needs a look</h2>")
    if review:
        parts.append(
            "<h3>Flagged for review</h3>"
            '<p class="muted">Code that reached into the grading machinery. It never earns points, '
            "but it is worth a conversation.</p>"
            + _table(
                ["student", "score", "what"],
                [[_e(s.label), f"{s.score:g}", _lines(list(dict.fromkeys(s.review)))] for s in review],
                {1},
            )
        )
    if troubled:
        parts.append(
            "<h3>Not graded, or graded with problems</h3>"
            + _table(
                ["student", "score", "status"],
                [
                    [
                        _e(s.label),
                        f"{s.score:g}",
                        f'<span class="{"bad" if not s.graded else ""}">{_e(s.status)}</span>',
                    ]
                    for s in troubled
                ],
                {1},
            )
        )
    if not review and not troubled:
        parts.append('<p class="ok">Nothing: every submission was graded without problems or review notes.</p>')
    parts.append("</section>")

    timed = sorted((s for s in students if s.seconds is not None), key=lambda s: -(s.seconds or 0))
    parts.append("<section><h2>Time per submission</h2>")
    if timed:
        total = sum(s.seconds for s in timed)
        parts.append(
            f'<p class="muted">{total / 60:.1f} minutes of grading summed over the submissions (the jobs '
            f"ran side by side); median {statistics.median(s.seconds for s in timed):.0f} s per submission. "
            "Besides the total, the table splits out the student's cells, the test cells (run by the referee) "
            "and the checks after each student cell; the rest is nbgrader starting and writing feedback.</p>"
            + time_chart(klass)
        )
        rows = [
            [
                _e(s.label),
                f"{s.seconds:.0f}",
                f"{s.phases.get('cells', 0):.1f}",
                f"{s.phases.get('tests', 0):.1f}",
                f"{s.phases.get('checks', 0):.1f}",
                f"{s.score:g}",
                _e(s.status),
            ]
            for s in timed
        ]
        table = _table(["student", "seconds", "cells", "tests", "checks", "score", "status"], rows, {1, 2, 3, 4, 5})
        parts.append(
            table
            if len(rows) <= 25
            else f"<details><summary>every submission, slowest first ({len(rows)})</summary>{table}</details>"
        )
    else:
        parts.append('<p class="muted">No timings (results.jsonl is missing).</p>')
    parts.append("</section>")

    rows = [
        [
            _e(s.name),
            _e(s.lms_user_id),
            f"{s.score:g}",
            *[f"{s.scores.get(g, 0.0):g}" for g in klass.cells],
            _e(s.status),
        ]
        for s in sorted(students, key=lambda s: (s.name.casefold(), s.student_id))
    ]
    table = _table(["name", "LMS id", "score", *klass.cells, "status"], rows, set(range(2, 3 + len(klass.cells))))
    parts.append(
        f"<section><h2>Every submission</h2><details><summary>the grades as in grades.csv "
        f"({len(rows)} rows)</summary>{table}</details></section>"
    )
    body = "\n".join(parts)
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(klass.assignment)}: class report</title><style>{STYLE}</style></head>\n"
        f"<body>\n{body}\n</body></html>\n"
    )


def write(out: Path, dest: Path | None = None) -> Path:
    """Write the report of the output folder ``out`` (to ``out/report.html`` unless told); return its path."""
    dest = Path(dest) if dest else Path(out) / "report.html"
    dest.write_text(render(load(out)), encoding="utf-8")
    return dest
