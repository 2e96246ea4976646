"""dlcourse.diagrams: each diagram draws the parts it names, and its parameters change the drawing."""

import subprocess
import sys

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.text import Text  # noqa: E402

from dlcourse import diagrams  # noqa: E402


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def texts(fig):
    return [t.get_text() for t in fig.findobj(Text) if t.get_text()]


def joined(fig):
    return "\n".join(texts(fig))


def gids(fig, prefix=""):
    return [a.get_gid() for a in fig.findobj() if isinstance(a.get_gid(), str) and a.get_gid().startswith(prefix)]


def count(fig, gid):
    return gids(fig).count(gid)


ALL = [name for name in diagrams.__all__ if name != "draw_lstm_cell"]


@pytest.mark.parametrize("name", ALL)
def test_every_diagram_draws_a_figure_that_renders(name, tmp_path):
    fig = getattr(diagrams, name)()
    assert isinstance(fig, matplotlib.figure.Figure)
    assert texts(fig), f"{name} has no text labels"
    fig.savefig(tmp_path / f"{name}.png", dpi=40)  # renders without error
    doc = getattr(diagrams, name).__doc__
    assert "lesson 0" in doc, f"{name}'s docstring should say which lesson uses it"


def test_neuron_labels_inputs_weights_sum_and_activation():
    fig = diagrams.neuron(n_inputs=3, activation="ReLU")
    labels = texts(fig)
    for label in ("$x_{1}$", "$x_{3}$", "$w_{1}$", "$w_{3}$", r"$\Sigma$", "ReLU", "$a$", "$+\\,b$"):
        assert label in labels, f"missing {label!r} in {labels}"
    assert count(fig, "edge:x3->sum") == 1 and count(fig, "edge:sum->activation") == 1
    assert len(gids(diagrams.neuron(n_inputs=5), "node:x")) == 5


def test_neuron_elides_many_inputs_but_names_the_last():
    fig = diagrams.neuron(n_inputs=20)
    assert "$x_{20}$" in texts(fig) and r"$\vdots$" in texts(fig)
    assert len(gids(fig, "node:x")) == 5
    with pytest.raises(ValueError):
        diagrams.neuron(n_inputs=0)


def test_mlp_draws_every_connection_and_counts_parameters():
    fig = diagrams.mlp((3, 4, 2))
    assert len(gids(fig, "node:")) == 9
    assert count(fig, "edge:0->1") == 12 and count(fig, "edge:1->2") == 8
    text = joined(fig)
    assert "3·4 + 4\n= 16" in text and "4·2 + 2\n= 10" in text
    assert "26 parameters" in text and "1 hidden layer: shallow" in text
    deep = joined(diagrams.mlp((784, 128, 64, 32, 10)))
    assert "3 hidden layers: deep" in deep and "784 units" in deep and "784·128 + 128\n= 100,480" in deep


def test_backprop_graph_forward_shapes_and_backward_pass():
    fig = diagrams.backprop_graph(n=4, n_in=2, n_hidden=3)
    labels = texts(fig)
    for label in ("$X$", "$Z_1$", "$A_1$", "$Z_2$", "$p$", "$L$", "(4, 2)", "(4, 3)"):
        assert label in labels, f"missing {label!r}"
    assert any(r"\delta_2 = (p - y)" in t for t in labels) and any(r"X^\top \delta_1" in t for t in labels)
    assert count(fig, "edge:backward") == 1
    forward_only = diagrams.backprop_graph(n=8, n_in=5, n_hidden=7, backward=False)
    assert "(8, 5)" in texts(forward_only) and "(8, 7)" in texts(forward_only)
    assert not gids(forward_only, "edge:backward") and not any("delta" in t for t in texts(forward_only))


def test_dropout_drops_only_hidden_units_at_the_given_rate():
    sizes = (4, 10, 10, 2)
    none = diagrams.dropout(sizes, rate=0.0)
    assert count(none, "node:dropped") == 0
    heavy = diagrams.dropout(sizes, rate=0.8, seed=1)
    dropped = count(heavy, "node:dropped")
    assert 8 <= dropped <= 19, dropped  # about 80% of 20 hidden units, at least one kept per layer
    assert count(heavy, "node:io") == 2 * (4 + 2)  # inputs and outputs never drop, in either panel
    text = joined(heavy)
    assert f"{dropped} hidden units dropped" in text and "= 5" in text and "test time" in text
    # the training panel loses the connections of dropped units
    assert count(heavy, "edge:train") < count(heavy, "edge:test") == 4 * 10 + 10 * 10 + 10 * 2

    def dropped_at(fig):
        return {
            tuple(np.round(p.center, 3))
            for p in fig.findobj(matplotlib.patches.Circle)
            if p.get_gid() == "node:dropped"
        }

    assert dropped_at(diagrams.dropout(sizes, 0.5, seed=0)) != dropped_at(diagrams.dropout(sizes, 0.5, seed=3)), (
        "the seed draws the mask"
    )
    assert dropped_at(diagrams.dropout(sizes, 0.5, seed=0)) == dropped_at(diagrams.dropout(sizes, 0.5, seed=0))
    with pytest.raises(ValueError):
        diagrams.dropout(sizes, rate=1.0)


