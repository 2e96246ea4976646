"""The nbgrader server: each job in a fresh fork, in its own folder, environment, log and session.

Each job here is a real nbgrader command in a folder whose ``nbgrader_config.py`` (which
nbgrader runs first, from the current folder) says what the job sees, then ends it.
"""

from __future__ import annotations

import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from grader import job, nbgrader_server

psutil = pytest.importorskip("psutil")


def _course(folder: Path, body: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "nbgrader_config.py").write_text(textwrap.dedent(body))
    return folder


def _env(**extra: str) -> dict[str, str]:
    return {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "LANG": "C.UTF-8", **extra}


@pytest.fixture
def server():
    s = nbgrader_server.Server()
    yield s
    s.close()


REPORT = """
    import json, os, sys
    print("SEEN " + json.dumps({"cwd": os.getcwd(), "mark": os.environ.get("MARK"), "home": os.environ.get("HOME"),
                                "sid": os.getsid(0) == os.getpid(), "carried": hasattr(json, "left_by_a_job")}))
    json.left_by_a_job = True
    raise SystemExit(int(os.environ.get("EXIT", "0")))
"""


def _seen(log: Path) -> dict:
    import json

    lines = [line for line in log.read_text().splitlines() if line.startswith("SEEN ")]
    assert len(lines) == 1, log.read_text()
    return json.loads(lines[0][5:])


def test_each_job_runs_in_its_folder_environment_log_and_session_and_starts_afresh(server, tmp_path):
    seen = []
    for i in range(3):
        course = _course(tmp_path / f"job{i}", REPORT)
        log = tmp_path / f"job{i}.log"
        rc = server.run(["db", "student", "list"], course, _env(MARK=f"m{i}", EXIT=str(i + 3)), log, limit=60)
        assert rc == i + 3
        seen.append(_seen(log))
    for i, s in enumerate(seen):
        assert s == {"cwd": str(tmp_path / f"job{i}"), "mark": f"m{i}", "home": None, "sid": True, "carried": False}


def test_a_job_over_its_limit_is_killed_with_everything_it_started(server, tmp_path):
    pid_file = tmp_path / "sleeper.pid"
    course = _course(
        tmp_path / "slow",
        f"""
        import subprocess, time
        sleeper = subprocess.Popen(["sleep", "120"])
        open({str(pid_file)!r}, "w").write(str(sleeper.pid))
        time.sleep(120)
        """,
    )
    start = time.monotonic()
    assert server.run(["db", "student", "list"], course, _env(), tmp_path / "slow.log", limit=3) is None
    assert time.monotonic() - start < 30
    sleeper = int(pid_file.read_text())
    time.sleep(0.2)
    try:
        assert psutil.Process(sleeper).status() == psutil.STATUS_ZOMBIE, "the job's child outlived it"
    except psutil.NoSuchProcess:
        pass
    # The server goes on with the next job.
    course = _course(tmp_path / "next", REPORT)
    assert server.run(["db", "student", "list"], course, _env(), tmp_path / "next.log", limit=60) == 0


def test_a_job_runs_on_its_own_where_the_server_dies(tmp_path, monkeypatch):
    """The server killed while a job runs: the job runs again, one-shot, and its log says so."""
    kill_server = """
        import os, signal
        if b"--serve" in open(f"/proc/{os.getppid()}/cmdline", "rb").read():
            os.kill(os.getppid(), signal.SIGKILL)
            import time
            time.sleep(60)
    """
    course = _course(tmp_path / "c", textwrap.dedent(kill_server) + textwrap.dedent(REPORT))
    log = tmp_path / "job.log"
    monkeypatch.setattr(nbgrader_server, "_servers", {})
    try:
        rc = job._nbgrader(["db", "student", "list"], course, _env(MARK="again"), log, limit=60)
    finally:
        nbgrader_server.close()
    assert rc == 0
    assert "the nbgrader server failed" in log.read_text()
    assert _seen(log)["mark"] == "again"


def test_a_run_ends_its_servers(tmp_path):
    server = nbgrader_server.for_this_thread()
    assert nbgrader_server.for_this_thread() is server, "one server per thread, kept between jobs"
    course = _course(tmp_path / "c", REPORT)
    assert server.run(["db", "student", "list"], course, _env(), tmp_path / "log", limit=60) == 0
    assert psutil.Process(server.proc.pid).cmdline()[-1] == "--serve"
    nbgrader_server.close({threading.get_ident()})
    assert server.proc.poll() is not None
    assert not server.home.exists()
