"""The MNIST project (lesson 06): read a saved model and grade it, with clear messages.

Grading never retrains.  It loads the ``mnist_model.keras`` the learner saved beside
the notebook and evaluates it on MNIST's 10,000 test images, so a submission grades
in seconds.  Every problem with the file (missing, not a Keras file, custom layers,
wrong input shape, not a CNN, too many parameters) becomes a ``ProjectError`` (an
``AssertionError``, so a grading cell scores zero) whose message says what to do.

The rules (``check_architecture``):

- the model reads images of shape (28, 28, 1) (an input of ``(None, None, 1)`` is fine);
- it is a CNN: the image reaches the output only through 2-D convolutions
  (``Conv2D``, ``SeparableConv2D``, ``DepthwiseConv2D``) with kernels of at least 3x3.
  A 1x1 convolution, or a dense path beside the convolutions, does not make a CNN.
  Checked by setting those kernels to zero: the output must then no longer depend on
  the image;
- at most ``MAX_PARAMS`` parameters;
- only Keras's built-in layers (no custom classes, no ``Lambda``).

A tier (``check_tier``) goes only to a model within the rules, and not to a model that
fits the test images markedly better than training images (``fit_to_test``): such a
model was evidently trained on the test set, and is flagged for review instead.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import numpy as np

MODEL_FILE = "mnist_model.keras"
INPUT_SHAPE = (28, 28, 1)  # channels-last, values in [0, 1]
MAX_PARAMS = 500_000
TIERS = (0.985, 0.990, 0.992)  # test accuracy for each tier of points
MIN_KERNEL = 3  # a convolution counts for the CNN rule with a kernel of at least 3 x 3
CONVOLUTIONS = ("Conv2D", "SeparableConv2D", "DepthwiseConv2D")
# A model fits the test set "markedly better" than training images it could have been trained
# on when its cross-entropy on the test images is below this fraction of that on training images
# (and its accuracy higher). Measured with the reference architecture: trained on the training
# set 0.019 / 0.013 (ratio 1.4); on a third of it 0.054 / 0.078 (0.69: MNIST's test digits are
# a little easier than its training digits); on the training and test sets 0.0055 / 0.0132
# (0.42); on the test set alone 0.006 / 0.087 (0.07).
FIT_LOSS_RATIO = 0.5
TRAIN_SAMPLE = 10_000  # training images compared with the test set

_cache: dict = {}


class ProjectError(AssertionError):
    """A saved project model that cannot be graded; the message says why and what to do."""


def nbgrader_mode() -> str | None:
    """``"autograde"`` or ``"validate"`` while nbgrader executes the notebook, else None."""
    return os.environ.get("NBGRADER_EXECUTION") or None


def should_train(path: str | os.PathLike = MODEL_FILE) -> bool:
    """Whether the project's training cell should train now.

    Always when you run the notebook yourself; never while nbgrader autogrades (grading
    reads the saved file); while nbgrader validates, only if no saved model exists yet.
    """
    mode = nbgrader_mode()
    if mode == "autograde":
        return False
    if mode == "validate":
        return not Path(path).exists()
    return True


def _identity(path: Path) -> tuple:
    st = path.stat()
    return str(path.resolve()), st.st_size, st.st_mtime_ns


# -- loading ----------------------------------------------------------------------------------
def foreign_objects(config) -> list[str]:
    """Names of the objects in a saved model's config that are not Keras's own.

    Keras writes ``"module": "keras.layers"`` (and the like) for its built-in classes; a
    class registered with ``keras.saving.register_keras_serializable``, a custom object or
    a ``Lambda`` function has another module or a ``registered_name`` of its own. The
    compile settings are skipped: grading loads the model without them.
    """
    found = []

    def walk(node):
        if isinstance(node, dict):
            name = node.get("class_name")
            if isinstance(name, str):
                module, registered = node.get("module"), node.get("registered_name")
                marker = name.startswith("__") and name.endswith("__") and name != "__lambda__"
                builtin = isinstance(module, str) and (module == "keras" or module.startswith("keras."))
                if name == "__lambda__" or not (marker or builtin) or registered not in (None, name):
                    found.append(str(registered or name))
            for key, value in node.items():
                if key != "compile_config":
                    walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(config)
    return found


def _read_config(path: Path) -> dict:
    try:
        with zipfile.ZipFile(path) as archive:
            return json.loads(archive.read("config.json"))
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
        raise ProjectError(
            f"{path} could not be loaded as a Keras model ({type(exc).__name__}: {str(exc)[:200]}). "
            f"Save it again with model.save('{MODEL_FILE}')."
        ) from None


def _load_builtin_only(path: Path):
    """``keras.models.load_model`` with only Keras's own classes reachable."""
    import keras
    from keras.src.saving import object_registration

    registries = [
        getattr(object_registration, name)
        for name in ("GLOBAL_CUSTOM_OBJECTS", "GLOBAL_CUSTOM_NAMES")
        if isinstance(getattr(object_registration, name, None), dict)
    ]
    saved = [dict(r) for r in registries]
    for registry in registries:
        registry.clear()
    try:
        return keras.models.load_model(path, compile=False, safe_mode=True)
    finally:
        for registry, entries in zip(registries, saved):
            registry.clear()
            registry.update(entries)


