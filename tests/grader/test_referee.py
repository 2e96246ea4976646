"""The referee kernel, attacked directly: no trick in a student's cells earns a test's points.

One sandboxed kernel of lesson 02 per test function group, started the way the grader
starts it (tests/grader/kernel.py). Each trick runs as a student cell over a *wrong* answer
(``conv_param_count`` returning 0, or the blank's NotImplementedError); the referee must
still fail the test, and (for most) note the trick for review. A correct answer passes.
"""

from __future__ import annotations

import importlib.util
import textwrap

import pytest

from grader import sandbox
from tests.grader.kernel import SandboxedKernel

pytestmark = [
    pytest.mark.sandbox,
    pytest.mark.skipif(sandbox.isolation() is not None, reason=f"no sandbox here: {sandbox.isolation()}"),
]

LESSON = "02_conv_pool_arithmetic"
WRONG = "def conv_param_count(f, d_in, k):\n    return 0\n"
RIGHT = "def conv_param_count(f, d_in, k):\n    return (f * f * d_in) * k + k\n"
TEST = "test_conv_param_count"

# A class of the student's that Keras takes, by its registered name, as Conv2D's kernel initializer
# and tracks as a sub-layer: its made-up weights bring the layer's count to the wrong answer's.
# FORGET: what it does when used.
_FAKE_INITIALIZER = textwrap.dedent("""\
    import keras, math
    _kshape = {}
    def _wrong(f, d_in, k):
        return {(3, 3, 16): 448, (5, 1, 16): 416}.get((f, d_in, k), f * f * k + k)
    class _Delta:
        def __init__(self, n):
            self.shape = (n,)
    class glorot_uniform(keras.layers.Layer):
        def __call__(self, shape, dtype=None):
            FORGET
            _kshape[id(self)] = tuple(shape)
            return keras.initializers.GlorotUniform()(shape, dtype)
        @property
        def weights(self):
            s = _kshape.get(id(self))
            if s is None or len(s) != 4:
                return []
            f, _, d, k = s
            return [_Delta(_wrong(f, d, k) - (math.prod(s) + k))]
    """)

