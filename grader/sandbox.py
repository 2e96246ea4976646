"""The sandboxed kernel that runs a student's notebook while it is graded.

nbgrader starts kernels through a kernelspec; ours points at this module's launcher,

    python -m grader.sandbox {connection_file}

which runs on the grading host, applies the resource limits (inherited by everything
the kernel starts), and replaces itself with ``bwrap`` (bubblewrap) running an IPython
kernel in an isolated view of the machine:

- no network at all (``--unshare-net``), so the kernel talks to nbgrader over Unix
  sockets in the job's runtime folder (ZeroMQ ``ipc`` transport), not loopback TCP;
- read-only: the Python installation, the virtual environment, ``dlcourse/`` and
  ``data/``; read-write: only the notebook's own scratch folder and a private ``/tmp``;
  nothing else of the course (not ``solutions/``, not the gradebook, not other students);
- the notebooks in the scratch folder (which hold the restored hidden tests) are masked;
- its own PID, IPC, UTS and user namespaces; killed when nbgrader goes away;
- an environment scrubbed down to a few variables;
- limits: address space, open files, file size, CPU time, and (through a pids cgroup,
  where one can be created) the number of processes.

Where bubblewrap is unavailable the kernel runs unisolated with the same resource
limits, and the grader says so loudly (``isolation()`` tells which).
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KERNEL_NAME = "dlcourse-sandbox"
SETTINGS_ENV = "DLCOURSE_SANDBOX"
_PASS_THROUGH = ("NBGRADER_EXECUTION", "NBGRADER_VALIDATING", "LANG", "TZ")


@dataclass
class Limits:
    """Per-kernel resource limits (bytes, seconds, counts)."""

    memory: int = 8 * 2**30  # address space: TensorFlow alone maps about 3 GiB
    file_size: int = 1 * 2**30  # largest file the kernel may write
    cpu_seconds: int = 3600  # CPU time, all threads together
    open_files: int = 1024
    processes: int = 256  # tasks (processes and threads) in the sandbox's cgroup


def isolation() -> str | None:
    """None if bubblewrap can isolate a process here, else the reason it cannot."""
    if not sys.platform.startswith("linux"):
        return f"bubblewrap needs Linux (this is {sys.platform})"
    bwrap = shutil.which("bwrap")
    if not bwrap:
        return "bubblewrap is not installed (Debian/Ubuntu: apt-get install bubblewrap)"
    probe = subprocess.run([bwrap, "--unshare-all", "--die-with-parent", *_system_binds(), "--", "/bin/true"],
                           capture_output=True, text=True)
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


def kernelspec(folder: Path) -> Path:
    """Write the sandbox kernelspec under ``folder/kernels/`` (put ``folder`` on JUPYTER_PATH)."""
    spec = folder / "kernels" / KERNEL_NAME
    spec.mkdir(parents=True, exist_ok=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "grader.sandbox", "{connection_file}"],
        "display_name": "Python 3 (dlcourse grading sandbox)",
        "language": "python",
        "interrupt_mode": "message",  # a signal to bwrap would not reach the kernel inside
        "env": {"PYTHONPATH": str(ROOT)},
    }, indent=1))
    return spec


def settings_env(limits: Limits, runtime: Path, isolate: bool) -> dict[str, str]:
    """Environment entries that tell the launcher its limits and runtime folder."""
    return {SETTINGS_ENV: json.dumps({"limits": asdict(limits), "runtime": str(runtime), "isolate": isolate})}


def _system_binds() -> list[str]:
    args = ["--ro-bind", "/usr", "/usr"]
    for path in ("/bin", "/sbin", "/lib", "/lib32", "/lib64"):
        p = Path(path)
        if p.is_symlink():
            args += ["--symlink", os.readlink(p), path]
        elif p.exists():
            args += ["--ro-bind", path, path]
    for path in ("/etc/ld.so.cache", "/etc/fonts", "/etc/localtime", "/etc/passwd", "/etc/group", "/etc/nsswitch.conf"):
        if Path(path).exists():
            args += ["--ro-bind", path, path]
    return args


def bwrap_args(scratch: Path, runtime: Path) -> list[str]:
    """The bubblewrap command line, up to and excluding the command it runs."""
    readable = {Path(sys.base_prefix).resolve(), Path(sys.prefix), ROOT / "dlcourse", ROOT / "data"}
    args = ["bwrap", "--unshare-all", "--die-with-parent", "--new-session", *_system_binds(),
            "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
    for path in sorted(readable):
        if not str(path).startswith("/usr"):
            args += ["--ro-bind", str(path), str(path)]
    args += ["--bind", str(runtime), str(runtime), "--bind", str(scratch), str(scratch)]
    for nb in sorted(scratch.glob("*.ipynb")):  # they hold the restored hidden tests
        args += ["--ro-bind", "/dev/null", str(nb)]
    args += ["--chdir", str(scratch), "--clearenv"]
    for key, value in kernel_env("/tmp").items():
        args += ["--setenv", key, value]
    return args


def kernel_env(home: str) -> dict[str, str]:
    """The scrubbed environment a kernel gets: no tokens, paths or settings of the grader's."""
    env = {"HOME": home, "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "MPLBACKEND": "Agg",
           "MPLCONFIGDIR": f"{home}/matplotlib", "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONNOUSERSITE": "1",
           "LANG": "C.UTF-8"}
    env.update({k: os.environ[k] for k in _PASS_THROUGH if k in os.environ})
    return env


