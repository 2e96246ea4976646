"""The install: which Python `make` uses, the lock of tested versions, a fresh install.

- `make` creates .venv with PYTHON= when given, else python3 when it is a supported
  version, else the newest supported python3.X on the PATH, and stops before creating
  anything when there is none (checked with stand-in interpreters, so nothing installs).
- requirements-lock.txt pins every requirement of pyproject.toml exactly once, within its
  range, for every supported Python on Linux, macOS (Apple Silicon) and Windows; the
  environment `make` built is exactly the lock.
- slow: the course installs from the lock into a fresh environment on a second Python, as
  `make` installs it (uv, at the Makefile's version), and runs lesson 00 there.
- lock (run by `make lock`, not by `make test`): every pinned package has a wheel for each
  supported Python on each platform, asked of the package index with pip.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the same parser, as a package (pytest needs it there)
    import tomli as tomllib

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]
LOCK = REPO / "requirements-lock.txt"

# Marker values of the platforms the README promises (sys_platform, platform_system,
# platform_machine, os_name), and the wheel platform tags pip may use there.
PLATFORMS = {
    "Linux x86_64": (
        {"sys_platform": "linux", "platform_system": "Linux", "platform_machine": "x86_64", "os_name": "posix"},
        [
            "manylinux_2_28_x86_64",
            "manylinux_2_27_x86_64",
            "manylinux_2_17_x86_64",
            "manylinux2014_x86_64",
            "manylinux_2_5_x86_64",
            "manylinux1_x86_64",
            "linux_x86_64",
        ],
    ),
    "macOS arm64": (
        {"sys_platform": "darwin", "platform_system": "Darwin", "platform_machine": "arm64", "os_name": "posix"},
        [
            "macosx_14_0_arm64",
            "macosx_13_0_arm64",
            "macosx_12_0_arm64",
            "macosx_11_0_arm64",
            "macosx_12_0_universal2",
            "macosx_11_0_universal2",
            "macosx_10_9_universal2",
        ],
    ),
    "Windows x86_64": (
        {"sys_platform": "win32", "platform_system": "Windows", "platform_machine": "AMD64", "os_name": "nt"},
        ["win_amd64"],
    ),
}


def supported_pythons() -> list[str]:
    """The Makefile's SUPPORTED_PYTHONS, newest first, e.g. ['3.13', ..., '3.10']."""
    match = re.search(r"^SUPPORTED_PYTHONS := (.+)$", (REPO / "Makefile").read_text(), re.MULTILINE)
    assert match, "Makefile: SUPPORTED_PYTHONS := <versions, newest first> is missing"
    return match.group(1).split()


def project() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def lock_requirements() -> list[Requirement]:
    lines = (line.split("#", 1)[0].strip() for line in LOCK.read_text().splitlines())
    return [Requirement(line) for line in lines if line]


def marker_environment(python_full: str, platform: str) -> dict[str, str]:
    env = dict(default_environment())
    env.update(
        PLATFORMS[platform][0],
        python_version=".".join(python_full.split(".")[:2]),
        python_full_version=python_full,
        implementation_name="cpython",
        platform_python_implementation="CPython",
        extra="",
    )
    return env


def pins_for(env: dict[str, str]) -> dict[str, str]:
    """{package: version} the lock installs in that marker environment; fails on a double pin."""
    pins: dict[str, str] = {}
    for req in lock_requirements():
        if req.marker is not None and not req.marker.evaluate(env):
            continue
        name = canonicalize_name(req.name)
        (spec,) = req.specifier
        assert spec.operator == "==", f"{LOCK.name}: {req} is not an exact pin"
        assert name not in pins, (
            f"{LOCK.name} pins {name} twice for Python {env['python_full_version']} on {env['sys_platform']}"
        )
        pins[name] = spec.version
    return pins


ENVIRONMENTS = [
    (f"{py}.{patch}", platform) for py in reversed(supported_pythons()) for patch in (0, 99) for platform in PLATFORMS
]


# --- Which Python make uses ---------------------------------------------------------