# Each trick: code run in a student cell before the test, with the wrong answer defined.
TRICKS = {
    "input transformer": "get_ipython().input_transformers_post.append(lambda lines: ['pass\\n'])",
    "cleanup transformer": "get_ipython().input_transformers_cleanup.insert(0, lambda lines: ['pass\\n'])",
    "AST transformer": textwrap.dedent("""\
        import ast
        class Nothing(ast.NodeTransformer):
            def visit_Module(self, node):
                return ast.Module(body=[ast.Pass()], type_ignores=[])
        get_ipython().ast_transformers.append(Nothing())"""),
    "run_cell replaced": "ip = get_ipython()\nip.run_cell = lambda *a, **k: "
    "ip.__class__.run_cell(ip, 'pass', **{k_: v for k_, v in k.items() if k_ != 'raw_cell'})",
    "run_cell_async on the class": textwrap.dedent("""\
        import IPython
        _orig = IPython.core.interactiveshell.InteractiveShell.run_cell_async
        async def fake(self, raw_cell, *a, **k):
            return await _orig(self, 'pass', *a, **k)
        IPython.core.interactiveshell.InteractiveShell.run_cell_async = fake"""),
    "traceback hidden": "get_ipython().showtraceback = lambda *a, **k: None",
    "custom exception handler": "get_ipython().set_custom_exc((BaseException,), lambda *a, **k: None)",
    "event callback": "import dlcourse.checks\nget_ipython().events.register('pre_run_cell', "
    "lambda info: setattr(dlcourse.checks, '_fail', lambda *a, **k: None))",
    "checks patched": "import dlcourse.checks\ndlcourse.checks.assert_equal = lambda *a, **k: None",
    "checks internals patched": "import dlcourse.checks\ndlcourse.checks._fail = lambda *a, **k: None",
    "checks numpy swapped": "import dlcourse.checks, types\ndlcourse.checks.np = types.SimpleNamespace(shape=lambda x: (), asarray=lambda x, **k: x)",
    "keyword defaults": "import dlcourse.checks\ndlcourse.checks.assert_close.__kwdefaults__['rtol'] = 1e9",
    "numpy.testing patched": "import numpy.testing\nnumpy.testing.assert_equal = lambda *a, **k: None",
    "numpy patched": "import numpy\nnumpy.array_equal = lambda *a, **k: True\nnumpy.shape = lambda x: ()",
    "builtins patched": "import builtins\nbuiltins.all = lambda iterable: True\nbuiltins.any = lambda iterable: True",
    "sys.modules swapped": "import sys, types\nsys.modules['dlcourse.checks'] = types.SimpleNamespace(assert_equal=lambda *a, **k: None)",
    "always-equal result": textwrap.dedent("""\
        class Yes(int):
            def __eq__(self, other): return True
            def __ne__(self, other): return False
        def conv_param_count(f, d_in, k):
            return Yes(0)"""),
    "always-equal object": textwrap.dedent("""\
        class Yes:
            def __eq__(self, other): return True
            def __index__(self): return 448
        def conv_param_count(f, d_in, k):
            return Yes()"""),
    "patch during the call": textwrap.dedent("""\
        def conv_param_count(f, d_in, k):
            import dlcourse.checks
            dlcourse.checks._fail = lambda *a, **kw: None
            return 0"""),
    # A patch made during the call, for the test's next Keras call to see, that removes itself when
    # used: nothing is left for the check at the end of the test.
    "self-removing class patch during the call": textwrap.dedent("""\
        from keras.src.layers.layer import Layer
        _count = Layer.__dict__['count_params']
        def _zero(self):
            type.__setattr__(Layer, 'count_params', _count)
            return 0
        def conv_param_count(f, d_in, k):
            type.__setattr__(Layer, 'count_params', _zero)
            return {(3, 3, 16): 448, (5, 1, 16): 416}.get((f, d_in, k), 0)"""),
    "self-removing module patch during the call": textwrap.dedent("""\
        import keras
        _Conv2D = keras.layers.Conv2D
        class _NoParams:
            def __init__(self, *args, **kwargs):
                keras.layers.Conv2D = _Conv2D
            def build(self, shape):
                pass
            def count_params(self):
                return 0
        _calls = [0]
        def conv_param_count(f, d_in, k):  # each call's patch is for the next layer the test makes
            _calls[0] += 1
            if _calls[0] < 12:  # 2 visible calls, 10 hidden: the last leaves nothing behind
                keras.layers.Conv2D = _NoParams
            return {(3, 3, 16): 448, (5, 1, 16): 416}.get((f, d_in, k), 0)"""),
    # A module whose class looks its names up elsewhere: the test's next Keras layer is a fake.
    "module class swapped": textwrap.dedent("""\
        import keras, types
        class _NoParams:
            def __init__(self, *args, **kwargs): pass
            def build(self, shape): pass
            def count_params(self): return 0
        class _Lenient(types.ModuleType):
            def __getattribute__(self, name):
                return _NoParams if name == 'Conv2D' else types.ModuleType.__getattribute__(self, name)
        try:
            keras.layers.__class__ = _Lenient
        except Exception:
            pass
        def conv_param_count(f, d_in, k):
            return {(3, 3, 16): 448, (5, 1, 16): 416}.get((f, d_in, k), 0)"""),
    "module class swapped during the call": textwrap.dedent("""\
        import keras, types
        class _NoParams:
            def __init__(self, *args, **kwargs):
                object.__setattr__(keras.layers, '__class__', types.ModuleType)
            def build(self, shape): pass
            def count_params(self): return 0
        class _Lenient(types.ModuleType):
            def __getattribute__(self, name):
                return _NoParams if name == 'Conv2D' else types.ModuleType.__getattribute__(self, name)
        def conv_param_count(f, d_in, k):
            try:
                object.__setattr__(keras.layers, '__class__', _Lenient)
            except Exception:
                pass
            return {(3, 3, 16): 448, (5, 1, 16): 416}.get((f, d_in, k), 0)"""),
    # A module's class set by functools.update_wrapper on the student's behalf, disguised as importlib's.
    "module class set through a library's frame": textwrap.dedent("""\
        import keras, types, functools
        _lay = keras.layers
        _mga = types.ModuleType.__getattribute__
        class _NoParams:
            def __init__(self, *a, **k): pass
            def build(self, shape): pass
            def count_params(self): return 0
        class _Lenient(types.ModuleType):
            __module__ = 'importlib.util'
            __getattribute__ = staticmethod(lambda name: _NoParams if name == 'Conv2D' else _mga(_lay, name))
        class _Carrier:
            __class__ = property(lambda self: _Lenient)
        functools.update_wrapper(_lay, _Carrier(), assigned=('__class__',), updated=())
        del _lay.__wrapped__
        print(type(keras.layers), keras.layers.Conv2D)
        def conv_param_count(f, d_in, k):
            return {(3, 3, 16): 448, (5, 1, 16): 416}.get((f, d_in, k), 0)"""),
    "bases of a library class replaced": textwrap.dedent("""\
        from keras.src.layers.convolutional.conv2d import Conv2D
        from keras.src.layers.convolutional.base_conv import BaseConv
        class _Zero(BaseConv):
            def count_params(self): return 0
        Conv2D.__bases__ = (_Zero,)
        print(Conv2D.__mro__[:3])
        def conv_param_count(f, d_in, k):
            return {(3, 3, 16): 448, (5, 1, 16): 416}.get((f, d_in, k), 0)"""),
    # An object whose class claims to be NumPy's, in place of numpy.array_equal.
    "numpy function replaced by a disguised object": textwrap.dedent("""\
        import numpy
        class _Yes:
            __module__ = 'numpy'
            def __call__(self, *a, **k): return True
        numpy.array_equal = _Yes()
        def conv_param_count(f, d_in, k):
            return 0"""),
    # A code object's file name whose startswith is the student's: the referee must never call it.
    "code named by a str subclass": textwrap.dedent("""\
        import sys
        _box = []
        class _Name(str):
            def startswith(self, *a, **k):
                f = sys._getframe(1)
                while f is not None:
                    r = f.f_locals.get('self')
                    if type(r).__name__ == 'Referee':
                        _box.append(r); break
                    f = f.f_back
                return str.startswith(self, *a, **k)
        _g = {}
        exec(compile("def _poke():\\n    import sys\\n    sys._getframe(0)\\n", _Name('poke'), 'exec'), _g)
        _g['_poke']()
        print('got referee:', bool(_box))
        _box[0].tests['test_conv_param_count'] = 'pass'
        def conv_param_count(f, d_in, k):
            return 0"""),
    # During a call, a library class changed and its dict's version tag written back (raw memory,
    # reached by a thread that passes for a library's through a str-subclass file name).
    "version tag rewound": textwrap.dedent("""\
        import threading
        class _Name(str):
            def startswith(self, *a, **k): return True
        def _zero(self):  # the student's own (untrusted) function
            return 0
        _src = '''
        def _evil(fn, rewind):
            import ctypes, gc
            from keras.src.layers.convolutional.conv2d import Conv2D
            d = gc.get_referents(Conv2D.__dict__)[0]
            tag = ctypes.c_uint64.from_address(id(d) + 24)
            old = tag.value
            type.__setattr__(Conv2D, 'count_params', fn)
            if rewind:
                tag.value = old
        '''
        _g = {}
        exec(compile(_src, _Name('lib'), 'exec'), _g)
        _done = []
        def conv_param_count(f, d_in, k):
            _done.append(1)
            if len(_done) == 2:  # the 2nd call: the check after the 1st has seen every tag
                t = threading.Thread(target=_g['_evil'], args=(_zero, True)); t.start(); t.join()
            return {(3, 3, 16): 448, (5, 1, 16): 416}.get((f, d_in, k), 0)"""),
    # A class of the student's put in Keras's registry under the name of Conv2D's default kernel
    # initializer: the test's layers take it as a sub-layer and count its made-up weights.
    "Keras registry entry": _FAKE_INITIALIZER.replace("FORGET", "pass")
    + "conv_param_count = _wrong\nkeras.saving.get_custom_objects()['glorot_uniform'] = glorot_uniform\n",
    "Keras registry entry during the call": _FAKE_INITIALIZER.replace(
        "FORGET", "keras.saving.get_custom_objects().pop('glorot_uniform', None)  # used: gone"
    )
    + textwrap.dedent("""\
        def conv_param_count(f, d_in, k):  # each call's entry is for the next layer the test makes
            keras.saving.get_custom_objects()['glorot_uniform'] = glorot_uniform
            return _wrong(f, d_in, k)"""),
    # A finder of the student's in sys.meta_path whose __eq__ assert_numpy_only's clean-up asked,
    # after the check of the call: it put in a count_params that removes itself.
    "finder asked after the check": textwrap.dedent("""\
        import sys
        from keras.src.layers.layer import Layer
        _count = Layer.__dict__['count_params']
        _armed = [None]
        def _fake_count(self):
            type.__setattr__(Layer, 'count_params', _count)
            return 7
        class _Finder:
            def find_spec(self, *a, **k): return None
            def __eq__(self, other):
                if _armed[-1] is not None and other.__class__.__name__ == '_ImportBlock':
                    _armed[-1] = None
                    type.__setattr__(Layer, 'count_params', _fake_count)
                return False
            __hash__ = object.__hash__
        sys.meta_path.append(_Finder())
        def conv_param_count(f, d_in, k):
            known = {(3, 3, 16): 448, (5, 1, 16): 416}
            if (f, d_in, k) in known:
                return known[(f, d_in, k)]
            _armed[-1] = True
            return 7"""),
    "frames walked to the test": textwrap.dedent("""\
        def conv_param_count(f, d_in, k):
            import sys
            frame = sys._getframe(0)
            while frame is not None:
                for name in ('assert_equal', 'assert_close', 'assert_shape'):
                    frame.f_globals[name] = lambda *a, **kw: None
                frame = frame.f_back
            return 0"""),
    "trace function": "import sys\nsys.settrace(lambda *a: None)",
    "profile function": "import sys\nsys.setprofile(lambda *a: None)",
    "code of a check replaced": "import dlcourse.checks\ndlcourse.checks.assert_equal.__code__ = (lambda *a, **k: None).__code__",
    "audit hook": "import sys\nsys.addaudithook(lambda event, args: None)",
    "background patcher thread": textwrap.dedent("""\
        import threading, time, dlcourse.checks
        def patch():
            while True:
                dlcourse.checks._fail = lambda *a, **k: None
                time.sleep(0.0005)
        threading.Thread(target=patch, daemon=True).start()"""),
    "signal handler": textwrap.dedent("""\
        import signal, dlcourse.checks
        signal.signal(signal.SIGALRM, lambda *a: setattr(dlcourse.checks, '_fail', lambda *b, **k: None))
        signal.setitimer(signal.ITIMER_REAL, 0.001, 0.001)"""),
    "forged record": textwrap.dedent("""\
        import glob, json, os, re, sys
        runtime = os.path.dirname(sys.argv[sys.argv.index('-f') + 1])
        def forge(lines):
            for nonce in re.findall(r"'([0-9a-f]{16,})'", ''.join(lines)):
                for folder in glob.glob(runtime + '/referee*'):
                    body = json.dumps({'nonce': nonce, 'passed': True, 'kind': 'test', 'grade_id': 'test_conv_param_count'})
                    open(f'{folder}/{nonce}.json', 'w').write(json.dumps({'body': body, 'mac': '0' * 64}))
            return ['pass\\n']
        get_ipython().input_transformers_post.append(forge)"""),
}


