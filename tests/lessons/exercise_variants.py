"""Answers that tests/test_exercise_integrity.py has graded, lesson by lesson.

SHORTCUTS: answers that reach the right values the wrong way (Keras for a NumPy exercise,
a test's helper, the answer read from the input, a model that does not learn, a model fitted
to the test images ...). Each is pasted into its solution cell of the *blank* lesson; the
test cells it names must score below full marks. ``needs_referee`` marks the shortcuts that
only the grader's referee can stop (they read data the learner's kernel sees today).

VARIANTS: correct answers written differently from the reference solution (other NumPy
idioms, the functional API, a Bidirectional LSTM, a loss given as an object, updates in
place ...). All of them are pasted into the solution notebook, which must then score full
marks in every test cell.

SUPPORT: reference solutions kept in the shortcuts submission, so that a shortcut fails
for its own sake and not because a function it calls is blank.

Models for lesson 06's project are files, not code: ``MODELS`` names the ``mnist_model.keras``
each lesson-06 submission carries; tests/lessons/project_models.py builds and keeps them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tests.lessons import project_models


@dataclass(frozen=True)
class Shortcut:
    code: str  # the whole solution cell
    loses: tuple[str, ...]  # test cells (grade_ids) that must score below full marks
    kind: str  # what the shortcut does, for the report
    needs_referee: bool = False


@dataclass(frozen=True)
class Submission:
    notebook: str
    cells: dict[str, object]  # solution grade_id -> Shortcut (shortcuts) or code (variants)
    model: str | None = None  # lesson 06: which mnist_model.keras goes with it (see MODELS)
    support: tuple[str, ...] = field(default=())  # solution cells kept from the reference


# -- 00 ------------------------------------------------------------------------------------------
SHORTCUTS_00 = Submission(
    "00_getting_started.ipynb",
    {
        "preprocess_images": Shortcut(
            """
import tensorflow as tf

def preprocess_images(images):
    return tf.expand_dims(tf.cast(images, tf.float32) / 255.0, -1).numpy()
""",
            ("test_preprocess_images",),
            "TensorFlow ops in a NumPy exercise",
        ),
        "one_hot": Shortcut(
            """
import keras

def one_hot(labels, num_classes=10):
    labels = np.asarray(labels)
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"label out of range 0..{num_classes - 1}: {labels.min()}, {labels.max()}")
    return keras.utils.to_categorical(labels, num_classes).astype(np.float32)
""",
            ("test_one_hot",),
            "keras.utils.to_categorical (plain NumPy inside Keras) for a by-hand exercise",
        ),
    },
)

VARIANTS_00 = Submission(
    "00_getting_started.ipynb",
    {
        "preprocess_images": """
def preprocess_images(images):
    scaled = np.divide(images, 255, dtype=np.float32)  # a new array: the input is untouched
    return np.expand_dims(scaled, axis=-1)
""",
        "one_hot": """
def one_hot(labels, num_classes=10):
    labels = [int(v) for v in np.ravel(labels)]
    for label in labels:
        if not 0 <= label < num_classes:
            raise ValueError(f"bad label {label}: expected 0 <= label < {num_classes}")
    out = np.zeros((len(labels), num_classes), dtype=np.float32)
    out[np.arange(len(labels)), labels] = 1.0
    return out
""",
    },
)

# -- 01 ------------------------------------------------------------------------------------------
_ACTIVATIONS_REFERENCE = """
def relu(z):
    return np.maximum(0.0, z)


def relu_grad(z):
    return (np.asarray(z) > 0).astype(np.float64)


def sigmoid(z):
    z = np.asarray(z, dtype=np.float64)
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def sigmoid_grad(z):
    s = sigmoid(z)
    return s * (1.0 - s)
"""

SHORTCUTS_01 = Submission(
    "01_shallow_vs_deep.ipynb",
    {
        "activations": Shortcut(
            _ACTIVATIONS_REFERENCE
            + """

def sigmoid(z):  # the textbook formula: exp(-z) overflows for z < -709
    return 1.0 / (1.0 + np.exp(-np.asarray(z, dtype=np.float64)))


def tanh(z):
    import tensorflow as tf
    return tf.math.tanh(tf.constant(z, tf.float64)).numpy()


def tanh_grad(z):
    return 1.0 - tanh(z) ** 2
""",
            ("test_sigmoid", "test_tanh"),
            "a sigmoid that overflows for large |z|; TensorFlow's tanh in a NumPy exercise",
        ),
        "dense_forward": Shortcut(
            """
def dense_forward(x, w, b, activation="relu"):
    layer = keras.layers.Dense(w.shape[1], activation=activation)
    layer.build((None, w.shape[0]))
    layer.set_weights([w, b])
    return np.asarray(layer(np.asarray(x, np.float32)))
""",
            ("test_dense_forward",),
            "Keras's Dense layer with the given weights",
        ),
        "dense_param_count": Shortcut(
            """
def dense_param_count(layer_sizes):
    model = keras.Sequential([keras.Input((layer_sizes[0],))] + [keras.layers.Dense(m) for m in layer_sizes[1:]])
    return model.count_params()
