"""pyproject.toml and environment.yml ask for the same packages with the same ranges."""

import re
import tomllib

import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name


def _requirements(lines):
    return {canonicalize_name(r.name): r.specifier for r in map(Requirement, lines)}


def _pyproject(root):
    return tomllib.loads((root / "pyproject.toml").read_text())["project"]["dependencies"]


def _conda_pip(root):
    env = yaml.safe_load((root / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    return [line for line in pip_section if not line.startswith("-")]


def test_same_packages_and_ranges(repo_root):
    project = _requirements(_pyproject(repo_root))
    conda = _requirements(_conda_pip(repo_root))
    assert set(project) == set(conda), f"only in pyproject: {set(project) - set(conda)}; only in environment.yml: {set(conda) - set(project)}"
    for name in project:
        assert project[name] == conda[name], f"{name}: pyproject {project[name]} vs environment.yml {conda[name]}"


def test_environment_installs_the_package_and_says_why_for_each_line(repo_root):
    text = (repo_root / "environment.yml").read_text()
    assert re.search(r"^\s*- -e \.\s", text, re.M), "environment.yml must pip-install the dlcourse package"
    for line in text.split("dependencies:", 1)[1].splitlines():
        if re.match(r"^\s*- ", line) and not line.strip().startswith("- pip:"):
            assert "#" in line, f"environment.yml line without a note on what needs it: {line.strip()}"


def test_python_version_allowed_by_pyproject(repo_root):
    env = yaml.safe_load((repo_root / "environment.yml").read_text())
    python = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python="))
    version = python.split("=")[1]
    spec = tomllib.loads((repo_root / "pyproject.toml").read_text())["project"]["requires-python"]
    from packaging.specifiers import SpecifierSet

    assert version in SpecifierSet(spec), f"environment.yml's {python} is outside requires-python {spec}"
