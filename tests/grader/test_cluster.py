"""``python -m grader autograde --scheduler``: a class graded on a real dask cluster on loopback.

The scheduler and two workers are real processes started here (``dask scheduler``, ``dask worker
--nworkers 1 --nthreads 1``), talking TLS with certificates made for the test. The same small
class graded here and on the cluster must give identical ``grades.csv``; a worker killed while it
grades must not lose a row; a worker whose course differs is refused before anything is graded.
"""

from __future__ import annotations

import copy
import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from grader import autograde, course, sandbox
from grader.__main__ import main as grader_main
from tests.grader.classes import CONV_POOL, LIMITS, TIMEOUT, lean, load, solved

distributed = pytest.importorskip("distributed", reason="dask.distributed is not installed")
psutil = pytest.importorskip("psutil")

from grader import cluster  # noqa: E402  (after the skip: it needs dask.distributed)

pytestmark = [pytest.mark.notebooks, pytest.mark.sandbox]
# Lesson 02: its submissions grade for long enough (TensorFlow in each kernel) for a worker to be killed mid-run.
LESSON, NB, POINTS, FULL = CONV_POOL.name, CONV_POOL.nb, CONV_POOL.points, CONV_POOL.full
needs_isolation = pytest.mark.skipif(sandbox.isolation() is not None, reason=f"no sandbox here: {sandbox.isolation()}")
WORKER_MEMORY = "1GiB"  # the worker process itself; nbgrader and the kernel are its subprocesses, limited apart
WALL_CLOCK = 240


def _pythonpath(root: Path) -> str:
    """The course at ``root`` first, then wherever this interpreter found dask.distributed."""
    return os.pathsep.join([str(root), str(Path(distributed.__file__).resolve().parent.parent)])


class Processes:
    """A scheduler and workers on loopback, as real processes; each one's whole tree can be killed."""

    def __init__(self, folder: Path, tls: dict[str, Path] | None = None):
        self.folder, self.tls, self.procs = folder, tls, {}
        self.file = folder / "scheduler.json"
        self.logs = folder / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)

    def _tls_args(self) -> list[str]:
        if not self.tls:
            return []
        return [
            "--tls-ca-file",
            str(self.tls["ca"]),
            "--tls-cert",
            str(self.tls["cert"]),
            "--tls-key",
            str(self.tls["key"]),
        ]

    def _start(self, name: str, args: list[str], root: Path = course.ROOT, env: dict | None = None):
        env = dict(os.environ if env is None else env, PYTHONPATH=_pythonpath(root))
        with open(self.logs / f"{name}.log", "wb") as log:  # the process keeps its own copy of the descriptor
            self.procs[name] = subprocess.Popen(
                [sys.executable, "-m", "dask", *args],
                cwd=self.folder,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def scheduler(self) -> str:
        self._start(
            "scheduler",
            [
                "scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--no-dashboard",
                "--scheduler-file",
                str(self.file),
                "--protocol",
                "tls" if self.tls else "tcp",
                *self._tls_args(),
            ],
        )
        deadline = time.monotonic() + 60
        while not self.file.exists():
            assert self.procs["scheduler"].poll() is None, (self.logs / "scheduler.log").read_text()
            assert time.monotonic() < deadline, "the scheduler did not start"
            time.sleep(0.2)
        time.sleep(0.2)
        self.address = json.loads(self.file.read_text())["address"]
        return self.address

    def worker(self, name: str, root: Path = course.ROOT, env: dict | None = None) -> None:
        self._start(
            name,
            [
                "worker",
                self.address,
                "--name",
                name,
                "--nworkers",
                "1",
                "--nthreads",
                "1",
                "--memory-limit",
                WORKER_MEMORY,
                "--no-dashboard",
                "--host",
                "127.0.0.1",
                "--local-directory",
                str(self.folder / name),
                *self._tls_args(),
            ],
            root,
            env,
        )

    def client(self):
        security = None
        if self.tls:
            security = distributed.Security(
                tls_ca_file=str(self.tls["ca"]),
                tls_client_cert=str(self.tls["cert"]),
                tls_client_key=str(self.tls["key"]),
                require_encryption=True,
            )
        return distributed.Client(self.address, security=security, timeout=30)

    def wait_for(self, n: int) -> None:
        with self.client() as c:
            c.wait_for_workers(n, timeout=120)

    def kill(self, name: str) -> None:
        """SIGKILL a process and everything under it (a worker's nanny, worker, nbgrader, kernel), as a lost machine."""
        root = psutil.Process(self.procs[name].pid)
        tree = [root, *root.children(recursive=True)]
        for p in tree:
            try:
                p.send_signal(signal.SIGKILL)
            except psutil.NoSuchProcess:
                pass
        self.procs[name].wait(30)

    def stop(self) -> None:
        for proc in reversed(list(self.procs.values())):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for name, proc in self.procs.items():
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill(name)


def _certificates(folder: Path) -> dict[str, Path]:
    """A certificate authority and one certificate for 127.0.0.1 it signed (scheduler, workers, client)."""
    folder.mkdir()
    ca, ca_key, key, csr, cert = (folder / n for n in ("ca.pem", "ca.key", "key.pem", "req.csr", "cert.pem"))
    ext = folder / "ext.cnf"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")

    def openssl(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        str(ca_key),
        "-out",
        str(ca),
        "-days",
        "2",
        "-subj",
        "/CN=dlcourse test CA",
    )
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr), "-subj", "/CN=127.0.0.1")
    openssl(
        "x509",
        "-req",
        "-in",
        str(csr),
        "-CA",
        str(ca),
        "-CAkey",
        str(ca_key),
        "-CAcreateserial",
        "-out",
        str(cert),
        "-days",
        "2",
        "-extfile",
        str(ext),
    )
    return {"ca": ca, "cert": cert, "key": key}


