"""A sandboxed referee kernel started the way the grader starts one, for tests that attack it directly.

``SandboxedKernel(lesson)`` prepares the lesson like ``python -m grader autograde`` does,
writes a referee plan with a fresh key, starts the kernel through the grader's kernelspec
(launcher, bubblewrap, referee) and lets a test run code in it (``run``), ask the referee
to judge a test cell (``test``) or to check the machinery (``check``), reading back the
signed records exactly as the grader does.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import shutil
import tempfile
from pathlib import Path

from grader import autograde, sandbox


class SandboxedKernel:
    def __init__(
        self,
        lesson: str,
        notebook: str | None = None,
        limits: sandbox.Limits | None = None,
        isolate: bool = True,
        files: dict[str, Path] | None = None,
        plan_extra: dict | None = None,
        threads: int = 0,
    ):
        self.work = Path(tempfile.mkdtemp(prefix="k-", dir="/tmp"))
        master, _ = autograde.prepare(lesson, self.work)
        plans = json.loads((master / "plans.json").read_text())
        plan = plans[notebook or sorted(plans)[0]]
        self.runtime = self.work / "run"
        self.runtime.mkdir(mode=0o700)
        self.key = secrets.token_bytes(32)
        self.results = self.runtime / "referee"
        self.results.mkdir()
        plan_path = self.runtime / "plan.json"
        plan_path.write_text(
            json.dumps({**plan, **(plan_extra or {}), "key": self.key.hex(), "results": str(self.results)})
        )
        self.limits = limits or sandbox.Limits()
        env = dict(os.environ)
        from dlcourse import data

        env.update(
            sandbox.settings(
                self.limits,
                self.runtime,
                isolate,
                files,
                {str(data.DATA_DIR): master / "data"},
                {"mnist.npz": data.mnist_path()},
                threads,
            )
        )
        env.update(
            {
                sandbox.PLAN_ENV: str(plan_path),
                "JUPYTER_PATH": str(master / "share"),
                "JUPYTER_RUNTIME_DIR": str(self.runtime),
            }
        )
        from jupyter_client.kernelspec import KernelSpecManager
        from jupyter_client.manager import KernelManager

        ksm = KernelSpecManager(kernel_dirs=[str(master / "share" / "kernels")])
        self.km = KernelManager(
            kernel_name=sandbox.KERNEL_NAME, kernel_spec_manager=ksm, transport="ipc", ip=str(self.runtime / "kernel")
        )
        self.km.start_kernel(env=env)
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=180)

    def run(self, code: str, timeout: float = 120) -> tuple[str, dict | None]:
        """Run ``code`` as a student cell: (everything it printed, the error output or None)."""
        text, error = [], []

        def hook(msg):
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream":
                text.append(content["text"])
            elif kind == "error":
                error.append(content)
            elif kind in ("execute_result", "display_data"):
                text.append(content["data"].get("text/plain", ""))

        self.kc.execute_interactive(code, timeout=timeout, output_hook=hook)
        return "".join(text), (error[0] if error else None)

    def _referee(self, event: str, *args: str, timeout: float = 300) -> dict | None:
        nonce = secrets.token_hex(8)
        self.kc.execute_interactive(
            f"__import__('sys').audit({event!r}, {', '.join(map(repr, args))}, {nonce!r})"
            if event == "dlcourse.test"
            else f"__import__('sys').audit({event!r}, {nonce!r}, {args[0]!r})",
            timeout=timeout,
            output_hook=lambda m: None,
        )
        return self.record(nonce)

    def test(self, grade_id: str, timeout: float = 300) -> dict | None:
        """Have the referee run test cell ``grade_id``; its verified record (None if missing or forged)."""
        return self._referee("dlcourse.test", grade_id, timeout=timeout)

    def check(self, label: str = "cell") -> dict | None:
        return self._referee("dlcourse.check", label)

    def record(self, nonce: str) -> dict | None:
        path = self.results / f"{nonce}.json"
        if not path.is_file() or path.is_symlink():
            return None
        outer = json.loads(path.read_text())
        mac = hmac.new(self.key, outer["body"].encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(mac, outer["mac"]):
            return None
        return json.loads(outer["body"])

    def close(self) -> None:
        try:
            self.kc.stop_channels()
            self.km.shutdown_kernel(now=True)
        finally:
            sandbox.remove_stale_cgroups()
            shutil.rmtree(self.work, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
