"""Lesson 06's grading: the notebook's own grading cells, run on saved models good and bad.

The grading cells are taken from the solution notebook and executed as nbgrader would,
in a namespace like the notebook's, next to each kind of ``mnist_model.keras``.
"""

from __future__ import annotations

import os
import shutil

import nbformat
import numpy as np
import pytest

keras = pytest.importorskip("keras")

import dlcourse as dlc  # noqa: E402
from dlcourse import project  # noqa: E402
from grader import course  # noqa: E402
from tests.lessons import project_models  # noqa: E402

NOTEBOOK = course.SOLUTIONS / "06_mnist_project" / "06b_project.ipynb"
GRADE_IDS = ["project_rules", "project_tier_1", "project_tier_2", "project_tier_3"]


def _grading_cells() -> dict[str, str]:
    cells = {}
    for cell in nbformat.read(NOTEBOOK, as_version=4).cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if gid in GRADE_IDS:
            cells[gid] = cell.source
    assert sorted(cells) == sorted(GRADE_IDS), (
        f"grading cells missing from {NOTEBOOK.name}: {set(GRADE_IDS) - set(cells)}"
    )
    return cells


def grade(folder, tiers=None) -> dict[str, str | None]:
    """Run each grading cell in ``folder``; grade_id -> None (passed) or the error message.

    ``tiers`` replaces the accuracy tiers, so that models trained in seconds can reach them.
    """
    (x_train, y_train), (x_test, y_test) = dlc.data.load_mnist()
    results = {}
    cwd = os.getcwd()
    saved_tiers = project.TIERS
    os.chdir(folder)
    try:
        project.TIERS = tuple(tiers or saved_tiers)
        for gid, source in _grading_cells().items():
            namespace = {
                "dlc": dlc,
                "np": np,
                "keras": keras,
                "MODEL_PATH": "mnist_model.keras",
                "X_test": x_test[..., None].astype(np.float32) / 255,
                "test_labels": y_test,
                "X_train": x_train[..., None].astype(np.float32) / 255,
                "train_labels": y_train,
            }
            try:
                exec(compile(source, gid, "exec"), namespace)
                results[gid] = None
            except Exception as exc:  # nbgrader scores a cell that raises anything as zero
                results[gid] = f"{type(exc).__name__}: {exc}"
    finally:
        project.TIERS = saved_tiers
        os.chdir(cwd)
    return results


def _save(model, folder):
    folder.mkdir(parents=True, exist_ok=True)
    model.save(folder / "mnist_model.keras")
    return folder


def _copy(model_file, folder):
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(model_file, folder / "mnist_model.keras")
    return folder


def _cnn(units=64, input_shape=(28, 28, 1)):
    L = keras.layers
    return keras.Sequential(
        [
            keras.Input(input_shape),
            L.Conv2D(16, 3, activation="relu"),
            L.MaxPooling2D(2),
            L.Flatten(),
            L.Dense(units, activation="relu"),
            L.Dense(10, activation="softmax"),
        ]
    )


def _fit(model, x, y, epochs, rate=3e-3):
    model.compile(optimizer=keras.optimizers.Adam(rate), loss="sparse_categorical_crossentropy")
    model.fit(x, y, epochs=epochs, batch_size=100, verbose=0)
    return model


@keras.saving.register_keras_serializable(package="dlcourse_tests")
class LabelLookup(keras.layers.Layer):
    """A custom layer, registered as a learner could: it could run any code while grading."""

    def call(self, x):
        return x


