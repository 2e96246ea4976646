"""Starts one grading kernel: limits, cgroups, then bubblewrap around the referee kernel.

nbgrader starts kernels through the kernelspec that ``grader.sandbox.kernelspec`` writes:

    python -I /path/to/grader/launcher.py {connection_file}

It is run by path in isolated mode (``-I``: no current folder, no PYTHON* variables, no user
site-packages on sys.path) and imports only the standard library, so no file of a submission
can stand in for it.  It runs on the grading host, as the grader's user, and

1. reads its settings (``DLCOURSE_SANDBOX``) and the grading plan the preprocessor left in the
   job's runtime folder (``DLCOURSE_REFEREE_PLAN``), deleting the plan file at once;
2. applies resource limits (address space, file size, CPU time, open files, no core dumps), and
   as root puts itself into a pids cgroup and a memory cgroup (which also counts the pages of the
   sandbox's in-memory files);
3. replaces itself with ``bwrap``, started from a minimal environment, which runs the referee
   kernel (``grader/referee.py``) as uid 65534 with no capabilities, in its own user, mount, PID,
   network, IPC and UTS namespaces: the Python installation, the virtual environment,
   ``dlcourse/`` and the course data are read-only; the only writable places are one tmpfs of a
   fixed size (``/tmp``, which holds the notebook's working folder and ``$HOME``) and the job's
   runtime folder (ZeroMQ sockets and the referee's signed records); the plan reaches the
   referee through an inherited memory file, never through the file system.

Without bubblewrap it runs the referee directly with the same limits and a scrubbed environment
(the grader warns loudly that student code is then not isolated).
"""

import json
import os
import resource
import shutil
import sys

SANDBOX_HOME = "/tmp"  # the one tmpfs inside the sandbox: /tmp itself, and work/ and home/ in it
STUDENT_UID = 65534


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


def _apply_limits(limits: dict) -> None:
    for name, key in (
        ("RLIMIT_AS", "memory"),
        ("RLIMIT_FSIZE", "file_size"),
        ("RLIMIT_CPU", "cpu_seconds"),
        ("RLIMIT_NOFILE", "open_files"),
        ("RLIMIT_CORE", None),
    ):
        res = getattr(resource, name)
        value = limits.get(key, 0) if key else 0
        hard = resource.getrlimit(res)[1]
        value = value if hard == resource.RLIM_INFINITY else min(value, hard)
        resource.setrlimit(res, (value, value))
    pids = _join_cgroup("pids", {"pids.max": str(limits.get("processes", 256))})
    _join_cgroup(
        "memory",
        {
            "memory.limit_in_bytes": str(limits.get("memory", 8 << 30)),
            "memory.max": str(limits.get("memory", 8 << 30)),
            "memory.swap.max": "0",
        },
    )
    if not pids and os.geteuid() != 0:
        # Without a cgroup, RLIMIT_NPROC counts all of this user's tasks: allow headroom.
        mine = _tasks_of(os.getuid())
        cap = mine + limits.get("processes", 256)
        resource.setrlimit(resource.RLIMIT_NPROC, (cap, cap))


def _tasks_of(uid: int) -> int:
    count = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            for task in os.listdir(f"/proc/{pid}/task"):
                if os.stat(f"/proc/{pid}/task/{task}").st_uid == uid:
                    count += 1
        except OSError:
            pass
    return count


def _join_cgroup(controller: str, settings: dict) -> bool:
    """Move this process into a fresh cgroup with ``settings`` (root only; v1 or v2)."""
    if os.geteuid() != 0:
        return False
    v2 = "/sys/fs/cgroup/cgroup.controllers"
    for base in (f"/sys/fs/cgroup/{controller}", "/sys/fs/cgroup"):
        is_v1 = base.endswith(controller) and os.path.exists(f"{base}/cgroup.procs")
        is_v2 = base == "/sys/fs/cgroup" and os.path.exists(v2) and controller in _read(v2).split()
        if not (is_v1 or is_v2):
            continue
        group = f"{base}/dlcourse-grader-{os.getpid()}"
        try:
            os.makedirs(group, exist_ok=True)
            written = False
            for name, value in settings.items():
                if os.path.exists(f"{group}/{name}"):
                    with open(f"{group}/{name}", "w") as f:
                        f.write(value)
                    written = True
            if not written:
                raise OSError("no setting applied")
            with open(f"{group}/cgroup.procs", "w") as f:
                f.write(str(os.getpid()))
            return True
        except OSError:
            try:
                os.rmdir(group)
            except OSError:
                pass
    return False


def _system_binds() -> list:
    args = ["--ro-bind", "/usr", "/usr"]
    for path in ("/bin", "/sbin", "/lib", "/lib32", "/lib64"):
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.exists(path):
            args += ["--ro-bind", path, path]
    for path in ("/etc/ld.so.cache", "/etc/fonts", "/etc/localtime", "/etc/nsswitch.conf", "/etc/ssl/certs"):
        if os.path.exists(path):
            args += ["--ro-bind", path, path]
    return args


# Read by OpenMP, OpenBLAS, MKL and TensorFlow (its two thread pools) when they start their threads.
THREAD_VARS = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "TF_NUM_INTRAOP_THREADS",
    "TF_NUM_INTEROP_THREADS",
)