def load_saved_model(path: str | os.PathLike = MODEL_FILE):
    """Load a saved Keras model built of Keras's own layers, turning every failure into a ``ProjectError``.

    Refuses custom classes (even registered ones) and ``Lambda`` layers before anything
    is deserialized; loads with Keras's ``safe_mode``. Cached per file (path, size,
    modification time).
    """
    path = Path(path)
    if not path.exists():
        raise ProjectError(
            f"{path} not found (looked in {path.resolve().parent}). Run the training cell, which saves "
            f"your model with model.save({str(path)!r}), and keep the file next to the notebook."
        )
    if path.is_dir() or path.suffix != ".keras":
        raise ProjectError(f"{path} is not a .keras file: save with model.save('{MODEL_FILE}') (Keras 3 format).")
    key = ("model", _identity(path))
    if key not in _cache:
        foreign = foreign_objects(_read_config(path))
        if foreign:
            raise ProjectError(
                f"{path} holds objects that are not Keras's own ({', '.join(sorted(set(foreign))[:5])}): the project "
                "is graded with Keras's built-in layers only (no custom classes, no Lambda layers). Rebuild the "
                "model from keras.layers and save it again."
            )
        try:
            model = _load_builtin_only(path)
        except Exception as exc:  # any failure inside Keras means the same thing to the learner
            raise ProjectError(
                f"{path} could not be loaded as a Keras model ({type(exc).__name__}: {str(exc)[:300]}). "
                "Save it again with model.save(...) from a model built of built-in Keras layers "
                "(custom classes and Lambda layers cannot be loaded safely)."
            ) from None
        from .checks import all_layers

        custom = sorted(
            {type(layer).__name__ for layer in all_layers(model) if not type(layer).__module__.startswith("keras.src.")}
        )
        if custom:
            raise ProjectError(
                f"{path} uses layers that are not Keras's own ({', '.join(custom)}): use keras.layers only."
            )
        _cache.clear()  # one model at a time: a fresh file replaces the old entry
        _cache[key] = model
    return _cache[key]


# -- the rules --------------------------------------------------------------------------------
def describe(model) -> dict:
    """Input shape (without the batch axis), parameter count and layer types of a model."""
    from .checks import all_layers

    shape = tuple(model.inputs[0].shape[1:]) if getattr(model, "inputs", None) else None
    return {
        "input_shape": shape,
        "params": int(model.count_params()),
        "layers": [type(layer).__name__ for layer in all_layers(model)],
    }


def reads_mnist_images(shape) -> bool:
    """Whether an input shape (without the batch axis) takes (28, 28, 1) images: each size 28 or None."""
    return (
        shape is not None
        and len(shape) == len(INPUT_SHAPE)
        and all(s is None or s == want for s, want in zip(shape, INPUT_SHAPE[:2]))
        and shape[-1] == INPUT_SHAPE[-1]
    )


def convolutions(model) -> list:
    """The model's 2-D convolutions with kernels of at least MIN_KERNEL x MIN_KERNEL, wrappers included."""
    from .checks import all_layers

    found = []
    for layer in all_layers(model):
        if type(layer).__name__ in CONVOLUTIONS:
            size = tuple(getattr(layer, "kernel_size", ()) or ())
            if len(size) == 2 and min(size) >= MIN_KERNEL:
                found.append(layer)
    return found


