"""Assertions for exercise test cells, with messages that help a learner.

Introduced in lesson 00.  A failing check says what was expected, what came
back, and (through ``hint``) the likely cause, e.g.::

    assert_shape(out, (26, 26, 16), hint="check your padding")
    AssertionError: shape: expected (26, 26, 16), got (27, 27, 16). Hint: check your padding.

Everything here is plain NumPy so that test cells run without TensorFlow.
"""

from __future__ import annotations

import numpy as np

__all__ = ["rel_error", "assert_close", "assert_shape", "assert_dtype", "assert_in_range", "assert_equal"]


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
