"""pyproject.toml and environment.yml ask for the same learner packages with the same ranges.

environment.yml is the conda / Binder route to the learner's environment: the packages of
pyproject.toml's ``dependencies`` (not the ``test`` extra), pinned by the lock.
"""

import re

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the same parser, as a package (pytest needs it there)
    import tomli as tomllib

import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

LOCK = "requirements-lock.txt"


def _requirements(lines):
    return {canonicalize_name(r.name): r.specifier for r in map(Requirement, lines)}


def _project(root):
    return tomllib.loads((root / "pyproject.toml").read_text())["project"]


def _conda_pip_lines(root):
    env = yaml.safe_load((root / "environment.yml").read_text())
    return next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))


def _conda_pip(root):
    return [line for line in _conda_pip_lines(root) if not line.startswith("-")]


def test_same_packages_and_ranges(repo_root):
    project = _requirements(_project(repo_root)["dependencies"])
    conda = _requirements(_conda_pip(repo_root))
    assert set(project) == set(conda), (
        f"only in pyproject: {set(project) - set(conda)}; only in environment.yml: {set(conda) - set(project)}"
    )
    for name in project:
        assert project[name] == conda[name], f"{name}: pyproject {project[name]} vs environment.yml {conda[name]}"


def test_learner_environment_has_no_test_tools(repo_root):
    test_tools = _requirements(_project(repo_root)["optional-dependencies"]["test"])
    for name in ("pytest", "pytest-xdist", "playwright", "ruff"):
        assert name in test_tools, f"{name} belongs in pyproject.toml's [project.optional-dependencies] test"
    learner = set(_requirements(_project(repo_root)["dependencies"])) | set(_requirements(_conda_pip(repo_root)))
    assert not learner & set(test_tools), (
        f"test tools in the learner's install: {sorted(learner & set(test_tools))}; move them to the test extra"
    )


def test_environment_pins_with_the_lock(repo_root):
    lines = _conda_pip_lines(repo_root)
    assert f"-c {LOCK}" in lines, f"environment.yml's pip section must constrain to the lock: add '- -c {LOCK}'"
    assert (repo_root / LOCK).is_file(), f"{LOCK} is missing: make lock writes it"


def test_environment_installs_the_package_and_says_why_for_each_line(repo_root):
    text = (repo_root / "environment.yml").read_text()
    assert re.search(r"^\s*- -e \.\s", text, re.MULTILINE), "environment.yml must pip-install the dlcourse package"
    for line in text.split("dependencies:", 1)[1].splitlines():
        if re.match(r"^\s*- ", line) and not line.strip().startswith("- pip:"):
            assert "#" in line, f"environment.yml line without a note on what needs it: {line.strip()}"


def test_python_version_allowed_by_pyproject(repo_root):
    env = yaml.safe_load((repo_root / "environment.yml").read_text())
    python = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python="))
    version = python.split("=")[1]
    spec = _project(repo_root)["requires-python"]
    assert version in SpecifierSet(spec), f"environment.yml's {python} is outside requires-python {spec}"