def image_passes_only_through_convolutions(model, images) -> bool:
    """Whether the output stops depending on the image once the big convolutions' kernels are zero.

    With every kernel of ``convolutions(model)`` set to zero, a model whose every path from
    the image to the output goes through one of them gives the same output for every
    image; a path around them (a dense branch, a 1x1 convolution) still carries the image.
    The weights are restored afterwards.
    """
    layers = convolutions(model)
    if not layers:
        return False
    saved = [layer.get_weights() for layer in layers]
    try:
        for layer in layers:
            weights = layer.get_weights()
            kernels = [v for v in layer.weights if "kernel" in v.path.split("/")[-1]]
            names = {id(v) for v in kernels}
            layer.set_weights([np.zeros_like(w) if id(v) in names else w for v, w in zip(layer.weights, weights)])
        out = np.asarray(model(np.asarray(images, np.float32), training=False), np.float64)
    finally:
        for layer, weights in zip(layers, saved):
            layer.set_weights(weights)
    out = out.reshape(len(out), -1)
    scale = max(1e-6, float(np.abs(out).max()))
    return float(np.abs(out - out[:1]).max()) <= 1e-4 * scale


def _probe_images(n: int = 16) -> np.ndarray:
    """Varied images in [0, 1] for the CNN check: noise, blank, bars, an offset square."""
    rng = np.random.default_rng(0)
    images = rng.random((n, *INPUT_SHAPE)).astype(np.float32)
    images[0] = 0
    images[1, :, 10:14] = 1
    images[2, 5:20, 5:20] = 1
    return images


def check_architecture(model, max_params: int = MAX_PARAMS) -> dict:
    """Assert the project's rules: input (28, 28, 1), a CNN, at most ``max_params`` parameters.

    Returns ``describe(model)``; raises ``ProjectError`` naming the rule broken.
    """
    info = describe(model)
    if not reads_mnist_images(info["input_shape"]):
        raise ProjectError(
            f"the model's input shape is {info['input_shape']}, expected {INPUT_SHAPE}: start it with "
            "keras.Input((28, 28, 1)) and feed images scaled to [0, 1], not flattened."
        )
    if not convolutions(model):
        raise ProjectError(
            f"the model has no 2-D convolution with a kernel of at least {MIN_KERNEL}x{MIN_KERNEL} "
            f"(it has {', '.join(info['layers'])}): the project asks for a CNN."
        )
    if not image_passes_only_through_convolutions(model, _probe_images()):
        raise ProjectError(
            f"the image reaches the output without going through a convolution of {MIN_KERNEL}x{MIN_KERNEL} or "
            "larger (a 1x1 convolution, or a Flatten/Dense path beside the convolutions): the project asks for a "
            "CNN, whose classifier reads only what its convolutions computed."
        )
    if info["params"] > max_params:
        raise ProjectError(
            f"the model has {info['params']:,} parameters; the budget is {max_params:,}. "
            "Use fewer filters or units, or pool before Flatten."
        )
    return info


# -- evaluation -------------------------------------------------------------------------------
def _test_data(x_test, y_test):
    if x_test is None or y_test is None:
        from . import data

        (_, _), (images, labels) = data.load_mnist()
        x_test = images[..., np.newaxis].astype(np.float32) / 255 if x_test is None else x_test
        y_test = labels if y_test is None else y_test
    return np.asarray(x_test, np.float32), np.asarray(y_test)


def predict_probabilities(path: str | os.PathLike, x, name: str = "images") -> np.ndarray:
    """The saved model's class probabilities for images ``x`` (N, 28, 28, 1) in [0, 1]; (N, 10)."""
    path = Path(path)
    model = load_saved_model(path)
    shape = describe(model)["input_shape"]
    if not reads_mnist_images(shape):
        raise ProjectError(
            f"the model's input shape is {shape}, expected {INPUT_SHAPE}: "
            "it cannot read the test images (N, 28, 28, 1)."
        )
    x = np.asarray(x, np.float32)
    key = ("probabilities", name, _identity(path), x.shape, float(x[:50].sum()))
    if key not in _cache:
        try:
            scores = np.asarray(model.predict(x, batch_size=500, verbose=0), np.float64)
        except Exception as exc:
            raise ProjectError(f"the model failed on the {name} ({type(exc).__name__}: {str(exc)[:300]}).") from None
        if scores.shape != (len(x), 10):
            raise ProjectError(
                f"the model returns shape {scores.shape[1:]} per batch of images, expected (10,): "
                "end with Dense(10, activation='softmax')."
            )
        _cache[key] = scores
    return _cache[key]


