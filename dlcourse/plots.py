"""Plots the lessons share: image grids and training curves.

Introduced in lesson 00.  Each function draws with matplotlib, returns the
``Figure`` and does not call ``plt.show()``, so notebooks display it and tests
can inspect it.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["show_images", "plot_history", "show_filters"]


def show_images(
    images,
    labels=None,
    *,
    predictions=None,
    ncols: int = 10,
    size: float = 1.2,
    cmap: str = "gray_r",
    title: str | None = None,
):
    """Show a grid of images, each titled with its label (and prediction, if given).

    Args:
        images: ``(N, H, W)`` or ``(N, H, W, 1)`` grey images, or ``(N, H, W, 3)`` colour.
        labels: ``(N,)`` class labels, or ``(N, C)`` one-hot rows (shown as their argmax).
        predictions: optional ``(N,)`` predicted labels; a wrong one is titled in red.
        ncols: images per row.
        size: inches per image.
    """
    import matplotlib.pyplot as plt

    images = np.asarray(images)
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    if images.ndim not in (3, 4):
        raise ValueError(f"images must be (N, H, W) or (N, H, W, C), got shape {images.shape}")
    n = len(images)
    if labels is not None:
        labels = np.asarray(labels)
        if labels.ndim == 2:
            labels = labels.argmax(axis=1)
    ncols = max(1, min(ncols, n))
    nrows = max(1, math.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows + (0.4 if title else 0)), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= n:
            continue
        ax.imshow(images[i], cmap=cmap if images.ndim == 3 else None)
        if labels is not None:
            text, color = str(labels[i]), "black"
            if predictions is not None:
                text = f"{labels[i]} -> {predictions[i]}"
                color = "black" if predictions[i] == labels[i] else "red"
            ax.set_title(text, fontsize=9, color=color)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_history(history, metrics=("loss", "accuracy"), *, title: str | None = None):
    """Training curves from ``model.fit``'s ``History`` (or its ``.history`` dict).

    One panel per metric in ``metrics`` that was recorded, training and (when
    present) ``val_`` curves against the epoch number (1-based).
    """
    import matplotlib.pyplot as plt

    hist = getattr(history, "history", history)
    shown = [m for m in metrics if m in hist]
    if not shown:
        raise ValueError(f"none of {list(metrics)} in the history; it has {sorted(hist)}")
    fig, axes = plt.subplots(1, len(shown), figsize=(4.5 * len(shown), 3.2), squeeze=False)
    for ax, metric in zip(axes.flat, shown):
        epochs = np.arange(1, len(hist[metric]) + 1)
        ax.plot(epochs, hist[metric], "o-", label="train")
        if f"val_{metric}" in hist:
            ax.plot(epochs, hist[f"val_{metric}"], "s--", label="validation")
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def show_filters(kernel, *, channel: int | None = 0, ncols: int = 8, size: float = 0.9, title: str | None = None):
    """Show the filters of a Conv2D kernel as a grid of small images (lesson 03).

    Args:
        kernel: ``(F_h, F_w, D_in, K)``, e.g. ``layer.kernel`` or ``layer.get_weights()[0]``.
        channel: which input channel to show; None shows each filter's mean over channels.
        ncols: filters per row.

    Blue is negative, red positive, on one symmetric scale per filter.
    """
    import matplotlib.pyplot as plt

    kernel = np.asarray(kernel)
    if kernel.ndim != 4:
        raise ValueError(f"kernel must be (F_h, F_w, D_in, K), got shape {kernel.shape}")
    weights = kernel.mean(axis=2) if channel is None else kernel[:, :, channel, :]
    k = weights.shape[-1]
    ncols = max(1, min(ncols, k))
    nrows = math.ceil(k / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows + (0.4 if title else 0)), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < k:
            lim = np.abs(weights[..., i]).max() or 1.0
            ax.imshow(weights[..., i], cmap="RdBu_r", vmin=-lim, vmax=lim)
            ax.set_title(str(i), fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_confusion_matrix(cm, *, class_names=None, normalize: bool = False, title: str | None = None):
    """Heat map of a confusion matrix (lesson 06), with the counts written in the cells.

    Args:
        cm: ``(C, C)`` counts; ``cm[i, j]`` = images of true class i predicted as j.
        class_names: labels of the C classes (default 0..C-1).
        normalize: colour by the fraction of each true class (row) instead of counts.

    The diagonal (correct answers) dwarfs the rest, so off-diagonal cells are coloured
    on their own scale: the mistakes are what the picture is for.
    """
    import matplotlib.pyplot as plt

    cm = np.asarray(cm)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"a confusion matrix is square (C, C), got shape {cm.shape}")
    c = cm.shape[0]
    names = [str(k) for k in (class_names if class_names is not None else range(c))]
    rows = np.maximum(cm.sum(axis=1, keepdims=True), 1)
    shown = cm / rows if normalize else cm.astype(float)
    off = shown.copy()
    np.fill_diagonal(off, np.nan)
    fig, ax = plt.subplots(figsize=(0.55 * c + 2, 0.5 * c + 1.4))
    image = ax.imshow(off, cmap="Reds", vmin=0, vmax=np.nanmax(off) if np.nanmax(off) > 0 else 1)
    for i in range(c):
        for j in range(c):
            text = f"{shown[i, j]:.2f}" if normalize else str(int(cm[i, j]))
            ax.text(
                j,
                i,
                text,
                ha="center",
                va="center",
                fontsize=7,
                color="#1a5e1a" if i == j else "black",
                fontweight="bold" if i == j else "normal",
            )
    ax.set_xticks(range(c), names)
    ax.set_yticks(range(c), names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    fig.colorbar(image, ax=ax, label="fraction of the class" if normalize else "mistakes", shrink=0.8)
    ax.set_title(title or "confusion matrix (diagonal: correct, in green)")
    fig.tight_layout()
    return fig