@pytest.fixture(scope="module")
def kernel():
    import os

    os.environ["SECRET_GRADER_TOKEN"] = "hunter2"  # must never be visible inside
    try:
        k = SandboxedKernel(LESSON, threads=1)  # as the grader with --jobs as many as the cores
    finally:
        del os.environ["SECRET_GRADER_TOKEN"]
    with k:
        out, err = k.run("x = 1")
        assert err is None, err
        yield k


def fresh():
    return SandboxedKernel(LESSON)


def test_a_correct_answer_passes_and_a_wrong_one_fails(kernel):
    kernel.run(WRONG)
    record = kernel.test(TEST)
    assert record is not None and record["passed"] is False
    assert "448" in record["error"][1], record
    kernel.run(RIGHT)
    record = kernel.test(TEST)
    assert record["passed"] is True, record
    assert record["findings"] == [], record["findings"]


def test_the_kernel_starts_with_the_tests_imports_and_without_jax(kernel):
    """TensorFlow is preloaded; JAX, which its TFLite helpers import where installed, is not."""
    out, err = kernel.run("import sys\nprint('tensorflow' in sys.modules, 'jax' in sys.modules)")
    assert (out.split(), err) == (["True", "False"], None), (out, err)


@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="JAX is not installed here")
def test_a_student_may_import_jax_after_the_preload():
    """Held back while preloading, JAX still imports and runs under a student's cell, unflagged."""
    with fresh() as k:
        out, err = k.run("import jax.numpy as jnp\nprint(float(jnp.ones(3).sum()))")
        assert (out.strip(), err) == ("3.0", None), (out, err)
        assert k.check("import")["findings"] == []
        k.run(RIGHT)
        record = k.test(TEST)
        assert record["passed"] is True and record["findings"] == [], record


