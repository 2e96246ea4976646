"""The unroller's arithmetic equals Keras's LSTM: the states it shows are the layer's."""

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from dlcourse.widgets import unroller as un  # noqa: E402


@pytest.fixture(scope="module")
def layer():
    keras.utils.set_random_seed(0)
    lstm = keras.layers.LSTM(5, return_sequences=True, return_state=True, bias_initializer="random_normal")
    lstm(np.zeros((1, 7, 3), np.float32))
    return lstm


def test_trace_equals_keras_sequences_and_states(layer):
    x = np.random.default_rng(1).normal(size=(7, 3)).astype(np.float32)
    seq, h_last, c_last = (np.asarray(a)[0] for a in layer(x[None]))
    trace = un.lstm_trace(layer, x)
    np.testing.assert_allclose(trace["h"], seq, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(trace["h"][-1], h_last, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(trace["c"][-1], c_last, rtol=1e-4, atol=1e-5)
    for gate in "ifo":
        assert trace[gate].min() >= 0 and trace[gate].max() <= 1
    # the cell recurrence holds step by step
    c_prev = np.vstack([np.zeros(5), trace["c"][:-1]])
    np.testing.assert_allclose(trace["c"], trace["f"] * c_prev + trace["i"] * trace["g"], rtol=1e-10)


def test_one_dimensional_sequences(layer):
    keras.utils.set_random_seed(2)
    lstm = keras.layers.LSTM(4)
    x = np.sin(np.arange(20) / 3).astype(np.float32)
    want = np.asarray(lstm(x[None, :, None]))[0]
    np.testing.assert_allclose(un.lstm_trace(lstm, x)["h"][-1], want, rtol=1e-4, atol=1e-5)


def test_unroller_steps_and_shows_the_states(layer):
    x = np.random.default_rng(3).normal(size=(7, 3))
    u = un.Unroller(layer, x, t=0, units=2)
    first = u.view.png
    u.step(3)
    assert u.t == 3 and u.view.png != first
    np.testing.assert_allclose(u.values()["h"], un.lstm_trace(layer, x)["h"][3])
    assert u.status().startswith("t = 3: forget [")
    widget = u.widget
    u._slider.value = 6
    assert u.t == 6
    u.step(5)
    assert u.t == 6  # stops at the last step
    with pytest.raises(ValueError, match="0..6"):
        u.show(7)
    assert "image/png" in u._repr_mimebundle_() and widget is u.widget
