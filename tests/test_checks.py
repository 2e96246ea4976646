"""dlcourse.checks: pass on right answers, fail with messages that help."""

import numpy as np
import pytest

from dlcourse import checks


def test_assert_close_passes_within_tolerance():
    checks.assert_close(np.array([1.0, 2.0]), np.array([1.0, 2.0 + 1e-9]))


def test_assert_close_reports_worst_element_and_hint():
    with pytest.raises(AssertionError) as err:
        checks.assert_close(np.array([[1.0, 2.0], [3.0, 5.0]]), np.array([[1.0, 2.0], [3.0, 4.0]]), hint="check the bias")
    msg = str(err.value)
    assert "4 at index (1, 1)" in msg and "got 5" in msg and "Hint: check the bias." in msg


def test_assert_close_reports_shape_mismatch_not_broadcast():
    with pytest.raises(AssertionError, match=r"shape: expected \(3,\), got \(1,\)"):
        checks.assert_close(np.array([1.0]), np.array([1.0, 1.0, 1.0]))


def test_assert_close_explains_none():
    with pytest.raises(AssertionError, match="did you forget to `return`"):
        checks.assert_close(None, np.zeros(2))


def test_assert_close_scalar_message():
    with pytest.raises(AssertionError, match="expected 0.5, got 0.25"):
        checks.assert_close(0.25, 0.5)


def test_assert_shape():
    checks.assert_shape(np.zeros((26, 26, 16)), (26, 26, 16))
    with pytest.raises(AssertionError, match=r"expected \(26, 26, 16\), got \(27, 27, 16\). Hint: check your padding."):
        checks.assert_shape(np.zeros((27, 27, 16)), (26, 26, 16), hint="check your padding")


def test_assert_dtype():
    checks.assert_dtype(np.zeros(2, np.float32), np.float32)
    with pytest.raises(AssertionError, match="expected float32, got float64"):
        checks.assert_dtype(np.zeros(2), "float32")


def test_assert_in_range():
    checks.assert_in_range(np.array([0.0, 1.0]), 0, 1)
    with pytest.raises(AssertionError, match="values from 0.0 to 255.0"):
        checks.assert_in_range(np.array([0.0, 255.0]), 0, 1)


def test_assert_equal_counts_differences():
    checks.assert_equal(np.arange(4), np.arange(4))
    with pytest.raises(AssertionError, match="2 of 4 differ"):
        checks.assert_equal(np.array([0, 1, 0, 0]), np.array([1, 1, 1, 0]))
    with pytest.raises(AssertionError, match="expected 3, got 4"):
        checks.assert_equal(4, 3)


def test_rel_error():
    assert checks.rel_error(1.0, 1.0) == 0.0
    assert checks.rel_error(np.array([1.0, 3.0]), np.array([1.0, 1.0])) == pytest.approx(0.5)


def test_assert_equal_on_nested_tuples():
    checks.assert_equal(((127, 127, 16), 208), ((127, 127, 16), 208))
    with pytest.raises(AssertionError, match=r"expected \(\(63, 63, 16\), 0\), got \(\(64, 64, 16\), 0\)"):
        checks.assert_equal(((64, 64, 16), 0), ((63, 63, 16), 0))