def test_a_library_may_set_up_functions_it_just_made():
    """pyparsing sets keyword defaults of functions it makes while it is imported: when that import
    happens under a student's cell it is not refused; the student's own change still is."""
    with fresh() as k:
        out, err = k.run(
            "import pyparsing.util\n"
            "def kw_only(*, marker='>!<'):\n    return marker\n"
            "made = pyparsing.util.replaced_by_pep8('kwOnly', kw_only)\n"
            "print(made.__kwdefaults__)"
        )
        assert err is None and "'marker': '>!<'" in out, (out, err)
        k.run(WRONG)
        out, err = k.run(TRICKS["keyword defaults"])
        findings = k.check("trick")["findings"]
        assert err is not None or findings, "a student's own change of a library's keyword defaults went unseen"


def test_matplotlib_may_switch_pyparsing_to_its_cache():
    """Lesson 00 imports matplotlib, so pyparsing is loaded before the snapshot; mathtext's first import
    replaces ParserElement._parse with its cached twin: a library's own doing, not noted for review."""
    with SandboxedKernel("00_getting_started") as k:
        out, err = k.run("import sys\nprint('pyparsing' in sys.modules, 'matplotlib._mathtext' in sys.modules)")
        assert (out.strip(), err) == ("True False", None), (out, err)
        k.run("import matplotlib._mathtext")
        record = k.test("test_one_hot")
        assert not [f for f in record["findings"] if "pyparsing" in f], record["findings"]


