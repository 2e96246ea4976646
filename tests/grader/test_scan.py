"""The static scan: tricks are named for review; the course's own solutions raise nothing."""

from __future__ import annotations

import gc
import json
import sys
import threading
import time

import pytest

from grader import course, scan
from tests.grader.test_referee import TRICKS


@pytest.mark.parametrize("trick", sorted(TRICKS))
def test_every_trick_is_named(trick):
    assert scan.findings_in(TRICKS[trick], "#3"), trick


@pytest.mark.parametrize(
    "code, what",
    [
        ("import builtins as b\nb.len = None", "changes b.len"),
        ("setattr(__import__('numpy'), 'allclose', None)", "setattr"),
        ("from keras.src.layers.layer import Layer\ntype.__setattr__(Layer, 'call', None)", "type.__setattr__"),
        ("import keras\nobject.__setattr__(keras.layers, 'Dense', None)", "object.__setattr__"),
        ("get_ipython().events.register('post_run_cell', print)", "event callback"),
        ("%time x = 1\nimport ctypes", "ctypes"),
        ("import keras\nkeras.layers.__class__ = type(keras)", "changes an object's __class__"),
        ("import keras\nkeras.Layer.__bases__ = (object,)", "changes an object's __bases__"),
        ("import keras\nsetattr(keras.Layer, '__bases__', (object,))", "names __bases__ (a class's bases)"),
        ("class Name(str):\n    pass", "subclass of str or dict"),
    ],
)
def test_forms_of_reaching_in(code, what):
    found = scan.findings_in(code, "#1")
    assert any(what in f for f in found), found
    assert all(f.endswith("(cell #1)") for f in found)


@pytest.mark.parametrize("notebook", course.notebooks(course.SOLUTIONS), ids=lambda p: p.name)
def test_the_solutions_raise_nothing(notebook):
    nb = json.loads(notebook.read_text(encoding="utf-8"))
    assert scan.scan_notebook(nb, set()) == []


def test_jobs_in_threads_can_scan_at_once():
    """Jobs grade in threads: two scans at once must not trip CPython's global AST depth (cpython#106905)."""
    source = "\n".join(f"def f{i}(x):\n    return [[(a, b) for a in range(x)] for b in {{1: 2}}]" for i in range(300))
    nb = {"cells": [{"cell_type": "code", "source": source, "metadata": {}}]}
    errors = []

    def scan_often():
        for _ in range(8):
            try:
                scan.scan_notebook(nb, set())
            except Exception as exc:  # noqa: BLE001 - any error is the failure
                errors.append(f"{type(exc).__name__}: {exc}")

    switch = sys.getswitchinterval()
    threshold = gc.get_threshold()
    callback = lambda *_: time.sleep(0)  # noqa: E731 - a thread switch in the middle of a parse
    gc.callbacks.append(callback)
    gc.set_threshold(50)
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=scan_often) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(switch)
        gc.set_threshold(*threshold)
        gc.callbacks.remove(callback)
    assert not errors, errors[:3]
