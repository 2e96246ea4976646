"""Finding and reading a class's submissions, never writing to them.

A class arrives as a folder in nbgrader's layout (``<student>/<assignment>/*.ipynb`` plus the
files the notebooks saved), a folder of loose ``<student>.ipynb`` files, a Canvas or Moodle export
of an assignment's submissions (``grader.lms``: each student's files gathered, the platform's user
id and name kept), or a ``.zip`` of any of these.  Every entry either becomes a ``Submission``
(possibly with a ``problem`` that stops it from being graded, which still gives it a row) or is
skipped with a stated reason.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import stat
import unicodedata
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from . import lms

MAX_UNZIPPED = 2 * 2**30  # bytes a class zip may expand to
MAX_NOTEBOOK_BYTES = 32 * 2**20  # a lesson notebook is well under 1 MB without outputs
MAX_CELLS = 1000  # the longest lesson has 40 cells


class GradingError(RuntimeError):
    """The grader itself cannot run (bad assignment, unreadable input): exit non-zero."""


@dataclass
class Submission:
    """One student's work: where it came from and which files it holds."""

    student_id: str  # safe as a folder name, unique in the class
    name: str  # the name as submitted (folder or file name), Unicode intact
    files: dict[str, Path]  # name inside the assignment folder -> original file ("?" for a loose notebook)
    sha256: dict[str, str] = field(default_factory=dict)
    problem: str | None = None  # why it cannot be graded, found before grading
    notes: list[str] = field(default_factory=list)  # what was ignored, and why
    lms: lms.Identity | None = None  # who the student is to Canvas or Moodle, for an export of theirs


def safe_id(raw: str) -> str:
    """A folder-safe id for a student: letters, digits, ``. _ -``; never empty, hidden or an option.

    When the name had to change, a short hash of the original is appended, so that two
    different names (``bob!`` and ``bob_``) never end up with the same id.
    """
    folded = unicodedata.normalize("NFKD", raw).encode("ascii", "ignore").decode()
    clean = re.sub(r"[^A-Za-z0-9._-]+", "_", folded).strip("._-")[:48]
    if clean == raw and clean:
        return clean
    return f"{clean or 'student'}-{hashlib.sha256(raw.encode('utf-8', 'surrogatepass')).hexdigest()[:6]}"


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def safe_extract(archive: Path, dest: Path) -> None:
    """Extract a zip, refusing absolute paths, ``..``, links, name clashes, bad data and zip bombs."""
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as exc:
        raise GradingError(f"{archive} is not a readable zip file ({exc})") from None
    with zf:
        for info in zf.infolist():
            info.filename = _utf8_name(info)
        total, kinds = 0, {}
        for info in zf.infolist():
            name = info.filename
            parts = Path(name.replace("\\", "/")).parts
            if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name) or ".." in parts:
                raise GradingError(f"{archive}: refusing entry {name!r} (absolute path or '..'); nothing was extracted")
            if stat.S_ISLNK(info.external_attr >> 16):
                raise GradingError(f"{archive}: refusing entry {name!r} (a symbolic link); nothing was extracted")
            total += info.file_size
            clean = "/".join(parts)
            for i in range(1, len(parts)):
                parent = "/".join(parts[:i])
                if kinds.setdefault(parent, ("dir", name))[0] != "dir":
                    raise GradingError(
                        f"{archive}: entry {name!r} needs {parent!r} to be a folder, but it is a file "
                        f"({kinds[parent][1]!r}); nothing was extracted"
                    )
            kind = "dir" if info.is_dir() else "file"
            if kinds.get(clean, (kind, name))[0] != kind:
                raise GradingError(
                    f"{archive}: entry {name!r} is a file and a folder at once "
                    f"(clashes with {kinds[clean][1]!r}); nothing was extracted"
                )
            kinds[clean] = (kind, name)
        if total > MAX_UNZIPPED:
            raise GradingError(
                f"{archive} expands to {total / 2**30:.1f} GiB, over the {MAX_UNZIPPED / 2**30:.0f} GiB limit"
            )
        for info in zf.infolist():
            if "__MACOSX" in info.filename:
                continue
            target = dest / info.filename
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                with zf.open(info) as src, open(target, "wb") as out:
                    shutil.copyfileobj(src, out)
            except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError) as exc:
                raise GradingError(f"{archive}: cannot extract entry {info.filename!r} ({exc})") from None


def _utf8_name(info: zipfile.ZipInfo) -> str:
    """The entry's name; UTF-8 names stored without the zip's UTF-8 flag (as some platforms write them) too."""
    if info.flag_bits & 0x800:
        return info.filename
    try:
        return info.filename.encode("cp437").decode("utf-8")
    except UnicodeError:
        return info.filename


def _files(folder: Path, notes: list[str]) -> dict[str, Path]:
    """Regular files under ``folder`` by relative name; links are never followed, only noted."""
    found = {}
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if any(part.startswith(".") or part == "__pycache__" for part in rel.parts):
            continue
        if path.is_symlink():
            notes.append(f"{rel.as_posix()}: a symbolic link, ignored")
            continue
        if path.is_file():
            found[rel.as_posix()] = path
    return found


