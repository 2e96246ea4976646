"""The grading sandbox, seen from the host: limits, whether bubblewrap works, the kernelspec.

nbgrader starts each notebook's kernel through the kernelspec written by ``kernelspec()``:
``python -I grader/launcher.py`` (standard library only, run by path) applies the limits and
starts ``bwrap`` around ``grader/referee.py``, the kernel that runs test cells itself.  See
those two modules for what happens inside; this one holds what the grader decides outside.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KERNEL_NAME = "dlcourse-sandbox"
SETTINGS_ENV = "DLCOURSE_SANDBOX"
PLAN_ENV = "DLCOURSE_REFEREE_PLAN"
LAUNCHER = ROOT / "grader" / "launcher.py"
REFEREE = ROOT / "grader" / "referee.py"


@dataclass
class Limits:
    """Per-submission resource limits (bytes, seconds, counts)."""

    memory: int = 8 * 2**30  # address space (and memory cgroup where one can be made): TensorFlow maps ~3 GiB
    files: int = 1 * 2**30  # everything the kernel writes: its folder, /tmp and $HOME together (a tmpfs)
    file_size: int = 1 * 2**30  # largest single file
    cpu_seconds: int = 3600  # CPU time, all threads together
    open_files: int = 1024
    processes: int = 256  # tasks (processes and threads) in the sandbox's cgroup
    runtime_bytes: int = 64 * 2**20  # the runtime folder shared with the host (sockets, signed records)
    cell_output: int = 1 * 2**20  # output bytes kept per cell while executing
    notebook_output: int = 8 * 2**20  # output bytes kept per notebook


def kernel_threads(jobs: int) -> int:
    """Compute threads for each grading kernel while ``jobs`` kernels run at once: the cores shared out, at least 1.

    TensorFlow, OpenBLAS and OpenMP otherwise start a thread per core in every kernel, and on
    a machine the jobs already fill those threads only wait, spin and switch (bench/README.md).
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // max(1, jobs))


def isolation() -> str | None:
    """None if bubblewrap can isolate a process here, else the reason it cannot."""
    if not sys.platform.startswith("linux"):
        return f"bubblewrap needs Linux (this is {sys.platform})"
    bwrap = shutil.which("bwrap")
    if not bwrap:
        return "bubblewrap is not installed (Debian/Ubuntu: apt-get install bubblewrap)"
    probe = subprocess.run(
        [
            bwrap,
            "--unshare-all",
            "--unshare-user",
            "--uid",
            "65534",
            "--cap-drop",
            "ALL",
            "--die-with-parent",
            "--ro-bind",
            "/usr",
            "/usr",
            "--symlink",
            "usr/lib",
            "/lib",
            "--symlink",
            "usr/lib64",
            "/lib64",
            "--symlink",
            "usr/bin",
            "/bin",
            "--size",
            "1048576",
            "--tmpfs",
            "/tmp",
            "--",
            "/bin/true",
        ],
        capture_output=True,
        text=True,
    )
    if probe.returncode != 0:
        return f"bubblewrap cannot create namespaces here: {probe.stderr.strip()[:200]}"
    return None


def process_limit_problem() -> str | None:
    """None if the process limit can be enforced here, else why not.

    RLIMIT_NPROC does not bind root, so as root the limit needs a pids cgroup.
    """
    if os.geteuid() != 0:
        return None
    for base in (Path("/sys/fs/cgroup/pids"), Path("/sys/fs/cgroup")):
        if not ((base / "cgroup.procs").exists() and os.access(base, os.W_OK)):
            continue
        controllers = base / "cgroup.controllers"
        if base.name == "pids" or (controllers.exists() and "pids" in controllers.read_text().split()):
            return None
    return "running as root without a writable pids cgroup, so the number of processes is not limited"


def memory_cgroup_available() -> bool:
    """Whether the kernel's memory (in-memory files included) can be capped by a cgroup here."""
    if os.geteuid() != 0:
        return False
    v1 = Path("/sys/fs/cgroup/memory")
    v2 = Path("/sys/fs/cgroup/cgroup.controllers")
    return (
        (v1 / "cgroup.procs").exists()
        and os.access(v1, os.W_OK)
        or (v2.exists() and "memory" in v2.read_text().split() and os.access(v2.parent, os.W_OK))
    )


