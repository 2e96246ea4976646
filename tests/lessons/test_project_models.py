"""Lesson 06's kept test models are used only when each matches its recorded SHA-256."""

from __future__ import annotations

import shutil

from tests.lessons import project_models


def test_the_kept_models_match_their_checksums_and_a_damaged_one_is_not_used(tmp_path, monkeypatch):
    paths, why = project_models.stored()
    assert paths is not None, f"{why}: run `make test-models`"
    assert sorted(paths) == sorted(project_models.NAMES)

    copy = tmp_path / "models"
    shutil.copytree(project_models.STORED, copy)
    monkeypatch.setattr(project_models, "STORED", copy)
    monkeypatch.setattr(project_models, "SUMS", copy / "SHA256SUMS")
    damaged = copy / "any_size_cnn.keras"
    data = bytearray(damaged.read_bytes())
    data[len(data) // 2] ^= 0x01
    damaged.write_bytes(bytes(data))
    paths, why = project_models.stored()
    assert paths is None and why.startswith("any_size_cnn.keras does not match its SHA-256"), why
    damaged.unlink()
    assert project_models.stored() == (None, "any_size_cnn.keras is missing")
