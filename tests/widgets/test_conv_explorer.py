"""The conv explorer's arithmetic agrees with Keras; its picture and controls follow its state."""

import itertools

import numpy as np
import pytest

from dlcourse.widgets import conv_explorer as ce

LESSONS = ("02_conv_pool_arithmetic",)  # pytest -m lesson02 selects these tests

keras = pytest.importorskip("keras")


def _configs():
    for size, k, s, p, mode, d, op in itertools.product(
        range(1, 10), range(1, 5), range(1, 4), range(0, 3), ce.PADDINGS, range(1, 4), ce.OPS
    ):
        if (mode != "explicit" and p) or (op != "conv" and d > 1):
            continue
        yield ce.ConvConfig(size, k, s, p, mode, d, op)


def test_output_sizes_equal_keras_for_a_sweep():
    checked = rejected = 0
    for config in _configs():
        g = ce.geometry(config)
        try:
            got = ce.keras_output_size(config)
        except ValueError as exc:
            if "dilation" in str(exc) and config.stride > 1:
                continue  # Keras itself does not support it; the explorer says so
            assert g.output is None, f"Keras rejects {config}, the explorer gives {g.output}"
            rejected += 1
            continue
        if g.output is None:
            assert got < 1, f"{config}: Keras gives {got}, the explorer says the kernel does not fit"
            rejected += 1
        else:
            assert g.output == got, f"{config}: explorer {g.output}, Keras {got}"
            checked += 1
    assert checked > 500 and rejected > 20, (checked, rejected)


def test_same_padding_split_matches_keras_values():
    """Explicit padding (before, after) as the explorer computes it reproduces Keras's `same` output."""
    rng = np.random.default_rng(0)
    for size, k, s in [(5, 3, 2), (6, 4, 2), (7, 2, 3), (8, 5, 1)]:
        g = ce.geometry(ce.ConvConfig(size=size, kernel=k, stride=s, mode="same"))
        x = rng.normal(size=(1, size, size, 1)).astype("float32")
        layer = keras.layers.Conv2D(1, k, strides=s, padding="same", use_bias=False)
        same = layer(x)
        explicit = keras.layers.ZeroPadding2D(((g.pad_before, g.pad_after),) * 2)(x)
        valid = keras.ops.conv(explicit, layer.kernel, strides=s, padding="valid")
        np.testing.assert_allclose(np.asarray(same), np.asarray(valid), atol=1e-5)


def test_formula_and_reasons():
    g = ce.geometry(ce.ConvConfig(size=5, kernel=3, stride=2, padding=1))
    assert g.valid and g.output == 3 and "(5 - 3 + 2·1)/2 + 1 = 3" in g.formula
    g = ce.geometry(ce.ConvConfig(size=6, kernel=3, stride=2))
    assert not g.valid and g.output == 2 and g.uncovered == 1 and "not a whole number" in g.reason
    g = ce.geometry(ce.ConvConfig(size=3, kernel=5))
    assert g.output is None and "larger than the input" in g.reason
    g = ce.geometry(ce.ConvConfig(size=7, kernel=3, dilation=2))
    assert g.effective_kernel == 5 and g.output == 3 and "F' = D(F-1)+1" in g.formula
    with pytest.raises(ValueError, match="stride must be at least 1"):
        ce.geometry(ce.ConvConfig(stride=0))
    with pytest.raises(ValueError, match="padding must be 0 or more"):
        ce.geometry(ce.ConvConfig(padding=-1))


def test_windows_cover_the_output_cells_in_order():
    e = ce.ConvExplorer(size=5, kernel=3, stride=2, padding=1, keras_check=False)
    assert e.n_frames == 9
    assert e.window(0)[0] == (0, 0) and e.window(0)[-1] == (2, 2)
    assert e.window(8)[-1] == (6, 6)  # last window reaches the last padded cell
    e = ce.ConvExplorer(size=7, kernel=3, dilation=2, keras_check=False)
    assert e.window(0) == [(a, b) for a in (0, 2, 4) for b in (0, 2, 4)]


@pytest.mark.parametrize("op, layer", [("conv", None), ("max", "MaxPooling2D"), ("avg", "AveragePooling2D")])
def test_displayed_values_equal_keras(op, layer):
    e = ce.ConvExplorer(size=7, kernel=3, stride=2, padding=1, op=op, keras_check=False)
    x = e.padded_input()[None, :, :, None].astype("float32")
    if op == "conv":
        kernel = e._kernel()[:, :, None, None].astype("float32")
        want = keras.ops.conv(x, kernel, strides=2, padding="valid")
    else:
        want = getattr(keras.layers, layer)(3, strides=2)(x)
    np.testing.assert_allclose(e.output_values(), np.asarray(want)[0, :, :, 0], atol=1e-5)


def test_stepping_and_settings_change_the_picture_and_status():
    e = ce.ConvExplorer(size=5, kernel=3, keras_check=False)
    first = e.view.png
    e.step()
    assert e.frame == 1 and e.view.png != first
    e.step(8)
    assert e.frame == 0  # wraps after the last of the 9 cells
    e.set(stride=2)
    assert e.frame == 0 and e.n_frames == 4 and "/2 + 1 = 2" in e.status
    e.set(size=2, kernel=3)
    assert "Invalid" in e.status and e.n_frames == 1


def test_keras_check_in_status():
    e = ce.ConvExplorer(size=5, kernel=3, stride=2, dilation=2)
    assert "Keras: Keras's Conv2D does not support strides > 1" in e.status
    e.set(dilation=1)
    assert "→ width 2: matches" in e.status


def test_widget_controls_drive_the_explorer():
    e = ce.ConvExplorer(size=5, kernel=3, keras_check=False)
    w = e.widget
    e._controls["stride"].value = 2
    assert e.config.stride == 2 and e._frame_slider.max == 3
    e._frame_slider.value = 2
    assert e.frame == 2 and "cell (1, 0)" in e._status_html.value
    e._controls["mode"].value = "same"
    assert e._controls["padding"].disabled and e.geometry.output == 3
    bundle = e._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle and "image/png" in bundle
    assert w is e.widget
