# dlcourse: the two commands of the README, and the maintainers' tools.
#   make lab      install into .venv if needed, then open JupyterLab on lessons/
#   make test     install into .venv (with the test tools) if needed, then run the whole test suite
SHELL := /bin/bash
# The interpreter that creates .venv: PYTHON= when given, else python3 when it is a
# supported version, else the newest supported python3.X on the PATH.
PYTHON ?=
# Newest first. TensorFlow publishes wheels for these versions only (none for 3.14 yet).
SUPPORTED_PYTHONS := 3.13 3.12 3.11 3.10
VENV ?= .venv
BIN := $(VENV)/bin
# The exact versions the course was tested with; `make lab LOCK=` installs the newest
# versions pyproject.toml allows instead.
LOCK ?= requirements-lock.txt
LAB_STAMP := $(VENV)/.dlcourse-lab
TEST_STAMP := $(VENV)/.dlcourse-test
PORT ?= 8888
LAB_ARGS ?=
# JupyterLab refuses to run as root (containers, CI) unless told to.
ROOT_FLAG := $(if $(filter 0,$(shell id -u 2>/dev/null)),--allow-root)

# nbgrader and the notebooks call tools by name (jupyter, alembic): use the venv's.
# Pythons to create it with are looked up on the PATH as it was before.
USER_PATH := $(PATH)
export PATH := $(abspath $(BIN)):$(PATH)
# The validator behind nbgrader's Validate button reads grader/nbgrader_config.py.
export JUPYTER_CONFIG_PATH := $(abspath grader)

.PHONY: help install install-test lab instructor-lab test test-fast lint format lessons check bench screenshots test-models \
	clean system-tools lock lock-upgrade which-python FORCE

help:
	@echo "make lab        install (first time) and open JupyterLab on lessons/"
	@echo "make test       install with the test tools (first time) and run the whole test suite"
	@echo "make test-fast  every test that runs no notebook, no grading kernel and nothing slow"
	@echo "make lint       ruff: lint and format check (make test runs it first); make format fixes"
	@echo "make instructor-lab  JupyterLab on the whole course with nbgrader's instructor tools"
	@echo "make lessons    regenerate lessons/ from solutions/ (instructors)"
	@echo "make check      solutions pass, lessons fail, lessons in sync"
	@echo "make bench      run the benchmarks and update bench/README.md"
	@echo "make screenshots  redraw docs/images/ (visualizers, class report) in Chromium"
	@echo "make test-models  train lesson 06's test models again (tests/lessons/models/)"
	@echo "make lock       re-resolve $(LOCK) from pyproject.toml, keeping the tested versions that still fit"
	@echo "make lock-upgrade  the same, taking the newest versions (then run make test)"
	@echo "make clean      remove .venv and generated files"

# --- Choosing the Python --------------------------------------------------------------
# The "3.X" of an interpreter, or nothing when it does not run.
PY_VERSION_OF = "$(1)" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null
# Shell code: sets $$py to the interpreter to use, or explains what to do and fails.
# It runs before anything is created.
define CHOOSE_PYTHON
supported=" $(SUPPORTED_PYTHONS) "; py=""; found=""; \
if [ -n "$(PYTHON)" ]; then candidates="$(PYTHON)"; \
else candidates="python3 $(addprefix python,$(SUPPORTED_PYTHONS))"; fi; \
for c in $$candidates; do \
    path=$$(PATH="$(USER_PATH)" command -v "$$c") || continue; \
    v=$$($(call PY_VERSION_OF,$$path)) || v=""; \
    [ -n "$$v" ] || continue; found="$$found $$c ($$v)"; \
    case "$$supported" in *" $$v "*) py="$$path"; break;; esac; \