""",
            ("test_dense_param_count",),
            "a by-hand count answered by building the model",
        ),
        "he_init": Shortcut(
            """
def he_init(n_in, n_out, rng):
    seed = int(rng.integers(2**31))
    return np.asarray(keras.random.normal((n_in, n_out), stddev=np.sqrt(2.0 / n_in), seed=seed))
""",
            ("test_he_init",),
            "Keras's random numbers, seeded from the rng",
        ),
        "inverted_dropout": Shortcut(
            """
def inverted_dropout(a, rate, rng, training=True):
    if not 0 <= rate < 1:
        raise ValueError("rate must be in [0, 1)")
    if not training or rate == 0:
        return a
    seed = int(rng.integers(2**31))
    return np.asarray(keras.random.dropout(np.asarray(a, np.float32), rate, seed=seed), dtype=np.float64)
""",
            ("test_inverted_dropout",),
            "keras.random.dropout seeded from the rng",
        ),
    },
)

VARIANTS_01 = Submission(
    "01_shallow_vs_deep.ipynb",
    {
        "activations": """
def relu(z):
    z = np.asarray(z, dtype=float)
    return z * (z > 0)


def relu_grad(z):
    return np.where(np.asarray(z) > 0, 1.0, 0.0)


def sigmoid(z):
    return np.exp(-np.logaddexp(0.0, -np.asarray(z, dtype=float)))  # 1 / (1 + e^-z), in log space


def sigmoid_grad(z):
    s = sigmoid(z)
    return s - s * s


def tanh(z):
    z = np.asarray(z, dtype=float)
    e = np.exp(-2.0 * np.abs(z))  # at most 1: never overflows
    return np.sign(z) * (1.0 - e) / (1.0 + e)


def tanh_grad(z):
    t = tanh(z)
    return 1.0 - t * t
""",
        "dense_forward": """
def dense_forward(x, w, b, activation="relu"):
    z = np.einsum("ni,io->no", np.asarray(x, dtype=float), w) + b
    if activation == "linear":
        return z
    return {"relu": relu, "sigmoid": sigmoid, "tanh": tanh}[activation](z)
""",
        "dense_param_count": """
def dense_param_count(layer_sizes):
    total = 0
    for i in range(1, len(layer_sizes)):
        total += (layer_sizes[i - 1] + 1) * layer_sizes[i]
    return total
""",
        "layer_gradient_norms": """
def layer_gradient_norms(model, x, y):
    dense = [layer for layer in model.layers if type(layer).__name__ == "Dense"]
    loss_fn = keras.losses.SparseCategoricalCrossentropy()
    with tf.GradientTape() as tape:
        loss = loss_fn(y, model(x))
    return np.array([np.sqrt(np.sum(np.square(g.numpy()))) for g in tape.gradient(loss, [d.kernel for d in dense])])
""",
        "he_init": """
def he_init(n_in, n_out, rng):
    return rng.normal(loc=0.0, scale=np.sqrt(2.0 / n_in), size=(n_in, n_out))
""",
        "inverted_dropout": """
def inverted_dropout(a, rate, rng, training=True):
    if rate < 0 or rate >= 1:
        raise ValueError(f"rate {rate} is outside [0, 1)")
    if not training:
        return a
    mask = rng.binomial(1, 1.0 - rate, size=np.shape(a))
    return a * mask / (1.0 - rate)
""",
        "build_models": """
def build_shallow(budget, n_in=784, n_classes=10):
    h = (budget - n_classes) // (n_in + n_classes + 1)  # h * (n_in + 1) + n_classes * (h + 1) <= budget
    model = keras.Sequential(name="shallow")
    model.add(keras.Input(shape=(n_in,)))
    model.add(keras.layers.Dense(h, activation=keras.activations.relu))
    model.add(keras.layers.Dense(n_classes, activation=keras.activations.softmax))
    return model