def predict_test_set(path: str | os.PathLike = MODEL_FILE, x_test=None) -> np.ndarray:
    """The saved model's class predictions for MNIST's 10,000 test images, shape (10000,) int.

    Images go in as float32 (N, 28, 28, 1) in [0, 1] (``x_test``; default: loaded from
    ``dlcourse.data``). Cached per file.
    """
    x_test, _ = _test_data(x_test, np.zeros(0))
    return predict_probabilities(path, x_test, "test images").argmax(axis=1)


def test_set_accuracy(path: str | os.PathLike = MODEL_FILE, x_test=None, y_test=None) -> float:
    """Fraction of MNIST's 10,000 test images the saved model classifies correctly."""
    x_test, y_test = _test_data(x_test, y_test)
    return float(np.mean(predict_test_set(path, x_test) == y_test))


def _loss_and_accuracy(probabilities: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    p = np.clip(probabilities[np.arange(len(labels)), labels], 1e-7, 1.0)
    return float(-np.mean(np.log(p))), float(np.mean(probabilities.argmax(axis=1) == labels))


def fit_to_test(path: str | os.PathLike, x_test, y_test, x_train, y_train) -> dict:
    """Compare the saved model on the test images with TRAIN_SAMPLE of the training images.

    A model trained on the training set fits training images about as well as test images,
    or better. One whose cross-entropy on the test images is below FIT_LOSS_RATIO times its
    cross-entropy on the training images (and whose test accuracy is higher) was evidently
    fitted to the test set: ``flagged`` is then True.
    """
    x_test, y_test = _test_data(x_test, y_test)
    step = max(1, len(x_train) // TRAIN_SAMPLE)
    x_sample = np.asarray(x_train[::step][:TRAIN_SAMPLE], np.float32)
    y_sample = np.asarray(y_train[::step][:TRAIN_SAMPLE])
    test_loss, test_accuracy = _loss_and_accuracy(predict_probabilities(path, x_test, "test images"), y_test)
    train_loss, train_accuracy = _loss_and_accuracy(predict_probabilities(path, x_sample, "training images"), y_sample)
    flagged = test_loss < FIT_LOSS_RATIO * train_loss and test_accuracy > train_accuracy
    return {
        "test_accuracy": test_accuracy,
        "train_accuracy": train_accuracy,
        "test_loss": test_loss,
        "train_loss": train_loss,
        "flagged": bool(flagged),
    }


def check_tier(
    tier: int,
    path: str | os.PathLike = MODEL_FILE,
    x_test=None,
    y_test=None,
    x_train=None,
    y_train=None,
    max_params: int = MAX_PARAMS,
) -> float:
    """Assert the saved model earns tier ``tier``; returns its test accuracy.

    Only a model within the rules (``check_architecture``) earns a tier, and not one that
    fits the test images markedly better than the training images ``x_train`` (when given;
    ``fit_to_test``). Then the test accuracy must reach ``TIERS[tier]``.
    """
    target = TIERS[tier]
    try:
        check_architecture(load_saved_model(path), max_params=max_params)
    except ProjectError as exc:
        raise ProjectError(f"no tier for a model outside the project's rules: {exc}") from None
    x_test, y_test = _test_data(x_test, y_test)
    if x_train is not None and y_train is not None:
        fit = fit_to_test(path, x_test, y_test, x_train, y_train)
        if fit["flagged"]:
            raise ProjectError(
                "flagged for review, no tier: the model fits the 10,000 test images markedly better than "
                f"{TRAIN_SAMPLE:,} training images (accuracy {fit['test_accuracy']:.2%} against "
                f"{fit['train_accuracy']:.2%}, cross-entropy {fit['test_loss']:.4f} against {fit['train_loss']:.4f}), "
                "as a model trained on the test set does. Train on X_train only; the test set is for grading."
            )
    accuracy = test_set_accuracy(path, x_test, y_test)
    if accuracy < target:
        raise ProjectError(
            f"test accuracy {accuracy:.2%} is below this tier's {target:.1%} "
            f"({round((target - accuracy) * len(y_test))} more of the {len(y_test):,} test images must be right). "
            "Look at the error analysis for what it gets wrong; try more filters, batch normalization, "
            "dropout, a learning-rate schedule or a few more epochs."
        )
    return accuracy