def _kernel_env(home: str, tmp: str, settings: dict) -> dict:
    env = {
        "HOME": home,
        "TMPDIR": tmp,
        "PATH": f"{os.path.dirname(settings['python'])}:/usr/bin:/bin",
        "MPLBACKEND": "Agg",
        "MPLCONFIGDIR": f"{home}/matplotlib",
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "PYTHONNOUSERSITE": "1",
        "LANG": "C.UTF-8",
        "KERAS_BACKEND": "tensorflow",
        "CUDA_VISIBLE_DEVICES": "",
    }
    env.update({k: os.environ[k] for k in ("NBGRADER_EXECUTION", "NBGRADER_VALIDATING") if k in os.environ})
    if settings.get("threads"):  # the grader's share of the cores for each of the kernels it runs at once
        env.update(dict.fromkeys(THREAD_VARS, str(int(settings["threads"]))))
    if settings.get("withheld") and settings.get("isolate", True):
        env["DLCOURSE_GRADING_DATA"] = "1"  # dlcourse.data: the test split is the grader's alone
    return env


def bwrap_args(settings: dict, plan_fd: int) -> list:
    """The bubblewrap command line that runs the referee kernel."""
    tmp_size = settings["limits"].get("files", 1 << 30)
    args = [
        shutil.which("bwrap") or "bwrap",
        "--unshare-all",
        "--unshare-user",
        "--uid",
        str(STUDENT_UID),
        "--gid",
        str(STUDENT_UID),
        "--cap-drop",
        "ALL",
        "--die-with-parent",
        "--new-session",
        *_system_binds(),
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--size",
        str(tmp_size),
        "--tmpfs",
        SANDBOX_HOME,
        "--dir",
        f"{SANDBOX_HOME}/work",
        "--dir",
        f"{SANDBOX_HOME}/home",
    ]
    for path in settings["readable"]:
        if not path.startswith("/usr/") and os.path.exists(path):
            args += ["--ro-bind", path, path]
    for target, source in settings.get("mounts", {}).items():  # e.g. the grading copy of data/
        args += ["--ro-bind", source, target]
    args += ["--bind", settings["runtime"], settings["runtime"]]
    for name, source in settings.get("files", {}).items():  # the submission's files the lesson reads
        args += ["--ro-bind", source, f"{SANDBOX_HOME}/work/{name}"]
    # The root bwrap builds is a tmpfs of its own: read-only, so that nothing escapes the capped /tmp.
    args += ["--remount-ro", "/", "--chdir", f"{SANDBOX_HOME}/work", "--clearenv"]
    for key, value in _kernel_env(f"{SANDBOX_HOME}/home", SANDBOX_HOME, settings).items():
        args += ["--setenv", key, value]
    return args


def main(argv: list) -> int:
    if len(argv) < 1:
        print(
            "usage: python -I launcher.py CONNECTION_FILE [KERNEL-ARGS] (started by nbgrader through the kernelspec)",
            file=sys.stderr,
        )
        return 2
    settings = json.loads(os.environ.get("DLCOURSE_SANDBOX", "{}"))
    runtime = settings["runtime"]
    plan_path = os.environ.get("DLCOURSE_REFEREE_PLAN", "")
    with open(plan_path, "rb") as f:
        plan = json.loads(f.read())
    os.unlink(plan_path)
    connection = argv[0]
    if os.path.dirname(os.path.realpath(connection)) != os.path.realpath(runtime):
        # The sandbox sees only the runtime folder: give the kernel its own copy of the connection file.
        copy = os.path.join(runtime, os.path.basename(connection))
        with open(connection, "rb") as src, open(copy, "wb") as dst:
            dst.write(src.read())
        connection = copy
    isolate = settings.get("isolate", True)
    plan["workdir"] = f"{SANDBOX_HOME}/work" if isolate else os.path.join(runtime, "work")
    plan["root"] = settings["root"]
    plan["trusted"] = settings["trusted"]
    plan["withheld"] = {}
    for name, path in settings.get("withheld", {}).items():  # real data for the referee's eyes only
        with open(path, "rb") as f:
            fd = os.memfd_create(f"dlcourse-{name}", 0)
            os.write(fd, f.read())
            os.lseek(fd, 0, os.SEEK_SET)
        plan["withheld"][name] = fd
    plan_fd = os.memfd_create("dlcourse-plan", 0)
    os.write(plan_fd, json.dumps(plan).encode())
    os.lseek(plan_fd, 0, os.SEEK_SET)
    del plan
    _apply_limits(settings["limits"])
    # The kernel's own stdout/stderr (C libraries, bubblewrap) go to a file the runtime watchdog caps, not to the
    # grader's log: printed output reaches the notebook through the kernel's messages, which the grader caps.
    log = os.open(os.path.join(runtime, "kernel.log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o600)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
    kernel = [settings["python"], "-I", settings["referee"], "--plan-fd", str(plan_fd), "-f", connection, *argv[1:]]
    if isolate:
        command = bwrap_args(settings, plan_fd) + ["--"] + kernel
        os.execve(command[0], command, {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"})
    # Not isolated (no bubblewrap): the same limits, a scrubbed environment, a private working folder.
    work = os.path.join(runtime, "work")
    for sub in ("", "tmp", "home"):
        os.makedirs(os.path.join(work, sub), exist_ok=True)
    for name, source in settings.get("files", {}).items():
        shutil.copyfile(source, os.path.join(work, name))
    os.chdir(work)
    os.execve(kernel[0], kernel, _kernel_env(os.path.join(work, "home"), os.path.join(work, "tmp"), settings))
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
