"""How long a fresh `make lab` takes to install, with a cold and a warm package cache.

    python -m bench.install_time              measure and rewrite the table in bench/README.md
    python -m bench.install_time --no-write   print only

It copies the course's files into a temporary folder and runs `make install` there (the
install step of `make lab`, without opening JupyterLab), as a learner's machine would:
pip's configuration files and any extra package locations of this machine are ignored,
so every package comes from the package index. Runs, in order:

1. cold: a new, empty pip cache (PIP_CACHE_DIR);
2. the test tools on top (`make install-test`, what `make test` adds);
3. warm: `.venv` removed, the same pip cache as run 1;
4. wheels on disk: `.venv` removed, every locked wheel already downloaded into a folder
   pip is pointed at (PIP_FIND_LINKS): the install without any download, which is what a
   warm cache gives wherever the index's answers can be cached.

Each run's wall time, the size of .venv and of the pip cache are reported. It downloads
about a gigabyte per cold run and takes a quarter of an hour or more.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "bench" / "README.md"
BEGIN, END = "<!-- install:begin -->", "<!-- install:end -->"
# What the install needs from the repository (make install: pyproject, the lock, the package).
COURSE_FILES = ["Makefile", "pyproject.toml", "README.md", "requirements-lock.txt", "dlcourse", "grader"]


def folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink()) if path.exists() else 0


def gib(n: int) -> str:
    return f"{n / 2**30:.2f} GiB"


def learner_pip_environment(cache: Path, find_links: Path | None = None) -> dict[str, str]:
    """This process's environment with pip reading no configuration and only the package index."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PIP_", "VIRTUAL_ENV", "PYTHONPATH")) or k in ("PIP_CERT", "PIP_DEFAULT_TIMEOUT")
    }
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if not p.startswith(str(ROOT)))
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_CACHE_DIR=str(cache), PIP_DISABLE_PIP_VERSION_CHECK="1")
    if find_links is not None:
        env["PIP_FIND_LINKS"] = str(find_links)
    return env


def timed_make(course: Path, target: str, python: str, env: dict[str, str], log: Path) -> float:
    start = time.perf_counter()
    with log.open("a") as out:
        subprocess.run(
            ["make", "--no-print-directory", "-C", str(course), target, f"PYTHON={python}"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            check=True,
        )
    return time.perf_counter() - start


def measure(python: str, keep: Path | None = None) -> list[tuple[str, str]]:
    work = Path(tempfile.mkdtemp(prefix="dlcourse-install-", dir=keep))
    course, cache, wheels, log = work / "course", work / "pip-cache", work / "wheels", work / "make.log"
    course.mkdir()
    for name in COURSE_FILES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, course / name, ignore=shutil.ignore_patterns("__pycache__", "work", "output"))
        else:
            shutil.copy2(source, course / name)
    venv = course / ".venv"
    rows = []
    try:
        cold = timed_make(course, "install", python, learner_pip_environment(cache), log)
        lab_size, cold_cache = folder_bytes(venv), folder_bytes(cache)
        rows.append(
            (
                "fresh `make lab` install, cold pip cache (every package downloaded)",
                f"{cold:.0f} s; .venv {gib(lab_size)}; pip cache afterwards {gib(cold_cache)}",
            )
        )
        tools = timed_make(course, "install-test", python, learner_pip_environment(cache), log)
        rows.append(
            (
                "`make test`'s test tools on top (pytest, pytest-xdist, Playwright, Ruff, JAX for CPU)",
                f"{tools:.0f} s; .venv {gib(folder_bytes(venv))} (+{gib(folder_bytes(venv) - lab_size)})",
            )
        )
        shutil.rmtree(venv)
        warm = timed_make(course, "install", python, learner_pip_environment(cache), log)
        kept = folder_bytes(cache)
        note = (
            ""
            if kept > 2**20
            else (
                " (pip kept nothing in its cache here: the package index's answers on this"
                " network carry no caching headers, so this run downloaded everything again)"
            )
        )
        rows.append(
            (
                "fresh `make lab` install, warm pip cache (the cache of the cold run)",
                f"{warm:.0f} s; pip cache {gib(kept)}{note}",
            )
        )
        shutil.rmtree(venv)
        env = learner_pip_environment(cache)
        subprocess.run(
            [python, "-m", "pip", "download", "--quiet", "-d", str(wheels), "-c", "requirements-lock.txt", "."],
            cwd=course,
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        local = timed_make(course, "install", python, learner_pip_environment(cache, find_links=wheels), log)
        rows.append(
            (
                "fresh `make lab` install, every wheel already on disk (no download)",
                f"{local:.0f} s; wheels {gib(folder_bytes(wheels))}",
            )
        )
    finally:
        if keep is None:
            shutil.rmtree(work, ignore_errors=True)
    return rows


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def render(rows: list[tuple[str, str]], python: str) -> str:
    version = subprocess.run([python, "--version"], capture_output=True, text=True, check=False).stdout.strip()
    head = (
        f"Measured {datetime.date.today()} on: {cpu_name()}, {os.cpu_count()} cores; {version}; "
        "packages from the package index over this machine's network.\n\n| install | result |\n| --- | --- |\n"
    )
    return head + "".join(f"| {a} | {b} |\n" for a, b in rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--python",
        default=getattr(sys, "_base_executable", sys.executable),
        help="interpreter `make` creates .venv with (default: the one running this)",
    )
    parser.add_argument("--no-write", action="store_true", help="print the table, leave bench/README.md alone")
    parser.add_argument("--keep", type=Path, help="work in (and keep) a folder under this one, with make's log")
    args = parser.parse_args(argv)
    table = render(measure(args.python, args.keep), args.python)
    print(table)
    if not args.no_write:
        text = README.read_text()
        block = f"{BEGIN}\n{table}{END}"
        if BEGIN in text:
            text = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _: block, text, flags=re.DOTALL)
        else:
            text = text.rstrip("\n") + "\n\n" + block + "\n"
        README.write_text(text)


if __name__ == "__main__":
    main()
