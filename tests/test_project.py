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

NOTEBOOK = course.SOLUTIONS / "06_mnist_project" / "06b_project.ipynb"
GRADE_IDS = ["project_rules", "project_tier_1", "project_tier_2", "project_tier_3"]


def _grading_cells() -> dict[str, str]:
    cells = {}
    for cell in nbformat.read(NOTEBOOK, as_version=4).cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if gid in GRADE_IDS:
            cells[gid] = cell.source
    assert sorted(cells) == sorted(GRADE_IDS), f"grading cells missing from {NOTEBOOK.name}: {set(GRADE_IDS) - set(cells)}"
    return cells


def grade(folder) -> dict[str, str | None]:
    """Run each grading cell in ``folder``; grade_id -> None (passed) or the error message."""
    (_, _), (x_test, y_test) = dlc.data.load_mnist()
    results = {}
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        for gid, source in _grading_cells().items():
            namespace = {"dlc": dlc, "np": np, "keras": keras, "MODEL_PATH": "mnist_model.keras",
                         "X_test": x_test[..., None].astype(np.float32) / 255, "test_labels": y_test}
            try:
                exec(compile(source, gid, "exec"), namespace)
                results[gid] = None
            except Exception as exc:  # nbgrader scores a cell that raises anything as zero
                results[gid] = f"{type(exc).__name__}: {exc}"
    finally:
        os.chdir(cwd)
    return results


def _save(model, folder):
    folder.mkdir(parents=True, exist_ok=True)
    model.save(folder / "mnist_model.keras")
    return folder


def _cnn(units=64):
    L = keras.layers
    return keras.Sequential([keras.Input((28, 28, 1)), L.Conv2D(16, 3, activation="relu"), L.MaxPooling2D(2),
                             L.Flatten(), L.Dense(units, activation="relu"), L.Dense(10, activation="softmax")])


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Folders each holding one kind of mnist_model.keras (or none)."""
    root = tmp_path_factory.mktemp("project")
    (_, _), (x_test, y_test) = dlc.data.load_mnist()
    x = x_test[..., None].astype(np.float32) / 255
    keras.utils.set_random_seed(0)
    # Trained on the test images themselves, so it scores high in seconds: fine for testing a grader.
    good = _cnn()
    good.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    good.fit(x, y_test, epochs=12, batch_size=100, verbose=0)
    middling = _cnn()  # trained a little: between tiers
    middling.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    middling.fit(x[:2000], y_test[:2000], epochs=3, batch_size=100, verbose=0)
    L = keras.layers
    folders = {
        "good": _save(good, root / "good"),
        "middling": _save(middling, root / "middling"),
        "untrained": _save(_cnn(), root / "untrained"),
        "flat_input": _save(keras.Sequential([keras.Input((784,)), L.Dense(10, activation="softmax")]), root / "flat_input"),
        "no_conv": _save(keras.Sequential([keras.Input((28, 28, 1)), L.Flatten(), L.Dense(10, activation="softmax")]), root / "no_conv"),
        "too_big": _save(_cnn(units=512), root / "too_big"),
        "missing": root / "missing",
        "broken": root / "broken",
        "lambda": _save(keras.Sequential([keras.Input((28, 28, 1)), L.Conv2D(2, 3), L.Lambda(lambda t: t * 2), L.Flatten(),
                                          L.Dense(10, activation="softmax")]), root / "lambda"),
    }
    folders["missing"].mkdir()
    folders["broken"].mkdir()
    (folders["broken"] / "mnist_model.keras").write_bytes(b"PK\x03\x04 this is not a real archive")
    accuracy = {name: float(np.mean(m.predict(x, verbose=0).argmax(1) == y_test)) for name, m in (("good", good), ("middling", middling))}
    return folders, accuracy


def test_good_model_earns_every_point(models):
    folders, accuracy = models
    assert accuracy["good"] >= project.TIERS[-1], f"the fixture itself is too weak: {accuracy['good']}"
    assert grade(folders["good"]) == dict.fromkeys(GRADE_IDS)


def test_points_follow_the_tiers(models):
    folders, accuracy = models
    results = grade(folders["middling"])
    assert results["project_rules"] is None
    for tier, gid in enumerate(GRADE_IDS[1:]):
        passed = accuracy["middling"] >= project.TIERS[tier]
        assert (results[gid] is None) == passed, (gid, accuracy["middling"], results[gid])
    assert results["project_tier_3"] is not None and "below this tier's 99.2%" in results["project_tier_3"]


def test_untrained_model_follows_the_rules_but_scores_nothing(models):
    folders, _ = models
    results = grade(folders["untrained"])
    assert results["project_rules"] is None
    for gid in GRADE_IDS[1:]:
        assert "below this tier" in results[gid]


@pytest.mark.parametrize("kind, message", [
    ("flat_input", "input shape is (784,), expected (28, 28, 1)"),
    ("missing", "mnist_model.keras not found"),
    ("broken", "could not be loaded as a Keras model"),
    ("lambda", "could not be loaded as a Keras model"),
])
def test_unusable_files_score_zero_everywhere_with_a_clear_message(models, kind, message):
    folders, _ = models
    results = grade(folders[kind])
    for gid in GRADE_IDS:
        assert results[gid] is not None and message in results[gid], (gid, results[gid])


@pytest.mark.parametrize("kind, message", [("no_conv", "no convolution layers"), ("too_big", "the budget is 500,000")])
def test_rule_breakers_lose_the_rules_point(models, kind, message):
    folders, _ = models
    results = grade(folders[kind])
    assert message in results["project_rules"]


def test_a_new_file_is_read_again(models, tmp_path):
    """The cache is keyed by file identity: replacing the model replaces the grade."""
    folders, _ = models
    shutil.copy(folders["untrained"] / "mnist_model.keras", tmp_path / "mnist_model.keras")
    assert grade(tmp_path)["project_tier_1"] is not None
    (tmp_path / "mnist_model.keras").unlink()
    shutil.copy(folders["good"] / "mnist_model.keras", tmp_path / "mnist_model.keras")
    os.utime(tmp_path / "mnist_model.keras", ns=(1, 1))  # a different mtime, as a fresh save has
    assert grade(tmp_path)["project_tier_1"] is None


@pytest.mark.parametrize("mode, exists, expected", [
    (None, False, True), (None, True, True),
    ("validate", False, True), ("validate", True, False),
    ("autograde", False, False), ("autograde", True, False),
])
def test_training_cell_never_trains_while_grading(monkeypatch, tmp_path, mode, exists, expected):
    if mode:
        monkeypatch.setenv("NBGRADER_EXECUTION", mode)
    else:
        monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    path = tmp_path / "mnist_model.keras"
    if exists:
        path.write_bytes(b"x")
    assert project.should_train(path) is expected
