"""Datasets shipped with the course, loaded offline.

MNIST comes from the course's own ``data/mnist.npz`` (introduced in lesson 00);
nothing here ever downloads.  Small synthetic datasets for the lessons live here
too, so that every notebook draws its data from one place.
"""

from __future__ import annotations

import hashlib
import io
import os
import threading
import zipfile
from pathlib import Path

import numpy as np

__all__ = [
    "DATA_DIR",
    "MNIST_SHA256",
    "DataFileError",
    "load_mnist",
    "mnist_path",
    "load_sunspots",
    "toy_2d",
    "train_test_split",
]

#: The folder that holds the shipped datasets (``<repo>/data``).  Set the
#: ``DLCOURSE_DATA`` environment variable to use another copy of it.
DATA_DIR = Path(os.environ.get("DLCOURSE_DATA", Path(__file__).resolve().parent.parent / "data"))

#: SHA-256 of each array's raw bytes, as listed in ``data/README.md``.  The file's
#: own hash is not used: re-zipping the same arrays changes it.
MNIST_SHA256 = {
    "x_train": "741c988805d008ac6e4c904b69001ba184c24b2c540a4ef403f4c71b676cf757",
    "y_train": "1feba77c54802fa5339a11837ea4b2866434b83314ec45192930f1df69120c13",
    "x_test": "6d87418db22cc8025d05968bec9bd5c3932904b23485740db143a061a2c9d161",
    "y_test": "ddeff807876a9661a1110d45c266c86239a3a1b7d37da0c3716a7a683c852ff5",
}
_MNIST_SHAPES = {
    "x_train": (60000, 28, 28),
    "y_train": (60000,),
    "x_test": (10000, 28, 28),
    "y_test": (10000,),
}
_RESTORE_HINT = (
    "Restore the course's copy with `git checkout -- data/mnist.npz` (or download "
    "the course again); see data/README.md for where the file comes from and how "
    "to rebuild it. The course never downloads data at run time."
)

# Verified arrays, keyed by the file's identity (path, size, mtime), so that the
# checksums are computed once per file and process rather than on every call.
_cache: dict[tuple, dict[str, np.ndarray]] = {}
_cache_lock = threading.Lock()

#: While a class is graded (``python -m grader autograde``), the student's kernel gets a copy of
#: ``data/`` whose MNIST test split is withheld: ``load_mnist`` then returns the last 10,000
#: training digits in its place (and says so once), so that no student code can train on the
#: digits its model is graded on.  The grader's referee alone reads the real file, through
#: ``_originals`` (file name -> bytes), which it sets only while its own setup code runs.
GRADING_ENV = "DLCOURSE_GRADING_DATA"
_originals: dict[str, bytes] | None = None
_said_withheld = False


class DataFileError(RuntimeError):
    """A shipped data file is missing or does not match its recorded checksums."""


def mnist_path() -> Path:
    """Path of the shipped MNIST file (``data/mnist.npz``)."""
    return DATA_DIR / "mnist.npz"


def _read_verified(path: Path | io.BytesIO, withheld: bool = False) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = sorted(set(MNIST_SHA256) - set(npz.files))
            if missing:
                raise DataFileError(
                    f"{path} is not the course's MNIST file: it lacks the arrays {missing}. {_RESTORE_HINT}"
                )
            arrays = {name: npz[name] for name in MNIST_SHA256}
    except DataFileError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise DataFileError(f"{path} cannot be read ({exc}). {_RESTORE_HINT}") from exc

    for name, array in arrays.items():
        if withheld and name in ("x_test", "y_test"):
            continue
        if array.shape != _MNIST_SHAPES[name] or array.dtype != np.uint8:
            raise DataFileError(
                f"{path}: array {name} has shape {array.shape} and dtype {array.dtype}, "
                f"expected {_MNIST_SHAPES[name]} uint8. {_RESTORE_HINT}"
            )
        digest = hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()
        if digest != MNIST_SHA256[name]:
            raise DataFileError(
                f"{path} is corrupt: array {name} has SHA-256 {digest[:12]}..., "
                f"expected {MNIST_SHA256[name][:12]}.... {_RESTORE_HINT}"
            )
    if withheld:
        train = len(arrays["x_train"]) - len(arrays["x_test"])
        if not (
            np.array_equal(arrays["x_test"], arrays["x_train"][train:])
            and np.array_equal(arrays["y_test"], arrays["y_train"][train:])
        ):
            raise DataFileError(f"{path} is not the grader's copy of MNIST (its stand-in test split does not match)")
    return arrays