done; \
if [ -z "$$py" ]; then \
    printf '%s\n' \
    "dlcourse needs Python $(lastword $(SUPPORTED_PYTHONS)) to $(firstword $(SUPPORTED_PYTHONS)): TensorFlow has no wheels for other versions." \
    "Looked for: $$candidates; found:$${found:- none that runs}." \
    "Get a supported Python, then run make again, for example:" \
    "  uv:     uv python install 3.13 && make $(or $(MAKECMDGOALS),lab) PYTHON=\"\$$(uv python find 3.13)\"" \
    "  pyenv:  pyenv install 3.13 && pyenv local 3.13 && make $(or $(MAKECMDGOALS),lab)" \
    "  conda:  conda env create -f environment.yml && conda activate dlcourse && make $(or $(MAKECMDGOALS),lab) PYTHON=python" \
    "  the OS: sudo apt-get install python3.13 python3.13-venv (Debian/Ubuntu), sudo dnf install python3.13 (Fedora)," \
    "          brew install python@3.13 (macOS); then make $(or $(MAKECMDGOALS),lab) PYTHON=python3.13" >&2; \
    exit 1; \
fi
endef

# Prints the interpreter `make lab` would create .venv with (creates nothing).
which-python:
	@$(CHOOSE_PYTHON); echo "$$py (Python $$($(call PY_VERSION_OF,$$py)))"

# PYTHON= given and .venv made with another version: rebuild .venv with the one asked for.
ifneq ($(strip $(PYTHON)),)
ifneq ($(shell $(call PY_VERSION_OF,$(BIN)/python)),$(shell PATH="$(USER_PATH)" $(call PY_VERSION_OF,$(PYTHON))))
$(LAB_STAMP): FORCE
endif
endif
FORCE:

# --- Installing -------------------------------------------------------------------------
# One .venv serves both: `make lab` installs the course (learner's packages only), `make
# test` adds the test extra on top. Each step runs again only when pyproject.toml or the
# lock changed, so switching between `make lab` and `make test` installs nothing.
# uv installs the same pinned wheels as pip, about twice as fast (downloads and unpacking in
# parallel; 28 s instead of 61 s for the test environment from an empty cache, bench/README.md),
# byte-compiled as pip leaves them (the grading sandbox cannot write .pyc files). Where uv
# cannot be installed into .venv, or cannot install (a proxy it does not trust, say), pip does
# the install.
UV_VERSION := 0.13.9
CONSTRAINTS = $(if $(strip $(LOCK)),-c "$(LOCK)")
INSTALL = { [ -x "$(BIN)/uv" ] && \
	    "$(BIN)/uv" pip install --python "$(BIN)/python" --compile-bytecode $(CONSTRAINTS) $(1); } || \
	{ echo "Installing with pip instead of uv."; \
	  "$(BIN)/python" -m pip install --progress-bar off $(CONSTRAINTS) $(1); }
# The learner's JupyterLab: nbgrader's Validate button, but not its instructor tools
# (create assignment, formgrader, course and assignment lists, which need an nbgrader
# exchange the course does not use). Lab plugin ids and server extension names:
INSTRUCTOR_LAB := @jupyter/nbgrader:create-assignment @jupyter/nbgrader:formgrader \
	@jupyter/nbgrader:course-list @jupyter/nbgrader:assignment-list @jupyter/nbgrader:menu
INSTRUCTOR_SERVER := nbgrader.server_extensions.formgrader \
	nbgrader.server_extensions.course_list nbgrader.server_extensions.assignment_list
