"""dlcourse.digits: drawings come back in MNIST's format (crop, fit 20 x 20, centre by mass)."""

import numpy as np
import pytest

from dlcourse import data, digits

LESSONS = ("06_mnist_project",)  # pytest -m lesson06 selects these tests


@pytest.fixture(scope="module")
def test_digits():
    (_, _), (x, y) = data.load_mnist()
    return x[:200].astype(np.float32) / 255, y[:200]


def _corr(a, b):
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def test_an_mnist_digit_is_already_in_mnist_format(test_digits):
    x, _ = test_digits
    corr = [_corr(digits.to_mnist(img), img) for img in x]
    assert np.mean(corr) > 0.99, np.mean(corr)


def test_test_digits_drawn_larger_and_off_centre_come_back_close(test_digits):
    x, _ = test_digits
    rng = np.random.default_rng(0)
    corr, err = [], []
    for img in x:
        scale = rng.uniform(3, 10)
        side = round(28 * scale)
        offset = (int(rng.integers(0, 300 - side + 1)), int(rng.integers(0, 360 - side + 1)))
        back = digits.to_mnist(digits.enlarge(img, canvas=(300, 360), scale=scale, offset=offset))
        corr.append(_corr(back, img))
        err.append(np.abs(back - img).mean())
    # Resampling twice blurs the strokes a little and can move the digit by one pixel;
    # a wrong box size or centring drops the correlation far below these bounds.
    assert np.mean(corr) > 0.9, np.mean(corr)
    assert np.percentile(corr, 10) > 0.8, np.percentile(corr, 10)
    assert np.mean(err) < 0.05, np.mean(err)


def test_the_ink_fits_a_20_pixel_box_keeping_its_aspect_ratio():
    tall = np.zeros((300, 300))
    tall[50:250, 100:150] = 1  # 200 x 50: 4 to 1
    out = digits.to_mnist(tall)
    rows, cols = digits.ink_bounds(out)
    assert rows.stop - rows.start == 20
    assert cols.stop - cols.start == 5
    wide = tall.T
    rows, cols = digits.ink_bounds(digits.to_mnist(wide))
    assert (rows.stop - rows.start, cols.stop - cols.start) == (5, 20)


def test_the_centre_of_mass_lands_on_mnists_centre(test_digits):
    x, _ = test_digits
    coms = np.array([digits.centre_of_mass(img) for img in x])
    assert np.allclose(coms.mean(axis=0), digits.CENTRE, atol=0.1)  # where MNIST itself puts it
    blob = np.zeros((100, 100))
    blob[5:45, 60:70] = 1
    blob[5:15, 30:70] = 1  # a "7"-like shape: its mass is off its box's centre
    cy, cx = digits.centre_of_mass(digits.to_mnist(blob))
    assert abs(cy - digits.CENTRE) <= 0.5 and abs(cx - digits.CENTRE) <= 0.5, (cy, cx)


def test_moving_the_drawing_does_not_change_the_result(test_digits):
    x, _ = test_digits
    a = digits.enlarge(x[3], canvas=(280, 280), scale=6, offset=(0, 0))
    b = digits.enlarge(x[3], canvas=(280, 280), scale=6, offset=(100, 90))
    np.testing.assert_array_equal(digits.to_mnist(a), digits.to_mnist(b))


def test_blank_dtype_and_shape_handling():
    assert not digits.to_mnist(np.zeros((50, 40))).any()
    out = digits.to_mnist(np.full((10, 10, 1), 255, np.uint8))
    assert out.shape == (28, 28) and out.dtype == np.float32 and out.max() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="grey"):
        digits.to_mnist(np.zeros((10, 10, 3)))


def test_stray_faint_pixels_do_not_stretch_the_box(test_digits):
    x, _ = test_digits
    canvas = digits.enlarge(x[0], canvas=(280, 280), scale=5, offset=(60, 60))
    noisy = canvas.copy()
    noisy[2, 2] = 0.05  # a speck far away, below the threshold
    np.testing.assert_array_equal(digits.to_mnist(noisy), digits.to_mnist(canvas))