def withheld_copy(source: Path, dest: Path) -> None:
    """Write the grader's copy of ``mnist.npz``: the test split replaced by the last 10,000 training digits."""
    (x_train, y_train), (x_test, y_test) = load_mnist(source)
    np.savez(dest, x_train=x_train, y_train=y_train, x_test=x_train[-len(x_test) :], y_test=y_train[-len(y_test) :])


def load_mnist(path: str | os.PathLike | None = None):
    """Load MNIST offline, exactly like ``keras.datasets.mnist.load_data()``.

    Introduced in lesson 00.

    Returns:
        ``(x_train, y_train), (x_test, y_test)``: ``x_train`` is ``(60000, 28, 28)``
        and ``x_test`` ``(10000, 28, 28)``, uint8 grey levels 0-255; ``y_train``
        ``(60000,)`` and ``y_test`` ``(10000,)``, uint8 digit labels 0-9.  The
        arrays are fresh copies: changing them does not affect later calls.

    Raises:
        DataFileError: the file is missing, unreadable or fails its SHA-256
            check; the message says how to restore it.  There is no fallback
            to a download or to any other data.
    """
    if path is None and _originals is not None and "mnist.npz" in _originals:
        arrays = _read_verified(io.BytesIO(_originals["mnist.npz"]))  # the referee's setup: never cached
        return (arrays["x_train"], arrays["y_train"]), (arrays["x_test"], arrays["y_test"])
    withheld = path is None and bool(os.environ.get(GRADING_ENV))
    path = Path(path) if path is not None else mnist_path()
    if withheld:
        global _said_withheld
        if not _said_withheld:
            print(
                "(while a class is graded, x_test holds 10,000 training digits: the test digits are kept for "
                "the grader)"
            )
            _said_withheld = True
    try:
        stat = path.stat()
    except FileNotFoundError:
        raise DataFileError(f"MNIST file not found at {path}. {_RESTORE_HINT}") from None
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    with _cache_lock:
        arrays = _cache.get(key)
        if arrays is None:
            arrays = _read_verified(path, withheld)
            _cache.clear()
            _cache[key] = arrays
    return (
        (arrays["x_train"].copy(), arrays["y_train"].copy()),
        (arrays["x_test"].copy(), arrays["y_test"].copy()),
    )


# --- small synthetic datasets ---------------------------------------------------------

TOY_DATASETS = ("circle", "xor", "gauss", "spiral")