# Small accuracy tiers for models trained in seconds (the real ones are 98.5 / 99.0 / 99.2%).
EASY_TIERS = (0.90, 0.93, 0.95)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Folders each holding one kind of mnist_model.keras (or none).

    The two models that need minutes of training are lesson 06's kept test models
    (tests/lessons/project_models.py): "good" reaches the top tier on training images,
    "fitted" was trained on the test images themselves. The rule breakers need no training:
    they are graded with tiers of 0%, which any model reaches.
    """
    root = tmp_path_factory.mktemp("project")
    kept = project_models.kept_or_built(lambda: tmp_path_factory.mktemp("kept"))
    (x_train, y_train), (x_test, y_test) = dlc.data.load_mnist()
    x = x_train[..., None].astype(np.float32) / 255
    xt = x_test[..., None].astype(np.float32) / 255
    keras.utils.set_random_seed(0)
    L = keras.layers
    middling = _fit(_cnn(), x[:1000], y_train[:1000], epochs=2, rate=1e-3)  # between the easy tiers, or below
    inp = keras.Input((28, 28, 1))
    beside = L.Concatenate()([L.GlobalMaxPooling2D()(L.Conv2D(8, 3, activation="relu")(inp)), L.Flatten()(inp)])
    one_by_one = keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            L.Conv2D(8, 1, activation="relu"),
            L.Flatten(),
            L.Dense(32, activation="relu"),
            L.Dense(10, activation="softmax"),
        ]
    )
    any_size = keras.Sequential(
        [
            keras.Input((None, None, 1)),
            L.SeparableConv2D(16, 3, activation="relu"),
            L.MaxPooling2D(2),
            L.Conv2D(32, 3, activation="relu"),
            L.GlobalMaxPooling2D(),
            L.Dense(10, activation="softmax"),
        ]
    )
    folders = {
        "good": _copy(kept["any_size_cnn"], root / "good"),
        "middling": _save(middling, root / "middling"),
        "fitted": _copy(kept["fitted_to_test"], root / "fitted"),
        "untrained": _save(_cnn(), root / "untrained"),
        "flat_input": _save(
            keras.Sequential([keras.Input((784,)), L.Dense(10, activation="softmax")]), root / "flat_input"
        ),
        "no_conv": _save(
            keras.Sequential([keras.Input((28, 28, 1)), L.Flatten(), L.Dense(10, activation="softmax")]),
            root / "no_conv",
        ),
        "one_by_one": _save(one_by_one, root / "one_by_one"),
        "dense_beside": _save(keras.Model(inp, L.Dense(10, activation="softmax")(beside)), root / "dense_beside"),
        "any_size": _save(any_size, root / "any_size"),
        "too_big": _save(_cnn(units=512), root / "too_big"),
        "missing": root / "missing",
        "broken": root / "broken",
        "lambda": _save(
            keras.Sequential(
                [
                    keras.Input((28, 28, 1)),
                    L.Conv2D(2, 3),
                    L.Lambda(lambda t: t * 2),
                    L.Flatten(),
                    L.Dense(10, activation="softmax"),
                ]
            ),
            root / "lambda",
        ),
        "registered": _save(
            keras.Sequential(
                [
                    keras.Input((28, 28, 1)),
                    L.Conv2D(2, 3),
                    LabelLookup(),
                    L.Flatten(),
                    L.Dense(10, activation="softmax"),
                ]
            ),
            root / "registered",
        ),
    }
    folders["missing"].mkdir()
    folders["broken"].mkdir()
    (folders["broken"] / "mnist_model.keras").write_bytes(b"PK\x03\x04 this is not a real archive")
    accuracy = {
        name: project.test_set_accuracy(folders[name] / "mnist_model.keras", xt, y_test)
        for name in ("good", "middling")
    }
    return folders, accuracy


def test_good_model_earns_every_point(models):
    folders, accuracy = models
    assert accuracy["good"] >= project.TIERS[-1], f"the fixture itself is too weak: {accuracy['good']}"
    assert grade(folders["good"]) == dict.fromkeys(GRADE_IDS)


def test_points_follow_the_tiers(models):
    folders, accuracy = models
    results = grade(folders["middling"], EASY_TIERS)
    assert results["project_rules"] is None
    for tier, gid in enumerate(GRADE_IDS[1:]):
        passed = accuracy["middling"] >= EASY_TIERS[tier]
        assert (results[gid] is None) == passed, (gid, accuracy["middling"], results[gid])
    assert results["project_tier_3"] is not None and "below this tier's 95.0%" in results["project_tier_3"]


def test_untrained_model_follows_the_rules_but_scores_nothing(models):
    folders, _ = models
    results = grade(folders["untrained"])
    assert results["project_rules"] is None
    for gid in GRADE_IDS[1:]:
        assert "below this tier" in results[gid]


def test_a_model_trained_on_the_test_images_is_flagged_and_earns_no_tier(models):
    folders, _ = models
    results = grade(folders["fitted"], EASY_TIERS)
    assert results["project_rules"] is None
    for gid in GRADE_IDS[1:]:
        assert results[gid] is not None and "flagged for review, no tier" in results[gid], (gid, results[gid])


def test_the_real_reference_fits_test_and_training_images_alike(models):
    """A model trained on training images is not flagged (the good fixture; the solution notebook's too)."""
    folders, _ = models
    (x_train, y_train), (x_test, y_test) = dlc.data.load_mnist()
    fit = project.fit_to_test(
        folders["good"] / "mnist_model.keras", x_test[..., None] / 255.0, y_test, x_train[..., None] / 255.0, y_train
    )
    assert not fit["flagged"], fit


@pytest.mark.parametrize(
    "kind, message",
    [
        ("flat_input", "input shape is (784,), expected (28, 28, 1)"),
        ("missing", "mnist_model.keras not found"),
        ("broken", "could not be loaded as a Keras model"),
        ("lambda", "not Keras's own"),
        ("registered", "not Keras's own (dlcourse_tests>LabelLookup)"),
    ],
)
def test_unusable_files_score_zero_everywhere_with_a_clear_message(models, kind, message):
    folders, _ = models
    results = grade(folders[kind], EASY_TIERS)
    for gid in GRADE_IDS:
        assert results[gid] is not None and message in results[gid], (gid, results[gid])


@pytest.mark.parametrize(
    "kind, message",
    [
        ("no_conv", "no 2-D convolution with a kernel of at least 3x3"),
        ("one_by_one", "no 2-D convolution with a kernel of at least 3x3"),
        ("dense_beside", "without going through a convolution of 3x3 or larger"),
        ("too_big", "the budget is 500,000"),
    ],
)
def test_rule_breakers_lose_the_rules_point_and_every_tier(models, kind, message):
    folders, _ = models
    results = grade(folders[kind], (0.0, 0.0, 0.0))
    assert message in results["project_rules"], results["project_rules"]
    for gid in GRADE_IDS[1:]:
        assert results[gid] is not None and "no tier for a model outside the project's rules" in results[gid], (
            gid,
            results[gid],
        )


def test_any_input_size_and_separable_convolutions_are_within_the_rules(models):
    folders, _ = models
    results = grade(folders["any_size"], (0.0, 0.0, 0.0))
    assert results == dict.fromkeys(GRADE_IDS), results


def test_registered_classes_stay_registered_after_a_refused_load(models):
    folders, _ = models
    grade(folders["registered"])
    assert keras.saving.get_registered_object("dlcourse_tests>LabelLookup") is LabelLookup


def test_foreign_objects_in_a_config():
    config = {
        "module": "keras",
        "class_name": "Sequential",
        "registered_name": None,
        "config": {
            "layers": [
                {"module": "keras.layers", "class_name": "Dense", "registered_name": None},
                {"module": None, "class_name": "Peek", "registered_name": "mine>Peek"},
                {"module": None, "class_name": "__keras_tensor__", "registered_name": None},
                {
                    "module": "keras.layers",
                    "class_name": "Lambda",
                    "registered_name": None,
                    "config": {"function": {"class_name": "__lambda__", "config": {"code": "..."}}},
                },
            ]
        },
        "compile_config": {"loss": {"module": None, "class_name": "MyLoss", "registered_name": "mine>MyLoss"}},
    }
    assert project.foreign_objects(config) == ["mine>Peek", "__lambda__"]


def test_a_new_file_is_read_again(models, tmp_path):
    """The cache is keyed by file identity: replacing the model replaces the grade."""
    folders, _ = models
    shutil.copy(folders["untrained"] / "mnist_model.keras", tmp_path / "mnist_model.keras")
    assert grade(tmp_path, EASY_TIERS)["project_tier_1"] is not None
    (tmp_path / "mnist_model.keras").unlink()
    shutil.copy(folders["good"] / "mnist_model.keras", tmp_path / "mnist_model.keras")
    os.utime(tmp_path / "mnist_model.keras", ns=(1, 1))  # a different mtime, as a fresh save has
    assert grade(tmp_path, EASY_TIERS)["project_tier_1"] is None


@pytest.mark.parametrize(
    "mode, exists, expected",
    [
        (None, False, True),
        (None, True, True),
        ("validate", False, True),
        ("validate", True, False),
        ("autograde", False, False),
        ("autograde", True, False),
    ],
)
def test_training_cell_never_trains_while_grading(monkeypatch, tmp_path, mode, exists, expected):
    if mode:
        monkeypatch.setenv("NBGRADER_EXECUTION", mode)
    else:
        monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    path = tmp_path / "mnist_model.keras"
    if exists:
        path.write_bytes(b"x")
    assert project.should_train(path) is expected
