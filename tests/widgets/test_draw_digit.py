"""The draw-a-digit visualizer: strokes become pixels, MNIST-style input and live probabilities."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest

keras = pytest.importorskip("keras")
pytest.importorskip("ipycanvas")

from dlcourse import data, digits  # noqa: E402
from dlcourse.widgets.draw_digit import DrawDigit  # noqa: E402

LESSONS = ("06_mnist_project",)  # pytest -m lesson06 selects these tests


@pytest.fixture(scope="module")
def mnist():
    (x_train, y_train), (x_test, y_test) = data.load_mnist()
    return (
        x_train[:10000].astype(np.float32) / 255,
        y_train[:10000],
        x_test[:100].astype(np.float32) / 255,
        y_test[:100],
    )


@pytest.fixture(scope="module")
def model(mnist):
    """A nearest-class-mean classifier as a Keras model: no training, about 80% on MNIST."""
    x, y, _, _ = mnist
    means = np.stack([x[y == k].reshape(-1, 784).mean(axis=0) for k in range(10)])
    m = keras.Sequential(
        [keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(10, activation="softmax")]
    )
    scale = 5.0  # logits = scale * (x . mean_k - |mean_k|^2 / 2): softmax over -distance
    m.layers[-1].set_weights([scale * means.T, -scale * 0.5 * (means**2).sum(axis=1)])
    return m


def _template_prediction(model, digit):
    return int(np.argmax(model(digit[None, ..., None], training=False)))


def test_starts_empty(model):
    pad = DrawDigit(model)
    assert pad.prediction is None and not pad.image.any() and not pad.digit.any()
    assert "draw a digit" in pad.status()


def test_strokes_become_pixels_and_a_prediction(model):
    pad = DrawDigit(model, interval=0)
    pad.draw([[(140, 40), (140, 240)]])  # one vertical stroke: a "1"
    assert pad.image[140, 140] == 255 and pad.image[140, 60] == 0
    assert pad.image[40:241, 130:151].mean() > 200, "the pen should cover the stroke's width"
    rows, cols = digits.ink_bounds(pad.digit)
    assert rows.stop - rows.start == 20, "the drawing is scaled to a 20-pixel box"
    assert np.isclose(pad.probabilities.sum(), 1) and pad.prediction == 1


def test_drawn_test_digits_are_read_as_the_model_reads_the_originals(model, mnist):
    _, _, x_test, _ = mnist
    pad = DrawDigit(model)
    agree = 0
    for i, img in enumerate(x_test[:40]):
        pad.draw_image(digits.enlarge(img, canvas=(280, 280), scale=4 + i % 5, offset=(10 + i % 50, 20 + (7 * i) % 40)))
        agree += pad.prediction == _template_prediction(model, img)
    # A template matcher is thrown by one-pixel shifts, so a few differ; without the MNIST-style
    # preprocessing (crop, scale, centre) almost none would agree.
    assert agree >= 32, f"only {agree} of 40 drawings read like their originals"


def test_clear_erases_everything(model):
    pad = DrawDigit(model)
    pad.draw([[(60, 60), (200, 200)], [(200, 60), (60, 200)]])
    assert pad.prediction is not None and len(pad.strokes) == 2
    pad.clear()
    assert pad.prediction is None and not pad.image.any() and pad.strokes == []


def test_the_canvas_events_drive_it(model):
    """Mouse messages as the browser sends them go through ipycanvas into the drawing."""
    pad = DrawDigit(model, interval=0)
    box = pad.widget
    canvas = pad._canvas
    assert canvas in box.children[0].children
    send = canvas._handle_frontend_event
    send(None, {"event": "mouse_down", "x": 140, "y": 40}, [])
    for y in range(60, 241, 20):
        send(None, {"event": "mouse_move", "x": 140, "y": y}, [])
    assert pad.prediction == 1, "live prediction while drawing"
    send(None, {"event": "mouse_up", "x": 140, "y": 240}, [])
    send(None, {"event": "mouse_move", "x": 20, "y": 20}, [])  # moving with the button up draws nothing
    assert pad.image[20, 20] == 0
    assert "prediction 1" in pad._bars.value
    send(None, {"event": "touch_start", "touches": [{"x": 40, "y": 40}]}, [])
    send(None, {"event": "touch_move", "touches": [{"x": 60, "y": 60}]}, [])
    send(None, {"event": "touch_end", "touches": []}, [])
    assert pad.image[50, 50] == 255, "a finger draws too"
    clear = box.children[0].children[-1]
    clear.click()
    assert pad.prediction is None and "draw a digit" in pad._bars.value


def test_accepts_a_saved_model_and_other_input_shapes(model, mnist, tmp_path):
    _, _, x_test, _ = mnist
    path = tmp_path / "mnist_model.keras"
    model.save(path)
    flat = keras.Sequential([keras.Input((784,)), keras.layers.Dense(10)])  # logits, flat input
    flat.layers[-1].set_weights(model.layers[-1].get_weights())
    canvas = digits.enlarge(x_test[0], scale=6, offset=(40, 40))
    expected = DrawDigit(model).draw_image(canvas).probabilities
    np.testing.assert_allclose(DrawDigit(path).draw_image(canvas).probabilities, expected, rtol=1e-5)
    np.testing.assert_allclose(DrawDigit(flat).draw_image(canvas).probabilities, expected, rtol=1e-4, atol=1e-6)


def test_static_fallback_shows_drawing_input_and_bars(model, mnist):
    from PIL import Image

    _, _, x_test, _ = mnist
    pad = DrawDigit(model).draw_image(digits.enlarge(x_test[0], scale=6, offset=(40, 40)))
    bundle = pad._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    picture = np.asarray(Image.open(io.BytesIO(base64.b64decode(bundle["image/png"]))).convert("RGB"))
    assert picture.shape[1] > 500
    blank = np.asarray(Image.open(io.BytesIO(DrawDigit(model).static_png())).convert("RGB"))
    assert not np.array_equal(picture, blank), "the picture should show the drawing"
    assert pad.latency > 0
