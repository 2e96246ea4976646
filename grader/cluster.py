"""Grading a class on a dask cluster: ``python -m grader autograde ... --scheduler ADDRESS``.

The client (the instructor's machine) does what it does for a local run (reads the submissions,
prepares the assignment, writes every output file) and hands ``grade_one`` to dask.distributed
instead of a thread pool. On each worker:

- the **environment** is checked first against the client's (``environment()``: grader code,
  ``dlcourse``, data, dependency pins and installed versions, Python, bubblewrap working); any
  difference stops the run before a submission is graded, naming the worker and the difference;
- the **master course** (source notebooks, gradebook, referee plans) arrives once, as a tar in a
  worker plugin, and is unpacked once per worker process into a temporary folder named by its
  SHA-256; the kernelspec and the grading copy of ``data/`` are made there by the worker itself,
  for its own interpreter and files (both checked equal to the client's);
- each **submission** travels as data: the bytes of the files grading reads (its notebooks and
  the lesson's files, ``CourseGrader.lesson_files``);
- ``grade_one`` runs exactly as on one machine: nbgrader and the sandboxed kernel (bubblewrap,
  limits) are subprocesses of the worker; student code never runs in the worker's process;
- the ``Result`` (scores, status, feedback HTML, log) comes back; the client alone writes.

A worker that dies mid-run loses nothing: dask gives its submissions to other workers (a task
on workers that die more than ``distributed.scheduler.allowed-failures`` times, 3 by default, gets a
``grader error`` row), ``grade_one`` writes nothing outside its own scratch folder, so running
one student twice is harmless, and the client keeps one result per student.

Nothing here is imported without ``--scheduler``/``--scheduler-file``.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import dataclasses
import hashlib
import io
import ipaddress
import json
import os
import platform
import re
import shutil
import socket
import sys
import tarfile
import tempfile
import threading
import uuid
from pathlib import Path

try:
    from distributed import Client, Security, get_worker
    from distributed.comm import connect
    from distributed.diagnostics.plugin import WorkerPlugin
except ImportError as exc:  # pragma: no cover - depends on the environment
    from .submissions import GradingError

    raise GradingError(
        "--scheduler needs dask.distributed in the course's environment: "
        'pip install -e ".[cluster]" (on the workers too)'
    ) from exc

from . import sandbox
from .job import Result, Settings, grade_one
from .submissions import MAX_NOTEBOOK_BYTES, GradingError, Submission

WORKER_WAIT = 300  # seconds to wait for the first worker to join the scheduler
RETRIES = 1  # extra tries of a submission whose grading raised (a worker's death is retried by the scheduler)
# The packages whose installed versions (theirs and their dependencies') must match on every worker:
# what nbgrader, the kernel and the lessons import, and dask itself.
PACKAGE_ROOTS = [
    "tensorflow",
    "keras",
    "numpy",
    "matplotlib",
    "ipywidgets",
    "ipycanvas",
    "nbgrader",
    "ipykernel",
    "distributed",
]
# Files at the course root that pin the environment (a lock file, if the course has one, by any usual name).
PIN_FILES = re.compile(r"^(pyproject\.toml|environment\.ya?ml|.*lock.*|requirements.*\.txt)$", re.IGNORECASE)
HINT = 'every worker needs the same course commit and environment as this machine (README, "Grading on a cluster")'


# --- the environment, here and on each worker -----------------------------------------------------


def _digest(paths: list[Path], base: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(paths):
        h.update(path.relative_to(base).as_posix().encode() + b"\0")
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        h.update(b"\0")
    return h.hexdigest()


def _files(folder: Path, pattern: str = "*") -> list[Path]:
    return [
        p
        for p in folder.rglob(pattern)
        if p.is_file()
        and "__pycache__" not in p.parts
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    ]


def package_versions(roots: list[str] = PACKAGE_ROOTS) -> dict[str, str]:
    """Installed version of each package in ``roots`` and of everything they require ("missing" if absent)."""
    from importlib import metadata

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    versions: dict[str, str] = {}
    todo = list(roots)
    while todo:
        name = canonicalize_name(todo.pop())
        if name in versions:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            versions[name] = "missing"
            continue
        versions[name] = dist.version
        for line in dist.requires or []:
            try:
                req = Requirement(line)
            except ValueError:
                continue
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    return dict(sorted(versions.items()))


def environment() -> dict:
    """What grading depends on, on this machine, in a form two machines can compare.

    ``compared`` must be equal on the client and every worker: SHA-256 of the grader's code
    (``grader/*.py`` but ``nbgrader_config.py``, whose settings travel with the run), of
    ``dlcourse/``, of ``data/`` and of the files that pin the environment (``pyproject.toml``,
    ``environment.yml``, a lock file); the installed versions of the packages grading imports and
    their dependencies; Python's version (major.minor) and the platform. ``bubblewrap`` must say
    ``works`` on a worker. ``about`` is for messages only.
    """
    from dlcourse import data

    root = sandbox.ROOT
    grader_code = [p for p in _files(root / "grader", "*.py") if p.name != "nbgrader_config.py"]
    pins = [p for p in root.iterdir() if p.is_file() and PIN_FILES.match(p.name)]
    compared = {
        "python": ".".join(platform.python_version_tuple()[:2]),
        "platform": f"{platform.system()} {platform.machine()}",
        "grader code": _digest(grader_code, root),
        "dlcourse package": _digest(_files(root / "dlcourse"), root),
        "course data": _digest(_files(data.DATA_DIR), data.DATA_DIR),
        "dependency pins": _digest(pins, root),
        **{f"package {name}": version for name, version in package_versions().items()},
    }
    try:
        free = shutil.disk_usage(tempfile.gettempdir()).free
    except OSError:
        free = 0
    return {
        "compared": compared,
        "bubblewrap": sandbox.isolation() or "works",
        "process limit": sandbox.process_limit_problem(),
        "about": {
            "host": socket.gethostname(),
            "python": sys.executable,
            "course": str(root),
            "temp": tempfile.gettempdir(),
            "free temp bytes": free,
        },
    }


def differences(here: dict, there: dict) -> list[str]:
    """What differs between two ``environment()``s, in words (empty: nothing)."""
    found = []
    a, b = here["compared"], there["compared"]
    for key in sorted(set(a) | set(b), key=lambda k: (k.startswith("package "), k)):
        x, y = a.get(key, "missing"), b.get(key, "missing")
        if x == y:
            continue
        if key.startswith("package "):
            found.append(f"{key[8:]} {x} here, {y} there")
        elif len(str(x)) == 64:  # a digest
            found.append(f"{key} differs (here {x[:12]}, there {y[:12]})")
        else:
            found.append(f"{key} {x} here, {y} there")
    if there["bubblewrap"] != "works":
        found.append(f"the sandbox cannot run there: {there['bubblewrap']}")
    return found


# --- the master course, packed here and unpacked once per worker ---------------------------------

SHIPPED = ("source", "gradebook.db", "plans.json")  # the rest of the master is made on the worker


def pack_master(master: Path) -> tuple[bytes, str]:
    """A reproducible tar of what workers need of the prepared master course, and its SHA-256."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        paths = [master / name for name in SHIPPED]
        paths += [p for name in SHIPPED if (master / name).is_dir() for p in (master / name).rglob("*")]
        for path in sorted(paths):
            if path.is_symlink() or not (path.is_file() or path.is_dir()):
                continue
            info = tar.gettarinfo(str(path), arcname=path.relative_to(master).as_posix())
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
            info.mode = 0o755 if path.is_dir() else 0o644
            if path.is_file():
                with open(path, "rb") as f:
                    tar.addfile(info, f)
            else:
                tar.addfile(info)
    data = buf.getvalue()
    return data, hashlib.sha256(data).hexdigest()


@dataclasses.dataclass
class _Prepared:
    """The master course unpacked in this worker process, or why it could not be."""

    master: Path | None
    work: Path | None
    problem: str | None
    users: int = 0


_PREPARED: dict[str, _Prepared] = {}
_LOCK = threading.Lock()
_BASE: list[Path] = []  # this process's temporary folder, made on first use


def _base() -> Path:
    """``/tmp/dlcourse-worker-<pid>-*``: one per worker process; those of dead processes are removed."""
    if not _BASE:
        tmp = Path(tempfile.gettempdir())
        for old in tmp.glob("dlcourse-worker-*-*"):
            try:
                pid = int(old.name.split("-")[2])
                os.kill(pid, 0)
            except ProcessLookupError:
                shutil.rmtree(old, ignore_errors=True)
            except (ValueError, IndexError, PermissionError):
                pass
        # Short: the kernels' sockets live under it, and a socket's path has at most 107 bytes.
        _BASE.append(Path(tempfile.mkdtemp(prefix=f"dlcourse-worker-{os.getpid()}-", dir=tmp)))
        atexit.register(shutil.rmtree, _BASE[0], True)
    return _BASE[0]


def unpack_master(tar: bytes, digest: str, expected: dict) -> _Prepared:
    """Check this worker, then unpack the master course here once (by digest); kernelspec and data made here."""
    from . import autograde

    with _LOCK:
        prepared = _PREPARED.get(digest)
        if prepared is None:
            mine = environment()
            problems = differences(expected, mine)
            if problems:
                prepared = _Prepared(None, None, "; ".join(problems))
            elif hashlib.sha256(tar).hexdigest() != digest:
                prepared = _Prepared(None, None, "the master course arrived damaged (SHA-256 mismatch)")
            else:
                folder = _base() / f"m-{digest[:16]}"
                staging = Path(tempfile.mkdtemp(prefix="unpack-", dir=_base()))
                with tarfile.open(fileobj=io.BytesIO(tar)) as t:
                    if hasattr(tarfile, "data_filter"):
                        t.extractall(staging, filter="data")
                    else:  # pragma: no cover - Python before 3.10.12: our own tar, made by pack_master
                        t.extractall(staging)
                sandbox.kernelspec(staging / "share")  # this worker's interpreter and launcher
                autograde.grading_data(staging / "data")
                staging.rename(folder)
                work = _base() / f"j-{digest[:16]}"
                work.mkdir()
                prepared = _Prepared(folder, work, None)
            _PREPARED[digest] = prepared
        prepared.users += 1
        return prepared


def release_master(digest: str) -> None:
    with _LOCK:
        prepared = _PREPARED.get(digest)
        if prepared is None:
            return
        prepared.users -= 1
        if prepared.users <= 0:
            del _PREPARED[digest]
            for folder in (prepared.master, prepared.work):
                if folder is not None:
                    shutil.rmtree(folder, ignore_errors=True)
            sandbox.remove_stale_cgroups()


class MasterCourse(WorkerPlugin):
    """Delivers the master course to every worker, those that join later included, once each."""

    idempotent = True

    def __init__(self, tar: bytes, digest: str, expected: dict):
        self.tar, self.digest, self.expected = tar, digest, expected

    async def setup(self, worker):
        loop = asyncio.get_running_loop()
        try:  # off the worker's event loop: making the data copy takes a second or two
            await loop.run_in_executor(None, unpack_master, self.tar, self.digest, self.expected)
        except Exception as exc:  # noqa: BLE001 - recorded: every submission sent here comes back refused, saying why
            with _LOCK:
                _PREPARED[self.digest] = _Prepared(
                    None, None, f"could not unpack the master course: {type(exc).__name__}: {exc}", users=1
                )

    def teardown(self, worker):
        release_master(self.digest)


# --- one submission, as data ----------------------------------------------------------------------


@dataclasses.dataclass
class Parcel:
    """A submission as it travels: its ``Submission`` without paths, and the bytes of the files grading reads."""

    submission: Submission  # files empty
    files: dict[str, tuple[str, bytes | int]]  # name in the submission -> (file name, bytes, or size if too large)


def pack_submission(sub: Submission, lesson_files: list[str]) -> Parcel:
    """The files ``grade_one`` reads (notebooks, the lesson's files), as bytes.

    A notebook over the size limit travels as its size alone: the worker refuses it as the
    client would.
    """
    files: dict[str, tuple[str, bytes | int]] = {}
    for name, path in sub.files.items():
        if not (name == "?" or name.endswith(".ipynb") or name in lesson_files):
            continue
        if path.is_symlink() or not path.is_file():
            continue
        size = path.stat().st_size
        files[name] = (path.name, size if size > MAX_NOTEBOOK_BYTES and name not in lesson_files else path.read_bytes())
    return Parcel(dataclasses.replace(sub, files={}), files)


def unpack_submission(parcel: Parcel, inbox: Path) -> Submission:
    """The submission as files under ``inbox``, each under its own file name (loose notebooks keep theirs)."""
    files = {}
    for i, (name, (file_name, content)) in enumerate(sorted(parcel.files.items())):
        folder = inbox / str(i)
        folder.mkdir(parents=True)
        base = Path(file_name).name
        path = folder / (base if base not in ("", ".", "..") else "file")
        with open(path, "wb") as f:
            if isinstance(content, int):
                f.truncate(content)  # sparse: its size is all that counts
            else:
                f.write(content)
        files[name] = path
    return dataclasses.replace(parcel.submission, files=files)


@dataclasses.dataclass
class Refusal:
    """A worker that must not grade (set-up failed or environment differs): the run stops."""

    worker: str
    reason: str


class WorkerRefused(GradingError):
    pass


def grade_remote(parcel: Parcel, settings: Settings, digest: str) -> Result | Refusal:
    """On a worker: ``grade_one`` on the unpacked master course, with this worker's paths."""
    from . import autograde

    worker = get_worker()
    prepared = _PREPARED.get(digest)
    if prepared is None or prepared.problem:
        return Refusal(
            f"{worker.address} ({socket.gethostname()})",
            prepared.problem if prepared else "the master course did not reach it (see the worker's log)",
        )
    mounts, withheld = autograde.sandbox_data(prepared.master)
    local = dataclasses.replace(
        settings,
        master=prepared.master,
        work=prepared.work,
        mounts=mounts,
        withheld=withheld,
        threads=sandbox.kernel_threads(worker.state.nthreads),
    )
    inbox = Path(tempfile.mkdtemp(prefix="in-", dir=prepared.work))
    try:
        result = grade_one(unpack_submission(parcel, inbox), local)
    finally:
        shutil.rmtree(inbox, ignore_errors=True)
    if result.log:
        result.log = f"graded on {worker.address} ({socket.gethostname()})\n{result.log}"
    return result


# --- the client side ----------------------------------------------------------------------------


async def _probe(address: str, security: Security, timeout: float) -> None:
    """Open and close one connection to the scheduler (raises what connecting raises)."""
    comm = await connect(address, timeout=timeout, **security.get_connection_args("client"))
    await comm.close()


def _loopback(address: str) -> bool:
    host = address.split("://", 1)[-1].rsplit(":", 1)[0].strip("[]")
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Cluster:
    """One grading run's connection to a dask scheduler: check the workers, send the work, collect results.

    Used as a context manager around the submissions: leaving it cancels what is left, takes
    the master course off the workers and closes the connection.
    """

    def __init__(
        self,
        address: str | None = None,
        scheduler_file: Path | None = None,
        tls_ca_file: Path | None = None,
        tls_cert: Path | None = None,
        tls_key: Path | None = None,
        progress=print,
        wait: float = WORKER_WAIT,
        timeout: float = 30,
    ):
        self.progress = progress
        tls = {
            k: str(v)
            for k, v in (("tls_ca_file", tls_ca_file), ("tls_client_cert", tls_cert), ("tls_client_key", tls_key))
            if v
        }
        if tls and not (tls_ca_file and tls_cert and tls_key):
            raise GradingError("TLS needs all three of --tls-ca-file, --tls-cert and --tls-key")
        if not (address or scheduler_file):
            raise GradingError("a cluster needs --scheduler ADDRESS or --scheduler-file PATH")
        security = Security(require_encryption=True, **tls) if tls else Security()
        if scheduler_file:
            try:
                address = json.loads(Path(scheduler_file).read_text())["address"]
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise GradingError(
                    f"cannot read the scheduler's address from {scheduler_file}: {exc}. Give the file "
                    "`dask scheduler --scheduler-file` wrote"
                ) from None
        # A first connection of our own: a Client that fails to connect leaves dask's shared event loop
        # unusable for the next Client in this process.
        try:
            with concurrent.futures.ThreadPoolExecutor(1) as one:  # its own loop, even when called from a notebook
                one.submit(asyncio.run, _probe(address, security, timeout)).result()
        except Exception as exc:  # noqa: BLE001 - refused, unreachable, bad certificates: all mean "cannot connect"
            raise GradingError(
                f"cannot reach {address}: {type(exc).__name__}: {exc}. Is the scheduler running, "
                "and are the address and the TLS options right?"
            ) from None
        self.client = Client(address, timeout=timeout, security=security)
        self.address = self.client.scheduler.address
        if not self.address.startswith("tls://") and not _loopback(self.address):
            progress(
                f"WARNING: the scheduler at {self.address} is reached without TLS: anyone who can reach it can "
                'run code on the workers. Use tls:// with certificates (README, "Grading on a cluster").'
            )
        self.run_id = uuid.uuid4().hex[:12]
        self.plugin = None
        self.futures: list = []
        try:
            if not self.client.scheduler_info()["workers"]:
                progress(f"waiting up to {wait:.0f} s for a worker to join {self.address}")
                self.client.wait_for_workers(1, timeout=wait)
        except (TimeoutError, asyncio.TimeoutError):
            self.client.close()
            raise GradingError(f"no worker joined the scheduler at {self.address} within {wait:.0f} s") from None
        except BaseException:
            self.client.close()
            raise

    def workers(self) -> dict[str, dict]:
        return self.client.scheduler_info(n_workers=-1)["workers"]

    def describe(self) -> str:
        workers = self.workers()
        threads = sum(w.get("nthreads", 1) for w in workers.values())
        return f"on the cluster at {self.address} ({len(workers)} worker(s), {threads} thread(s))"

    def check(self, per_job_bytes: int = 0) -> list[str]:
        """Stop (GradingError) unless every worker matches this machine; return warnings."""
        self.expected = environment()
        found = self.client.run(environment, on_error="return")
        problems, warnings = [], []
        workers = self.workers()
        for address, theirs in sorted(found.items()):
            name = f"worker {address}" + (f" ({theirs['about']['host']})" if isinstance(theirs, dict) else "")
            if isinstance(theirs, BaseException):
                problems.append(f"{name} cannot run this course's grader: {type(theirs).__name__}: {theirs}")
                continue
            diff = differences(self.expected, theirs)
            if diff:
                problems.append(f"{name} does not match this machine: " + "; ".join(diff))
                continue
            nthreads = workers.get(address, {}).get("nthreads", 1)
            free = theirs["about"]["free temp bytes"]
            if per_job_bytes and free < nthreads * per_job_bytes:
                problems.append(
                    f"{name}: {free / 2**30:.1f} GiB free in {theirs['about']['temp']}, its {nthreads} "
                    f"thread(s) can need {nthreads * per_job_bytes / 2**30:.1f} GiB"
                )
            if theirs["process limit"]:
                warnings.append(f"note: {name}: {theirs['process limit']}")
        if problems:
            raise GradingError("refusing to grade on this cluster:\n  " + "\n  ".join(problems) + f"\n{HINT}")
        return warnings

    def send_master(self, master: Path) -> None:
        """Register the plugin that puts the master course on every worker, now and when one joins."""
        tar, self.digest = pack_master(master)
        self.plugin = f"dlcourse-master-{self.run_id}"
        self.client.register_plugin(MasterCourse(tar, self.digest, self.expected), name=self.plugin)

    def submit(self, sub: Submission, settings: Settings) -> concurrent.futures.Future:
        """Grade ``sub`` on the cluster; the future's result is a ``Result``, or WorkerRefused."""
        parcel = pack_submission(sub, settings.lesson_files)
        future = self.client.submit(
            grade_remote,
            parcel,
            settings,
            self.digest,
            key=f"grade-{self.run_id}-{sub.student_id}",
            retries=RETRIES,
            pure=False,
        )
        self.futures.append(future)
        out: concurrent.futures.Future = concurrent.futures.Future()

        def done(f):
            try:
                value = f.result()
            except BaseException as exc:  # noqa: BLE001 - handed on to the caller as the grading's outcome
                out.set_exception(exc)
                return
            if isinstance(value, Refusal):
                out.set_exception(WorkerRefused(f"refusing to grade on worker {value.worker}: {value.reason}\n{HINT}"))
            else:
                out.set_result(value)

        future.add_done_callback(done)
        return out

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        try:
            if self.futures:
                self.client.cancel(self.futures)
            if self.plugin:
                try:
                    self.client.unregister_worker_plugin(self.plugin)
                except Exception:  # noqa: BLE001, S110 - a worker gone meanwhile; its folder goes with it
                    pass
        finally:
            self.futures = []
            self.plugin = None
            self.client.close()
