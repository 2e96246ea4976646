"""Assertions for exercise test cells, with messages that help a learner.

Introduced in lesson 00.  A failing check says what was expected, what came
back, and (through ``hint``) the likely cause, e.g.::

    assert_shape(out, (26, 26, 16), hint="check your padding")
    AssertionError: shape: expected (26, 26, 16), got (27, 27, 16). Hint: check your padding.

Everything here is plain NumPy so that test cells run without TensorFlow; the
helpers that look at Keras models or block TensorFlow only touch it when the
learner's code has imported it.
"""

from __future__ import annotations

import importlib.abc
import re
import sys

import numpy as np

__all__ = [
    "rel_error",
    "assert_close",
    "assert_shape",
    "assert_dtype",
    "assert_in_range",
    "assert_equal",
    "assert_numpy_only",
    "all_layers",
    "loss_name",
    "copy_weights_by_name",
]


def _fail(what: str, expected, got, hint: str | None) -> None:
    message = f"{what}: expected {expected}, got {got}."
    if hint:
        message += f" Hint: {hint}"
        if not hint.rstrip().endswith((".", "!", "?")):
            message += "."
    raise AssertionError(message)


def rel_error(a, b, eps: float = 1e-8) -> float:
    """Largest relative error ``|a - b| / max(eps, |a| + |b|)`` over all elements (cs231n style)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return float(np.max(np.abs(a - b) / np.maximum(eps, np.abs(a) + np.abs(b)), initial=0.0))


def assert_shape(actual, expected: tuple, *, name: str = "shape", hint: str | None = None) -> None:
    """Assert ``np.shape(actual) == expected``."""
    got = tuple(np.shape(actual))
    if got != tuple(expected):
        _fail(name, tuple(expected), got, hint)


def assert_dtype(actual, expected, *, name: str = "dtype", hint: str | None = None) -> None:
    """Assert the array's dtype is ``expected`` (anything ``np.dtype`` accepts)."""
    got = np.asarray(actual).dtype
    if got != np.dtype(expected):
        _fail(name, np.dtype(expected).name, got.name, hint)


def assert_in_range(actual, low: float, high: float, *, name: str = "values", hint: str | None = None) -> None:
    """Assert every element lies in ``[low, high]``."""
    a = np.asarray(actual)
    if a.size and (a.min() < low or a.max() > high):
        _fail(name, f"all in [{low}, {high}]", f"values from {a.min()} to {a.max()}", hint)


def assert_equal(actual, expected, *, name: str = "value", hint: str | None = None) -> None:
    """Assert exact equality (of scalars, or element-wise of arrays of the same shape).

    Values that are not arrays (tuples mixing shapes and counts, strings) are compared
    with ``==``.
    """
    try:
        np.asarray(expected, dtype=float)
    except (ValueError, TypeError):
        if actual != expected:
            _fail(name, expected, actual, hint)
        return
    if np.shape(actual) != np.shape(expected):
        _fail(f"{name} shape", np.shape(expected), np.shape(actual), hint)
    if not np.array_equal(actual, expected):
        if np.ndim(expected) == 0:
            _fail(name, expected, actual, hint)
        wrong = int(np.sum(np.asarray(actual) != np.asarray(expected)))
        _fail(name, "every element to match", f"{wrong} of {np.size(expected)} differ", hint)


def assert_close(
    actual,
    expected,
    *,
    rtol: float = 1e-5,
    atol: float = 1e-8,
    name: str = "value",
    hint: str | None = None,
) -> None:
    """Assert ``actual`` matches ``expected`` within tolerances (as ``np.allclose``).

    Shapes must agree exactly (no broadcasting), so a wrong shape is reported as
    such rather than as a confusing numeric mismatch.
    """
    if actual is None:
        _fail(name, "an array", "None (did you forget to `return`?)", hint)
    a = np.asarray(actual, dtype=np.float64)
    e = np.asarray(expected, dtype=np.float64)
    if a.shape != e.shape:
        _fail(f"{name} shape", e.shape, a.shape, hint)
    if not np.allclose(a, e, rtol=rtol, atol=atol, equal_nan=True):
        if a.ndim == 0:
            _fail(name, f"{float(e):.6g}", f"{float(a):.6g}", hint)
        diff = np.abs(a - e)
        worst = np.unravel_index(np.nanargmax(diff), diff.shape)
        _fail(
            name,
            f"{e[worst]:.6g} at index {tuple(int(i) for i in worst)}",
            f"{a[worst]:.6g} (relative error {rel_error(a, e):.2g})",
            hint,
        )