def precompile_course() -> None:
    """Byte-compile ``dlcourse/`` here, where its folder is writable.

    Inside the sandbox it is read-only, so a module without a current ``.pyc`` would be
    compiled there from its source, under a student's cell, and the referee refuses to compile
    code under a library's file name while student code runs (a fresh clone has no ``.pyc``).
    """
    import compileall

    if not compileall.compile_dir(str(ROOT / "dlcourse"), quiet=1):
        raise RuntimeError(f"cannot byte-compile {ROOT / 'dlcourse'}: is a file there not valid Python?")


def kernelspec(folder: Path) -> Path:
    """Write the sandbox kernelspec under ``folder/kernels/`` (put ``folder`` on JUPYTER_PATH);
    the course's package is byte-compiled for it first."""
    precompile_course()
    spec = folder / "kernels" / KERNEL_NAME
    spec.mkdir(parents=True, exist_ok=True)
    (spec / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-I", str(LAUNCHER), "{connection_file}"],
                "display_name": "Python 3 (dlcourse grading sandbox)",
                "language": "python",
                "interrupt_mode": "message",  # a signal to bwrap would not reach the kernel inside
            },
            indent=1,
        )
    )
    return spec


def readable_paths() -> list[str]:
    """What the kernel may read besides /usr: the Python install, the venv, the course's package and data."""
    paths = {
        str(Path(sys.base_prefix).resolve()),
        str(Path(sys.prefix)),
        str(Path(sys.prefix).resolve()),
        str(ROOT / "dlcourse"),
        str(ROOT / "data"),
        str(REFEREE),
    }
    return sorted(paths)


def trusted_paths() -> list[str]:
    """Where library code lives: frames from anywhere else are the student's (see grader/referee.py)."""
    return sorted(
        {
            str(Path(sys.base_prefix).resolve()),
            str(Path(sys.prefix).resolve()),
            str(Path(sys.prefix)),
            str(ROOT / "dlcourse"),
        }
    )


def settings(
    limits: Limits,
    runtime: Path,
    isolate: bool,
    files: dict[str, Path] | None = None,
    mounts: dict[str, Path] | None = None,
    withheld: dict[str, Path] | None = None,
    threads: int = 0,
) -> dict[str, str]:
    """Environment entries that tell the launcher its limits, folders and files.

    ``mounts`` replace folders inside the sandbox (the grading copy of ``data/``); ``withheld``
    names the real files the referee alone receives (through memory files, not the file system);
    ``threads``: the kernel's compute threads (``kernel_threads``; 0: the libraries' defaults).
    """
    value = {
        "limits": asdict(limits),
        "runtime": str(runtime),
        "isolate": isolate,
        "python": sys.executable,
        "root": str(ROOT),
        "referee": str(REFEREE),
        "readable": readable_paths(),
        "trusted": trusted_paths(),
        "files": {name: str(path) for name, path in (files or {}).items()},
        "mounts": {target: str(source) for target, source in (mounts or {}).items()},
        "withheld": {name: str(path) for name, path in (withheld or {}).items()},
        "threads": threads,
    }
    return {SETTINGS_ENV: json.dumps(value)}


def remove_stale_cgroups() -> None:
    """Delete empty cgroups left by finished kernels (they cannot delete their own)."""
    for base in (Path("/sys/fs/cgroup/pids"), Path("/sys/fs/cgroup/memory"), Path("/sys/fs/cgroup")):
        for group in base.glob("dlcourse-grader-*"):
            try:
                group.rmdir()
            except OSError:
                pass


def oom_killed(pid: int) -> bool:
    """Whether the memory cgroup of the kernel started as ``pid`` saw the OOM killer act."""
    for path in (
        Path(f"/sys/fs/cgroup/memory/dlcourse-grader-{pid}/memory.oom_control"),
        Path(f"/sys/fs/cgroup/dlcourse-grader-{pid}/memory.events"),
    ):
        try:
            for line in path.read_text().splitlines():
                key, _, value = line.partition(" ")
                if key in ("oom_kill", "oom_group_kill") and value.strip() not in ("", "0"):
                    return True
        except OSError:
            continue
    return False