def test_makefile_supports_exactly_the_pythons_pyproject_allows():
    allowed = SpecifierSet(project()["requires-python"])
    in_range = {f"3.{minor}" for minor in range(6, 30) if f"3.{minor}.0" in allowed}
    assert set(supported_pythons()) == in_range, (
        f"Makefile SUPPORTED_PYTHONS {supported_pythons()} vs pyproject requires-python {allowed}: make them agree"
    )
    assert supported_pythons() == sorted(supported_pythons(), key=lambda v: -int(v.split(".")[1])), (
        "list them newest first"
    )


def _stand_in(folder: Path, name: str, version: str) -> Path:
    """An executable `name` that answers the Makefile's version question with `version`."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(f"#!/bin/sh\necho {version}\n")
    path.chmod(0o755)
    return path


def _make(tmp_path: Path, bin_dir: Path, *args: str) -> subprocess.CompletedProcess:
    make = shutil.which("make")
    if make is None or not Path("/bin/bash").exists():
        pytest.skip("needs GNU make and /bin/bash")
    env = {"PATH": str(bin_dir), "HOME": str(tmp_path)}
    return subprocess.run(
        [make, "--no-print-directory", "-C", str(REPO), f"VENV={tmp_path / 'venv'}", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def test_make_stops_before_creating_anything_when_only_python_3_14_exists(tmp_path):
    bin_dir = tmp_path / "bin"
    _stand_in(bin_dir, "python3", "3.14")
    done = _make(tmp_path, bin_dir, "install")
    assert done.returncode != 0, f"make install went ahead with only Python 3.14:\n{done.stdout}\n{done.stderr}"
    assert not (tmp_path / "venv").exists(), "make created the environment before finding a supported Python"
    message = done.stderr
    for needed in (
        "3.10 to 3.13",
        "found: python3 (3.14)",
        "uv python install",
        "pyenv install",
        "conda env create -f environment.yml",
        "apt-get install",
        "PYTHON=",
    ):
        assert needed in message, f"the message should mention {needed!r}; it says:\n{message}"


def test_make_prefers_a_supported_python3(tmp_path):
    bin_dir = tmp_path / "bin"
    python3 = _stand_in(bin_dir, "python3", "3.11")
    _stand_in(bin_dir, "python3.13", "3.13")
    done = _make(tmp_path, bin_dir, "which-python")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"{python3} (Python 3.11)"


def test_make_takes_the_newest_supported_python3_x_when_python3_is_not_supported(tmp_path):
    bin_dir = tmp_path / "bin"
    _stand_in(bin_dir, "python3", "3.14")
    _stand_in(bin_dir, "python3.10", "3.10")
    python312 = _stand_in(bin_dir, "python3.12", "3.12")
    done = _make(tmp_path, bin_dir, "which-python")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"{python312} (Python 3.12)"


def test_make_uses_the_python_it_is_given_and_refuses_an_unsupported_one(tmp_path):
    bin_dir = tmp_path / "bin"
    _stand_in(bin_dir, "python3", "3.13")
    python310 = _stand_in(tmp_path / "elsewhere", "python", "3.10")
    done = _make(tmp_path, bin_dir, "which-python", f"PYTHON={python310}")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"{python310} (Python 3.10)"
    python314 = _stand_in(tmp_path / "new", "python", "3.14")
    done = _make(tmp_path, bin_dir, "install", f"PYTHON={python314}")
    assert done.returncode != 0 and f"found: {python314} (3.14)" in done.stderr, done.stderr
    assert not (tmp_path / "venv").exists()


# --- The lock --------------------------------------------------------------------


@pytest.mark.parametrize(("python", "platform"), ENVIRONMENTS)
def test_lock_pins_every_requirement_of_pyproject_within_its_range(python, platform):
    pins = pins_for(marker_environment(python, platform))
    wanted = [Requirement(r) for r in project()["dependencies"] + project()["optional-dependencies"]["test"]]
    for req in wanted:
        name = canonicalize_name(req.name)
        assert name in pins, f"{LOCK.name} has no pin of {name} for Python {python} on {platform}: run make lock"
        assert req.specifier.contains(pins[name], prereleases=True), (
            f"{LOCK.name} pins {name}=={pins[name]} for Python {python} on {platform}, outside pyproject's {req}: run make lock"
        )


def test_lock_agrees_with_environment_yml():
    import yaml

    env = yaml.safe_load((REPO / "environment.yml").read_text())
    python = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python="))
    version = python.split("=", 1)[1]
    assert version in supported_pythons(), (
        f"environment.yml's {python} is not one the lock covers ({supported_pythons()})"
    )
    pip_lines = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert f"-c {LOCK.name}" in pip_lines, f"environment.yml must install with '-c {LOCK.name}'"
    for platform in PLATFORMS:
        pins = pins_for(marker_environment(f"{version}.0", platform))
        for line in pip_lines:
            if line.startswith("-"):
                continue
            req = Requirement(line)
            name = canonicalize_name(req.name)
            assert name in pins and req.specifier.contains(pins[name], prereleases=True), (
                f"environment.yml asks for {req}; {LOCK.name} pins {pins.get(name)} for Python {version} on {platform}"
            )


def test_this_environment_is_exactly_the_lock():
    """The .venv that `make test` built holds the locked versions, nothing more or less."""
    stamps = [Path(sys.prefix, name) for name in (".dlcourse-lab", ".dlcourse-test")]
    if not all(s.is_file() for s in stamps):
        pytest.skip("not running in an environment built by `make test`")
    if not all(s.read_text().strip() == LOCK.name for s in stamps):
        pytest.skip(f"this environment was built without {LOCK.name} (make ... LOCK=)")
    env = dict(default_environment())
    pins = pins_for(env)
    # Asked of a fresh interpreter: once imported, setuptools puts its vendored packages on this
    # process's sys.path, and their metadata would count as installed.
    listing = subprocess.run(
        [
            sys.executable,
            "-c",
            "import importlib.metadata as m\nfor d in m.distributions(): print(d.metadata['Name'], d.version)",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    installed = {canonicalize_name(name): version for name, version in (line.split() for line in listing.splitlines())}
    not_ours = {"pip", "dlcourse", "uv"}  # the installer, the course itself, `make lock`'s resolver
    differ = {
        n: (installed.get(n), pins.get(n))
        for n in (set(installed) | set(pins)) - not_ours
        if installed.get(n) != pins.get(n)
    }
    extra = sorted(n for n, (_, pinned) in differ.items() if pinned is None)
    assert not differ, f"installed vs locked (None: absent) for Python {env['python_full_version']}: {differ}" + (
        f". pip installs but never removes: `{sys.executable} -m pip uninstall {' '.join(extra)}` removes what "
        "the lock does not name (after a package left it), or `make clean && make test` builds .venv afresh"
        if extra
        else ""
    )


# --- The learner's and the instructor's JupyterLab -------------------------------

INSTRUCTOR_PLUGINS = {
    "@jupyter/nbgrader:create-assignment",
    "@jupyter/nbgrader:formgrader",
    "@jupyter/nbgrader:course-list",
}
NEWS_PLUGIN = "@jupyterlab/apputils-extension:announcements"


def _lab_view(tmp_path: Path, config_path: str) -> tuple[set[str], int]:
    """(disabled lab plugins, HTTP status of /formgrader) of a JupyterLab of this environment."""
    import secrets
    import socket
    import urllib.error
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    token = secrets.token_hex(8)
    home = tmp_path / f"home-{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("JUPYTER")}
    env.update(
        JUPYTER_CONFIG_PATH=config_path,
        JUPYTER_CONFIG_DIR=str(home / "config"),
        JUPYTER_RUNTIME_DIR=str(home / "runtime"),
        JUPYTERLAB_SETTINGS_DIR=str(home / "settings"),
        JUPYTERLAB_WORKSPACES_DIR=str(home / "workspaces"),
    )
    command = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={REPO / 'lessons'}",
        "--allow-root",
    ]
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def get(path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}?token={token}", timeout=10) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, ""

    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                get("/api/status")
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, "JupyterLab did not start"
                time.sleep(0.5)
        _, page = get("/lab")
        data = re.search(r'<script id="jupyter-config-data" type="application/json">(.*?)</script>', page, re.DOTALL)
        assert data, "no page config in JupyterLab's page"
        return set(json.loads(data.group(1))["disabledExtensions"]), get("/formgrader")[0]
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_learner_lab_has_validate_and_no_instructor_tools_and_instructor_lab_has_them(tmp_path):
    venv = Path(sys.prefix)
    if not Path(venv, ".dlcourse-lab").is_file():
        pytest.skip("not running in an environment built by `make`")
    disabled, formgrader = _lab_view(tmp_path, str(REPO / "grader"))
    assert INSTRUCTOR_PLUGINS <= disabled, f"the learner's lab shows instructor tools: {INSTRUCTOR_PLUGINS - disabled}"
    assert NEWS_PLUGIN in disabled, "the learner's lab asks about Jupyter news"
    assert "@jupyter/nbgrader:validate-assignment" not in disabled, "the learner's lab has no Validate button"
    assert formgrader == 404, f"the learner's server serves the formgrader (HTTP {formgrader})"

    disabled, formgrader = _lab_view(tmp_path, f"{venv / 'etc' / 'dlcourse-instructor'}{os.pathsep}{REPO / 'grader'}")
    assert not INSTRUCTOR_PLUGINS & disabled, f"make instructor-lab hides {INSTRUCTOR_PLUGINS & disabled}"
    assert NEWS_PLUGIN in disabled and "@jupyter/nbgrader:validate-assignment" not in disabled
    assert formgrader in (200, 302), f"make instructor-lab's server has no formgrader (HTTP {formgrader})"


# --- A fresh install on a second Python (slow) -----------------------------------


def _version_of(python: str) -> str | None:
    try:
        out = subprocess.run(
            [python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except OSError:
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def second_python() -> tuple[str | None, str]:
    """(interpreter, why): DLCOURSE_SECOND_PYTHON, else a Python 3.13 (another supported one
    when the tests run on 3.13) from the PATH or pyenv; (None, reason) when there is none."""
    running = "{}.{}".format(*sys.version_info[:2])
    if os.environ.get("DLCOURSE_SECOND_PYTHON"):
        candidates = [os.environ["DLCOURSE_SECOND_PYTHON"]]
    else:
        wanted = [v for v in supported_pythons() if v != running]
        pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"), "versions")
        candidates = []
        for v in wanted:
            candidates += [shutil.which(f"python{v}") or ""]
            candidates += sorted(str(p) for p in pyenv.glob(f"{v}.*/bin/python{v}"))
    for candidate in filter(None, candidates):
        version = _version_of(candidate)
        if version in supported_pythons() and version != running:
            return candidate, version
    return None, (
        f"no second supported Python next to {running} (looked for python3.X on the PATH and in pyenv): "
        "install one (pyenv install 3.13, uv python install 3.13, apt-get install python3.13-venv) "
        "or set DLCOURSE_SECOND_PYTHON"
    )


@pytest.mark.slow
def test_course_installs_from_the_lock_and_runs_lesson_00_on_a_second_python(tmp_path, record_property):
    python, version = second_python()
    if python is None:
        pytest.skip(version)
    course = tmp_path / "course"
    course.mkdir()
    for name in ("pyproject.toml", "README.md", LOCK.name):
        shutil.copy2(REPO / name, course / name)
    ignore = shutil.ignore_patterns("__pycache__", ".ipynb_checkpoints", "*.keras")
    for folder in ("dlcourse", "data", "solutions/00_getting_started"):
        shutil.copytree(REPO / folder, course / folder, ignore=ignore)
    venv = tmp_path / "venv"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "JUPYTER_CONFIG_PATH")}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"

    start = time.perf_counter()
    subprocess.run([python, "-m", "venv", str(venv)], check=True, timeout=120)
    pip = [str(venv / "bin" / "python"), "-m", "pip"]
    uv_version = re.search(r"^UV_VERSION := (\S+)$", (REPO / "Makefile").read_text(), re.M).group(1)
    subprocess.run(
        pip + ["install", "--quiet", "--upgrade", "pip", f"uv=={uv_version}"], check=True, env=env, timeout=600
    )
    uv = [str(venv / "bin" / "uv"), "pip", "install", "--python", str(venv / "bin" / "python"), "--compile-bytecode"]
    done = subprocess.run(
        uv + ["-c", LOCK.name, "-e", "."],
        cwd=course,
        capture_output=True,
        text=True,
        env=env,
        timeout=3000,
        check=False,
    )
    assert done.returncode == 0, (
        f"install from the lock on Python {version} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    )
    install_s = time.perf_counter() - start

    frozen = subprocess.run(pip + ["list", "--format", "json"], capture_output=True, text=True, check=True, env=env)
    installed = {canonicalize_name(p["name"]): p["version"] for p in json.loads(frozen.stdout)}
    probe = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-c",
            "import json, packaging.markers as m; print(json.dumps(m.default_environment()))",
        ],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    pins = pins_for(json.loads(probe.stdout))
    differ = {
        n: (v, pins.get(n)) for n, v in installed.items() if n not in ("pip", "uv", "dlcourse") and pins.get(n) != v
    }
    assert not differ, f"installed on Python {version} vs locked (None: not in the lock): {differ}"
    assert not {"pytest", "pytest-xdist", "playwright", "ruff"} & set(installed), (
        "the learner's install must not bring the test tools"
    )

    start = time.perf_counter()
    notebook = course / "solutions" / "00_getting_started" / "00_getting_started.ipynb"
    run = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import dlcourse; print(dlcourse.__file__)"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        check=False,
    )
    assert run.returncode == 0 and str(course) in run.stdout, (
        f"import dlcourse on Python {version}: {run.stdout}{run.stderr}"
    )
    run = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-m",
            "jupyter",
            "nbconvert",
            "--to",
            "notebook",
            "--execute",
            "--ExecutePreprocessor.timeout=300",
            "--output",
            str(tmp_path / "ran.ipynb"),
            str(notebook),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=notebook.parent,
        timeout=900,
        check=False,
    )
    assert run.returncode == 0, f"lesson 00 failed on Python {version}:\n{run.stderr[-4000:]}"
    lesson_s = time.perf_counter() - start
    record_property("install_seconds", round(install_s))
    record_property("lesson_00_seconds", round(lesson_s))
    print(f"Python {version} ({python}): install from the lock {install_s:.0f} s, lesson 00 {lesson_s:.0f} s")


# --- Wheels for every Python and platform (make lock) ----------------------------


def _wheels_missing(python: str, platform: str) -> str:
    """pip's complaint when some pinned package has no wheel for that Python and platform, else ''."""
    pins = pins_for(marker_environment(f"{python}.0", platform))
    tmp = Path(os.environ.get("TMPDIR", "/tmp"))
    requirements = tmp / f"dlcourse-lock-{python}-{platform.replace(' ', '-')}.txt"
    requirements.write_text("".join(f"{n}=={v}\n" for n, v in sorted(pins.items())))
    command = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--dry-run",
        "--quiet",
        "--ignore-installed",
        "--no-deps",
        "--only-binary",
        ":all:",
        "--implementation",
        "cp",
        "--python-version",
        python,
        "--target",
        str(tmp / "dlcourse-lock-target"),
        "-r",
        str(requirements),
    ]
    for tag in PLATFORMS[platform][1]:
        command += ["--platform", tag]
    done = subprocess.run(command, capture_output=True, text=True, timeout=1800, check=False)
    requirements.unlink()
    return "" if done.returncode == 0 else done.stderr[-2000:]


@pytest.mark.slow
@pytest.mark.lock
def test_lock_has_wheels_for_every_supported_python_and_platform():
    combos = [(py, platform) for py in supported_pythons() for platform in PLATFORMS]
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        missing = dict(zip(combos, pool.map(lambda c: _wheels_missing(*c), combos)))
    failed = {f"Python {py} on {platform}": why for (py, platform), why in missing.items() if why}
    assert not failed, "pinned packages without a wheel (pip's words):\n" + "\n".join(
        f"{k}: {v}" for k, v in failed.items()
    )