def toy_2d(name: str, n: int = 400, *, noise: float = 0.1, seed: int = 0):
    """Two-class points in the plane, as in TensorFlow Playground (lesson 01).

    Args:
        name: "circle" (a disc inside a ring), "xor" (opposite quadrants share a
            class), "gauss" (two Gaussian blobs) or "spiral" (two interleaved spirals).
        n: number of points (half of each class).
        noise: 0 (clean) to 0.5 (heavily overlapping): the random jitter's standard
            deviation as a fraction of 5/4, the data's radius being 5 (for "gauss" it
            widens the blobs instead).
        seed: seed of the random generator; the same arguments give the same points.

    Returns:
        ``x`` float32 ``(n, 2)``, coordinates in about [-6, 6]; ``y`` int64 ``(n,)``, 0 or 1.
    """
    if name not in TOY_DATASETS:
        raise ValueError(f"unknown dataset {name!r}: choose one of {', '.join(TOY_DATASETS)}")
    if not 0 <= noise <= 1:
        raise ValueError(f"noise must be between 0 and 1, got {noise}")
    rng = np.random.default_rng(seed)
    half = n // 2
    y = np.repeat([0, 1], [n - half, half])
    radius = 5.0
    if name == "circle":
        r = np.where(y == 1, rng.uniform(0, 0.5 * radius, n), rng.uniform(0.7 * radius, radius, n))
        angle = rng.uniform(0, 2 * np.pi, n)
        x = np.stack([r * np.cos(angle), r * np.sin(angle)], axis=1)
        x += rng.normal(0, noise * radius / 4, (n, 2))
    elif name == "xor":
        x = rng.uniform(-radius, radius, (n, 2))
        x += np.sign(x) * 0.3  # keep points off the axes
        y = (x[:, 0] * x[:, 1] > 0).astype(np.int64)
        x += rng.normal(0, noise * radius / 4, (n, 2))
    elif name == "gauss":
        centre = np.where(y[:, None] == 1, 2.0, -2.0)
        x = centre + rng.normal(0, 0.5 + 3 * noise, (n, 2))
    else:  # spiral
        t = rng.uniform(0, 1, n) ** 0.7 * 1.75 * 2 * np.pi
        r = t / (1.75 * 2 * np.pi) * radius
        phase = np.where(y == 1, np.pi, 0.0)
        x = np.stack([r * np.sin(t + phase), r * np.cos(t + phase)], axis=1)
        x += rng.normal(0, noise * radius / 4, (n, 2))
    order = rng.permutation(n)
    return x[order].astype(np.float32), y[order].astype(np.int64)


def train_test_split(x, y, *, test_fraction: float = 0.5, seed: int = 0):
    """Shuffle and split into ``(x_train, y_train), (x_test, y_test)``; ``test_fraction`` in (0, 1)."""
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be between 0 and 1, got {test_fraction}")
    order = np.random.default_rng(seed).permutation(len(x))
    cut = len(x) - int(round(len(x) * test_fraction))
    train, test = order[:cut], order[cut:]
    return (x[train], y[train]), (x[test], y[test])


# --- a real time series ---------------------------------------------------------------

#: SHA-256 of the shipped ``data/sunspots_monthly.csv`` file (a text file: its bytes are stable).
SUNSPOTS_SHA256 = "4284c5109bd1cc32e634fd091d10e54258bf0e88eb0ccea6859cd6194559bf0e"


def load_sunspots(path: str | os.PathLike | None = None):
    """Monthly mean sunspot numbers, January 1749 to December 2008 (lesson 04).

    Returns:
        ``(dates, sunspots)``: ``dates`` float64 ``(3120,)`` as decimal years
        (1749.0 = January 1749, 1749.083 = February, ...), ``sunspots`` float32
        ``(3120,)``, the monthly mean sunspot number.

    Raises:
        DataFileError: the file is missing or does not match its SHA-256 (see
            ``data/README.md``); nothing is downloaded instead.
    """
    path = Path(path) if path is not None else DATA_DIR / "sunspots_monthly.csv"
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataFileError(
            f"sunspot file not found at {path}. {_RESTORE_HINT.replace('mnist.npz', 'sunspots_monthly.csv')}"
        ) from None
    digest = hashlib.sha256(raw).hexdigest()
    if digest != SUNSPOTS_SHA256:
        raise DataFileError(
            f"{path} is corrupt: SHA-256 {digest[:12]}..., expected {SUNSPOTS_SHA256[:12]}.... "
            + _RESTORE_HINT.replace("mnist.npz", "sunspots_monthly.csv")
        )
    table = np.loadtxt(io.StringIO(raw.decode("ascii")), delimiter=",", skiprows=1)
    dates = table[:, 0] + (table[:, 1] - 1) / 12
    return dates, table[:, 2].astype(np.float32)