def test_conv_multichannel_draws_k_filters_of_full_depth():
    fig = diagrams.conv_multichannel(d_in=3, k=2, f=3, size=5)
    text = joined(fig)
    assert "filter 1: 3×3×3" in text and "filter 2: 3×3×3" in text and "output 3×3×2" in text
    assert "= 56" in text  # (3*3*3)*2 + 2
    assert count(fig, "node:input0") == 1 and count(fig, "node:input2") == 1 and count(fig, "node:output1") == 1
    other = diagrams.conv_multichannel(d_in=2, k=3, f=2, size=6, stride=2, padding=1)
    text = joined(other)
    assert "input 6×6×2" in text and "output 4×4×3" in text and "filter 3: 2×2×2" in text
    assert len(set(gids(other, "node:output"))) == 3 and not gids(other, "node:input2")


def test_receptive_field_matches_the_formula():
    fig = diagrams.receptive_field((3, 3, 3))
    text = joined(fig)
    assert "r = 7" in text and "sees 3" in text and "sees 5" in text and "sees 7" in text
    assert count(fig, "node:field0") == 7 and count(fig, "node:field3") == 1
    strided = diagrams.receptive_field((3, 3, 3), strides=(2, 1, 1))
    assert "r = 11" in joined(strided) and count(strided, "node:field0") == 11 and "S=2" in joined(strided)
    assert "r = 5" in joined(diagrams.receptive_field((5,)))


def test_cnn_pattern_lays_out_blocks_and_shapes():
    fig = diagrams.cnn_pattern(n_conv=2, n_blocks=2, n_dense=1, input_shape=(28, 28, 1), filters=32)
    assert count(fig, "node:conv") == 4 and count(fig, "node:pool") == 2 and count(fig, "node:fc") == 1
    assert count(fig, "node:out") == 1 and count(fig, "label:block") == 2
    labels = texts(fig)
    for shape in ("28×28×32", "14×14×32", "14×14×64", "7×7×64", "3136"):
        assert shape in labels, f"missing shape {shape}"
    assert any("[[CONV → RELU]×2 → POOL]×2" in t for t in labels)
    linear = diagrams.cnn_pattern(n_conv=0, n_blocks=0, n_dense=0, input_shape=None)
    assert not gids(linear, "node:conv") and count(linear, "node:out") == 1 and not gids(linear, "label:shape")
    no_pool = diagrams.cnn_pattern(n_conv=1, n_blocks=3, n_dense=2, pool=False)
    assert count(no_pool, "node:conv") == 3 and not gids(no_pool, "node:pool") and count(no_pool, "node:fc") == 2


def test_unrolled_rnn_shares_weights_over_the_steps():
    fig = diagrams.unrolled_rnn(steps=5)
    labels = texts(fig)
    assert "$x_{5}$" in labels and "$a_{5}$" in labels and "$x_t$" in labels
    assert count(fig, "edge:loop") == 1 and count(fig, "edge:a4->step5") == 1
    assert labels.count("$U$") == 6 and labels.count("$W$") == 6  # the folded cell and each step
    assert any(r"a_t = \tanh(x_t W + a_{t-1} U + b)" in t for t in labels)
    assert "$x_{3}$" in texts(diagrams.unrolled_rnn(3)) and "$x_{4}$" not in texts(diagrams.unrolled_rnn(3))


EXPECTED_LSTM_EDGES = {
    "c_prev->forget_mul",
    "forget_mul->add",
    "add->c_out",  # the cell-state line
    "forget_gate->forget_mul",
    "input_gate->input_mul",
    "candidate->input_mul",
    "input_mul->add",  # f * c, i * g
    "add->tanh_c",
    "tanh_c->output_mul",
    "output_gate->output_mul",
    "output_mul->h_out",  # h = o * tanh(c)
}


