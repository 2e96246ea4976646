"""The feature-map explorer shows the sub-model's maps, and its arithmetic gives the map's values."""

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from dlcourse.widgets import feature_maps as fm  # noqa: E402

LESSONS = ("03_cnns",)  # pytest -m lesson03 selects these tests


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(0)
    return keras.Sequential(
        [
            keras.Input((12, 12, 2)),
            keras.layers.Conv2D(4, 3, activation="relu", name="c1"),
            keras.layers.Conv2D(3, 3, strides=2, padding="same", bias_initializer="random_normal", name="c2"),
            keras.layers.MaxPooling2D(2, padding="same", name="p1"),
            keras.layers.Conv2D(5, 2, dilation_rate=2, padding="same", activation="tanh", name="c3"),
            keras.layers.AveragePooling2D(2, strides=1, name="p2"),
            keras.layers.Flatten(),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(1).normal(size=(3, 12, 12, 2)).astype(np.float32)


def test_spatial_layers(model):
    assert fm.spatial_layers(model) == ["c1", "c2", "p1", "c3", "p2"]


def test_maps_equal_the_layer_outputs(model, images):
    x = images
    for layer in model.layers[:5]:
        x = layer(x)
        np.testing.assert_allclose(fm.feature_maps(model, layer.name, images), np.asarray(x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("layer", ["c1", "c2", "p1", "c3", "p2"])
def test_arithmetic_equals_the_map_value(model, images, layer):
    maps = fm.feature_maps(model, layer, images[1:2])[0]
    rng = np.random.default_rng(2)
    for _ in range(12):
        r, c, ch = (int(rng.integers(0, n)) for n in maps.shape)
        e = fm.explain(model, layer, images[1], ch, r, c)
        assert e.value == pytest.approx(maps[r, c, ch], rel=1e-4, abs=1e-5)
        assert e.map_value == pytest.approx(maps[r, c, ch], rel=1e-6)
        if e.kind == "conv":
            assert e.pre_activation == pytest.approx(float((e.window * e.kernel).sum()) + e.bias, rel=1e-9)
            assert f"= {e.value:.4g}" in e.arithmetic()


def test_explain_rejects_other_layers(model, images):
    with pytest.raises(ValueError, match="not a Conv2D or pooling"):
        flatten = next(
            layer.name for layer in model.layers if type(layer).__name__ == "Flatten"
        )  # auto-named: flatten, flatten_1, ...
        fm.explain(model, flatten, images[0], 0, 0, 0)


def test_model_without_input_gets_a_clear_error():
    bare = keras.Sequential([keras.layers.Conv2D(2, 3)])
    with pytest.raises(ValueError, match="keras.Input"):
        fm.spatial_layers(bare)


def test_explorer_state_picture_and_controls(model, images):
    ex = fm.FeatureMapExplorer(model, images, labels=[0, 1, 2])
    first = ex.view.png
    ex.set(layer="c2", channel=2, row=3, col=4)
    assert ex.view.png != first
    assert "map 2 at (3, 4)" in ex.status() and "+ bias" in ex.status()
    ex.set(layer="p1")  # 3x3 maps: the position is clamped into range
    assert ex.state["row"] <= 2 and ex.state["col"] <= 2
    widget = ex.widget
    ex._controls["layer"].value = "c3"
    assert ex.state["layer"] == "c3" and ex._controls["channel"].max == 4
    ex._controls["show"].value = "filters"
    ex._controls["image"].value = 2
    assert "tanh(" in ex._text.value
    bundle = ex._repr_mimebundle_()
    assert "image/png" in bundle and widget is ex.widget
    with pytest.raises(ValueError, match="layer must be one of"):
        ex.set(layer="dense")


def test_functional_model():
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(2, 3, name="a")(inputs)
    outputs = keras.layers.GlobalAveragePooling2D()(keras.layers.ReLU(name="r")(x))
    model = keras.Model(inputs, outputs)
    img = np.random.default_rng(3).normal(size=(1, 8, 8, 1)).astype(np.float32)
    assert fm.spatial_layers(model) == ["a", "r"]
    e = fm.explain(model, "a", img[0], 1, 2, 3)
    assert e.value == pytest.approx(fm.feature_maps(model, "a", img)[0, 2, 3, 1], rel=1e-4, abs=1e-6)