# Off for everyone: the prompt about Jupyter news (and its update check), and on for everyone
# nbgrader's Validate button.
NEVER_LAB := @jupyterlab/apputils-extension:announcements
ALWAYS_LAB := @jupyter/nbgrader:validate-assignment
# `make instructor-lab` puts this folder first on JUPYTER_CONFIG_PATH: it turns them back on.
INSTRUCTOR_CONFIG := $(VENV)/etc/dlcourse-instructor
# Writes both views as Jupyter config files. argv: venv, then four groups separated by "--":
# instructor lab plugins, instructor server extensions, plugins always off, always on.
# The learner's view is the venv's own (sys-prefix) config, so a plain `jupyter lab` in the
# venv shows it too; the instructor's folder overrides it, as JUPYTER_CONFIG_PATH comes first.
define JUPYTER_VIEWS
import json, pathlib, sys
venv, groups = pathlib.Path(sys.argv[1]), " ".join(sys.argv[2:]).split(" -- ")
plugins, servers, never, always = (g.split() for g in groups)
def write(folder, hide):
    lab = folder / "labconfig" / "page_config.json"
    page = json.loads(lab.read_text()) if lab.exists() else {}
    disabled = page.setdefault("disabledExtensions", {})
    disabled.update({p: hide for p in plugins} | {p: True for p in never} | {p: False for p in always})
    lab.parent.mkdir(parents=True, exist_ok=True)
    lab.write_text(json.dumps(page, indent=2))
    # Files in jupyter_server_config.d are read in name order, later ones winning: after nbgrader.json.
    server = folder / "jupyter_server_config.d" / "zz-dlcourse.json"
    server.parent.mkdir(parents=True, exist_ok=True)
    server.write_text(json.dumps({"ServerApp": {"jpserver_extensions": {s: not hide for s in servers}}}, indent=2))
write(venv / "etc" / "jupyter", True)
write(venv / "etc" / "dlcourse-instructor", False)
endef
export JUPYTER_VIEWS

install: $(LAB_STAMP)
install-test: $(TEST_STAMP)

$(LAB_STAMP): pyproject.toml $(LOCK)
	@have=$$($(call PY_VERSION_OF,$(BIN)/python)); \
	if [ -z "$$have" ] || [[ " $(SUPPORTED_PYTHONS) " != *" $$have "* ]] || \
	   { [ -n "$(PYTHON)" ] && [ "$$have" != "$$(PATH="$(USER_PATH)" $(call PY_VERSION_OF,$(PYTHON)))" ]; }; then \
	    $(CHOOSE_PYTHON); \
	    echo "Creating $(VENV) with $$py (Python $$($(call PY_VERSION_OF,$$py)))"; \
	    rm -rf "$(VENV)"; \
	    "$$py" -m venv "$(VENV)" || { echo "Could not create $(VENV) with $$py: on Debian/Ubuntu install its venv module (sudo apt-get install python3-venv, or python3.X-venv for python3.X)." >&2; rm -rf "$(VENV)"; exit 1; }; \
	fi
	"$(BIN)/python" -m pip install --quiet --upgrade pip
	"$(BIN)/python" -m pip install --quiet "uv==$(UV_VERSION)" || echo "uv could not be installed: pip installs the course instead."
	@$(call INSTALL,-e .)
	"$(BIN)/python" -c "$$JUPYTER_VIEWS" "$(VENV)" $(INSTRUCTOR_LAB) -- $(INSTRUCTOR_SERVER) -- $(NEVER_LAB) -- $(ALWAYS_LAB)
	@echo "$(LOCK)" > "$@"
	@echo "Installed into $(VENV)."

$(TEST_STAMP): $(LAB_STAMP) pyproject.toml $(LOCK)
	@$(call INSTALL,-e ".[test]")
	@echo "$(LOCK)" > "$@"
	@echo "Installed the test tools into $(VENV)."

lab: $(LAB_STAMP)
	"$(BIN)/jupyter" lab --ServerApp.root_dir="$(abspath lessons)" --ServerApp.port=$(PORT) $(ROOT_FLAG) $(LAB_ARGS)

# The course with nbgrader's instructor tools (formgrader, create assignment, course list),
# on the whole repository. Plain `jupyter lab` in the venv is the learner's view.
instructor-lab: $(LAB_STAMP)
	JUPYTER_CONFIG_PATH="$(abspath $(INSTRUCTOR_CONFIG)):$(abspath grader)" \
	"$(BIN)/jupyter" lab --ServerApp.root_dir="$(CURDIR)" --ServerApp.port=$(PORT) $(ROOT_FLAG) $(LAB_ARGS)