def test_lstm_cell_wiring_follows_the_equations():
    """c_t = f * c_(t-1) + i * g on the cell-state line; h_t = o * tanh(c_t) off it."""
    fig, ax = plt.subplots()
    nodes = diagrams.draw_lstm_cell(ax)
    edges = {g[len("edge:") :] for g in gids(fig, "edge:")}
    assert EXPECTED_LSTM_EDGES <= edges, f"missing edges {EXPECTED_LSTM_EDGES - edges}"
    cell_y = nodes["c_prev"][1]
    assert nodes["forget_mul"][1] == cell_y and nodes["add"][1] == cell_y, (
        "f * c(t-1) and + i * g sit on the cell-state line"
    )
    assert nodes["forget_mul"][0] < nodes["add"][0] < nodes["tanh_c"][0], "forget, then add, then the branch to tanh(c)"
    for name in ("input_mul", "output_mul", "tanh_c"):
        assert nodes[name][1] < cell_y - 0.5, f"{name} must be off the cell-state line"
    assert nodes["h_out"][1] < nodes["output_mul"][1] < nodes["tanh_c"][1], (
        "the output gate multiplies on the way from tanh(c) to h"
    )
    ops = [t.get_text() for t in ax.texts if t.get_text() in ("×", "+")]
    assert sorted(ops) == ["+", "×", "×", "×"]


def test_lstm_cell_annotations_and_equations():
    fig, ax = plt.subplots()
    diagrams.draw_lstm_cell(ax, annotations={"forget_gate": "+0.71", "h_out": "-0.20"})
    assert "+0.71" in texts(fig) and "-0.20" in texts(fig) and count(fig, "value:forget_gate") == 1
    with pytest.raises(ValueError, match="forget_gate"):
        diagrams.draw_lstm_cell(ax, annotations={"nowhere": "1"})
    full = diagrams.lstm_cell()
    assert r"$c_t = f_t \odot c_{t-1} + i_t \odot g_t$" in joined(full) and count(full, "label:equations") == 1
    assert not gids(diagrams.lstm_cell(equations=False), "label:equations")


def test_autoencoder_bottleneck_and_ratio():
    fig = diagrams.autoencoder((784, 32, 784))
    text = joined(fig)
    assert "compression ratio 784/32 = 24.5" in text and "code $c$" in text and "encoder" in text and "decoder" in text
    assert count(fig, "node:code") == 1 and count(fig, "node:layer") == 2 and count(fig, "edge:loss") == 1
    deep = diagrams.autoencoder((784, 256, 64, 2, 64, 256, 784))
    assert (
        count(deep, "node:layer") == 6
        and count(deep, "node:encoder_part") == 3
        and count(deep, "node:decoder_part") == 3
    )
    assert "= 392" in joined(deep)
    heights = sorted(
        p.get_height()
        for p in deep.findobj(matplotlib.patches.FancyBboxPatch)
        if p.get_gid() in ("node:code", "node:layer")
    )
    assert heights[0] < heights[2] < heights[-1], "bars grow with the layer size"
    with pytest.raises(ValueError):
        diagrams.autoencoder((2, 784, 784))


def test_rbm_is_bipartite():
    fig = diagrams.rbm(n_visible=6, n_hidden=4)
    assert count(fig, "node:v") == 6 and count(fig, "node:h") == 4
    assert count(fig, "edge:W") == 24, "every visible unit connects to every hidden unit, and nothing else"
    assert not gids(fig, "edge:v") and not gids(fig, "edge:h")
    text = joined(fig)
    assert "$v_{6}$" in text and "$h_{4}$" in text and "no connections within a layer" in text and "24 weights" in text
    big = diagrams.rbm(n_visible=784, n_hidden=128)
    assert "$v_{784}$" in texts(big) and "$h_{128}$" in texts(big) and "100,352 weights" in joined(big)
    assert count(big, "edge:W") == 7 * 7  # 7 units and an ellipsis drawn per layer


def test_cd1_chain_steps_and_update():
    fig = diagrams.cd1_chain()
    text = joined(fig)
    assert "CD-1" in text and r"\mathbf{v}_0" in text and r"p(\mathbf{h}\,|\,\mathbf{v}_{1})" in text
    assert count(fig, "edge:v0->ph0") == 1 and count(fig, "edge:h0->v1") == 1 and count(fig, "edge:v1->ph1") == 1
    assert "lowers the data's energy" in text and "raises the reconstruction's" in text and r"\Delta W" in text
    three = diagrams.cd1_chain(k=3)
    assert "CD-3" in joined(three) and count(three, "edge:h2->v3") == 1 and not gids(three, "edge:h3")
    with pytest.raises(ValueError):
        diagrams.cd1_chain(k=0)


def test_diagrams_do_not_import_tensorflow():
    code = (
        "import sys, matplotlib; matplotlib.use('Agg'); import dlcourse as dlc;"
        + "".join(f"dlc.diagrams.{name}();" for name in ALL)
        + "print('tensorflow' in sys.modules, 'keras' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False False"


def test_figures_hold_no_nan_geometry():
    for name in ALL:
        fig = getattr(diagrams, name)()
        for ax in fig.axes:
            x0, x1 = ax.get_xlim()
            assert np.isfinite([x0, x1]).all() and x1 > x0
