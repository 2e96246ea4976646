"""Where the course's nbgrader folders are, and the operations on them.

``solutions/`` is nbgrader's *source* and ``lessons/`` its *release*: lessons are
generated, never edited by hand.  Every nbgrader run goes through this module so
that ``grader/nbgrader_config.py`` is the configuration in force.
"""

from __future__ import annotations

import filecmp
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GRADER_DIR = ROOT / "grader"
SOLUTIONS = ROOT / "solutions"
LESSONS = ROOT / "lessons"
CONFIG_FILE = GRADER_DIR / "nbgrader_config.py"


class NbgraderError(RuntimeError):
    """An nbgrader command failed; the message holds its output."""


def assignments() -> list[str]:
    """Names of the lesson folders in ``solutions/`` that hold a notebook, sorted."""
    return sorted({p.parent.name for p in SOLUTIONS.glob("*/*.ipynb") if not p.parent.name.startswith(".")})


def notebooks(folder: Path) -> list[Path]:
    """Every lesson notebook under ``folder`` (``folder/<lesson>/*.ipynb``), sorted."""
    return sorted(p for p in folder.glob("*/*.ipynb") if ".ipynb_checkpoints" not in p.parts)


def _env() -> dict[str, str]:
    # nbgrader calls helpers (alembic) by name: make this interpreter's scripts findable.
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def nbgrader(*args: str, cwd: Path = GRADER_DIR) -> subprocess.CompletedProcess:
    """Run ``nbgrader ARGS`` with the course's configuration; raise NbgraderError on failure.

    Several commands separated by ``--then`` run in one process (see ``grader/nbgrader_run.py``).
    """
    cmd = [sys.executable, str(GRADER_DIR / "nbgrader_run.py"), *args]
    proc = subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True)
    if proc.returncode != 0:
        raise NbgraderError(f"`nbgrader {' '.join(args)}` failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


def generate(dest: Path, names: list[str] | None = None) -> Path:
    """Generate the learner versions of ``names`` (default: all) from ``solutions/`` into ``dest``."""
    dest = Path(dest)
    commands: list[str] = []
    with tempfile.TemporaryDirectory(prefix="dlcourse-gradebook-") as tmp:
        for name in names or assignments():
            commands += [
                *(["--then"] if commands else []),
                "generate_assignment",
                name,
                "--force",
                f"--CourseDirectory.release_directory={dest}",
                f"--CourseDirectory.db_url=sqlite:///{tmp}/gradebook.db",
            ]
        nbgrader(*commands)
    return dest


def release() -> list[str]:
    """Regenerate ``lessons/`` from ``solutions/``; return the lesson names written.

    Lesson folders whose solution no longer exists are removed, so ``lessons/``
    always mirrors ``solutions/`` exactly.
    """
    names = assignments()
    with tempfile.TemporaryDirectory(prefix="dlcourse-release-") as tmp:
        fresh = generate(Path(tmp), names)
        LESSONS.mkdir(exist_ok=True)
        _back_up_changed_lessons(fresh)
        for old in LESSONS.iterdir():
            if old.is_dir() and old.name not in names:
                shutil.rmtree(old)
        for name in names:
            shutil.rmtree(LESSONS / name, ignore_errors=True)
            shutil.copytree(fresh / name, LESSONS / name)
    return names


def _back_up_changed_lessons(fresh: Path) -> None:
    """Copy aside lesson notebooks that hold someone's work before they are replaced.

    A learner who runs ``make lessons`` in their own clone would otherwise lose
    their answers; a copy of every notebook the new release changes goes to
    ``grader/work/lesson-backups/<time>/``.
    """
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for nb in notebooks(LESSONS):
        rel = nb.relative_to(LESSONS)
        new = fresh / rel
        if new.exists() and _same_json(new, nb):
            continue
        backup = GRADER_DIR / "work" / "lesson-backups" / stamp / rel
        backup.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(nb, backup)
        print(f"lessons/{rel} changes: the old copy is saved as {backup.relative_to(ROOT)}")


def out_of_sync() -> list[str]:
    """What differs between the committed ``lessons/`` and a fresh generation (empty: in sync)."""
    problems = []
    with tempfile.TemporaryDirectory(prefix="dlcourse-sync-") as tmp:
        fresh = generate(Path(tmp))
        fresh_files = {p.relative_to(fresh) for p in fresh.rglob("*") if p.is_file()}
        committed = (
            {
                p.relative_to(LESSONS)
                for p in LESSONS.rglob("*")
                if p.is_file() and ".ipynb_checkpoints" not in p.parts and "__pycache__" not in p.parts
            }
            if LESSONS.exists()
            else set()
        )
        for rel in sorted(fresh_files - committed):
            problems.append(f"lessons/{rel} is missing")
        for rel in sorted(committed - fresh_files):
            problems.append(f"lessons/{rel} does not come from solutions/")
        for rel in sorted(fresh_files & committed):
            a, b = fresh / rel, LESSONS / rel
            if rel.suffix == ".ipynb":
                if not _same_json(a, b):
                    problems.append(f"lessons/{rel} differs from what solutions/ generates")
            elif not filecmp.cmp(a, b, shallow=False):
                problems.append(f"lessons/{rel} differs from solutions/")
    return problems


def _same_json(a: Path, b: Path) -> bool:
    """Whether two files hold the same JSON document (False if either is not JSON)."""
    try:
        return json.loads(a.read_text(encoding="utf-8")) == json.loads(b.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        return False


def load_config():
    """The course's nbgrader configuration as a traitlets ``Config``."""
    from traitlets.config.loader import PyFileConfigLoader

    return PyFileConfigLoader(CONFIG_FILE.name, path=str(GRADER_DIR)).load_config()


def validate(notebook: Path, *, invert: bool = False) -> dict:
    """Run nbgrader's validator on one notebook (executing it) and return its results.

    Without ``invert`` an empty result means every test passed; failures are under
    ``"failed"``.  With ``invert`` an empty result means every test failed; tests
    that passed are under ``"passed"``.

    The notebook runs from a copy in an empty temporary folder, so files it writes
    (lesson 06's ``mnist_model.keras``) neither land in the repository nor, left over
    from an earlier run, make a blank lesson's tests pass.
    """
    from nbgrader.validator import Validator

    validator = Validator(config=load_config())
    validator.invert = invert
    with tempfile.TemporaryDirectory(prefix="dlcourse-validate-") as tmp:
        copy = Path(tmp) / Path(notebook).name
        shutil.copy(notebook, copy)
        return validator.validate(str(copy))
