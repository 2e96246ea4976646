"""dlcourse.checks: pass on right answers, fail with messages that help."""

import numpy as np
import pytest

from dlcourse import checks


def test_assert_close_passes_within_tolerance():
    checks.assert_close(np.array([1.0, 2.0]), np.array([1.0, 2.0 + 1e-9]))


def test_assert_close_reports_worst_element_and_hint():
    with pytest.raises(AssertionError) as err:
        checks.assert_close(
            np.array([[1.0, 2.0], [3.0, 5.0]]), np.array([[1.0, 2.0], [3.0, 4.0]]), hint="check the bias"
        )
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


# -- assert_numpy_only ------------------------------------------------------------------------
def _frameworks():
    keras = pytest.importorskip("keras")
    tf = pytest.importorskip("tensorflow")
    return keras, tf


def test_numpy_only_returns_the_result_and_passes_arguments():
    _frameworks()

    def scaled(x, factor=1.0):
        return np.tanh(x) * factor

    x = np.linspace(-1, 1, 5)
    np.testing.assert_allclose(checks.assert_numpy_only(scaled, x, factor=2.0), np.tanh(x) * 2)


@pytest.mark.parametrize(
    "kind", ["tf_op", "keras_layer", "keras_shape_arithmetic", "to_categorical", "keras_ops", "variable", "tf_function"]
)
def test_numpy_only_fails_on_tensorflow_and_keras(kind):
    keras, tf = _frameworks()
    shortcuts = {
        "tf_op": lambda x: tf.nn.relu(x).numpy(),
        "keras_layer": lambda x: np.asarray(keras.layers.MaxPooling2D(2)(x)),
        "keras_shape_arithmetic": lambda x: keras.layers.Conv2D(1, 3).compute_output_shape(x.shape),
        "to_categorical": lambda x: keras.utils.to_categorical([1, 2], 3),
        "keras_ops": lambda x: keras.ops.convert_to_numpy(keras.ops.relu(x)),
        "variable": lambda x: tf.Variable(x).numpy(),
        "tf_function": lambda x: tf.function(lambda v: v * 2)(x).numpy(),
    }
    fn = shortcuts[kind]
    fn.__name__ = f"my_{kind}"
    with pytest.raises(AssertionError, match=rf"my_{kind} used TensorFlow/Keras .*this exercise asks for NumPy only"):
        checks.assert_numpy_only(fn, np.ones((1, 4, 4, 1), np.float32))
    # and everything works again afterwards
    assert np.asarray(tf.nn.relu(np.array([-1.0, 2.0]))).tolist() == [0.0, 2.0]
    assert keras.utils.to_categorical([1], 3).tolist() == [[0.0, 1.0, 0.0]]
    assert keras.layers.Conv2D(1, 3).compute_output_shape((1, 5, 5, 1)) == (1, 3, 3, 1)


def test_numpy_only_fails_even_if_the_function_catches_the_error():
    _, tf = _frameworks()

    def sly(x):
        try:
            return tf.nn.relu(x).numpy()
        except Exception:
            return np.maximum(x, 0)

    with pytest.raises(AssertionError, match="sly used TensorFlow/Keras"):
        checks.assert_numpy_only(sly, np.ones(3, np.float32))


def test_numpy_only_fails_if_the_function_removes_the_block():
    _frameworks()
    from tensorflow.python import _pywrap_tfe, pywrap_tfe

    def undo(x):
        pywrap_tfe.TFE_Py_FastPathExecute = _pywrap_tfe.TFE_Py_FastPathExecute
        return np.maximum(x, 0)

    with pytest.raises(AssertionError, match="undo undid the check"):
        checks.assert_numpy_only(undo, np.ones(3))
    assert pywrap_tfe.TFE_Py_FastPathExecute is _pywrap_tfe.TFE_Py_FastPathExecute


def test_numpy_only_blocks_importing_a_framework_not_loaded_yet():
    def imports(x):
        import sklearn  # noqa: F401  (not loaded, maybe not installed: blocked either way)

        return x

    with pytest.raises(AssertionError, match=r"imports used TensorFlow/Keras \(import sklearn\)"):
        checks.assert_numpy_only(imports, 1)
    assert not any(type(f).__name__ == "_ImportBlock" for f in __import__("sys").meta_path)


def test_numpy_only_lets_the_function_s_own_errors_through():
    def blank(x):
        raise NotImplementedError()

    with pytest.raises(NotImplementedError):
        checks.assert_numpy_only(blank, 1)


def test_numpy_only_ignores_tensorflow_objects_freed_during_the_call():
    _, tf = _frameworks()
    holder = [tf.Variable(np.ones(3))]

    def frees_a_variable(x):
        holder.clear()  # the variable's finalizer runs TensorFlow's DestroyResourceOp
        return x * 2

    assert checks.assert_numpy_only(frees_a_variable, 2) == 4


# -- Keras models -------------------------------------------------------------------------------
def test_all_layers_looks_inside_wrappers_and_nested_models():
    keras, _ = _frameworks()
    inner = keras.Sequential([keras.Input((5, 3)), keras.layers.Bidirectional(keras.layers.LSTM(4))], name="inner")
    model = keras.Sequential([keras.Input((5, 3)), inner, keras.layers.Dense(1)])
    kinds = [type(layer).__name__ for layer in checks.all_layers(model)]
    assert kinds.count("LSTM") == 2 and "Bidirectional" in kinds and "Dense" in kinds and "Sequential" in kinds
    cells = [
        type(layer).__name__
        for layer in checks.all_layers(
            keras.Sequential([keras.Input((5, 3)), keras.layers.RNN(keras.layers.LSTMCell(2))])
        )
    ]
    assert "LSTMCell" in cells


@pytest.mark.parametrize(
    "loss, expected",
    [
        ("binary_crossentropy", "binary_crossentropy"),
        ("mae", "mean_absolute_error"),
        ("BinaryCrossentropy", "binary_crossentropy"),
        ("object", "binary_crossentropy"),
        ("function", "binary_crossentropy"),
    ],
)
def test_loss_name_however_the_loss_was_given(loss, expected):
    keras, _ = _frameworks()
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(3, activation="sigmoid")])
    assert checks.loss_name(model) is None
    given = {"object": keras.losses.BinaryCrossentropy(), "function": keras.losses.binary_crossentropy}.get(loss, loss)
    model.compile(optimizer="adam", loss=given)
    assert checks.loss_name(model) == expected


def test_copy_weights_by_name_keeps_copies_of_shared_layers_in_step():
    keras, _ = _frameworks()
    inputs = keras.Input((6,))
    encoder = keras.Model(inputs, keras.layers.Dense(2, name="code")(inputs))
    code = keras.Input((2,))
    decoder = keras.Model(code, keras.layers.Dense(6, name="out")(code))
    autoencoder = keras.Model(inputs, decoder(encoder(inputs)))
    assert checks.copy_weights_by_name(autoencoder, encoder, decoder) == []  # shared: nothing to do
    copies = [keras.models.clone_model(m) for m in (autoencoder, encoder, decoder)]  # as a grader rebuilds them
    copies[0].set_weights([w + 1 for w in autoencoder.get_weights()])  # "training" the autoencoder copy
    assert checks.copy_weights_by_name(copies[0], copies[1], copies[2]) == []
    x = np.random.default_rng(0).normal(size=(3, 6)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(copies[0](x)), np.asarray(copies[2](copies[1](x))), rtol=1e-5)
    separate = keras.Sequential([keras.Input((6,)), keras.layers.Dense(2, name="elsewhere")])
    assert checks.copy_weights_by_name(autoencoder, separate) == ["elsewhere"]
