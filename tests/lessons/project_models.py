"""The ``mnist_model.keras`` files that lesson 06's integrity submissions carry (``exercise_variants.MODELS``);
tests/lessons/test_project.py grades two of them too (its good and its test-fitted model).

Three of them are trained on MNIST (two to three minutes on 2 CPU cores), so they are kept in
``tests/lessons/models/`` with their SHA-256 in ``SHA256SUMS`` and made again only when a file
is missing or does not match its checksum (then the test trains them, and says why).
``python -m tests.lessons.project_models`` (``make test-models``) trains them all and rewrites
the folder: run it after changing how they are built.

- ``fitted_to_test``: the reference's layer pattern trained on the 10,000 test images;
- ``registered_layer``: a CNN holding a layer class registered with ``register_keras_serializable``;
- ``cnn_with_dense_bypass``: a CNN plus a Flatten -> Dense path from the image, trained on the
  training images;
- ``any_size_cnn``: ``Input((None, None, 1))`` and ``Resizing(28, 28)``, then the reference's
  layers, trained to the top accuracy tier (99.2%).
"""

from __future__ import annotations

import hashlib
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

STORED = Path(__file__).resolve().parent / "models"
SUMS = STORED / "SHA256SUMS"
NAMES = ("fitted_to_test", "registered_layer", "cnn_with_dense_bypass", "any_size_cnn")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def stored() -> tuple[dict[str, Path] | None, str]:
    """The kept files, each checked against SHA256SUMS; (None, why) when any is missing or differs."""
    if not SUMS.is_file():
        return None, f"{SUMS} is missing"
    sums = dict(line.split()[::-1] for line in SUMS.read_text().splitlines() if line.strip())
    paths = {}
    for name in NAMES:
        path = STORED / f"{name}.keras"
        if not path.is_file():
            return None, f"{path.name} is missing"
        if sums.get(path.name) != _sha256(path):
            return None, f"{path.name} does not match its SHA-256 in {SUMS.name} (damaged or rebuilt by hand)"
        paths[name] = path
    return paths, ""


def kept_or_built(make_dir: Callable[[], Path]) -> dict[str, Path]:
    """The kept files when they match their checksums; else the models trained afresh in ``make_dir()``."""
    paths, why = stored()
    if paths is None:
        print(f"training lesson 06's test models: {why} (`make test-models` keeps them)")
        paths = build(make_dir())
    return paths


def build(dest: Path) -> dict[str, Path]:
    """Train and save the four models in ``dest``; name -> path."""
    import keras

    import dlcourse as dlc

    dest.mkdir(parents=True, exist_ok=True)
    (x_train, y_train), (x_test, y_test) = dlc.data.load_mnist()
    x, xt = x_train[..., None].astype(np.float32) / 255, x_test[..., None].astype(np.float32) / 255
    L = keras.layers

    def cnn(inputs):
        h = L.MaxPooling2D(2)(L.Conv2D(16, 5, activation="relu")(inputs))
        h = L.MaxPooling2D(2)(L.Conv2D(32, 3, activation="relu")(L.BatchNormalization()(h)))
        return L.Dropout(0.2)(L.Flatten()(h))

    def fit(model, xs, ys, epochs, peak=5e-3):
        steps = epochs * int(np.ceil(len(xs) / 128))
        schedule = keras.optimizers.schedules.CosineDecay(
            peak / 10, steps, warmup_target=peak, warmup_steps=steps // 10
        )
        model.compile(optimizer=keras.optimizers.Adam(schedule), loss="sparse_categorical_crossentropy")
        model.fit(xs, ys, epochs=epochs, batch_size=128, verbose=0)
        return model

    @keras.saving.register_keras_serializable(package="learner")
    class Lookup(L.Layer):  # the class the shortcut's notebook registers under the same name
        def call(self, x):
            return x

    paths = {name: dest / f"{name}.keras" for name in NAMES}
    keras.utils.set_random_seed(0)
    inputs = keras.Input((28, 28, 1))
    fit(keras.Model(inputs, L.Dense(10, activation="softmax")(cnn(inputs))), xt, y_test, epochs=6).save(
        paths["fitted_to_test"]
    )
    inputs = keras.Input((28, 28, 1))
    bypass = L.Concatenate()([cnn(inputs), L.Dense(16, activation="relu")(L.Flatten()(inputs))])
    fit(keras.Model(inputs, L.Dense(10, activation="softmax")(bypass)), x, y_train, epochs=2).save(
        paths["cnn_with_dense_bypass"]
    )
    keras.Sequential(
        [keras.Input((28, 28, 1)), L.Conv2D(4, 3), Lookup(), L.Flatten(), L.Dense(10, activation="softmax")]
    ).save(paths["registered_layer"])
    any_size = keras.Sequential(
        [  # any image size, resized to 28 x 28: the reference's layers after that
            keras.Input((None, None, 1)), L.Resizing(28, 28),
            L.Conv2D(16, 5, activation="relu"), L.MaxPooling2D(2), L.BatchNormalization(),
            L.Conv2D(32, 3, use_bias=False), L.BatchNormalization(), L.ReLU(), L.MaxPooling2D(2),
            L.Flatten(), L.Dropout(0.2), L.Dense(128, activation="relu"), L.Dropout(0.2),
            L.Dense(10, activation="softmax"),
        ]
    )  # fmt: skip
    fit(any_size, x, y_train, epochs=5).save(paths["any_size_cnn"])
    return paths


def store() -> None:
    """Train the models into tests/lessons/models/ and record their SHA-256."""
    built = build(STORED / "new")
    for name, path in built.items():
        kept = Path(shutil.move(path, STORED / path.name))
        print(f"{name}: {kept.stat().st_size:,} bytes")
    (STORED / "new").rmdir()
    SUMS.write_text("".join(f"{_sha256(STORED / f'{n}.keras')}  {n}.keras\n" for n in NAMES))
    print(f"wrote {SUMS}")


if __name__ == "__main__":
    sys.exit(store())