def build_deep(budget, n_in=784, n_classes=10, depth=3):
    # (depth - 1) h^2 + (n_in + depth + n_classes) h + n_classes <= budget: the largest h
    a, b, c = depth - 1, n_in + depth + n_classes, n_classes - budget
    h = int((-b + np.sqrt(b * b - 4 * a * c)) / (2 * a)) if a else int(-c // b)
    while a * h * h + b * h + c > 0:
        h -= 1
    inputs = keras.Input((n_in,))
    x = inputs
    for _ in range(depth):
        x = keras.layers.Dense(h, activation="relu")(x)
    return keras.Model(inputs, keras.layers.Dense(n_classes, activation="softmax")(x))
""",
    },
)

# -- 02 ------------------------------------------------------------------------------------------
SHORTCUTS_02 = Submission(
    "02_conv_pool_arithmetic.ipynb",
    {
        "conv_output_size": Shortcut(
            """
def conv_output_size(w, f, s=1, p=0):
    if w < 1 or f < 1 or s < 1 or p < 0 or w + 2 * p < f or (w - f + 2 * p) % s:
        raise ValueError("invalid configuration")
    shape = keras.layers.ZeroPadding2D(p).compute_output_shape((1, w, w, 1))
    return int(keras.layers.Conv2D(1, f, strides=s).compute_output_shape(shape)[1])
""",
            ("test_conv_output_size",),
            "Keras's shape arithmetic (compute_output_shape)",
        ),
        "conv_param_count": Shortcut(
            """
def conv_param_count(f, d_in, k):
    layer = keras.layers.Conv2D(k, f)
    layer.build((None, 32, 32, d_in))
    return layer.count_params()
""",
            ("test_conv_param_count",),
            "a by-hand count answered by building the layer",
        ),
        "conv2d": Shortcut(
            """
def conv2d(x, kernel, bias, stride=1, padding=0):
    layer = keras.layers.Conv2D(kernel.shape[3], kernel.shape[0], strides=stride)
    layer.build((None, x.shape[1] + 2 * padding, x.shape[2] + 2 * padding, x.shape[3]))
    layer.set_weights([kernel, bias])
    return np.asarray(layer(keras.layers.ZeroPadding2D(padding)(x)))
""",
            ("test_conv2d",),
            "Keras's Conv2D with set_weights in a NumPy exercise",
        ),
        "pool_output_size": Shortcut(
            """
def pool_output_size(w, f=2, s=2):
    if w < 1 or f < 1 or s < 1 or f > w or (w - f) % s:
        raise ValueError("invalid configuration")
    return int(keras.layers.MaxPooling2D(f, strides=s).compute_output_shape((1, w, w, 1))[1])
""",
            ("test_pool_output_size",),
            "Keras's shape arithmetic",
        ),
        "pool2d": Shortcut(
            """
def max_pool2d(x, f=2, s=2):
    return np.asarray(keras.layers.MaxPooling2D(f, strides=s)(x))


def avg_pool2d(x, f=2, s=2):
    return np.asarray(keras.layers.AveragePooling2D(f, strides=s)(x))
""",
            ("test_max_pool2d", "test_avg_pool2d"),
            "Keras's pooling layers in a NumPy exercise",
        ),
        "receptive_field": Shortcut(
            """
import tensorflow as tf

def receptive_field(kernel_sizes, strides=None):
    strides = [1] * len(kernel_sizes) if strides is None else list(strides)
    if not kernel_sizes:
        return 1
    size = 4 * (sum(kernel_sizes) + 1) * int(np.prod(strides)) + 8
    model = keras.Sequential([keras.Input((size, 1, 1))] + [
        keras.layers.Conv2D(1, (f, 1), strides=(s, 1), kernel_initializer="ones", use_bias=False)
        for f, s in zip(kernel_sizes, strides)])
    x = tf.Variable(tf.ones((1, size, 1, 1)))
    with tf.GradientTape() as tape:
        y = model(x)
        out = y[0, y.shape[1] // 2, 0, 0]
    touched = np.nonzero(tape.gradient(out, x).numpy()[0, :, 0, 0])[0]
    return int(touched.max() - touched.min() + 1)
""",
            ("test_receptive_field",),
            "measured with TensorFlow's gradients instead of the formula",
        ),
        "layer_table": Shortcut(
            """
def layer_table(input_shape, layers):
    return keras_table(input_shape, layers)  # the test cell's own helper, defined before the first call
""",
            ("test_layer_table",),
            "the test cell's helper reused as the answer",
        ),
    },
)

VARIANTS_02 = Submission(
    "02_conv_pool_arithmetic.ipynb",
    {
        "conv_output_size": """
def conv_output_size(w, f, s=1, p=0):
    if min(w, f, s) < 1 or p < 0:
        raise ValueError(f"sizes out of range: W1={w}, F={f}, S={s}, P={p}")
    steps, rest = divmod(w + 2 * p - f, s)
    if steps < 0:
        raise ValueError("the filter is larger than the padded input")
    if rest:
        raise ValueError(f"{w + 2 * p - f} is not a multiple of the stride {s}")
    return steps + 1
""",
        "conv_param_count": """
def conv_param_count(f, d_in, k):
    return k * (f * f * d_in + 1)
""",
        "conv2d": """
from numpy.lib.stride_tricks import sliding_window_view

def conv2d(x, kernel, bias, stride=1, padding=0):
    f = kernel.shape[0]
    xp = np.pad(x, [(0, 0), (padding, padding), (padding, padding), (0, 0)], mode="constant")
    windows = sliding_window_view(xp, (f, f), axis=(1, 2))[:, ::stride, ::stride]  # (N, H2, W2, D1, F, F)
    return np.einsum("nhwdij,ijdk->nhwk", windows, kernel) + bias
""",
        "pool_output_size": """
def pool_output_size(w, f=2, s=2):
    if w < 1 or f < 1 or s < 1:
        raise ValueError("sizes must be at least 1")
    steps, rest = divmod(w - f, s)
    if steps < 0 or rest:
        raise ValueError(f"a {f}-window with stride {s} does not tile {w}")
    return steps + 1
""",
        "pool2d": """
def max_pool2d(x, f=2, s=2):
    n, h, w, c = x.shape
    h2, w2 = (h - f) // s + 1, (w - f) // s + 1
    out = np.full((n, h2, w2, c), -np.inf, dtype=np.float32)
    for di in range(f):
        for dj in range(f):
            out = np.maximum(out, x[:, di:di + s * (h2 - 1) + 1:s, dj:dj + s * (w2 - 1) + 1:s, :])
    return out


def avg_pool2d(x, f=2, s=2):
    n, h, w, c = x.shape
    h2, w2 = (h - f) // s + 1, (w - f) // s + 1
    total = np.zeros((n, h2, w2, c))
    for di in range(f):
        for dj in range(f):
            total += x[:, di:di + s * (h2 - 1) + 1:s, dj:dj + s * (w2 - 1) + 1:s, :]
    return total / (f * f)
""",
        "receptive_field": """
def receptive_field(kernel_sizes, strides=None):
    strides = strides or [1] * len(kernel_sizes)
    r = 1
    for f, s in reversed(list(zip(kernel_sizes, strides))):  # from the top down: r_below = s * r + (f - s)
        r = s * r + (f - s)
    return r
""",
        "layer_table": """
def layer_table(input_shape, layers):
    def conv(shape, k, f, s):
        h, w, c = shape
        return ((h - f) // s + 1, (w - f) // s + 1, k), k * (f * f * c + 1)

    def pool(shape, f, s):
        h, w, c = shape
        return ((h - f) // s + 1, (w - f) // s + 1, c), 0

    rules = {"conv": conv, "pool": pool,
             "flatten": lambda shape: ((int(np.prod(shape)),), 0),
             "dense": lambda shape, units: ((units,), (shape[0] + 1) * units)}
    shape, rows = tuple(input_shape), []
    for kind, *args in layers:
        shape, params = rules[kind](shape, *args)
        rows.append((shape, params))
    return rows
""",
    },
)

# -- 03 ------------------------------------------------------------------------------------------
SHORTCUTS_03 = Submission(
    "03_cnns.ipynb",
    {
        "cnn_param_count": Shortcut(
            """
def cnn_param_count(input_shape, n_classes, n_conv, n_blocks, n_dense, filters=32, units=64, pool=True):
    return build_cnn(input_shape, n_classes, n_conv, n_blocks, n_dense, filters, units, pool).count_params()
""",
            ("test_cnn_param_count",),
            "a by-hand count answered by building the model",
        ),
        "train_small_cnn": Shortcut(
            """
def train_small_cnn(x, y, seed=0):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(64, activation="relu"), keras.layers.Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(x[:2000], y[:2000], epochs=1, verbose=0)
    return model
""",
            ("test_train_small_cnn",),
            "a dense network (no CNN), barely trained",
        ),
        "invariance": Shortcut(
            """
import tensorflow as tf

def shift_images(images, dx):
    rolled = tf.roll(images, shift=dx, axis=2).numpy()
    if dx > 0:
        rolled[:, :, :dx] = 0
    elif dx < 0:
        rolled[:, :, dx:] = 0
    return rolled


def relative_change(f, images, dx):
    a = np.asarray(f(images)).reshape(len(images), -1)
    b = np.asarray(f(shift_images(images, dx))).reshape(len(images), -1)
    return float(np.mean(np.linalg.norm(b - a, axis=1) / np.linalg.norm(a, axis=1)))
""",
            ("test_shift_images",),
            "TensorFlow's roll in a NumPy exercise",
        ),
    },
    support=("build_cnn",),
)

SHORTCUTS_03_TEST_DATA = Submission(
    "03_cnns.ipynb",
    {
        "train_small_cnn": Shortcut(
            """
def train_small_cnn(x, y, seed=0):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Conv2D(8, 3, activation="relu"),
                              keras.layers.MaxPooling2D(2), keras.layers.Flatten(), keras.layers.Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(np.concatenate([x_held, x_test]), np.concatenate([y_held, y_test]), epochs=3, verbose=0)  # the graded images
    return model
""",
            ("test_train_small_cnn",),
            "trained on the held-out and test images it is graded on",
            needs_referee=True,
        ),
    },
)

VARIANTS_03 = Submission(
    "03_cnns.ipynb",
    {
        "build_cnn": """
def build_cnn(input_shape, n_classes, n_conv, n_blocks, n_dense, filters=32, units=64, pool=True):
    model = keras.Sequential()
    model.add(keras.layers.InputLayer(shape=input_shape))
    for block in range(n_blocks):
        for _ in range(n_conv):
            model.add(keras.layers.Conv2D(filters * 2**block, (3, 3), padding="same", activation="relu"))
        if pool:
            model.add(keras.layers.MaxPooling2D(pool_size=(2, 2)))
    model.add(keras.layers.Flatten())
    for _ in range(n_dense):
        model.add(keras.layers.Dense(units, activation="relu"))
    model.add(keras.layers.Dense(n_classes, activation="softmax"))
    return model
""",
        "cnn_param_count": """
def cnn_param_count(input_shape, n_classes, n_conv, n_blocks, n_dense, filters=32, units=64, pool=True):
    h, w, channels = input_shape
    sizes = []  # (inputs, outputs) of every weighted layer
    for block in range(n_blocks):
        for _ in range(n_conv):
            sizes.append((9 * channels, filters * 2**block))
            channels = filters * 2**block
        if pool:
            h, w = h // 2, w // 2
    width = h * w * channels
    for out in [units] * n_dense + [n_classes]:
        sizes.append((width, out))
        width = out
    return sum((n_in + 1) * n_out for n_in, n_out in sizes)
""",
        "train_small_cnn": """
def train_small_cnn(x, y, seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((28, 28, 1))
    h = keras.layers.Conv2D(24, 5, activation="relu")(inputs)
    h = keras.layers.MaxPooling2D(2)(h)
    h = keras.layers.Conv2D(32, 3, activation="relu")(h)
    h = keras.layers.MaxPooling2D(2)(h)
    h = keras.layers.Flatten()(h)
    outputs = keras.layers.Dense(10, activation="softmax")(keras.layers.Dropout(0.2)(h))
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.Adam(2e-3), loss=keras.losses.SparseCategoricalCrossentropy(),
                  metrics=["accuracy", "sparse_top_k_categorical_accuracy"])
    model.fit(x, y, epochs=4, batch_size=128, validation_split=0.1, verbose=2)
    return model
""",
        "feature_maps": """
def feature_maps(model, layer_name, images):
    out = np.asarray(images, np.float32)
    for layer in model.layers:  # a Sequential model: run the layers one by one up to the named one
        out = layer(out, training=False)
        if layer.name == layer_name:
            return np.asarray(out)
    raise ValueError(f"no layer {layer_name!r}")
""",
        "invariance": """
def shift_images(images, dx):
    out = np.roll(images, dx, axis=2)
    if dx > 0:
        out[:, :, :dx, :] = 0
    elif dx < 0:
        out[:, :, dx:, :] = 0
    return out


def relative_change(f, images, dx):
    changes = []
    for original, shifted in zip(np.asarray(f(images)), np.asarray(f(shift_images(images, dx)))):
        changes.append(np.sqrt(np.sum((shifted - original) ** 2)) / np.sqrt(np.sum(original ** 2)))
    return float(np.mean(changes))
""",
    },
)

# -- 04 ------------------------------------------------------------------------------------------
SHORTCUTS_04 = Submission(
    "04_rnn_lstm.ipynb",
    {
        "rnn_forward": Shortcut(
            """
def rnn_forward(x, W, U, b):
    layer = keras.layers.SimpleRNN(U.shape[0], return_sequences=True)
    layer.build((None, None, W.shape[0]))
    layer.set_weights([W, U, b])
    return np.asarray(layer(np.asarray(x, np.float32)))
""",
            ("test_rnn_forward",),
            "Keras's SimpleRNN with the given weights",
        ),
        "lstm_step": Shortcut(
            """
def lstm_step(x_t, h_prev, c_prev, W, U, b):
    cell = keras.layers.LSTMCell(h_prev.shape[1])
    cell.build((None, W.shape[0]))
    cell.set_weights([W, U, b])
    h, (h_again, c) = cell(np.asarray(x_t, np.float32), [np.asarray(h_prev, np.float32), np.asarray(c_prev, np.float32)])
    return np.asarray(h), np.asarray(c)
""",
            ("test_lstm_step",),
            "Keras's LSTMCell with the given weights",
        ),
        "make_windows": Shortcut(
            """
def make_windows(series, window, horizon=1):
    series = np.asarray(series)
    data = keras.utils.timeseries_dataset_from_array(series[:len(series) - horizon], series[window + horizon - 1:],
                                                     sequence_length=window, batch_size=10**6)
    X, y = next(iter(data))
    return np.asarray(X), np.asarray(y)
""",
            ("test_make_windows",),
            "Keras's timeseries_dataset_from_array in a NumPy exercise",
        ),
        "build_forecaster": Shortcut(
            """
lstm_mae, naive_mae = 0.0, 1e9  # graded numbers of old, set in an editable cell

def build_forecaster(window):
    model = keras.Sequential([keras.Input((window, 1)), keras.layers.LSTM(2), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.0), loss="mae")  # never learns
    return model
""",
            ("test_build_forecaster",),
            "a model that cannot learn, with the graded numbers faked in an editable cell",
        ),
        "build_row_lstm": Shortcut(
            """
def build_row_lstm():
    model = keras.Sequential([keras.Input((28, 28)), keras.layers.Flatten(), keras.layers.Dense(64, activation="relu"),
                              keras.layers.Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model
""",
            ("test_build_row_lstm",),
            "a dense network instead of a recurrent one",
        ),
    },
)

VARIANTS_04 = Submission(
    "04_rnn_lstm.ipynb",
    {
        "rnn_forward": """
def rnn_forward(x, W, U, b):
    inputs = np.einsum("ntd,dh->nth", x, W) + b  # every step's input term at once
    a = np.zeros((x.shape[0], U.shape[1]), dtype=inputs.dtype)
    out = np.empty_like(inputs)
    for t in range(x.shape[1]):
        a = np.tanh(inputs[:, t] + a @ U)
        out[:, t] = a
    return out
""",
        "lstm_step": """
def lstm_step(x_t, h_prev, c_prev, W, U, b):
    gates = x_t @ W + h_prev @ U + b
    i, f, g, o = np.split(gates, 4, axis=1)  # Keras's order
    logistic = lambda z: np.exp(-np.logaddexp(0, -z))  # noqa: E731
    c = logistic(f) * c_prev + logistic(i) * np.tanh(g)
    h = logistic(o) * np.tanh(c)
    return h, c
""",
        "make_windows": """
def make_windows(series, window, horizon=1):
    series = np.asarray(series)
    count = len(series) - window - horizon + 1
    X = np.lib.stride_tricks.sliding_window_view(series, window)[:count]
    y = series[window + horizon - 1:]
    return X.copy(), y[:count].copy()
""",
        "build_forecaster": """
def build_forecaster(window):
    inputs = keras.Input((window, 1))
    h = keras.layers.Bidirectional(keras.layers.LSTM(16))(inputs)
    model = keras.Model(inputs, keras.layers.Dense(1)(h))
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.002), loss=keras.losses.MeanAbsoluteError(),
                  metrics=["mse"])
    return model
""",
        "build_row_lstm": """
def build_row_lstm():
    model = keras.Sequential([keras.Input((28, 28)), keras.layers.GRU(64), keras.layers.Dense(10, activation="softmax")])
    model.compile(optimizer=keras.optimizers.Adam(0.003), loss=keras.losses.SparseCategoricalCrossentropy(),
                  metrics=[keras.metrics.SparseCategoricalAccuracy()])
    return model
""",
    },
)

# -- 05 ------------------------------------------------------------------------------------------
SHORTCUTS_05 = Submission(
    "05_autoencoders.ipynb",
    {
        "build_autoencoder": Shortcut(
            """
def build_autoencoder(code_size=32):
    encoder = keras.Sequential([keras.Input((784,)), keras.layers.Dense(code_size, activation="relu")])
    decoder = keras.Sequential([keras.Input((code_size,)), keras.layers.Dense(784, activation="sigmoid")])
    autoencoder = keras.Sequential([keras.Input((784,)), keras.layers.Dense(code_size, activation="relu"),
                                    keras.layers.Dense(784, activation="sigmoid")])  # layers of its own
    autoencoder.compile(optimizer="adam", loss="binary_crossentropy")
    return autoencoder, encoder, decoder
""",
            ("test_build_autoencoder",),
            "an encoder and decoder that are not the autoencoder's",
        ),
        "add_noise": Shortcut(
            """
import tensorflow as tf

def add_noise(images, level, seed=0):
    noise = tf.random.stateless_normal(np.shape(images), seed=[seed, 0]).numpy()
    return np.clip(np.asarray(images, np.float32) + level * noise, 0, 1).astype(np.float32)
""",
            ("test_add_noise",),
            "TensorFlow's random numbers in a NumPy exercise",
        ),
        "train_denoiser": Shortcut(
            """
def train_denoiser(clean, level=0.5, epochs=3, seed=0):
    g = np.exp(-np.arange(-3, 4) ** 2 / 2.0)
    kernel = np.outer(g, g) / np.outer(g, g).sum()
    blur = keras.layers.Conv2D(1, 7, padding="same", trainable=False)  # a fixed blur, then 3x - 1, clipped
    model = keras.Sequential([keras.Input((784,)), keras.layers.Reshape((28, 28, 1)), blur,
                              keras.layers.ReLU(max_value=1.0), keras.layers.Reshape((784,))])
    blur.set_weights([3 * kernel[:, :, None, None].astype(np.float32), np.array([-1.0], np.float32)])
    return model
""",
            ("test_train_denoiser",),
            "a fixed blur with a contrast stretch (no learning)",
        ),
        "build_2d_autoencoder": Shortcut(
            """
def build_2d_autoencoder():
    mean = x_train[:20000].mean(axis=0)
    _, _, directions = np.linalg.svd(x_train[:20000] - mean, full_matrices=False)
    encode = keras.layers.Dense(2, trainable=False, name="pca_encode")
    decode = keras.layers.Dense(784, name="pca_decode")
    inputs, code = keras.Input((784,)), keras.Input((2,))
    encoder = keras.Model(inputs, encode(inputs))
    decoder = keras.Model(code, keras.layers.ReLU(max_value=1.0)(decode(code)))
    autoencoder = keras.Model(inputs, decoder(encoder(inputs)))
    encode.set_weights([directions[:2].T, -mean @ directions[:2].T])
    decode.set_weights([directions[:2], mean])
    autoencoder.compile(optimizer="adam", loss="binary_crossentropy")
    return autoencoder, encoder, decoder
""",
            ("test_build_2d_autoencoder",),
            "PCA as a model: a linear map with no training",
        ),
        "rbm_hidden_probs": Shortcut(
            """
import tensorflow as tf

def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def rbm_hidden_probs(v, W, b_h):
    return tf.sigmoid(v @ W + b_h).numpy()
""",
            ("test_rbm_hidden_probs",),
            "TensorFlow's sigmoid in a NumPy exercise",
        ),
        "rbm_fill_in": Shortcut(
            """
def rbm_fill_in(v, known, W, b_v, b_h, rng, fill, steps=30, average=10):
    return v  # the pixels as handed in
""",
            ("test_rbm_fill_in",),
            "the answer read from the input",
        ),
    },
    support=("rbm_visible_probs", "cd1_update"),
)

VARIANTS_05 = Submission(
    "05_autoencoders.ipynb",
    {
        "build_autoencoder": """
def build_autoencoder(code_size=32):
    encoder = keras.Sequential([keras.Input((784,)), keras.layers.Dense(code_size, activation="relu")], name="enc")
    decoder = keras.Sequential([keras.Input((code_size,)), keras.layers.Dense(784, activation="sigmoid")], name="dec")
    autoencoder = keras.Sequential([keras.Input((784,)), encoder, decoder], name="ae")
    autoencoder.compile(optimizer=keras.optimizers.Adam(), loss=keras.losses.BinaryCrossentropy(), metrics=["mse"])
    return autoencoder, encoder, decoder
""",
        "add_noise": """
def add_noise(images, level, seed=0):
    noisy = np.asarray(images, dtype=np.float32) + np.random.default_rng(seed).normal(0.0, level, np.shape(images))
    return np.minimum(np.maximum(noisy, 0.0), 1.0).astype(np.float32)
""",
        "train_denoiser": """
def train_denoiser(clean, level=0.5, epochs=3, seed=0):
    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    inputs = keras.Input((784,))
    outputs = keras.layers.Dense(784, activation="sigmoid")(keras.layers.Dense(640, activation="relu")(inputs))
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="adam", loss=keras.losses.BinaryCrossentropy(), metrics=["mae"])
    for _ in range(epochs):  # new noise each time
        noisy = np.clip(clean + rng.normal(0.0, level, clean.shape), 0.0, 1.0).astype(np.float32)
        model.fit(noisy, clean, batch_size=128, verbose=2)
    return model
""",
        "build_2d_autoencoder": """
def build_2d_autoencoder():
    L = keras.layers
    encoder = keras.Sequential([keras.Input((784,)), L.Dense(256, activation="relu"), L.Dense(64, activation="relu"),
                                L.Dense(2, name="code")], name="encoder_2d")
    decoder = keras.Sequential([keras.Input((2,)), L.Dense(64, activation="relu"), L.Dense(256, activation="relu"),
                                L.Dense(784, activation="sigmoid")], name="decoder_2d")
    autoencoder = keras.Sequential([keras.Input((784,)), encoder, decoder], name="autoencoder_2d")
    autoencoder.compile(optimizer="adam", loss=keras.losses.BinaryCrossentropy(), metrics=["mse"])
    return autoencoder, encoder, decoder
""",
        "reconstruction_errors": """
def reconstruction_errors(autoencoder, images):
    rebuilt = np.asarray(autoencoder(np.asarray(images, np.float32), training=False))
    return np.square(rebuilt - images).mean(axis=-1)
""",
        "rbm_hidden_probs": """
def sigmoid(z):
    return np.exp(-np.logaddexp(0.0, -z))


def rbm_hidden_probs(v, W, b_h):
    return sigmoid(np.dot(v, W) + b_h[None, :])
""",
        "rbm_visible_probs": """
def rbm_visible_probs(h, W, b_v):
    return sigmoid(np.einsum("nh,vh->nv", h, W) + b_v)
""",
        "cd1_update": """
def cd1_update(v0, W, b_v, b_h, lr, rng):
    n = v0.shape[0]
    positive = rbm_hidden_probs(v0, W, b_h)
    v1 = rbm_visible_probs(sample(positive, rng), W, b_v)
    negative = rbm_hidden_probs(v1, W, b_h)
    W += lr / n * (v0.T @ positive - v1.T @ negative)  # in place, and returned too
    b_v += lr * np.mean(v0 - v1, axis=0)
    b_h += lr * np.mean(positive - negative, axis=0)
    return W, b_v, b_h, float(((v0 - v1) ** 2).mean())
""",
        "rbm_fill_in": """
def rbm_fill_in(v, known, W, b_v, b_h, rng, fill, steps=30, average=10):
    unknown = ~np.asarray(known, bool)
    current = np.array(v, dtype=float)
    current[unknown] = np.broadcast_to(fill, current.shape)[unknown]
    kept = []
    for _ in range(steps):
        p_v = rbm_visible_probs(sample(rbm_hidden_probs(current, W, b_h), rng), W, b_v)
        current[unknown] = p_v[unknown]
        kept = (kept + [p_v])[-average:]
    result = np.array(v, dtype=float)
    result[unknown] = np.mean(kept, axis=0)[unknown]
    return result
""",
    },
)

# -- 06 ------------------------------------------------------------------------------------------
SHORTCUTS_06A = Submission("06a_notes_pipeline.ipynb", {})  # prepare_mnist may use Keras: no shortcut kind

VARIANTS_06A = Submission(
    "06a_notes_pipeline.ipynb",
    {
        "prepare_mnist": """
def prepare_mnist(images, labels, num_classes=10):
    X = np.expand_dims(np.asarray(images, dtype=np.float32) / 255.0, axis=-1)
    y = np.eye(num_classes, dtype=np.float32)[np.asarray(labels)]
    return X, y
""",
    },
)

_ERROR_ANALYSIS_SHORTCUT = {
    "confusion_matrix": Shortcut(
        """
import tensorflow as tf

def confusion_matrix(y_true, y_pred, n_classes=10):
    return tf.math.confusion_matrix(y_true, y_pred, num_classes=n_classes).numpy().astype(np.int64)
""",
        ("test_confusion_matrix",),
        "TensorFlow's confusion_matrix in a NumPy exercise",
    ),
    "error_analysis": Shortcut(
        """
import tensorflow as tf

def per_class_accuracy(cm):
    cm = tf.constant(cm, tf.float64)
    return (tf.linalg.diag_part(cm) / tf.reduce_sum(cm, axis=1)).numpy()


def most_confused_pairs(cm, k=5):
    cm = np.asarray(cm)
    pairs = [(int(i), int(j), int(cm[i, j])) for i in range(len(cm)) for j in range(len(cm)) if i != j and cm[i, j] > 0]
    return sorted(pairs, key=lambda p: (-p[2], p[0], p[1]))[:k]
""",
        ("test_per_class_accuracy",),
        "TensorFlow's linear algebra in a NumPy exercise",
    ),
}

SHORTCUTS_06B = Submission(
    "06b_project.ipynb",
    {
        "project_model": Shortcut(
            "",
            ("project_tier_1", "project_tier_2", "project_tier_3"),
            "a model trained on the test images (flagged, no tier)",
        ),
        **_ERROR_ANALYSIS_SHORTCUT,
    },
    model="fitted_to_test",
    support=("project_model",),
)

SHORTCUTS_06B_CUSTOM = Submission(
    "06b_project.ipynb",
    {
        "project_model": Shortcut(
            '''
@keras.saving.register_keras_serializable(package="learner")
class Lookup(keras.layers.Layer):
    """Registered as a learner could: loading it would run this code while grading."""

    def call(self, x):
        return x
''',
            ("project_rules", "project_tier_1", "project_tier_2", "project_tier_3"),
            "a registered custom layer (code that would run while grading)",
        ),
    },
    model="registered_layer",
    support=("confusion_matrix", "error_analysis"),
)

SHORTCUTS_06B_BYPASS = Submission(
    "06b_project.ipynb",
    {
        "project_model": Shortcut(
            "",
            ("project_rules", "project_tier_1", "project_tier_2", "project_tier_3"),
            "a dense path beside the convolutions (not a CNN by the rules)",
        ),
    },
    model="cnn_with_dense_bypass",
    support=("project_model", "confusion_matrix", "error_analysis"),
)

VARIANTS_06B = Submission(
    "06b_project.ipynb",
    {
        "confusion_matrix": """
def confusion_matrix(y_true, y_pred, n_classes=10):
    flat = np.asarray(y_true, np.int64) * n_classes + np.asarray(y_pred, np.int64)
    return np.bincount(flat, minlength=n_classes * n_classes).reshape(n_classes, n_classes).astype(np.int64)
""",
        "error_analysis": """
def per_class_accuracy(cm):
    cm = np.asarray(cm, dtype=np.float64)
    rows = cm.sum(axis=1)
    out = np.full(len(cm), np.nan)
    has = rows > 0
    out[has] = np.diag(cm)[has] / rows[has]
    return out


def most_confused_pairs(cm, k=5):
    cm = np.array(cm)
    np.fill_diagonal(cm, 0)
    order = np.lexsort((np.arange(cm.size) % len(cm), np.arange(cm.size) // len(cm), -cm.ravel()))
    return [(int(i // len(cm)), int(i % len(cm)), int(cm.flat[i])) for i in order[:k] if cm.flat[i] > 0]
""",
    },
    model="any_size_cnn",
)

SHORTCUTS = {
    "00_getting_started": [SHORTCUTS_00],
    "01_shallow_vs_deep": [SHORTCUTS_01],
    "02_conv_pool_arithmetic": [SHORTCUTS_02],
    "03_cnns": [SHORTCUTS_03, SHORTCUTS_03_TEST_DATA],
    "04_rnn_lstm": [SHORTCUTS_04],
    "05_autoencoders": [SHORTCUTS_05],
    "06_mnist_project": [SHORTCUTS_06B, SHORTCUTS_06B_CUSTOM, SHORTCUTS_06B_BYPASS],
}
VARIANTS = {
    "00_getting_started": [VARIANTS_00],
    "01_shallow_vs_deep": [VARIANTS_01],
    "02_conv_pool_arithmetic": [VARIANTS_02],
    "03_cnns": [VARIANTS_03],
    "04_rnn_lstm": [VARIANTS_04],
    "05_autoencoders": [VARIANTS_05],
    "06_mnist_project": [VARIANTS_06A, VARIANTS_06B],
}
# The project's model files, described, built and kept by tests/lessons/project_models.py.
MODELS = project_models.NAMES