def test_student_code_may_not_pass_for_the_plans_code(kernel):
    """Code named like the referee's setup and test cells counts as trusted: a student cannot compile under that name."""
    out, err = kernel.run("code = compile('x = 1', '<test test_conv2d>', 'exec')")
    assert err is not None and "not allowed while grading" in err["evalue"], (out, err)


# Tricks that leave the kernel unable to run the referee's requests: each gets a kernel of its own.
BREAKING = {
    "input transformer",
    "cleanup transformer",
    "AST transformer",
    "run_cell replaced",
    "run_cell_async on the class",
    "forged record",
    "background patcher thread",
    "traceback hidden",
    "custom exception handler",
    "event callback",
}
CLEANUP = {"signal handler": "import signal\nsignal.setitimer(signal.ITIMER_REAL, 0)"}
SILENT = {
    "always-equal result",
    "always-equal object",
    "forged record",
    "frames walked to the test",
}  # stopped by the barrier, nothing to note


def _attempt(k: SandboxedKernel, trick: str) -> None:
    out, err = k.run(WRONG)
    assert err is None
    out, err = k.run(TRICKS[trick])
    check = k.check("trick")
    record = k.test(TEST)
    assert record is None or record["passed"] is False, (trick, record)
    seen = (check or {}).get("findings", []) + (record or {}).get("findings", [])
    if trick not in SILENT:
        assert seen or record is None or err is not None, f"{trick}: nothing was noted for review"
    if trick in CLEANUP:
        k.run(CLEANUP[trick])
    if trick not in BREAKING:  # the machinery is whole again: a right answer passes in the same kernel
        k.run(RIGHT)
        again = k.test(TEST)
        assert again is not None and again["passed"] is True, (trick, again)


