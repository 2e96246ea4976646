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


def test_the_version_tags_name_exactly_the_dicts_that_changed():
    assert referee._DictVersions.usable(), "CPython 3.10 to 3.13 on 64 bits keeps a version tag in every dict"

    class Library:
        def method(self):
            return 1

    module = types.ModuleType("library")
    module.f = len
    versions = referee._DictVersions([module.__dict__, referee._real_dict(Library), {}])
    assert versions.changed() == [0, 1, 2]  # the first call names every dict
    assert versions.changed() == []
    module.f = module.f  # the same object written again: no change
    assert versions.changed() == []
    module.f = max
    assert versions.changed() == [0]
    type.__setattr__(Library, "method", lambda self: 2)
    del module.f
    assert versions.changed() == [0, 1]
    Library.added = 3
    assert versions.changed() == [1]


@pytest.mark.parametrize("tags", [True, False], ids=["version tags", "compare everything"])
def test_the_check_after_a_call_puts_back_a_patched_library_and_says_so(tags, tmp_path):
    import json

    ref = referee.Referee(
        {"key": "00", "results": str(tmp_path), "tests": {}, "setup": [], "student_names": [], "trusted": []}
    )
    assert (ref.versions is not None) is referee._DictVersions.usable()
    if not tags:
        ref.versions = None
    ref.check_after_call()
    assert ref.findings == []
    encode, dumps = json.JSONEncoder.encode, json.dumps
    try:
        json.JSONEncoder.encode = lambda self, o: "forged"
        json.dumps = lambda *a, **k: "forged"
        ref.check_after_call()
        assert json.JSONEncoder.encode is encode and json.dumps is dumps
        assert "json.encoder.JSONEncoder.encode replaced" in ref.findings, ref.findings
        assert "json.dumps replaced" in ref.findings, ref.findings
        del ref.findings[:]
        ref.check_after_call()
        assert ref.findings == []
    finally:
        json.JSONEncoder.encode, json.dumps = encode, dumps


def test_a_library_class_or_module_given_a_students_type_is_put_back(tmp_path, monkeypatch):
    """A module's class decides how its names are found, a class's metaclass how it is called."""
    import abc
    import sys

    library = types.ModuleType("a_library")  # a library of its own: nothing else in this process uses it
    exec("import abc\nclass Base:\n    pass\nclass Number(Base, metaclass=abc.ABCMeta):\n    pass\n", library.__dict__)
    monkeypatch.setitem(sys.modules, "a_library", library)
    ref = referee.Referee(
        {"key": "00", "results": str(tmp_path), "tests": {}, "setup": [], "student_names": [], "trusted": []}
    )

    class Lenient(types.ModuleType):
        def __getattribute__(self, name):
            return lambda *a, **k: None

    class Anything(abc.ABCMeta):
        def __instancecheck__(cls, instance):
            return True

    number = library.Number
    number.__class__ = Anything
    library.__class__ = Lenient
    assert isinstance("text", number) and library.Number is not number
    ref.check_after_call()
    assert type(number) is abc.ABCMeta and type(library) is types.ModuleType
    assert not isinstance("text", number) and library.Number is number
    assert "the class a_library.Number: its type replaced" in ref.findings, ref.findings
    assert "the module a_library: its type replaced" in ref.findings, ref.findings

    class Zero:
        def __abs__(self):
            return 0

    number.__bases__ = (Zero,)
    assert abs(number()) == 0
    del ref.findings[:]
    ref.check_after_call()
    assert ref.findings == ["the bases of Number replaced"], ref.findings
    assert type.__dict__["__bases__"].__get__(number) == (library.Base,)
