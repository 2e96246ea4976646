"""dlcourse.training and lesson 06's project code, on whichever Keras backend runs this process.

tests/test_backends.py runs this file again with KERAS_BACKEND=jax and torch, so the
reference model, its plain recipe and the GPU section's recipe are trained on every
backend (on the CPU, on a few thousand images).
"""

import numpy as np
import pytest

keras = pytest.importorskip("keras")

import dlcourse as dlc  # noqa: E402
from bench.gpu import notebook_code  # noqa: E402
from dlcourse import training  # noqa: E402
from dlcourse.device import GpuInfo  # noqa: E402

BACKEND = keras.backend.backend()
H100 = GpuInfo(
    "NVIDIA H100 80GB HBM3",
    {"tensorflow": "/physical_device:GPU:0", "jax": "gpu:0"}.get(BACKEND, "cuda:0"),
    (9, 0),
    81559,
)
P100 = GpuInfo("Tesla P100-PCIE-16GB", "gpu:0", (6, 0), 16280)


@pytest.fixture(autouse=True)
def _restore_policy():
    yield
    keras.mixed_precision.set_global_policy("float32")


@pytest.fixture(scope="module")
def mnist():
    """2,000 training images (the reference reaches about 0.90 on the 2,000 test images on TensorFlow and JAX)."""
    (x, y), (xt, yt) = dlc.data.load_mnist()
    prep = lambda a: a[..., None].astype(np.float32) / 255  # noqa: E731
    return prep(x[:2000]), y[:2000], prep(xt[:2000]), yt[:2000]


def _accuracy(model, x, y):
    return float(np.mean(np.asarray(model.predict(x, batch_size=500, verbose=0)).argmax(1) == y))


# --- the options ------------------------------------------------------------------------


def test_options_on_this_cpu():
    fast = training.fast_fit_options()
    assert fast.backend == BACKEND and fast.device == "cpu" and not fast.on_gpu
    assert fast.policy == "float32"
    assert fast.jit_compile is {"tensorflow": False, "jax": True, "torch": False}[BACKEND]
    assert fast.pipeline == ("tf.data" if BACKEND == "tensorflow" else "arrays")
    text = fast.describe()
    assert dlc.device.BACKENDS[BACKEND] in text and "float32" in text and len(text.splitlines()) == 4


def test_options_on_a_modern_gpu():
    fast = training.fast_fit_options([H100])
    assert fast.on_gpu and fast.policy == "mixed_float16"
    assert fast.device == f"{H100.device} (NVIDIA H100 80GB HBM3)"
    assert fast.jit_compile is {"tensorflow": True, "jax": True, "torch": False}[BACKEND]
    assert "compute capability 9.0" in fast.describe()


def test_options_on_an_old_gpu_keep_float32():
    fast = training.fast_fit_options([P100])
    assert fast.on_gpu and fast.policy == "float32"
    assert "7.0" in fast.describe()


def test_precision_context_restores_the_policy():
    fast = training.fast_fit_options([H100])
    keras.mixed_precision.set_global_policy("float32")
    with pytest.raises(ZeroDivisionError):
        with fast.precision():
            assert keras.mixed_precision.global_policy().name == "mixed_float16"
            raise ZeroDivisionError
    assert keras.mixed_precision.global_policy().name == "float32"


# --- float32 outputs under mixed precision ---------------------------------------------


def _sequential():
    return keras.Sequential(
        [keras.Input((6,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(3, activation="softmax")]
    )


def _functional():
    inputs = keras.Input((6,))
    hidden = keras.layers.Dense(8, activation="relu")(inputs)
    return keras.Model(inputs, keras.layers.Dense(3, activation="softmax", name="probs")(hidden))


def _nested():
    head = _functional()
    inputs = keras.Input((6,))
    return keras.Model(inputs, head(keras.layers.Dense(6)(inputs)))


@pytest.mark.parametrize("build", [_sequential, _functional, _nested], ids=["sequential", "functional", "nested"])
def test_float32_output_under_mixed_precision(build):
    keras.utils.set_random_seed(0)
    with training.fast_fit_options([H100]).precision():
        model = build()
        assert keras.backend.standardize_dtype(model(np.ones((2, 6), np.float32)).dtype) == "float16"
        assert training.float32_output(model) is model
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    out = model(np.ones((2, 6), np.float32))
    assert keras.backend.standardize_dtype(out.dtype) == "float32"
    np.testing.assert_allclose(keras.ops.convert_to_numpy(out).sum(axis=1), 1.0, rtol=1e-6)
    hidden = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)][0]
    assert hidden.compute_dtype == "float16", "only the output layers should leave mixed precision"
    x = np.random.default_rng(0).normal(size=(64, 6)).astype(np.float32)
    history = model.fit(x, (x[:, 0] > 0).astype(int), epochs=2, batch_size=16, verbose=0)
    assert np.isfinite(history.history["loss"]).all()