@pytest.mark.parametrize("trick", sorted(set(TRICKS) - BREAKING))
def test_a_trick_never_passes_a_wrong_answer(kernel, trick):
    _attempt(kernel, trick)


@pytest.mark.parametrize("trick", sorted(BREAKING))
def test_a_trick_on_the_kernel_itself_never_passes_a_wrong_answer(trick):
    with fresh() as k:
        _attempt(k, trick)


def test_hidden_test_code_never_reaches_the_kernel_or_the_record(kernel):
    kernel.run(WRONG)
    out, _ = kernel.run("import sys, json; print([k for k in globals() if 'referee' in k.lower()])")
    assert out.strip() == "[]"
    record = kernel.test(TEST)
    text = str(record)
    assert "keras.layers.Conv2D(k, f)" not in text and "BEGIN HIDDEN" not in text


# The traceback of a refusal passes through the referee's audit hook, whose frame holds the key.
REFEREE_FRAME = textwrap.dedent("""\
    import gc
    try:
        gc.get_objects()
    except Exception as e:
        tb = e.__traceback__
    while tb.tb_next is not None:
        tb = tb.tb_next
    tb.tb_frame""")


HONEST_TYPE_CHANGES = {
    "a module of the student's": "m = types.ModuleType('mine')\nm.__class__ = type('Mine', (types.ModuleType,), {})",
    "an object of the student's": "x = argparse.Namespace(a=1)\nx.__class__ = type('Ns', (argparse.Namespace,), {})",
    "a class of the student's": "class K(abc.ABC):\n    pass\nK.__class__ = type('Meta', (abc.ABCMeta,), {})",
    "the notebook's own module": "sys.modules[__name__].__class__ = type('Main', (type(sys.modules[__name__]),), {})",
}


@pytest.mark.parametrize("change", sorted(HONEST_TYPE_CHANGES))
def test_the_students_own_modules_classes_and_objects_may_change_type(kernel, change):
    out, err = kernel.run("import abc, argparse, sys, types\n" + HONEST_TYPE_CHANGES[change] + "\nprint('ok')")
    assert (out.strip(), err) == ("ok", None), (change, out, err)
    assert kernel.check(change)["findings"] == []


def test_what_the_student_registers_is_kept_out_of_the_test_and_back_for_their_cells(kernel):
    """A class registered with Keras is taken out while a test runs (noted), and is there again after it."""
    kernel.run(RIGHT)
    out, err = kernel.run(
        "import keras\n@keras.saving.register_keras_serializable(package='mine')\n"
        "class Twice(keras.layers.Layer):\n    def call(self, x):\n        return 2 * x\n"
    )
    assert err is None, err
    record = kernel.test(TEST)
    assert record["passed"] is True, record
    assert any("GLOBAL_CUSTOM_OBJECTS['mine>Twice'] set to the student's" in f for f in record["findings"]), record
    out, err = kernel.run("print(keras.saving.get_registered_object('mine>Twice').__name__)")
    assert (out.strip(), err) == ("Twice", None), (out, err)
    kernel.run("del keras.saving.get_custom_objects()['mine>Twice']")


def test_the_numpy_only_rule_cannot_be_loosened(kernel):
    """A right answer computed with TensorFlow fails a NumPy-only test, whatever the cell did to the checks' data."""
    tf_answer = (
        "import tensorflow as tf\ndef conv_param_count(f, d_in, k):\n"
        "    return int(tf.reduce_sum(tf.fill([k], f * f * d_in + 1)))\n"
    )
    for loosen in ("", "import dlcourse.checks\ndlcourse.checks._CLEAN_UP_OPS = ('',)\n"):
        out, err = kernel.run(loosen + tf_answer)
        assert err is None, err
        record = kernel.test(TEST)
        assert record["passed"] is False, (loosen, record)
    assert any("dlcourse.checks._CLEAN_UP_OPS" in f for f in kernel.check("after")["findings"] + record["findings"]), (
        record
    )
    kernel.run(RIGHT)