def _small_class(folder: Path) -> Path:
    """Four notebooks to run (solved, blank, half solved, a loose renamed file) and one that is not a notebook."""
    solution, blank = load(course.SOLUTIONS, CONV_POOL), load(course.LESSONS, CONV_POOL)
    partial = solved(lean(blank), solution, "conv_output_size", "conv_param_count")
    for student, nb in (("correct", lean(solution)), ("blank", lean(blank)), ("partial", partial)):
        (folder / student / LESSON).mkdir(parents=True)
        (folder / student / LESSON / NB).write_text(json.dumps(nb, indent=1))
    (folder / "loose.ipynb").write_text(json.dumps(lean(solution), indent=1))
    (folder / "malformed" / LESSON).mkdir(parents=True)
    (folder / "malformed" / LESSON / NB).write_bytes(b'{"cells": [')
    return folder


EXPECTED = {
    "correct": FULL,
    "blank": 0,
    "partial": POINTS["test_conv_output_size"] + POINTS["test_conv_param_count"],
    "loose": FULL,
    "malformed": 0,
}


def _rows(out: Path) -> dict[str, dict]:
    with open(out / "grades.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len({r["student_id"] for r in rows}) == len(rows), "a student has two rows"
    return {r["student_id"]: r for r in rows}


@pytest.fixture(scope="module")
def small_class(tmp_path_factory):
    return _small_class(tmp_path_factory.mktemp("small-class") / "submissions")


@pytest.fixture(scope="module")
def local(small_class, tmp_path_factory):
    out = tmp_path_factory.mktemp("local") / "out"
    autograde.autograde(LESSON, small_class, out, jobs=2, timeout=TIMEOUT, wall_clock=WALL_CLOCK, limits=LIMITS)
    return out


@pytest.fixture(scope="module")
def tls_cluster(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cluster")
    procs = Processes(folder, tls=_certificates(folder / "tls"))
    try:
        procs.scheduler()
        procs.worker("w1")
        procs.worker("w2")
        procs.wait_for(2)
        yield procs
    finally:
        procs.stop()


def _grade_on(procs: Processes, submissions: Path, out: Path, said: list[str], by_file: bool = False):
    tls = procs.tls or {}
    where = {"scheduler_file": procs.file} if by_file else {"address": procs.address}
    return autograde.autograde(
        LESSON,
        submissions,
        out,
        jobs=2,
        timeout=TIMEOUT,
        wall_clock=WALL_CLOCK,
        limits=LIMITS,
        progress=said.append,
        cluster={**where, "tls_ca_file": tls.get("ca"), "tls_cert": tls.get("cert"), "tls_key": tls.get("key")},
    )


@needs_isolation
def test_the_cluster_grades_exactly_as_one_machine(small_class, local, tls_cluster, tmp_path):
    said: list[str] = []
    results = _grade_on(tls_cluster, small_class, tmp_path / "out", said)
    assert (tmp_path / "out" / "grades.csv").read_bytes() == (local / "grades.csv").read_bytes()
    rows = _rows(tmp_path / "out")
    assert {s: float(r["score"]) for s, r in rows.items()} == EXPECTED
    assert "loose.ipynb graded as " + NB in rows["loose"]["status"]
    for out in (local, tmp_path / "out"):  # the same feedback files, written by the client alone
        assert sorted(p.relative_to(out).as_posix() for p in (out / "feedback").rglob("*.html")) == [
            f"feedback/{s}/{NB.replace('.ipynb', '.html')}" for s in ("blank", "correct", "loose", "partial")
        ]
    assert (
        "hidden tests of this cell ran in the grader"
        in (tmp_path / "out" / "feedback" / "correct" / NB.replace(".ipynb", ".html")).read_text()
    )
    workers = {
        line.split("graded on ", 1)[1].split(" ", 1)[0]
        for line in (p.read_text().splitlines()[0] for p in (tmp_path / "out" / "logs").glob("*.log"))
    }
    assert len(workers) == 2 and all(w.startswith("tls://127.0.0.1:") for w in workers), workers
    assert any(f"on the cluster at {tls_cluster.address} (2 worker(s), 2 thread(s))" in line for line in said), said
    progress = [line for line in said if line.startswith("[")]
    assert [line.split("]")[0] for line in progress] == [f"[{i}/5" for i in range(1, 6)]
    assert all(" left" in line for line in progress[:-1]), progress
    assert sum(r.graded for r in results) == 4


def test_only_a_client_with_a_certificate_of_the_authority_connects(tls_cluster, tmp_path):
    stranger = _certificates(tmp_path / "stranger")  # a certificate from another authority
    for tls in ({}, {"tls_ca_file": stranger["ca"], "tls_cert": stranger["cert"], "tls_key": stranger["key"]}):
        with pytest.raises(autograde.GradingError, match="cannot reach"):
            cluster.Cluster(tls_cluster.address, timeout=5, **tls)
    tls = tls_cluster.tls
    with cluster.Cluster(tls_cluster.address, tls_ca_file=tls["ca"], tls_cert=tls["cert"], tls_key=tls["key"]) as ok:
        assert len(ok.workers()) == 2


@needs_isolation
def test_a_worker_killed_while_grading_loses_nothing(small_class, local, tls_cluster, tmp_path):
    """Worker w2 (its nanny, process, nbgrader and kernel: a lost machine) is killed while it grades."""
    said: list[str] = []
    outcome: dict = {}
    three = tmp_path / "submissions"  # three notebooks to run (and one refused): enough for w2 to get one
    shutil.copytree(small_class, three, ignore=shutil.ignore_patterns("loose.ipynb"))
    expected = set(EXPECTED) - {"loose"}

    def run():
        try:
            outcome["results"] = _grade_on(tls_cluster, three, tmp_path / "out", said, by_file=True)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            outcome["error"] = exc

    grading = threading.Thread(target=run)
    grading.start()
    killed = None
    with tls_cluster.client() as watch:
        w2 = next(a for a, w in watch.scheduler_info(n_workers=-1)["workers"].items() if w["name"] == "w2")
        since = {}
        deadline = time.monotonic() + 300
        while killed is None and time.monotonic() < deadline and grading.is_alive():
            for key in watch.processing(workers=[w2]).get(w2, []):
                since.setdefault(key, time.monotonic())
                if time.monotonic() - since[key] > 4:  # nbgrader and the kernel are running by now
                    killed = key
            time.sleep(0.2)
        assert killed, "worker w2 never held a submission long enough to be killed mid-run"
        tls_cluster.kill("w2")
    grading.join(600)
    assert not grading.is_alive() and "error" not in outcome, outcome.get("error")
    rows = _rows(tmp_path / "out")
    assert set(rows) == expected
    local_rows = _rows(local)
    for student in expected:
        assert rows[student] == local_rows[student], student
    killed_student = str(killed).split("grade-", 1)[1].split("-", 1)[1]
    assert killed_student in expected, killed


@needs_isolation
def test_a_worker_with_another_course_is_refused_before_grading(small_class, tmp_path):
    """A worker whose grader differs by a comment, and without bubblewrap on its PATH, stops the run."""
    other = tmp_path / "other-course"
    for name in ("grader", "dlcourse"):
        shutil.copytree(course.ROOT / name, other / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "environment.yml"):
        shutil.copy(course.ROOT / name, other / name)
    (other / "data").symlink_to(course.ROOT / "data")
    with open(other / "grader" / "job.py", "a") as f:
        f.write("# a change\n")
    procs = Processes(tmp_path / "cluster")
    try:
        procs.scheduler()
        procs.worker("good")
        procs.worker("odd", root=other, env=dict(os.environ, PATH="/nonexistent"))
        procs.wait_for(2)
        with procs.client() as c:
            odd = next(a for a, w in c.scheduler_info(n_workers=-1)["workers"].items() if w["name"] == "odd")
        said: list[str] = []
        with pytest.raises(autograde.GradingError) as refused:
            _grade_on(procs, small_class, tmp_path / "out", said)
    finally:
        procs.stop()
    message = str(refused.value)
    assert f"worker {odd}" in message and "grader code differs" in message
    assert "the sandbox cannot run there: bubblewrap is not installed" in message
    assert message.count("worker tcp://") == 1, "the matching worker is not refused"
    assert not (tmp_path / "out" / "grades.csv").exists(), "nothing is graded on a refused cluster"


def test_submissions_travel_as_data(tmp_path):
    """Only the files grading reads travel; loose notebooks keep their name; an oversized one only its size."""
    folder = tmp_path / "sub"
    folder.mkdir()
    (folder / NB).write_text("{}")
    (folder / "mnist_model.keras").write_bytes(b"model")
    (folder / "big.bin").write_bytes(b"x" * 1000)
    huge = folder / "huge.ipynb"
    with open(huge, "wb") as f:
        f.truncate(cluster.MAX_NOTEBOOK_BYTES + 1)
    loose = tmp_path / "ada.ipynb"
    loose.write_text('{"cells": []}')
    from grader.submissions import Submission

    sub = Submission(
        "ada",
        "Ada",
        {
            NB: folder / NB,
            "mnist_model.keras": folder / "mnist_model.keras",
            "big.bin": folder / "big.bin",
            "huge.ipynb": huge,
            "?": loose,
        },
        problem=None,
    )
    parcel = cluster.pack_submission(sub, ["mnist_model.keras"])
    assert set(parcel.files) == {NB, "mnist_model.keras", "huge.ipynb", "?"}
    assert parcel.files["huge.ipynb"] == ("huge.ipynb", cluster.MAX_NOTEBOOK_BYTES + 1)
    back = cluster.unpack_submission(parcel, tmp_path / "inbox")
    assert back.files["?"].name == "ada.ipynb" and back.files["?"].read_text() == '{"cells": []}'
    assert back.files["mnist_model.keras"].read_bytes() == b"model"
    assert back.files["huge.ipynb"].stat().st_size == cluster.MAX_NOTEBOOK_BYTES + 1
    assert (back.student_id, back.name) == ("ada", "Ada")


def test_the_master_tar_is_reproducible_and_keyed_by_content(tmp_path):
    master = tmp_path / "master"
    (master / "source" / LESSON).mkdir(parents=True)
    (master / "source" / LESSON / NB).write_text("{}")
    (master / "gradebook.db").write_bytes(b"db")
    (master / "plans.json").write_text("{}")
    (master / "data").mkdir()
    (master / "data" / "mnist.npz").write_bytes(b"made on each worker")
    tar, digest = cluster.pack_master(master)
    os.utime(master / "plans.json", (0, 12345))
    assert cluster.pack_master(master) == (tar, digest)
    assert b"made on each worker" not in tar
    (master / "plans.json").write_text('{"changed": 1}')
    assert cluster.pack_master(master)[1] != digest


def test_environment_differences_name_what_differs():
    here = cluster.environment()
    there = copy.deepcopy(here)
    there["compared"]["package numpy"] = "1.0"
    there["compared"]["grader code"] = "0" * 64
    there["bubblewrap"] = "bubblewrap is not installed"
    found = cluster.differences(here, there)
    assert f"numpy {here['compared']['package numpy']} here, 1.0 there" in found
    assert f"grader code differs (here {here['compared']['grader code'][:12]}, there 000000000000)" in found
    assert "the sandbox cannot run there: bubblewrap is not installed" in found
    assert cluster.differences(here, dict(copy.deepcopy(here), bubblewrap="works")) == []


def test_a_worker_that_differs_refuses_every_submission(tmp_path):
    """The check a worker makes when it joins (the plugin's set-up): a difference is kept, and given as the reason."""
    expected = cluster.environment()
    expected["compared"]["package numpy"] = "0.1"
    tar, digest = cluster.pack_master(tmp_path)
    prepared = cluster.unpack_master(tar, digest, expected)
    try:
        assert prepared.master is None and prepared.work is None
        assert prepared.problem.startswith("numpy 0.1 here, ")
    finally:
        cluster.release_master(digest)
    assert digest not in cluster._PREPARED


def test_tls_options_need_a_scheduler(tmp_path, capsys):
    assert grader_main(["autograde", LESSON, "--submissions", str(tmp_path), "--tls-cert", "c.pem"]) == 2
    assert "--tls-* options go with --scheduler" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        grader_main(
            [
                "autograde",
                LESSON,
                "--submissions",
                str(tmp_path),
                "--scheduler",
                "tcp://a:1",
                "--scheduler-file",
                "s.json",
            ]
        )


def test_a_scheduler_off_this_machine_without_tls_is_flagged():
    assert cluster._loopback("tcp://127.0.0.1:8786") and cluster._loopback("tcp://localhost:8786")
    assert cluster._loopback("tcp://[::1]:8786")
    assert not cluster._loopback("tcp://10.1.2.3:8786") and not cluster._loopback("tcp://grading.example.org:8786")
