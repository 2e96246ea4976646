"""The MNIST project (lesson 06): read a saved model and grade it, with clear messages.

Grading never retrains.  It loads the ``mnist_model.keras`` the learner saved beside
the notebook and evaluates it on MNIST's 10,000 test images, so a submission grades
in seconds.  Every problem with the file (missing, not a Keras file, custom layers,
wrong input shape, no convolutions, too many parameters) becomes a ``ProjectError``
(an ``AssertionError``, so a grading cell scores zero) whose message says what to do.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

MODEL_FILE = "mnist_model.keras"
INPUT_SHAPE = (28, 28, 1)  # channels-last, values in [0, 1]
MAX_PARAMS = 500_000
TIERS = (0.985, 0.990, 0.992)  # test accuracy for each tier of points

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


def load_saved_model(path: str | os.PathLike = MODEL_FILE):
    """Load a saved Keras model, turning every way it can fail into a ``ProjectError``.

    Loads with Keras's ``safe_mode`` (no arbitrary code from ``Lambda`` layers).
    The result is cached per file (path, size, modification time).
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
        import keras

        try:
            model = keras.models.load_model(path, compile=False)
        except Exception as exc:  # any failure inside Keras means the same thing to the learner
            raise ProjectError(
                f"{path} could not be loaded as a Keras model ({type(exc).__name__}: {str(exc)[:300]}). "
                "Save it again with model.save(...) from a model built of built-in Keras layers "
                "(custom classes and Lambda layers cannot be loaded safely)."
            ) from None
        _cache.clear()  # one model at a time: a fresh file replaces the old entry
        _cache[key] = model
    return _cache[key]


def describe(model) -> dict:
    """Input shape (without the batch axis), parameter count and layer types of a model."""
    shape = tuple(model.inputs[0].shape[1:]) if getattr(model, "inputs", None) else None
    kinds = []

    def walk(layer):
        kinds.append(type(layer).__name__)
        for sub in getattr(layer, "layers", []) or []:
            walk(sub)

    for layer in model.layers:
        walk(layer)
    return {"input_shape": shape, "params": int(model.count_params()), "layers": kinds}


def check_architecture(model, max_params: int = MAX_PARAMS) -> dict:
    """Assert the project's rules: input (28, 28, 1), convolutions, at most ``max_params``.

    Returns ``describe(model)``; raises ``ProjectError`` naming the rule broken.
    """
    info = describe(model)
    if info["input_shape"] != INPUT_SHAPE:
        raise ProjectError(
            f"the model's input shape is {info['input_shape']}, expected {INPUT_SHAPE}: start it with "
            "keras.Input((28, 28, 1)) and feed images scaled to [0, 1], not flattened."
        )
    if not any(kind.startswith(("Conv", "DepthwiseConv", "SeparableConv")) for kind in info["layers"]):
        raise ProjectError(f"the model has no convolution layers (it has {', '.join(info['layers'])}): "
                           "the project asks for a CNN.")
    if info["params"] > max_params:
        raise ProjectError(f"the model has {info['params']:,} parameters; the budget is {max_params:,}. "
                           "Use fewer filters or units, or pool before Flatten.")
    return info


def predict_test_set(path: str | os.PathLike = MODEL_FILE) -> np.ndarray:
    """The saved model's class predictions for MNIST's 10,000 test images, shape (10000,) int.

    Images go in as float32 (N, 28, 28, 1) in [0, 1]. Cached per file.
    """
    path = Path(path)
    model = load_saved_model(path)
    info = describe(model)
    if info["input_shape"] != INPUT_SHAPE:
        raise ProjectError(f"the model's input shape is {info['input_shape']}, expected {INPUT_SHAPE}: "
                           "it cannot read the test images (N, 28, 28, 1).")
    key = ("predictions", _identity(path))
    if key not in _cache:
        from . import data

        (_, _), (x_test, _) = data.load_mnist()
        x = x_test[..., np.newaxis].astype(np.float32) / 255
        try:
            scores = np.asarray(model.predict(x, batch_size=500, verbose=0))
        except Exception as exc:
            raise ProjectError(f"the model failed on the test images ({type(exc).__name__}: {str(exc)[:300]}).") from None
        if scores.shape != (len(x), 10):
            raise ProjectError(f"the model returns shape {scores.shape[1:]} per batch of images, expected (10,): "
                               "end with Dense(10, activation='softmax').")
        _cache[key] = scores.argmax(axis=1)
    return _cache[key]


def test_set_accuracy(path: str | os.PathLike = MODEL_FILE) -> float:
    """Fraction of MNIST's 10,000 test images the saved model classifies correctly."""
    from . import data

    (_, _), (_, y_test) = data.load_mnist()
    return float(np.mean(predict_test_set(path) == y_test))


def check_tier(tier: int, path: str | os.PathLike = MODEL_FILE) -> float:
    """Assert the saved model reaches ``TIERS[tier]`` test accuracy; returns the accuracy."""
    target = TIERS[tier]
    accuracy = test_set_accuracy(path)
    if accuracy < target:
        raise ProjectError(
            f"test accuracy {accuracy:.2%} is below this tier's {target:.1%} "
            f"({round((target - accuracy) * 10_000)} more of the 10,000 test images must be right). "
            "Look at the error analysis for what it gets wrong; try more filters, batch normalization, "
            "dropout, a learning-rate schedule or a few more epochs."
        )
    return accuracy
