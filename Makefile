# dlcourse: the two commands of the README, and the maintainers' tools.
#   make lab      install into .venv if needed, then open JupyterLab on lessons/
#   make test     install into .venv if needed, then run the whole test suite
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.dlcourse-installed
PORT ?= 8888
LAB_ARGS ?=
# JupyterLab refuses to run as root (containers, CI) unless told to.
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root)

# nbgrader and the notebooks call tools by name (jupyter, alembic): use the venv's.
export PATH := $(abspath $(BIN)):$(PATH)
# The validator behind nbgrader's Validate button reads grader/nbgrader_config.py.
export JUPYTER_CONFIG_PATH := $(abspath grader)

.PHONY: help install lab test test-fast lessons check bench screenshots clean system-tools

help:
	@echo "make lab        install (first time) and open JupyterLab on lessons/"
	@echo "make test       install (first time) and run the whole test suite"
	@echo "make test-fast  unit tests only, no notebook execution"
	@echo "make lessons    regenerate lessons/ from solutions/ (instructors)"
	@echo "make check      solutions pass, lessons fail, lessons in sync"
	@echo "make bench      run the benchmarks and update bench/README.md"
	@echo "make screenshots  redraw docs/images/ from the visualizers in Chromium"
	@echo "make clean      remove .venv and generated files"

install: $(STAMP)

# Re-installs when pyproject.toml changes or the venv is missing or broken.
$(STAMP): pyproject.toml
	@if ! "$(BIN)/python" -c "import sys" >/dev/null 2>&1; then \
	    echo "Creating $(VENV) with $$($(PYTHON) --version)"; \
	    rm -rf "$(VENV)" && $(PYTHON) -m venv "$(VENV)"; \
	fi
	"$(BIN)/python" -m pip install --quiet --upgrade pip
	"$(BIN)/python" -m pip install --progress-bar off -e .
	"$(BIN)/jupyter" labextension enable --level=sys_prefix @jupyter/nbgrader:validate-assignment
	@touch "$(STAMP)"
	@echo "Installed into $(VENV)."

lab: install
	"$(BIN)/jupyter" lab --ServerApp.root_dir="$(abspath lessons)" --ServerApp.port=$(PORT) $(ROOT_FLAG) $(LAB_ARGS)

test: install system-tools
	"$(BIN)/python" -m pytest

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

test-fast: install
	"$(BIN)/python" -m pytest tests -m "not notebooks"

lessons: install
	"$(BIN)/python" -m grader release

check: install
	"$(BIN)/python" -m grader check

bench: install
	"$(BIN)/python" -m bench

# The README's pictures: each visualizer used in JupyterLab in Chromium (tests/browser).
screenshots: install system-tools
	DLCOURSE_SCREENSHOTS="$(abspath docs/images)" "$(BIN)/python" -m pytest tests/browser -k "lesson_runs_in_the_browser or class_report"

clean:
	rm -rf "$(VENV)" .pytest_cache grader/work grader/output