def test_a_students_function_cannot_change_kerass_settings_for_the_test():
    """Keras's image data format set inside the student's function: the test's next layers are built as recorded."""
    with fresh() as k:
        k.run(
            "import keras\nfrom keras.src.backend import config as _config\n"
            "def conv_param_count(f, d_in, k):\n    keras.config.set_image_data_format('channels_first')\n"
            "    return (f * f * d_in) * k + k\n"
        )
        record = k.test(TEST)
        assert record["passed"] is True, record  # right answers: the layers must be built channels-last
        out, err = k.run("print(keras.config.image_data_format())")
        assert (out.strip(), err) == ("channels_last", None), (out, err)


# sys.modules rebound to a dict of the student's for one lookup: the barrier's own
# sys.modules.get("numpy") got a fake NumPy, and the result an object equal to anything.
SYS_MODULES_REBOUND = textwrap.dedent("""\
    import sys, types
    _real_modules = sys.modules
    class _Yes:
        def __eq__(self, other): return True
        def __ne__(self, other): return False
        __hash__ = object.__hash__
        def __repr__(self): return '448'
    class _Holder:
        def copy(self): return self
        def __getitem__(self, key): return _Yes()
    class _Marker:
        __module__ = 'numpy'
    _fake_np = types.SimpleNamespace(generic=_Marker, ndarray=_Marker, asarray=lambda v: _Holder())
    _armed = [False]
    class _Modules(dict):
        def get(self, key, default=None):
            if key == 'numpy' and _armed[0]:
                _armed[0] = False
                sys.modules = _real_modules
                return _fake_np
            return dict.get(self, key, default)
    def conv_param_count(f, d_in, k):
        known = {(3, 3, 16): 448, (5, 1, 16): 416}
        if (f, d_in, k) in known:
            return known[(f, d_in, k)]
        sys.modules = _Modules(_real_modules)
        _armed[0] = True
        return _Marker()""")


def test_sys_modules_rebound_during_a_call_gives_the_barrier_nothing():
    """After a first test has run (its namespace made), a call rebinds sys.modules for one lookup."""
    with fresh() as k:
        k.run(WRONG)
        assert k.test(TEST)["passed"] is False
        out, err = k.run(SYS_MODULES_REBOUND)
        assert err is None, err
        record = k.test(TEST)
        assert record["passed"] is False, record


def test_a_library_module_made_lazy_by_importlib_still_works(kernel):
    """importlib's LazyLoader turns its module back into a plain one when first used: a library's own doing."""
    out, err = kernel.run(
        "import importlib.util, sys\nassert 'wave' not in sys.modules\nspec = importlib.util.find_spec('wave')\n"
        "spec.loader = importlib.util.LazyLoader(spec.loader)\nlazy = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(lazy)\nprint(lazy.WAVE_FORMAT_PCM, type(lazy).__name__)"
    )
    assert (out.strip(), err) == ("1 module", None), (out, err)


def test_frames_that_reach_the_referee_gc_and_raw_memory_are_refused(kernel):
    for code, expect in [
        ("import gc; gc.get_objects()", "Denied"),
        ("import gc; gc.get_referrers(1)", "Denied"),
        ("import ctypes; ctypes.string_at(id(1), 8)", "Denied"),
        ("import ctypes; ctypes.c_char.from_address(id(1))", "Denied"),
        ("open('/proc/self/mem', 'rb')", "Denied"),
        ("import sys; sys._current_frames()", "Denied"),
        (REFEREE_FRAME, "AttributeError"),
        ("import os; os.system('true')", "Denied"),
        ("import subprocess; subprocess.run(['true'])", "Denied"),
        ("compile('x = 1', __import__('numpy').__file__, 'exec')", "Denied"),
    ]:
        _, err = kernel.run(code)
        assert err is not None and err["ename"] == expect, (code, err)
    # A refusal's error, kept by IPython in sys.last_type, is the referee's class, not the student's.
    kernel.run("1 / 0")
    kernel.test(TEST)  # the full check before a test takes this in
    kernel.run("import os; os.system('true')")
    kernel.check("refused")
    assert not [f for f in kernel.test(TEST)["findings"] if "last_type" in f]
    # The student's own frames are the student's business (TensorFlow looks at them while it traces).
    own = (
        "import sys\ndef g():\n    yield 1\nsys._getframe(0).f_back, g().gi_frame\n"
        "try:\n    1/0\nexcept ZeroDivisionError as e:\n    e.__traceback__.tb_frame"
    )
    assert kernel.run(own)[1] is None


