"""The course's interactive visualizers, one module each (ipywidgets 8).

Each visualizer is an object you display in a notebook.  In JupyterLab it is a live
widget; where widgets cannot run (a notebook viewed on GitHub, an HTML export) the
same object shows a static figure of its current state instead.

- ``playground.Playground`` (lesson 01): train a small network live, TensorFlow Playground style.
- ``conv_explorer.ConvExplorer`` (lesson 02): convolution and pooling arithmetic.
- ``feature_maps.FeatureMapExplorer`` (lesson 03): activation maps, filters and the arithmetic behind them.
- ``unroller.Unroller`` (lesson 04): an LSTM's gates and states, step by step.
- ``latent_explorer.LatentExplorer`` (lesson 05): decode points of a 2-D code; noisy vs denoised images.
- ``draw_digit.DrawDigit`` (lesson 06): draw a digit, see it preprocessed the MNIST way and classified live.

Like the rest of ``dlcourse``, importing this package does not import TensorFlow.
"""

from __future__ import annotations

import importlib

__all__ = ["conv_explorer", "draw_digit", "feature_maps", "latent_explorer", "playground", "unroller"]


def __getattr__(name: str):
    if name in __all__:
        module = importlib.import_module(f".{name}", __name__)
        globals()[name] = module
        return module
    raise AttributeError(f"module 'dlcourse.widgets' has no attribute {name!r}")
