"""What a learning platform's export of submissions says about each student, and how it takes files back.

Canvas ("Download Submissions" on an assignment) writes one flat file per submitted file:

    lovelaceada_12345_67890_02_conv_pool_arithmetic.ipynb
    lovelaceada_LATE_12345_67890_02_conv_pool_arithmetic.ipynb     (submitted after the due date)
    anon_aB3dE_67890_02_conv_pool_arithmetic.ipynb                  (anonymous grading)

that is the student's sortable name (``Last, First``) in lower case without punctuation, ``LATE``
when late, the Canvas user id, the id of the submitted file (its attachment id) and the file's own
name.  "Re-Upload Submissions" on the same page takes a zip of files named the same way and attaches
each one, as a comment, to the submission whose user id and attachment id its name carries.

Moodle ("Download all submissions" of an assignment) writes one folder per student and submission
plugin, the student's full name (underscores turned into spaces) and the assignment's participant
number (the ``Participant 12345`` of the grading worksheet, not the Moodle user id):

    Ada Lovelace_12345_assignsubmission_file_/02_conv_pool_arithmetic.ipynb   (Moodle 3.1 to 4.0)
    Ada Lovelace_12345_assignsubmission_file/02_conv_pool_arithmetic.ipynb    (Moodle 4.1 and later)
    Ada Lovelace_12345_assignsubmission_file_02_conv_pool_arithmetic.ipynb    ("download in folders" off)

"Upload multiple feedback files in a zip" takes ``<name>_<participant>_assignfeedback_file_/<file>``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

CANVAS, MOODLE = "canvas", "moodle"
PLATFORMS = {CANVAS: "Canvas", MOODLE: "Moodle"}

_CANVAS = re.compile(r"(?P<name>.*?)(?P<late>_LATE)?_(?P<user>\d+)_(?P<file_id>\d+)_(?P<file>.+)", re.S)
_CANVAS_ANONYMOUS = re.compile(r"(?P<late>LATE_)?(?P<user>anon_[A-Za-z0-9]+)_(?P<file_id>\d+)_(?P<file>.+)", re.S)
_MOODLE = re.compile(r"(?P<name>[^_]*)_(?P<user>\d+)_assignsubmission_(?P<plugin>[a-z0-9]+)(?:_(?P<file>.*))?", re.S)
_CANVAS_COPY = re.compile(r"(?P<stem>.+)-\d+(?P<suffix>\.[^.]+)")  # Canvas numbers a re-uploaded file name-1.ext


@dataclass(frozen=True)
class Entry:
    """What one file or folder name of an export says."""

    lms: str  # CANVAS or MOODLE
    user_id: str  # Canvas: user id (or anon_...); Moodle: the assignment's participant number
    name: str  # the student's name as the platform wrote it
    file: str  # the submitted file's own name ('' for a Moodle folder)
    late: bool = False  # Canvas: submitted after the due date
    file_id: str = ""  # Canvas: the submitted file's attachment id
    plugin: str = ""  # Moodle: the submission plugin (file, onlinetext, ...)


@dataclass
class Identity:
    """Who a submission is, to the platform it came from."""

    lms: str
    user_id: str
    name: str
    late: bool = False
    file_ids: dict[str, str] = field(default_factory=dict)  # Canvas: submitted file name -> attachment id

    @property
    def platform(self) -> str:
        return PLATFORMS[self.lms]


def parse(name: str, is_dir: bool) -> Entry | None:
    """The export entry ``name`` (a file, or a folder when ``is_dir``) describes, or None for other names."""
    if name.startswith("."):
        return None
    m = _MOODLE.fullmatch(name)
    if m and (is_dir or m["file"]):
        return Entry(MOODLE, m["user"], m["name"].strip(), "" if is_dir else m["file"], plugin=m["plugin"])
    if is_dir:
        return None
    m = _CANVAS_ANONYMOUS.fullmatch(name) or _CANVAS.fullmatch(name)
    if m:
        return Entry(CANVAS, m["user"], m.groupdict().get("name") or "", m["file"], bool(m["late"]), m["file_id"])
    return None


@dataclass
class Group:
    """One student's entries of an export, gathered: their files under their own names."""

    identity: Identity
    files: dict[str, Path] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def group(
    entries: list[Path], list_files: Callable[[Path, list[str]], dict[str, Path]]
) -> tuple[list[Group], list[Path]]:
    """Gather the export-named entries by student; return the groups and the entries left for the plain layouts.

    ``list_files(folder, notes)`` lists a folder's regular files by relative name (``grader.submissions``).
    Symbolic links are left to the caller, which refuses them.
    """
    groups: dict[tuple[str, str], Group] = {}
    rest = []
    for path in entries:
        entry = None if path.is_symlink() else parse(path.name, path.is_dir())
        if entry is None:
            rest.append(path)
            continue
        g = groups.setdefault((entry.lms, entry.user_id), Group(Identity(entry.lms, entry.user_id, entry.name)))
        g.identity.late |= entry.late
        if entry.plugin and entry.plugin != "file":
            g.notes.append(f"{entry.plugin} submission ignored (only submitted files are graded)")
        elif path.is_dir():
            g.files.update(list_files(path, g.notes))
        else:
            g.files[entry.file] = path
            if entry.file_id:
                g.identity.file_ids[entry.file] = entry.file_id
    for g in groups.values():
        for name in list(g.files):  # Canvas renames a file submitted again: model-1.keras
            m = _CANVAS_COPY.fullmatch(name) if g.identity.lms == CANVAS else None
            if m and m["stem"] + m["suffix"] not in g.files:
                plain = m["stem"] + m["suffix"]
                g.files[plain] = g.files.pop(name)
                if name in g.identity.file_ids:
                    g.identity.file_ids[plain] = g.identity.file_ids.pop(name)
                g.notes.append(f"{name} read as {plain}")
        if g.identity.late:
            g.notes.append(f"marked LATE by {g.identity.platform}")
    return list(groups.values()), rest


def canvas_feedback_name(identity: Identity, notebook: str, html: str) -> str | None:
    """The name "Re-Upload Submissions" matches to the student's submission (None when it cannot be matched).

    Canvas reads the first two all-digit parts of the name (split at ``_``) as the user id and the
    attachment id, and takes the file only if that attachment belongs to the user's submission: the
    notebook's own attachment id is used (any submitted file of theirs would do).  Canvas files the
    comment under that attachment's display name (the submitted notebook's name).
    """
    if identity.lms != CANVAS or not identity.user_id.isdigit():
        return None
    file_id = (
        identity.file_ids.get(notebook)
        or next((i for n, i in sorted(identity.file_ids.items()) if n.endswith(".ipynb")), None)
        or next(iter(sorted(identity.file_ids.values())), None)
    )
    if file_id is None:
        return None
    parts = re.sub(r"\W", "", identity.name).split("_")  # no all-digit part may come before the ids
    name = "_".join(p for p in parts if p and not p.isdigit()) or "student"
    late = "_LATE" if identity.late else ""
    return f"{name}{late}_{identity.user_id}_{file_id}_{Path(html).stem}_feedback.html"


def moodle_feedback_name(identity: Identity, html: str) -> str | None:
    """The path "Upload multiple feedback files in a zip" matches to the participant's feedback files."""
    if identity.lms != MOODLE:
        return None
    name = identity.name.replace("_", " ").replace("/", " ") or "Participant"
    return f"{name}_{identity.user_id}_assignfeedback_file_/{Path(html).name}"