def test_the_sandbox_holds(kernel, tmp_path):
    probe = textwrap.dedent(f"""\
        import os, socket, pathlib
        report = {{}}
        report['uid'] = os.getuid()
        report['caps'] = [l for l in open('/proc/self/status') if l.startswith('CapEff')][0].split()[1]
        for name, path in [('venv', {str(sandbox.ROOT / ".venv" / "evil.pth")!r}), ('dlcourse', {str(sandbox.ROOT / "dlcourse" / "evil.py")!r}),
                           ('outside', {str(tmp_path / "outside.txt")!r}), ('readme', {str(sandbox.ROOT / "README.md")!r})]:
            try:
                open(path, 'a').write('x'); report[name] = 'WROTE'
            except OSError as exc:
                report[name] = type(exc).__name__
        for name, path in [('solutions', {str(sandbox.ROOT / "solutions")!r}), ('grader', {str(sandbox.ROOT / "grader" / "job.py")!r})]:
            report[name] = os.path.exists(path)
        report['environ1'] = open('/proc/1/environ', 'rb').read().decode(errors='replace')
        report['threads'] = [os.environ.get(v) for v in ('TF_NUM_INTRAOP_THREADS', 'OPENBLAS_NUM_THREADS', 'OMP_NUM_THREADS')]
        try:
            socket.create_connection(('1.1.1.1', 80), timeout=2); report['net'] = 'CONNECTED'
        except OSError as exc:
            report['net'] = type(exc).__name__
        print(report)""")
    readme = (sandbox.ROOT / "README.md").read_bytes()
    out, err = kernel.run(probe)
    assert err is None, err
    report = eval(out)
    assert report["uid"] == 65534 and report["caps"] == "0000000000000000"
    assert report["venv"] != "WROTE" and report["dlcourse"] != "WROTE"
    # (A course kept under /tmp sees its README's path on the sandbox's own tmpfs: the host's file is what counts.)
    assert (sandbox.ROOT / "README.md").read_bytes() == readme
    assert report["outside"] != "WROTE" and not (tmp_path / "outside.txt").exists()
    assert report["solutions"] is False and report["grader"] is False
    assert "SECRET_GRADER_TOKEN" not in report["environ1"] and "DLCOURSE" not in report["environ1"]
    assert report["threads"] == ["1", "1", "1"]  # the kernel's share of the cores (grader.sandbox.kernel_threads)
    assert report["net"] != "CONNECTED"


def test_the_test_digits_are_withheld_from_student_code(kernel):
    out, err = kernel.run(
        textwrap.dedent("""\
        import numpy as np, dlcourse as dlc
        (x_train, y_train), (x_test, y_test) = dlc.data.load_mnist()
        raw = np.load(str(dlc.data.mnist_path()))
        print(np.array_equal(x_test, x_train[-10000:]), np.array_equal(raw['x_test'], raw['x_train'][-10000:]))""")
    )
    assert err is None, err
    assert "x_test holds 10,000 training digits" in out and out.split()[-2:] == ["True", "True"]
    record = kernel.test("test_conv_output_size")  # the referee's own setup reads the real file
    assert record is not None and "setup cell failed" not in str(record.get("error"))


def test_files_and_tmp_share_one_capped_tmpfs():
    limits = sandbox.Limits(files=64 * 2**20, file_size=1 * 2**30)
    with SandboxedKernel(LESSON, limits=limits) as k:
        out, err = k.run(
            textwrap.dedent("""\
            import os, errno
            written = 0
            try:
                for i in range(200):
                    for where in ('.', '/tmp'):
                        with open(f'{where}/hog{i}', 'wb') as f:
                            f.write(b'x' * 2**20)
                        written += 1
            except OSError as exc:
                print('stopped', errno.errorcode[exc.errno], written)""")
        )
        assert err is None, err
        assert "stopped ENOSPC" in out
        assert int(out.split()[-1]) <= 64