# -- NumPy-only exercises -------------------------------------------------------------------
# Frameworks a NumPy-only exercise must not import while it runs (when they are not loaded yet).
_BLOCKED_IMPORTS = ("tensorflow", "keras", "tf_keras", "jax", "torch", "sklearn", "scipy")
# TensorFlow ops that only free memory: objects created before the call may be garbage
# collected during it, and their finalizers run these.
_CLEAN_UP_OPS = ("Destroy", "Delete")
_keras_locations: dict = {}  # (number of loaded modules) -> [(module, name, description)], see _Block.plan


def _op_name(value) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value if isinstance(value, str) else "?"


class _Block:
    """Replaces TensorFlow's and Keras's entry points for the duration of one call.

    TensorFlow executes every eager op through ``pywrap_tfe.TFE_Py_FastPathExecute`` (the
    generated ``gen_*_ops``) or ``execute.quick_execute`` / ``execute.execute`` (fallbacks,
    ``tf.function`` calls); Keras 3 layers and models all pass through ``Layer.__init__`` and
    ``Operation.__init__``; a few Keras utilities are plain NumPy (``to_categorical``, the
    shape arithmetic of ``compute_output_shape``) and are replaced wherever they are bound.
    """

    def __init__(self):
        self.attempts: list[str] = []
        self.patches: list[tuple[object, str, object, object]] = []  # (owner, attribute, original, blocker)
        self.finder = None

    # Every blocker records the attempt, then raises, so that code which catches the error
    # and carries on is still reported.
    def _blocked(self, what):
        attempts = self.attempts

        def blocked(*args, **kwargs):
            attempts.append(what(args) if callable(what) else what)
            raise AssertionError(f"TensorFlow/Keras is blocked here ({attempts[-1]}): use NumPy only")

        blocked.__dlcourse_block__ = True
        return blocked

    def _op_blocker(self, original, name_index):
        attempts = self.attempts

        def blocked(*args, **kwargs):
            op = _op_name(args[name_index]) if len(args) > name_index else "?"
            if op.startswith(_CLEAN_UP_OPS):
                return original(*args, **kwargs)
            attempts.append(f"the TensorFlow op {op}")
            raise AssertionError(f"TensorFlow is blocked here (op {op}): use NumPy only")

        blocked.__dlcourse_block__ = True
        return blocked

    def _patch(self, owner, attribute, blocker):
        original = getattr(owner, attribute, None)
        if original is None:
            return
        if isinstance(owner, type):
            original = owner.__dict__.get(attribute, original)
        self.patches.append((owner, attribute, original, blocker))

    def plan(self):
        tf_loaded = "tensorflow" in sys.modules
        if tf_loaded:
            from tensorflow.python import pywrap_tfe
            from tensorflow.python.eager import execute

            self._patch(pywrap_tfe, "TFE_Py_FastPathExecute", self._op_blocker(pywrap_tfe.TFE_Py_FastPathExecute, 1))
            self._patch(pywrap_tfe, "TFE_Py_Execute", self._op_blocker(pywrap_tfe.TFE_Py_Execute, 2))
            self._patch(
                pywrap_tfe, "TFE_Py_ExecuteCancelable", self._op_blocker(pywrap_tfe.TFE_Py_ExecuteCancelable, 2)
            )
            for name in ("quick_execute", "execute", "execute_with_cancellation", "execute_with_callbacks"):
                self._patch(execute, name, self._op_blocker(getattr(execute, name), 0))
            session = sys.modules.get("tensorflow.python.client.session")
            if session is not None:
                self._patch(session.BaseSession, "__init__", self._blocked("a TensorFlow Session"))
        if "keras" in sys.modules:
            try:
                from keras.src.layers.layer import Layer
                from keras.src.ops import operation, operation_utils
                from keras.src.utils import numerical_utils
            except ImportError:  # another Keras layout: the TensorFlow block still applies
                return
            self._patch(
                Layer,
                "__init__",
                self._blocked(lambda args: f"a Keras layer ({type(args[0]).__name__})" if args else "a Keras layer"),
            )
            self._patch(
                operation.Operation,
                "__init__",
                self._blocked(
                    lambda args: f"a Keras operation ({type(args[0]).__name__})" if args else "a Keras operation"
                ),
            )
            for module, name, description in _keras_utilities(numerical_utils, operation_utils):
                self._patch(module, name, self._blocked(description))

    def __enter__(self):
        self.plan()
        for owner, attribute, _, blocker in self.patches:
            setattr(owner, attribute, blocker)
        self.finder = _ImportBlock(self.attempts)
        if type(sys.meta_path) is list:  # anything else is not the interpreter's own (intact() then says so)
            list.insert(sys.meta_path, 0, self.finder)
        return self

    def intact(self) -> bool:
        """Whether every replacement is still in place (the call did not undo the block)."""
        return any(f is self.finder for f in _finders()) and all(
            (owner.__dict__.get(attribute) if isinstance(owner, type) else getattr(owner, attribute, None)) is blocker
            for owner, attribute, _, blocker in self.patches
        )

    def __exit__(self, *exc):
        for owner, attribute, original, _ in reversed(self.patches):
            setattr(owner, attribute, original)
        # By identity: `finder in sys.meta_path` would ask every other finder's __eq__, the
        # function's own among them, after the grader's check of the call.
        meta_path = sys.meta_path
        if type(meta_path) is list:
            meta_path[:] = [f for f in list.copy(meta_path) if f is not self.finder]
        return False


