"""The referee's barrier (``grader/referee.py``), in this process: how a student's function is
called from a test, and the quick comparisons that run after every call.

The same pieces run in the grading kernel; tests/grader/test_referee.py attacks them there.
"""

from __future__ import annotations

import types

import numpy as np
import pytest

from dlcourse import checks
from grader import referee


def _exp(x):
    return np.exp(np.float64(x))


def test_a_function_called_apart_runs_under_the_tests_numpy_error_state():
    """np.errstate is a context variable: the function's own thread must see the test's."""
    with np.errstate(over="raise"):
        with pytest.raises(FloatingPointError):
            referee._call_apart(None, _exp, (1000.0,), {})
    with np.errstate(over="ignore"):
        assert referee._call_apart(None, _exp, (1000.0,), {}) == np.inf


def test_what_the_function_sets_in_its_thread_stays_there():
    def loosen():
        np.seterr(over="ignore")
        return _exp(1000.0)

    with np.errstate(over="raise"):
        assert referee._call_apart(None, loosen, (), {}) == np.inf
        assert np.geterr()["over"] == "raise"


def test_the_quick_comparisons_see_a_replaced_object_and_only_the_full_one_a_renamed_key():
    snap = {"a": len, "b": max}
    assert referee._same_entries(dict(snap), snap) and referee._same_objects(dict(snap), snap)
    replaced = {"a": len, "b": min}
    assert not referee._same_entries(replaced, snap) and not referee._same_objects(replaced, snap)
    renamed = {"a": len, "c": max}  # the last key renamed: the same objects, in the same order
    assert referee._same_objects(renamed, snap) and not referee._same_entries(renamed, snap)
    assert not referee._same_objects({"a": len}, snap)

    class Library:
        def method(self):
            return 1

    proxy_snap = dict(Library.__dict__)
    assert referee._same_objects(Library.__dict__, proxy_snap)
    Library.method = lambda self: 2
    assert not referee._same_objects(Library.__dict__, proxy_snap)


def test_only_assert_numpy_onlys_own_blockers_pass_for_its_doing():
    blocks = referee._block_codes()
    assert len(blocks) == 2, blocks
    block = checks._Block()
    assert referee._is_block(block._blocked("a Keras layer"), blocks)
    assert referee._is_block(block._op_blocker(len, 0), blocks)

    def lookalike(*args, **kwargs):
        return 0

    lookalike.__dlcourse_block__ = True
    assert not referee._is_block(lookalike, blocks)
    assert not referee._is_block(types.SimpleNamespace(__code__=next(iter(blocks))), blocks)
    assert not referee._is_block(block._blocked("x"), frozenset())