# --- the input pipeline ------------------------------------------------------------------


def test_fit_data_feeds_every_sample_once_per_epoch_in_batches():
    x = np.arange(10, dtype=np.float32)[:, None]
    y = np.arange(10)
    fast = training.fast_fit_options()
    data = fast.fit_data(x, y, batch_size=4, seed=1)
    if fast.pipeline == "tf.data":
        assert set(data) == {"x", "shuffle"} and data["shuffle"] is False  # the Dataset shuffles itself
        epochs = [[(np.asarray(bx), np.asarray(by)) for bx, by in data["x"]] for _ in range(2)]
        for batches in epochs:
            assert [len(by) for _, by in batches] == [4, 4, 2]
            seen = np.concatenate([by for _, by in batches])
            assert sorted(seen) == list(range(10))
            assert all((bx[:, 0] == by).all() for bx, by in batches), "images and labels came apart"
        assert any((a[1] != b[1]).any() for a, b in zip(*epochs)), "the pipeline does not reshuffle between epochs"
    else:
        assert set(data) == {"x", "y", "batch_size", "shuffle"}
        assert data["x"] is x and data["y"] is y and data["batch_size"] == 4 and data["shuffle"] is True


# --- lesson 06's own code -----------------------------------------------------------------


@pytest.fixture(scope="module")
def lesson06():
    return notebook_code({"keras": keras, "np": np, "dlc": dlc})


def test_reference_model_and_plain_recipe_train_and_grade(lesson06, mnist, tmp_path, monkeypatch):
    x, y, xt, yt = mnist
    keras.utils.set_random_seed(0)
    model = lesson06["build_project_model"]()
    history = lesson06["train_project_model"](model, x, y)
    assert len(history.history["loss"]) >= 1 and np.isfinite(history.history["loss"]).all()
    assert _accuracy(model, xt, yt) > 0.8, "the reference model learned too little from 2,000 images"
    model.save(tmp_path / "mnist_model.keras")
    saved = dlc.project.load_saved_model(tmp_path / "mnist_model.keras")  # as the grader loads it
    info = dlc.project.check_architecture(saved, max_params=500_000)
    assert info["input_shape"] == (28, 28, 1)
    np.testing.assert_allclose(
        np.asarray(saved.predict(xt[:50], verbose=0)), np.asarray(model.predict(xt[:50], verbose=0)), atol=1e-5
    )


def test_gpu_recipe_runs_here(lesson06, mnist):
    x, y, xt, yt = mnist
    fast = lesson06["fast"]
    assert fast.backend == BACKEND and not fast.on_gpu
    keras.utils.set_random_seed(0)
    model = lesson06["fast_gpu_fit"](lesson06["build_project_model"], x, y, epochs=3, batch_size=256, peak_lr=4e-3)
    assert keras.mixed_precision.global_policy().name == "float32", "the recipe left its policy behind"
    assert keras.backend.standardize_dtype(model(xt[:2]).dtype) == "float32"
    assert _accuracy(model, xt, yt) > 0.5, "the GPU recipe's model learned too little (3 epochs on 2,000 images)"


def test_gpu_recipe_builds_float32_outputs_under_mixed_precision(lesson06, monkeypatch):
    """What the recipe does on a GPU, minus the training: a mixed_float16 model with a float32 softmax."""
    mixed = training.fast_fit_options([H100])
    monkeypatch.setitem(lesson06, "fast", mixed)
    compiled = []
    monkeypatch.setattr(keras.Model, "fit", lambda self, *a, **kw: compiled.append((self, kw)))
    model = lesson06["fast_gpu_fit"](
        lesson06["build_project_model"], np.zeros((2048, 28, 28, 1), np.float32), np.zeros(2048, int)
    )
    ((fitted, kwargs),) = compiled
    assert fitted is model and kwargs["epochs"] == lesson06["fast_gpu_fit"].__defaults__[0]
    assert model.dtype_policy.name == "mixed_float16" and model.layers[-1].compute_dtype == "float32"
    assert model.jit_compile is mixed.jit_compile
    assert "LossScaleOptimizer" in type(model.optimizer).__name__, "mixed_float16 needs loss scaling"
    assert keras.mixed_precision.global_policy().name == "float32"
