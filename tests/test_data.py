"""dlcourse.data.load_mnist: the shipped copy, verified, cached, never replaced silently."""

import re
import shutil
import zipfile

import numpy as np
import pytest

from dlcourse import data


@pytest.fixture(scope="module")
def mnist():
    return data.load_mnist()


def test_shapes_dtypes_and_layout_match_keras(mnist):
    (x_train, y_train), (x_test, y_test) = mnist
    assert x_train.shape == (60000, 28, 28) and x_train.dtype == np.uint8
    assert y_train.shape == (60000,) and y_train.dtype == np.uint8
    assert x_test.shape == (10000, 28, 28) and x_test.dtype == np.uint8
    assert y_test.shape == (10000,) and y_test.dtype == np.uint8
    assert x_train.max() == 255 and x_train.min() == 0


def test_label_counts_match_data_readme(mnist, repo_root):
    readme = (repo_root / "data" / "README.md").read_text()
    train = [int(n) for n in re.search(r"Label counts, train: ([\d ]+);", readme).group(1).split()]
    test = [int(n) for n in re.search(r"test: ([\d ]+)\.", readme).group(1).split()]
    (_, y_train), (_, y_test) = mnist
    assert np.bincount(y_train).tolist() == train
    assert np.bincount(y_test).tolist() == test


def test_checksums_in_code_match_data_readme(repo_root):
    readme = (repo_root / "data" / "README.md").read_text()
    for name, digest in data.MNIST_SHA256.items():
        assert re.search(rf"\| {name} \| {digest} \|", readme), f"{name}'s checksum differs from data/README.md"


def test_returns_fresh_copies(mnist):
    (x_train, _), _ = mnist
    x_train[0] = 0
    (again, _), _ = data.load_mnist()
    assert again[0].any(), "a change to a returned array leaked into later calls"


def test_verification_is_cached(monkeypatch):
    data.load_mnist()
    calls = []
    real = data._read_verified
    monkeypatch.setattr(data, "_read_verified", lambda p: calls.append(p) or real(p))
    data.load_mnist()
    data.load_mnist()
    assert calls == [], "the checksums were recomputed for an unchanged file"


def test_missing_file_says_how_to_restore(tmp_path):
    with pytest.raises(data.DataFileError, match=r"not found.*git checkout -- data/mnist.npz"):
        data.load_mnist(tmp_path / "mnist.npz")


def _rewrite(src, dst, change):
    with np.load(src) as f:
        arrays = {k: f[k].copy() for k in f.files}
    change(arrays)
    np.savez_compressed(dst, **arrays)


def test_changed_pixel_is_detected(tmp_path):
    bad = tmp_path / "mnist.npz"
    _rewrite(data.mnist_path(), bad, lambda a: a["x_test"].__setitem__((0, 0, 0), 7))
    with pytest.raises(data.DataFileError, match=r"corrupt: array x_test"):
        data.load_mnist(bad)


def test_swapped_labels_are_detected(tmp_path):
    bad = tmp_path / "mnist.npz"
    _rewrite(data.mnist_path(), bad, lambda a: a.__setitem__("y_train", a["y_train"][::-1].copy()))
    with pytest.raises(data.DataFileError, match="y_train"):
        data.load_mnist(bad)


def test_missing_array_is_detected(tmp_path):
    bad = tmp_path / "mnist.npz"
    _rewrite(data.mnist_path(), bad, lambda a: a.pop("y_test"))
    with pytest.raises(data.DataFileError, match="lacks the arrays"):
        data.load_mnist(bad)


def test_truncated_file_is_detected(tmp_path):
    bad = tmp_path / "mnist.npz"
    raw = data.mnist_path().read_bytes()
    bad.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(data.DataFileError, match="cannot be read"):
        data.load_mnist(bad)


def test_flipped_byte_in_zip_is_detected(tmp_path):
    bad = tmp_path / "mnist.npz"
    shutil.copy(data.mnist_path(), bad)
    info = zipfile.ZipFile(bad).getinfo("x_train.npy")
    raw = bytearray(bad.read_bytes())
    raw[info.header_offset + 200_000] ^= 0xFF  # inside the compressed x_train data
    bad.write_bytes(bytes(raw))
    with pytest.raises(data.DataFileError):
        data.load_mnist(bad)


def test_a_file_replaced_after_loading_is_checked_again(tmp_path):
    copy = tmp_path / "mnist.npz"
    shutil.copy(data.mnist_path(), copy)
    data.load_mnist(copy)
    _rewrite(data.mnist_path(), copy, lambda a: a["x_train"].__setitem__((5, 5, 5), 1))
    with pytest.raises(data.DataFileError):
        data.load_mnist(copy)


def test_sunspots_load_and_checksum_matches_readme(repo_root):
    dates, spots = data.load_sunspots()
    assert dates.shape == spots.shape == (3120,) and spots.dtype == np.float32
    assert dates[0] == 1749 and abs(dates[-1] - (2008 + 11 / 12)) < 1e-9
    assert spots.min() >= 0 and 250 < spots.max() < 260
    assert data.SUNSPOTS_SHA256 in (repo_root / "data" / "README.md").read_text()


def test_sunspots_corruption_is_detected(tmp_path):
    bad = tmp_path / "sunspots_monthly.csv"
    bad.write_text((data.DATA_DIR / "sunspots_monthly.csv").read_text().replace("58.0", "59.0", 1))
    with pytest.raises(data.DataFileError, match="corrupt.*git checkout -- data/sunspots_monthly.csv"):
        data.load_sunspots(bad)
    with pytest.raises(data.DataFileError, match="not found"):
        data.load_sunspots(tmp_path / "missing.csv")
