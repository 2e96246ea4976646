"""nbgrader preprocessors of the class grader (configured by ``grader.job`` for each job).

- ``RefereedExecute`` replaces nbgrader's ``Execute``: student cells run in the sandboxed
  kernel as usual, test cells are run by the referee inside it (``grader/referee.py``) and
  their outcome comes back as a record signed with a key only this process and the referee
  know.  It also caps output while the notebook runs, watches the runtime folder the kernel
  shares with the host, keeps one deadline for the whole submission, and when a cell hangs or
  the kernel dies marks the cells after it "not reached" instead of losing the notebook.
- ``FeedbackSafety`` prepares an autograded notebook for the students' eyes: the hidden tests'
  code is cut from the test cells (their verdicts stay), HTML and Markdown are sanitized and
  nothing that would run a script is left.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import stat
import threading
import time
from pathlib import Path

from nbconvert.preprocessors.sanitize import SanitizeHTML
from nbformat import NotebookNode
from nbgrader.preprocessors import Execute, NbGraderPreprocessor
from traitlets import Float, Integer, Unicode

from . import sandbox

HIDDEN = re.compile(r"^[ \t]*### BEGIN HIDDEN TESTS.*?^[ \t]*### END HIDDEN TESTS[^\n]*\n?", re.M | re.S)
_RECORD_BYTES = 512 * 1024


def _nbgrader(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def is_test_cell(cell) -> bool:
    meta = _nbgrader(cell)
    return cell.get("cell_type") == "code" and bool(meta.get("grade")) and not meta.get("solution")


def _stream(text: str, name: str = "stdout") -> NotebookNode:
    return NotebookNode(output_type="stream", name=name, text=text)


def _error(ename: str, evalue: str, lines: list[str] | None = None) -> NotebookNode:
    return NotebookNode(
        output_type="error", ename=ename, evalue=evalue, traceback=[f"{ename}: {evalue}", *(lines or [])]
    )


class RefereedExecute(Execute):
    """Execute a notebook in the grading sandbox, with its tests judged by the referee."""

    plan_file = Unicode("", help="JSON file: notebook name -> {tests, setup, student_names, preload}").tag(config=True)
    report_file = Unicode("", help="JSON lines file this writes each notebook's problems and findings to").tag(
        config=True
    )
    runtime_dir = Unicode("", help="the job's runtime folder, shared with the sandbox").tag(config=True)
    deadline = Float(0.0, help="time.time() after which no cell starts (0: none)").tag(config=True)
    cell_output_bytes = Integer(1 << 20, help="output bytes kept per cell while executing").tag(config=True)
    notebook_output_bytes = Integer(8 << 20, help="output bytes kept per notebook while executing").tag(config=True)
    runtime_bytes = Integer(64 << 20, help="bytes the kernel may leave in the runtime folder").tag(config=True)
    files_bytes = Integer(1 << 30, help="the sandbox's cap on its files and /tmp (for messages)").tag(config=True)
    record_wait = Float(0.5, help="seconds to wait for the referee's record after the kernel replied").tag(config=True)

    def preprocess(self, nb, resources=None, km=None):
        name = (resources or {}).get("unique_key", "notebook") + ".ipynb"
        plans = json.loads(Path(self.plan_file).read_text(encoding="utf-8"))
        plan = plans.get(name)
        self.report = {
            "notebook": name,
            "problems": [],
            "findings": [],
            "tests": {},
            "cells": 0,
            "seconds": {"cells": 0.0, "tests": 0.0, "checks": 0.0, "total": 0.0},
        }
        self._t0 = time.monotonic()
        if plan is None:
            self.report["problems"].append(f"{name}: no grading plan (not a notebook of this lesson)")
            self._write_report()
            return nb, resources
        self.key = secrets.token_bytes(32)
        self.stopped: str | None = None
        self.cell_bytes = self.notebook_bytes = 0
        self.truncated_cell = None
        runtime = Path(self.runtime_dir)
        self.results = runtime / f"referee-{secrets.token_hex(6)}"
        self.results.mkdir(mode=0o700)
        plan_path = runtime / f"plan-{secrets.token_hex(8)}.json"
        fd = os.open(plan_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump({**plan, "key": self.key.hex(), "results": str(self.results)}, f)
        os.environ[sandbox.PLAN_ENV] = str(plan_path)
        self._watch = threading.Event()
        watchdog = threading.Thread(target=self._watch_runtime, daemon=True)
        watchdog.start()
        try:
            return super().preprocess(nb, resources, km)
        except Exception as exc:  # the kernel could not start, or nbclient gave up: the cells keep what they have
            self.report["problems"].append(f"kernel failed: {type(exc).__name__}: {str(exc)[:300]}")
            self._mark_rest(nb, 0, "kernel failed")
            return nb, resources
        finally:
            self._watch.set()
            plan_path.unlink(missing_ok=True)
            self.report["seconds"]["total"] = round(time.monotonic() - self._t0, 2)
            self._write_report()

    # -- cells ------------------------------------------------------------------------------
    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type != "code":
            return cell, resources
        self.current = self._label(cell, index)
        self.cell_bytes, self.truncated_cell = 0, None
        if not self.stopped and self.deadline and time.time() > self.deadline:
            self.stopped = "not reached (time limit of the submission)"
            self.report["problems"].append(f"stopped at the time limit of the submission, before cell {self.current}")
        if self.stopped:
            if is_test_cell(cell):
                cell.outputs = [_error("NotReached", self.stopped)]
                self.report["tests"][_nbgrader(cell)["grade_id"]] = {"passed": False, "not_reached": self.stopped}
            else:
                cell.outputs = []
            return cell, resources
        self.report["cells"] += 1
        seconds = self.report["seconds"]
        t = time.monotonic()
        try:
            if is_test_cell(cell):
                self._run_test(cell, resources, index)
                seconds["tests"] += time.monotonic() - t
            else:
                super().preprocess_cell(cell, resources, index)
                seconds["cells"] += time.monotonic() - t
                if self._timed_out(cell):
                    self.report["problems"].append(f"timeout in cell {self.current}")
                    self._settle()
                if not _nbgrader(cell).get("locked") and not self.stopped:
                    t = time.monotonic()
                    self._check_after(self.current)
                    seconds["checks"] += time.monotonic() - t
                self._note_errors(cell)
        except Exception as exc:  # DeadKernelError and friends: this cell and the ones after it are lost
            self._kernel_lost(cell, exc)
        return cell, resources

    def _run_test(self, cell, resources, index):
        grade_id = _nbgrader(cell)["grade_id"]
        nonce = secrets.token_hex(12)
        source = cell.source
        cell.source = f"__import__('sys').audit('dlcourse.test', {grade_id!r}, {nonce!r})"
        try:
            super().preprocess_cell(cell, resources, index)
        finally:
            cell.source = source
        timed_out = self._timed_out(cell)
        if timed_out:
            self._settle()
        record = self._read_record(nonce, wait=0 if self.stopped else self.record_wait)
        outputs = []
        if record is None:
            why = "time limit" if timed_out else "its result never came back from the kernel"
            outputs.append(_error("NoResult", f"the test did not report a result ({why})"))
            self.report["tests"][grade_id] = {
                "passed": False,
                "no_record": True,
                "timeout": timed_out,
                "error": ["NoResult", f"the test did not report a result ({why})"],
            }
            if timed_out:
                self.report["problems"].append(f"timeout in cell {grade_id}")
        else:
            self.report["findings"] += [[grade_id, f] for f in record.get("findings", [])]
            if record.get("output"):
                outputs.append(_stream(record["output"]))
            if not record.get("passed"):
                ename, evalue, lines = (list(record.get("error") or ["Failed", "", []]) + [[]])[:3]
                outputs.append(_error(str(ename), str(evalue), [str(x) for x in lines]))
                if ename == "KeyboardInterrupt" or timed_out:
                    self.report["problems"].append(f"timeout in cell {grade_id}")
            reached = "not reached (time limit): an earlier test did not stop" if record.get("not_reached") else False
            self.report["tests"][grade_id] = {
                "passed": bool(record.get("passed")),
                "seconds": record.get("seconds"),
                "not_reached": reached,
            }
            if not record.get("passed"):  # what the class report groups: the failure as the student saw it
                self.report["tests"][grade_id]["error"] = [str(ename), str(evalue)[:2000]]
        cell.outputs = outputs

    def _check_after(self, label: str) -> None:
        """Ask the referee what the cell just run changed in the grading machinery."""
        nonce = secrets.token_hex(12)
        msg_id = self.kc.execute(
            f"__import__('sys').audit('dlcourse.check', {nonce!r}, {label!r})", silent=True, store_history=False
        )
        reply = self.wait_for_reply(msg_id)
        record = self._read_record(nonce, wait=self.record_wait if reply else 0)
        if record is None:
            self.report["findings"].append(
                [label, "the grader's check after this cell did not run (the kernel's way of running code was changed)"]
            )
        else:
            self.report["findings"] += [[label, f] for f in record.get("findings", [])]

    def _settle(self) -> None:
        """After a timeout: wait until the kernel is idle again; if it never is, stop it and stop here."""
        msg_id = self.kc.execute("pass", silent=True, store_history=False)
        timeout, self.timeout = self.timeout, 20
        try:
            reply = self.wait_for_reply(msg_id)
        finally:
            self.timeout = timeout
        if reply is not None:
            return
        self.stopped = "not reached (time limit): the kernel did not stop after an interrupt"
        self.report["problems"].append(f"cell {self.current} did not stop when interrupted; the kernel was stopped")
        self._kill_kernel()

    def _kernel_lost(self, cell, exc: Exception) -> None:
        pid = self._kernel_pid()
        if pid and sandbox.oom_killed(pid):
            what = f"out of memory in cell {self.current} (the kernel was stopped at its memory limit)"
        elif getattr(self, "runtime_overflow", None):
            what = self.runtime_overflow
        else:
            what = f"kernel died in cell {self.current} (os._exit, a crash, or the memory or CPU limit)"
        self.report["problems"].append(what)
        self.stopped = "not reached: the kernel died in an earlier cell"
        if is_test_cell(cell):
            cell.outputs = [_error("DeadKernel", what)]
            self.report["tests"][_nbgrader(cell)["grade_id"]] = {"passed": False, "error": ["DeadKernel", what]}
        else:
            cell.outputs = list(cell.get("outputs", [])) + [_error("DeadKernel", what)]

    def _mark_rest(self, nb, start: int, why: str) -> None:
        for cell in nb.cells[start:]:
            if is_test_cell(cell) and _nbgrader(cell)["grade_id"] not in self.report["tests"]:
                cell.outputs = [_error("NotReached", why)]

    def _timed_out(self, cell) -> bool:
        return any(
            o.get("output_type") == "error" and o.get("ename") == "CellTimeoutError" for o in cell.get("outputs", [])
        )

    def _note_errors(self, cell) -> None:
        for out in cell.get("outputs", []):
            if out.get("output_type") != "error":
                continue
            text = f"{out.get('ename', '')}: {out.get('evalue', '')}"
            if out.get("ename") == "MemoryError":
                self.report["problems"].append(f"out of memory in cell {self.current}")
            elif "No space left on device" in text or "[Errno 28]" in text or "File too large" in text:
                self.report["problems"].append(
                    f"file limit reached in cell {self.current} "
                    f"({_size(self.files_bytes)} for its files and /tmp together)"
                )

    # -- records ----------------------------------------------------------------------------
    def _read_record(self, nonce: str, wait: float) -> dict | None:
        path = self.results / f"{nonce}.json"
        deadline = time.monotonic() + wait
        while True:
            record = self._load(path)
            if record is not None or time.monotonic() >= deadline:
                return record
            time.sleep(0.05)

    def _load(self, path: Path) -> dict | None:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:
            return None
        try:
            with os.fdopen(fd, "rb") as f:
                if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                    return None
                raw = f.read(_RECORD_BYTES + 1)
        except OSError:
            return None
        if len(raw) > _RECORD_BYTES:
            return None
        try:
            outer = json.loads(raw)
            body = outer["body"]
            mac = hmac.new(self.key, body.encode(), hashlib.sha256).hexdigest()
            if not hmac.compare_digest(mac, str(outer["mac"])):
                return None
            record = json.loads(body)
        except (ValueError, KeyError, TypeError):
            return None
        return record if record.get("nonce") == path.stem else None

    def _write_report(self) -> None:
        if self.report_file:
            with open(self.report_file, "a", encoding="utf-8") as f:
                f.write(json.dumps(self.report) + "\n")

    # -- limits while running ---------------------------------------------------------------
    def output(self, outs, msg, display_id, cell_index):
        size = _message_size(msg)
        self.cell_bytes += size
        self.notebook_bytes += size
        if self.cell_bytes > self.cell_output_bytes or self.notebook_bytes > self.notebook_output_bytes:
            if self.truncated_cell != cell_index:
                self.truncated_cell = cell_index
                outs.append(
                    _stream(
                        f"\n[Output truncated: over {self.cell_output_bytes >> 20} MiB in this cell or "
                        f"{self.notebook_output_bytes >> 20} MiB in the notebook]\n",
                        "stderr",
                    )
                )
                self.report["problems"].append(
                    f"output over the limit in cell {getattr(self, 'current', '?')} (truncated)"
                )
            return None
        return super().output(outs, msg, display_id, cell_index)

    def handle_comm_msg(self, outs, msg, cell_index):
        size = _message_size(msg)
        self.notebook_bytes += size
        if self.notebook_bytes > self.notebook_output_bytes:
            return None
        return super().handle_comm_msg(outs, msg, cell_index)

    async def async_start_new_kernel_client(self):
        kc = await super().async_start_new_kernel_client()
        import zmq

        for channel in (kc.iopub_channel, kc.shell_channel):
            try:
                channel.socket.setsockopt(zmq.MAXMSGSIZE, max(self.cell_output_bytes, 1 << 20) * 4)
            except Exception:
                pass
        return kc

    def _kernel_pid(self) -> int | None:
        provisioner = getattr(self.km, "provisioner", None)
        return getattr(provisioner, "pid", None) or getattr(getattr(provisioner, "process", None), "pid", None)

    def _watch_runtime(self) -> None:
        """Stop the kernel if it fills the runtime folder (the one place it can write on the host's disk).

        The kernel's own stderr (kernel.log) is cut back instead: C libraries may be chatty.
        """
        runtime = Path(self.runtime_dir)
        kernel_log = runtime / "kernel.log"
        while not self._watch.wait(0.25):
            total, entries = 0, 0
            for folder, dirs, files in os.walk(runtime, followlinks=False):
                for name in files + dirs:
                    entries += 1
                    path = os.path.join(folder, name)
                    try:
                        size = os.lstat(path).st_size
                    except OSError:
                        continue
                    if path == str(kernel_log):
                        if size > self.runtime_bytes // 4:
                            try:
                                os.truncate(path, 0)
                            except OSError:
                                pass
                        continue
                    total += size
            if total > self.runtime_bytes or entries > 5000:
                self.runtime_overflow = (
                    f"wrote more than {self.runtime_bytes >> 20} MiB (or 5000 files) into the "
                    f"grader's runtime folder in cell {getattr(self, 'current', '?')}"
                )
                self._kill_kernel()
                for folder, _dirs, files in os.walk(runtime, topdown=False, followlinks=False):
                    for name in files:
                        if not name.endswith(".json") and not name.startswith("kernel"):
                            try:
                                os.unlink(os.path.join(folder, name))
                            except OSError:
                                pass
                return

    def _kill_kernel(self) -> None:
        pid = self._kernel_pid()
        if pid:
            try:
                os.kill(pid, 9)
            except OSError:
                pass

    @staticmethod
    def _label(cell, index: int) -> str:
        return _nbgrader(cell).get("grade_id") or f"#{index + 1}"


def _size(n: int) -> str:
    return f"{n / 2**30:g} GiB" if n >= 2**30 else f"{n / 2**20:g} MiB"


def _message_size(msg: dict) -> int:
    content = msg.get("content", {})
    size = 0
    for value in (content.get("text"), content.get("data"), content.get("traceback"), content.get("state")):
        if isinstance(value, str):
            size += len(value)
        elif isinstance(value, dict):
            size += sum(len(v) if isinstance(v, str) else len(json.dumps(v)) for v in value.values())
        elif isinstance(value, list):
            size += sum(len(str(v)) for v in value)
    size += sum(len(b) for b in msg.get("buffers", []) or [])
    return size


def _escape_markdown(text: str) -> str:
    return re.sub(r"([\\`*_{}\[\]()#+!<>|])", r"\\\1", str(text))


class FeedbackSafety(NbGraderPreprocessor):
    """Feedback shows what each test checked as the student saw it, never the hidden tests, and runs no script."""

    note = Unicode("# (the hidden tests of this cell ran in the grader; their code is not shown)\n").tag(config=True)
    notes_file = Unicode("", help="JSON list of the grader's notes on this submission, shown first").tag(config=True)
    report_file = Unicode("", help="RefereedExecute's report: its problems and findings are shown too").tag(config=True)

    def preprocess(self, nb, resources):
        nb.metadata.pop("widgets", None)
        self.sanitizer = SanitizeHTML(parent=self)
        notes = (
            json.loads(Path(self.notes_file).read_text(encoding="utf-8"))
            if self.notes_file and Path(self.notes_file).is_file()
            else []
        )
        name = (resources or {}).get("unique_key", "") + ".ipynb"
        if self.report_file and Path(self.report_file).is_file():
            from .job import review_summary

            for line in Path(self.report_file).read_text(encoding="utf-8").splitlines():
                report = json.loads(line)
                if report.get("notebook") == name:
                    notes += report["problems"]
                    if report["findings"]:
                        notes.append(
                            "review: "
                            + review_summary([f"{what} (cell {where})" for where, what in report["findings"]])
                        )
        if notes:
            text = "**Notes from the grader**\n\n" + "\n".join(f"- {_escape_markdown(n)}" for n in notes)
            nb.cells.insert(0, NotebookNode(cell_type="markdown", metadata={}, source=text, id="grader-notes"))
        return super().preprocess(nb, resources)

    def preprocess_cell(self, cell, resources, index):
        if is_test_cell(cell) or HIDDEN.search(cell.get("source", "")):
            cell.source = HIDDEN.sub(self.note, cell.source)
        if cell.cell_type == "markdown":
            cell.source = re.sub(r"(?i)javascript:", "", cell.source)
        cell, resources = self.sanitizer.preprocess_cell(cell, resources, index) or (cell, resources)
        if cell.cell_type == "code":
            for out in cell.get("outputs", []):
                out.get("metadata", {}).clear()
        return cell, resources
