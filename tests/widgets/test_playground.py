"""The playground's logic: its data, the model it builds, the code it shows, and training."""

import numpy as np
import pytest

from dlcourse import data
from dlcourse.widgets import playground as pgm

LESSONS = ("01_shallow_vs_deep",)  # pytest -m lesson01 selects these tests

keras = pytest.importorskip("keras")


# --- data generators ---------------------------------------------------------------


@pytest.mark.parametrize("name", data.TOY_DATASETS)
def test_toy_data_shapes_balance_and_reproducibility(name):
    x, y = data.toy_2d(name, 300, noise=0.1, seed=3)
    assert x.shape == (300, 2) and x.dtype == np.float32 and y.shape == (300,)
    assert set(np.unique(y)) == {0, 1}
    assert 100 < y.sum() < 200
    assert np.abs(x).max() < 9
    x2, y2 = data.toy_2d(name, 300, noise=0.1, seed=3)
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(y, y2)
    assert not np.array_equal(x, data.toy_2d(name, 300, noise=0.1, seed=4)[0])


def test_clean_data_has_the_named_shape():
    x, y = data.toy_2d("circle", 400, noise=0)
    r = np.hypot(*x.T)
    assert r[y == 1].max() <= 2.5 + 1e-5 and r[y == 0].min() >= 3.5 - 1e-5
    x, y = data.toy_2d("xor", 400, noise=0)
    np.testing.assert_array_equal(y, (x[:, 0] * x[:, 1] > 0).astype(int))
    x, y = data.toy_2d("gauss", 400, noise=0)
    assert np.allclose(x[y == 1].mean(0), [2, 2], atol=0.2) and np.allclose(x[y == 0].mean(0), [-2, -2], atol=0.2)
    x, y = data.toy_2d("spiral", 400, noise=0)
    assert np.hypot(*x.T).max() <= 5 + 1e-5


def test_noise_moves_points():
    clean, _ = data.toy_2d("circle", 400, noise=0)
    noisy, _ = data.toy_2d("circle", 400, noise=0.4)
    assert np.abs(noisy - clean).mean() > 0.3


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown dataset 'moons'"):
        data.toy_2d("moons")
    with pytest.raises(ValueError, match="noise"):
        data.toy_2d("xor", noise=2)
    with pytest.raises(ValueError, match="test_fraction"):
        data.train_test_split(np.zeros((4, 2)), np.zeros(4), test_fraction=1)


def test_train_test_split_partitions():
    x, y = data.toy_2d("xor", 100)
    (xa, ya), (xb, yb) = data.train_test_split(x, y, test_fraction=0.3, seed=1)
    assert len(xa) == 70 and len(xb) == 30
    together = np.concatenate([xa, xb])
    assert sorted(map(tuple, together)) == sorted(map(tuple, x))


# --- the model and its code ----------------------------------------------------------


def _layers(model):
    return [(layer.units, layer.activation.__name__) for layer in model.layers]


@pytest.mark.parametrize(
    "hidden, activation, l2", [((), "linear", 0.0), ((4, 2), "tanh", 0.0), ((8, 1, 3, 5, 2, 7), "relu", 0.01)]
)
def test_model_matches_architecture(hidden, activation, l2):
    arch = pgm.Architecture(hidden=hidden, activation=activation, l2=l2, learning_rate=0.3)
    model = pgm.build_model(arch)
    assert _layers(model) == [(n, activation) for n in hidden] + [(1, "sigmoid")]
    sizes = (2,) + hidden + (1,)
    assert model.count_params() == sum(a * b + b for a, b in zip(sizes, sizes[1:]))
    assert float(model.optimizer.learning_rate) == pytest.approx(0.3)
    assert bool(model.losses) == bool(l2 and hidden) or l2 == 0


def test_shown_code_builds_the_same_model():
    arch = pgm.Architecture(hidden=(5, 3), activation="relu", l2=0.003, learning_rate=0.1)
    code = pgm.keras_code(arch, 784, 10)
    assert code.startswith("model = keras.Sequential([")
    namespace = {"keras": keras}
    exec(code, namespace)
    shown, built = namespace["model"], pgm.build_model(arch, 784, 10)
    assert _layers(shown) == _layers(built) == [(5, "relu"), (3, "relu"), (10, "softmax")]
    assert shown.count_params() == built.count_params()
    assert shown.loss == built.loss == "sparse_categorical_crossentropy"
    assert "L2(0.003)" in code and "SGD(learning_rate=0.1)" in code


def test_architecture_limits():
    with pytest.raises(ValueError, match="0-6 layers of 1-8"):
        pgm.Architecture(hidden=(9,))
    with pytest.raises(ValueError, match="0-6 layers"):
        pgm.Architecture(hidden=(1,) * 7)
    with pytest.raises(ValueError, match="activation"):
        pgm.Architecture(activation="swish")


# --- training and the display ------------------------------------------------------


def test_training_learns_the_circle_and_redraws():
    pg = pgm.Playground("circle", hidden=(4, 2), activation="tanh", learning_rate=0.03, seed=0)
    first_png, first_loss = pg.view.png, pg.history.train_loss[-1]
    pg.train(epochs=60)
    assert pg.epoch == 60 and len(pg.history.test_loss) == 61
    assert pg.history.train_loss[-1] < 0.3 * first_loss
    assert pg.history.test_acc[-1] > 0.95
    assert pg.view.png != first_png


def test_settings_rebuild_or_keep_the_network():
    pg = pgm.Playground("xor", hidden=(3,))
    pg.train(2)
    weights = [w.copy() for w in pg.model.get_weights()]
    pg.set(learning_rate=0.3)
    assert pg.epoch == 2 and float(pg.model.optimizer.learning_rate) == pytest.approx(0.3)
    assert all(np.array_equal(a, b) for a, b in zip(weights, pg.model.get_weights()))
    pg.set(hidden=(6, 6))
    assert pg.epoch == 0 and _layers(pg.model)[:2] == [(6, "tanh"), (6, "tanh")]
    assert "keras.layers.Dense(6" in pg.code
    pg.set(noise=0.3)
    assert pg.noise == 0.3 and pg.epoch == 0
    with pytest.raises(TypeError, match="unknown setting"):
        pg.set(colour="red")


def test_mnist_switch_trains_the_same_architecture():
    pg = pgm.Playground("mnist", hidden=(8, 8), activation="relu", learning_rate=0.1)
    assert pg.model.input_shape == (None, 784) and pg.model.output_shape == (None, 10)
    assert _layers(pg.model)[:2] == [(8, "relu"), (8, "relu")]
    before = pg.history.test_acc[-1]
    pg.train(epochs=5)
    assert pg.history.test_acc[-1] > max(before, 0.5)
    assert f"test {pg.history.test_acc[-1]:.1%}" in pg.status()


def test_widget_controls_drive_the_playground():
    pg = pgm.Playground("gauss", hidden=(2,))
    w = pg.widget
    pg._controls["layers"].value = 3
    assert len(pg.arch.hidden) == 3
    pg._neurons[2].value = 7
    assert pg.arch.hidden[2] == 7 and not pg._neurons[2].disabled and pg._neurons[3].disabled
    pg._controls["dataset"].value = "spiral"
    assert pg.dataset == "spiral" and pg.epoch == 0
    before = pg.epoch
    pg._last_tick = 0
    pg._play.value += 1  # one play tick
    assert pg.epoch > before
    assert "keras.layers.Dense(7" in pg._code.value
    bundle = pg._repr_mimebundle_()
    assert "image/png" in bundle and "application/vnd.jupyter.widget-view+json" in bundle
    assert w is pg.widget