def _apply_limits(limits: Limits) -> None:
    for name, value in (("RLIMIT_AS", limits.memory), ("RLIMIT_FSIZE", limits.file_size),
                        ("RLIMIT_CPU", limits.cpu_seconds), ("RLIMIT_NOFILE", limits.open_files),
                        ("RLIMIT_CORE", 0)):
        res = getattr(resource, name)
        hard = resource.getrlimit(res)[1]
        value = value if hard == resource.RLIM_INFINITY else min(value, hard)
        resource.setrlimit(res, (value, value))
    if not _join_pids_cgroup(limits.processes) and os.geteuid() != 0:
        # Without a cgroup, RLIMIT_NPROC counts all of this user's tasks, so allow headroom.
        mine = sum(1 for p in Path("/proc").glob("[0-9]*/task/[0-9]*") if _owner(p) == os.getuid())
        resource.setrlimit(resource.RLIMIT_NPROC, (mine + limits.processes, mine + limits.processes))


def _owner(path: Path) -> int | None:
    try:
        return path.stat().st_uid
    except OSError:
        return None


def _join_pids_cgroup(limit: int) -> bool:
    """Move this process into a fresh pids cgroup capped at ``limit`` tasks (root only)."""
    v2 = Path("/sys/fs/cgroup/cgroup.controllers")
    for base in (Path("/sys/fs/cgroup/pids"), Path("/sys/fs/cgroup")):
        is_v1 = base.name == "pids" and (base / "cgroup.procs").exists()
        is_v2 = base == v2.parent and v2.exists() and "pids" in v2.read_text().split()
        if not (is_v1 or is_v2):
            continue
        group = base / f"dlcourse-grader-{os.getpid()}"
        try:
            group.mkdir(exist_ok=True)
            (group / "pids.max").write_text(str(limit))
            (group / "cgroup.procs").write_text(str(os.getpid()))
            return True
        except OSError:
            try:
                group.rmdir()
            except OSError:
                pass
    return False


def remove_stale_cgroups() -> None:
    """Delete empty pids cgroups left by finished kernels (they cannot delete their own)."""
    for base in (Path("/sys/fs/cgroup/pids"), Path("/sys/fs/cgroup")):
        for group in base.glob("dlcourse-grader-*"):
            try:
                group.rmdir()
            except OSError:
                pass


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m grader.sandbox CONNECTION_FILE (started by nbgrader through the kernelspec)", file=sys.stderr)
        return 2
    settings = json.loads(os.environ.get(SETTINGS_ENV, "{}"))
    limits = Limits(**settings.get("limits", {}))
    connection = Path(argv[0])
    if settings.get("isolate", True):
        # The sandbox sees only the runtime folder: give the kernel its own copy of the connection file.
        runtime = Path(settings["runtime"])
        if connection.parent.resolve() != runtime.resolve():
            copy = runtime / connection.name
            copy.write_text(connection.read_text())
            connection = copy
    kernel = [sys.executable, "-m", "ipykernel_launcher", "-f", str(connection), "--HistoryManager.hist_file=:memory:"]
    _apply_limits(limits)
    if settings.get("isolate", True):
        command = bwrap_args(Path.cwd(), Path(settings["runtime"])) + ["--"] + kernel
        os.execvp(command[0], command)
    # Unisolated (no bubblewrap): still the limits above and a scrubbed environment.
    home = Path(settings["runtime"]) / "home"
    home.mkdir(exist_ok=True)
    env = kernel_env(str(home))
    env["PYTHONPATH"] = str(ROOT)  # the venv's editable install needs no more than this
    os.execve(kernel[0], kernel, env)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
