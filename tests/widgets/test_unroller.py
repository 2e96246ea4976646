"""The unroller's arithmetic equals Keras's LSTM: the states it shows are the layer's."""

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from dlcourse.widgets import unroller as un  # noqa: E402

LESSONS = ("04_rnn_lstm",)  # pytest -m lesson04 selects these tests


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


def test_cell_diagram_wiring_and_current_values(layer):
    """The cell panel follows colah's diagram: f * c(t-1) and + i * g on the cell-state line,
    the output gate multiplying tanh(c) on the way to h; it shows the values at step t."""
    x = np.random.default_rng(4).normal(size=(7, 3))
    u = un.Unroller(layer, x, t=2, units=2)
    ax = u._artists["cell"]
    edges = {p.get_gid()[len("edge:") :] for p in ax.patches if (p.get_gid() or "").startswith("edge:")}
    for edge in (
        "c_prev->forget_mul",
        "forget_mul->add",
        "add->c_out",
        "input_gate->input_mul",
        "candidate->input_mul",
        "input_mul->add",
        "add->tanh_c",
        "tanh_c->output_mul",
        "output_gate->output_mul",
        "output_mul->h_out",
    ):
        assert edge in edges, f"the cell diagram lacks {edge}"
    assert not any(e.startswith("output_mul->") and e != "output_mul->h_out" for e in edges)
    assert not any(
        e.endswith("->output_mul") and e not in ("tanh_c->output_mul", "output_gate->output_mul") for e in edges
    )
    shown = {t.get_gid(): t.get_text() for t in ax.texts if (t.get_gid() or "").startswith("value:")}
    v = u.values()
    assert shown["value:forget_gate"].split("\n") == [f"{v['f'][j]:+.2f}" for j in range(2)]
    assert shown["value:input_gate"].split("\n") == [f"{v['i'][j]:+.2f}" for j in range(2)]
    assert shown["value:h_out"].split("\n")[1:] == [f"{v['h'][j]:+.2f}" for j in range(2)]
    u.show(5)
    shown = {t.get_gid(): t.get_text() for t in u._artists["cell"].texts if (t.get_gid() or "").startswith("value:")}
    assert shown["value:c_out"].split("\n")[1:] == [f"{u.values()['c'][j]:+.2f}" for j in range(2)]