def _finders() -> list:
    """``sys.meta_path`` as a plain list (nothing of the finders' own runs), or empty if it is not a list."""
    return list.copy(sys.meta_path) if type(sys.meta_path) is list else []


def _keras_utilities(*modules) -> list[tuple[object, str, str]]:
    """Where the plain-NumPy functions of ``modules`` are bound in Keras's and TensorFlow's namespaces."""
    key = len(sys.modules)
    if key not in _keras_locations:
        targets = {}
        for module in modules:
            for name, value in vars(module).items():
                if (
                    callable(value)
                    and getattr(value, "__module__", None) == module.__name__
                    and not isinstance(value, type)
                ):
                    targets[id(value)] = (value, f"keras {name}")
        found = []
        for module_name, module in list(sys.modules.items()):
            namespace = getattr(module, "__dict__", None)
            if not module_name.startswith(("keras", "tensorflow")) or not isinstance(namespace, dict):
                continue
            for name, value in list(namespace.items()):
                target = targets.get(id(value))
                if target is not None and target[0] is value:
                    found.append((module, name, target[1]))
        _keras_locations.clear()
        _keras_locations[key] = found
    return _keras_locations[key]


class _ImportBlock(importlib.abc.MetaPathFinder):
    """Refuses to import a deep-learning framework (or SciPy) that is not loaded yet."""

    def __init__(self, attempts: list[str]):
        self.attempts = attempts

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in _BLOCKED_IMPORTS:
            self.attempts.append(f"import {name}")
            raise ImportError(f"importing {name} is blocked here: use NumPy only")
        return None