# Two test processes (pytest-xdist; the groups are in conftest.py): TEST_JOBS=0 runs one.
TEST_JOBS ?= 2
test: $(TEST_STAMP) system-tools lint
	"$(BIN)/python" -m pytest $(if $(filter-out 0,$(TEST_JOBS)),-n $(TEST_JOBS))

# Ruff, configured in pyproject.toml: lint, and the code formatted as `make format` leaves it.
lint: $(TEST_STAMP)
	"$(BIN)/ruff" check .
	"$(BIN)/ruff" format --check .

format: $(TEST_STAMP)
	"$(BIN)/ruff" format .
	"$(BIN)/ruff" check --fix .

# Debian packages the tests use, installed where we can (root with apt-get):
# bubblewrap isolates student code in `python -m grader autograde`; Chromium runs tests/browser.
SYSTEM_TOOLS := bwrap:bubblewrap chromium:chromium,fonts-dejavu-core
system-tools:
	@missing=""; for tool in $(SYSTEM_TOOLS); do \
	    pkgs="$${tool##*:}"; command -v "$${tool%%:*}" >/dev/null || missing="$$missing $${pkgs//,/ }"; done; \
	if [ -n "$$missing" ]; then \
	    if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	        echo "Installing$$missing (grader sandbox, browser tests)"; \
	        apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing >/dev/null; \
	    else \
	        echo "note: not installed:$$missing; the tests that need them are skipped."; \
	        echo "      Debian/Ubuntu: sudo apt-get install$$missing"; \
	    fi; fi

test-fast: $(TEST_STAMP)
	"$(BIN)/python" -m pytest $(if $(filter-out 0,$(TEST_JOBS)),-n $(TEST_JOBS)) tests -m "not notebooks and not sandbox and not browser and not slow and not lock"

lessons: $(LAB_STAMP)
	"$(BIN)/python" -m grader release

check: $(LAB_STAMP)
	"$(BIN)/python" -m grader check

bench: $(TEST_STAMP)
	"$(BIN)/python" -m bench

# The README's pictures: each visualizer used in JupyterLab in Chromium (tests/browser).
screenshots: $(TEST_STAMP) system-tools
	DLCOURSE_SCREENSHOTS="$(abspath docs/images)" "$(BIN)/python" -m pytest tests/browser -k "lesson_runs_in_the_browser or class_report"

# Lesson 06's trained test models (tests/lessons/models/, checked by SHA-256): train them again.
test-models: $(TEST_STAMP)
	"$(BIN)/python" -m tests.lessons.project_models

# The lock: one file for every supported Python and for Linux, macOS and Windows, resolved
# by uv's universal resolver (environment markers pick each platform's and Python's
# versions; pip reads it as a plain constraints file, so learners need no uv). One file
# per Python version made by pip would cover only the platform it ran on. `make lock`
# keeps the pinned versions that still satisfy pyproject.toml (the versions the course
# was tested with) and resolves only what changed; `make lock-upgrade` takes the newest.
# Both then check that every pinned package has a wheel for each supported Python on
# Linux, macOS (Apple Silicon) and Windows.
LOCK_ARGS ?=
lock: $(LAB_STAMP)
	"$(BIN)/python" -m pip install --quiet "uv==$(UV_VERSION)"
	"$(BIN)/uv" pip compile pyproject.toml --extra test --universal \
	    --python-version $(lastword $(SUPPORTED_PYTHONS)) --annotation-style line \
	    --custom-compile-command "make lock" $(LOCK_ARGS) -o "$(LOCK)"
	$(MAKE) install-test
	"$(BIN)/python" -m pytest -p no:cacheprovider tests/test_install.py tests/test_environment.py -m "not slow or lock"

lock-upgrade:
	$(MAKE) lock LOCK_ARGS=--upgrade

clean:
	rm -rf "$(VENV)" .pytest_cache grader/work grader/output
