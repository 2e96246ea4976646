"""dlcourse: the small helper package every lesson of the course imports.

    import dlcourse as dlc
    (x_train, y_train), (x_test, y_test) = dlc.data.load_mnist()
    strategy = dlc.device.setup(seed=42)

Submodules load on first use, and importing ``dlcourse`` never imports
TensorFlow, so pure-NumPy lessons and widgets start instantly:

- ``dlcourse.data``: shipped datasets (MNIST from ``data/``), offline and verified.
- ``dlcourse.device``: GPU detection and set-up on any Keras backend, ``report()`` diagnostics.
- ``dlcourse.training``: the backend- and device-specific choices for fast training.
- ``dlcourse.plots``: image grids and training curves.
- ``dlcourse.diagrams``: the lessons' explanatory diagrams (neurons, convolutions, cells).
- ``dlcourse.checks``: assertions with helpful messages for exercise tests.
- ``dlcourse.digits``: drawings preprocessed the way MNIST's digits were made.
- ``dlcourse.project``: reading and grading the MNIST project's saved model.
"""

from __future__ import annotations

import importlib
import os

# TensorFlow's C++ start-up messages (CPU instruction sets, "failed call to
# cuInit" on machines without a GPU driver) read like errors to a learner; real
# failures still surface as Python exceptions.  A value the user set wins:
# TF_CPP_MIN_LOG_LEVEL=0 shows everything when debugging a GPU set-up.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

__version__ = "0.1.0"
__all__ = ["checks", "data", "device", "diagrams", "digits", "plots", "project", "training", "load_mnist"]

_SUBMODULES = {"checks", "data", "device", "diagrams", "digits", "plots", "project", "training"}


def load_mnist(path=None):
    """Shortcut for :func:`dlcourse.data.load_mnist`."""
    from .data import load_mnist as _load

    return _load(path)


def __getattr__(name: str):
    if name in _SUBMODULES:
        module = importlib.import_module(f".{name}", __name__)
        globals()[name] = module
        return module
    raise AttributeError(f"module 'dlcourse' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_SUBMODULES))