def assert_numpy_only(fn, *args, **kwargs):
    """Call ``fn(*args, **kwargs)`` with TensorFlow and Keras blocked; return its result.

    For exercises that ask for NumPy (or arithmetic by hand). While ``fn`` runs, every
    TensorFlow op (eager, ``tf.function`` or a ``Session``), every Keras layer, model or
    operation, Keras's NumPy utilities (``to_categorical``, the output-shape arithmetic)
    and importing TensorFlow, Keras, JAX, PyTorch, scikit-learn or SciPy fail. Raises
    ``AssertionError`` naming ``fn`` if it tried any of them, even if it caught the error
    and carried on, or if it undid the block.
    """
    name = getattr(fn, "__name__", "the function")
    block = _Block()
    with block:
        try:
            result = fn(*args, **kwargs)
        except Exception:
            if block.attempts:
                raise AssertionError(
                    f"{name} used TensorFlow/Keras ({block.attempts[0]}): this exercise asks for NumPy only"
                ) from None
            raise
        intact = block.intact()
    if not intact:
        raise AssertionError(
            f"{name} undid the check that it uses NumPy only (it changed TensorFlow or Keras "
            "while it ran): this exercise asks for NumPy only"
        )
    if block.attempts:
        raise AssertionError(f"{name} used TensorFlow/Keras ({block.attempts[0]}): this exercise asks for NumPy only")
    return result


# -- Keras models ---------------------------------------------------------------------------
def all_layers(model) -> list:
    """Every layer of a Keras model: nested models, wrappers (Bidirectional, TimeDistributed)
    and the cells of ``RNN`` layers included, outermost first."""
    found, stack, seen = [], list(reversed(getattr(model, "layers", []) or [])), set()
    while stack:
        layer = stack.pop()
        if id(layer) in seen:
            continue
        seen.add(id(layer))
        found.append(layer)
        inner = list(getattr(layer, "layers", None) or [])
        for attribute in ("forward_layer", "backward_layer", "layer", "cell"):
            value = getattr(layer, attribute, None)
            if value is not None and not isinstance(value, (list, tuple)):
                inner.append(value)
        stack.extend(reversed(inner))
    return found


_LOSS_ALIASES = {
    "bce": "binary_crossentropy",
    "mae": "mean_absolute_error",
    "mse": "mean_squared_error",
    "mape": "mean_absolute_percentage_error",
    "msle": "mean_squared_logarithmic_error",
}


def loss_name(model) -> str | None:
    """The compiled loss of a Keras model as a snake_case name, however it was given.

    ``"binary_crossentropy"``, ``keras.losses.BinaryCrossentropy()`` and
    ``keras.losses.binary_crossentropy`` all give ``"binary_crossentropy"``; ``"mae"`` gives
    ``"mean_absolute_error"``. None if the model is not compiled.
    """
    loss = getattr(model, "loss", None)
    if loss is None:
        return None
    if isinstance(loss, str):
        name = loss
    elif isinstance(getattr(loss, "name", None), str):
        name = loss.name
    elif getattr(loss, "__name__", None):
        name = loss.__name__
    else:
        name = type(loss).__name__
    name = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()
    return _LOSS_ALIASES.get(name, name)


def copy_weights_by_name(source, *targets) -> list[str]:
    """Give the layers of ``targets`` the weights of the layers of ``source`` with the same names.

    For models that share layers, such as an autoencoder and its encoder and decoder: a
    test that trains the autoencoder keeps the encoder and decoder in step with it even
    where the three arrive as separate copies (rebuilt from their configs, as the grader
    does). Where they share the layer objects this changes nothing. Returns the names of
    the targets' layers with weights that ``source`` has no layer for (empty: all shared).
    """

    def leaves(model):
        return {
            layer.name: layer for layer in all_layers(model) if layer.weights and not getattr(layer, "layers", None)
        }

    available = leaves(source)
    missing = []
    for target in targets:
        for name, layer in leaves(target).items():
            match = available.get(name)
            weights = match.get_weights() if match is not None else None
            if weights is None or [w.shape for w in weights] != [w.shape for w in layer.get_weights()]:
                missing.append(name)
            elif match is not layer:
                layer.set_weights(weights)
    return missing
