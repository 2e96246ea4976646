"""One nbgrader process per grading slot that forks a fresh copy of itself for each submission.

Starting nbgrader costs a grading job about 1.5 s of CPU (importing nbgrader, nbconvert, the
feedback's templates and their libraries) before it reads the submission. A ``Server``
is ``python -I grader/nbgrader_run.py --serve``: it imports all that once, then forks a copy
per job, which runs exactly what the one-shot ``nbgrader_run.py ARGS`` would, in the job's
folder, environment and log, in a session of its own. No copy runs after another: each is
forked from the server, which never reads a submission. Student code is not involved at any
point: it runs in the sandboxed kernel that the copy starts, as before.

Each grading thread has its own server (``for_this_thread``); ``close`` ends them (all of
them at exit). Where a server cannot start or dies before a job's copy is forked, the job
runs the one-shot way; where it dies after, the copy is stopped and the job runs that way.
"""

from __future__ import annotations

import atexit
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from . import sandbox

RUNNER = sandbox.ROOT / "grader" / "nbgrader_run.py"
START_TIMEOUT = 120  # seconds for the server to import nbgrader and answer its first request
_GONE = object()


class ServerGone(RuntimeError):
    """The server ended, or answered nonsense: the job runs the one-shot way (``grader.job``)."""


class Server:
    def __init__(self):
        self.home = Path(tempfile.mkdtemp(prefix="nbgrader-server-"))
        env = {
            "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "HOME": str(self.home),
            "JUPYTER_PLATFORM_DIRS": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        with open(self.home / "server.log", "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-I", str(RUNNER), "--serve"],
                cwd=self.home,
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                start_new_session=True,
            )
        self.buffer = b""
        self.started = False

    def run(self, args: list[str], cwd: Path, env: dict, log_path: Path, limit: float) -> int | None:
        """Run ``args`` in a fresh copy; its exit status, or None when killed at ``limit`` seconds."""
        request = {"args": args, "cwd": str(cwd), "env": env, "log": str(log_path)}
        try:
            self.proc.stdin.write((json.dumps(request) + "\n").encode())
            self.proc.stdin.flush()
        except OSError as exc:
            raise ServerGone(f"cannot reach the server: {exc}") from None
        answer = self._answer(START_TIMEOUT if not self.started else 30)
        if not isinstance(answer, dict) or not isinstance(answer.get("pid"), int):
            raise ServerGone(f"no fork: {answer!r}")
        self.started = True
        pid = answer["pid"]
        answer = self._answer(max(limit, 1))
        if answer is None or answer is _GONE:  # over the limit, or the server died: stop the copy
            try:
                os.killpg(pid, signal.SIGKILL)  # the copy stays unreaped until our next request
            except ProcessLookupError:
                pass
            if answer is _GONE or self._answer(30) is _GONE:
                raise ServerGone("the server ended while the job ran")
            return None
        if not isinstance(answer.get("rc"), int):
            raise ServerGone(f"no exit status: {answer!r}")
        return answer["rc"]

    def _answer(self, timeout: float) -> dict | object | None:
        """The server's next answer; None at the timeout; _GONE where it ended."""
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                return None
            chunk = os.read(fd, 4096)
            if not chunk:
                return _GONE
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        try:
            return json.loads(line)
        except ValueError:
            return _GONE

    def close(self) -> None:
        try:
            self.proc.stdin.close()
            self.proc.wait(timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()
        self.proc.stdout.close()
        shutil.rmtree(self.home, ignore_errors=True)


_servers: dict[int, Server] = {}
_lock = threading.Lock()


def for_this_thread() -> Server:
    """This thread's server, started on first use (or again after it died)."""
    me = threading.get_ident()
    with _lock:
        server = _servers.get(me)
    if server is not None and server.proc.poll() is None:
        return server
    if server is not None:
        server.close()
    server = Server()
    with _lock:
        _servers[me] = server
    return server


def close(threads: set[int] | None = None) -> None:
    """End the servers of ``threads`` (default: all of them)."""
    with _lock:
        servers = [_servers.pop(t) for t in list(_servers) if threads is None or t in threads]
    for server in servers:
        server.close()


atexit.register(close)