def collect(path: Path, assignment: str, staging: Path) -> tuple[list[Submission], list[str]]:
    """The submissions under ``path`` (a folder or a .zip, extracted into ``staging``), and what was skipped."""
    path = Path(path)
    if not path.exists():
        raise GradingError(f"submissions not found: {path}")
    if path.is_file():
        if path.suffix.lower() != ".zip":
            raise GradingError(f"{path} is a file but not a .zip: pass a folder of submissions or a .zip of one")
        safe_extract(path, staging)
        path = staging
        entries = [p for p in path.iterdir() if not p.name.startswith((".", "__MACOSX"))]
        if (
            len(entries) == 1
            and entries[0].is_dir()
            and not (entries[0] / assignment).is_dir()
            and lms.parse(entries[0].name, is_dir=True) is None
        ):
            path = entries[0]  # the zip held one folder that holds the submissions
    raw: list[tuple[str, dict[str, Path], str | None, list[str], lms.Identity | None]] = []
    skipped = []
    groups, entries = lms.group(sorted(path.iterdir()), _files)
    for g in groups:
        raw.append((g.identity.name, g.files, None if g.files else "empty submission: no files", g.notes, g.identity))
    for entry in entries:
        name = entry.name
        if entry.is_symlink():
            raw.append((name, {}, "refused: a symbolic link (copy the submission itself into the folder)", [], None))
        elif entry.is_dir():
            if name.startswith("."):
                if name not in (".ipynb_checkpoints", ".git", ".DS_Store"):
                    raw.append(
                        (name, {}, "refused: a hidden folder name (rename it without the leading dot)", [], None)
                    )
                else:
                    skipped.append(f"{name}: not a submission")
                continue
            folder = entry / assignment
            if folder.is_symlink():
                raw.append((name, {}, f"refused: {assignment} is a symbolic link", [], None))
                continue
            notes: list[str] = []
            files = _files(folder if folder.is_dir() else entry, notes)
            raw.append((name, files, None if files else "empty submission: no files", notes, None))
        elif entry.suffix == ".ipynb" and not name.startswith("."):
            raw.append((entry.stem, {"?": entry}, None, [], None))  # loose notebook: matched to the assignment later
        else:
            skipped.append(f"{name}: not a folder or a notebook, skipped")
    if not raw:
        raise GradingError(f"no submissions in {path}: expected <student>/{assignment}/*.ipynb or <student>.ipynb")
    submissions, seen = [], set()
    for name, files, problem, notes, identity in raw:
        sid = safe_id(f"{name}_{identity.user_id}" if identity else name)
        if sid in seen:  # the same name twice (a folder and a loose notebook): keep both, apart
            sid = safe_id(name + "\0" + str(len(seen)))
        seen.add(sid)
        sub = Submission(sid, name, files, {k: sha256(p) for k, p in files.items()}, problem, notes, identity)
        submissions.append(sub)
    return submissions, skipped


def read_notebook(path: Path) -> tuple[dict | None, str | None]:
    """(notebook JSON, None) or (None, what is wrong with the file)."""
    import nbformat

    size = path.stat().st_size
    if size > MAX_NOTEBOOK_BYTES:
        return None, f"notebook too large ({size / 2**20:.0f} MiB; the limit is {MAX_NOTEBOOK_BYTES >> 20} MiB)"
    data = path.read_bytes()
    if not data.strip():
        return None, "not a notebook: the file is empty"
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, f"not a notebook: not UTF-8 text (byte {exc.start})"
    try:
        nb = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        return None, f"not a notebook: invalid JSON (line {getattr(exc, 'lineno', '?')})"
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        return None, "not a notebook: no list of cells"
    if len(nb["cells"]) > MAX_CELLS:
        return None, f"notebook too large ({len(nb['cells'])} cells; the limit is {MAX_CELLS})"
    try:
        nbformat.validate(nbformat.from_dict(nb))
    except Exception as exc:
        return None, f"not a notebook: {str(exc).splitlines()[0][:120]}"
    return nb, None


def without_duplicates(nb: dict) -> tuple[dict, list[str]]:
    """Keep the first cell of each grade_id as the graded one; later copies become plain cells.

    nbgrader refuses a notebook whose graded cells repeat; a student's copied cell still
    runs (its code counts), it just is not graded twice.
    """
    seen, notes = set(), []
    for cell in nb["cells"]:
        meta = cell.get("metadata", {})
        gid = meta.get("nbgrader", {}).get("grade_id") if isinstance(meta.get("nbgrader"), dict) else None
        if gid is None:
            continue
        if gid in seen:
            meta.pop("nbgrader")
            notes.append(f"duplicate cell {gid} run as a plain cell")
        seen.add(gid)
    return nb, notes


def grade_ids(nb: dict) -> set[str]:
    ids = set()
    for cell in nb["cells"]:
        meta = cell.get("metadata", {}).get("nbgrader")
        if isinstance(meta, dict) and isinstance(meta.get("grade_id"), str):
            ids.add(meta["grade_id"])
    return ids


def match_notebooks(sub: Submission, expected: dict[str, set[str]]) -> tuple[dict[str, tuple[Path, dict]], list[str]]:
    """Map each expected notebook name to a submitted notebook (path and JSON), and list notes.

    A notebook under its own name is taken as is; otherwise the submitted notebook that
    shares the most graded cells with it (renamed, or a loose ``<student>.ipynb``).  Each
    submitted notebook is graded as one expected notebook at most.
    """
    chosen, notes, readable = {}, [], {}
    for name, path in sub.files.items():
        if name == "?" or name.endswith(".ipynb"):
            nb, problem = read_notebook(path)
            if problem:
                notes.append(f"{Path(path).name}: {problem}")
            else:
                readable[name] = nb
    used = {target for target in expected if target in readable}
    for target, ids in expected.items():
        if target in readable:
            chosen[target] = (sub.files[target], readable[target])
            continue
        candidates = [(len(ids & grade_ids(nb)), name) for name, nb in readable.items() if name not in used]
        best = max(candidates, default=(0, None))
        if best[1] is not None and (best[0] > 0 or (len(expected) == 1 and len(readable) == 1)):
            used.add(best[1])
            chosen[target] = (sub.files[best[1]], readable[best[1]])
            notes.append(f"{Path(sub.files[best[1]]).name} graded as {target}")
    return chosen, notes
