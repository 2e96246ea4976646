"""Hand-drawn digits in MNIST's format (lesson 06).

MNIST's digits were made the same way from scanned handwriting: crop to the ink,
scale to fit a 20 x 20 box keeping the aspect ratio (anti-aliased, so grey edges),
then paste into a 28 x 28 field so that the centre of mass of the ink lies at the
field's centre.  A drawing must go through the same steps before an MNIST model can
read it; a digit drawn large in a corner otherwise looks like nothing it has seen.
"""

from __future__ import annotations

import numpy as np

FIELD = 28  # pixels per side of an MNIST image
BOX = 20  # the ink is scaled to fit a BOX x BOX square inside the field
CENTRE = 14.0  # where MNIST puts the centre of mass (row and column, in pixels; measured)


def ink_bounds(image: np.ndarray, threshold: float = 0.1) -> tuple[slice, slice] | None:
    """Row and column slices of the smallest box holding every pixel above ``threshold``.

    Args:
        image: (H, W) float array scaled to [0, 1], ink bright.
        threshold: pixels at or below it count as background.

    Returns:
        ``(rows, cols)`` slices, or None when there is no ink.
    """
    rows = np.flatnonzero(image.max(axis=1) > threshold)
    cols = np.flatnonzero(image.max(axis=0) > threshold)
    if rows.size == 0:
        return None
    return slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)


def centre_of_mass(image: np.ndarray) -> tuple[float, float]:
    """(row, column) of the intensity-weighted mean position, in pixels; (H, W) input."""
    total = image.sum()
    if total <= 0:
        return (image.shape[0] - 1) / 2, (image.shape[1] - 1) / 2
    rows, cols = np.indices(image.shape)
    return float((rows * image).sum() / total), float((cols * image).sum() / total)


def to_mnist(image, threshold: float = 0.1) -> np.ndarray:
    """Preprocess a drawing the way MNIST's digits were made.

    Args:
        image: (H, W) or (H, W, 1) array of any numeric type, ink bright on a dark
            background (as the draw-a-digit canvas and MNIST store it). Any size.
        threshold: fraction of the brightest pixel below which a pixel is background
            when cropping (stray faint pixels do not stretch the box).

    Returns:
        (28, 28) float32 in [0, 1]: the ink cropped, scaled to fit 20 x 20 with its
        aspect ratio kept, and placed so that its centre of mass is at (14, 14), as in MNIST
        (as near as whole-pixel shifts allow without cutting the digit off).
        A blank image gives all zeros.
    """
    from PIL import Image

    a = np.asarray(image, dtype=np.float32)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim != 2:
        raise ValueError(
            f"to_mnist expects one grey image (H, W), got shape {a.shape}; "
            "for colour, convert to grey first (e.g. image.mean(axis=-1))"
        )
    out = np.zeros((FIELD, FIELD), np.float32)
    peak = float(a.max())
    if peak <= 0:
        return out
    a = np.clip(a / peak, 0, 1)
    bounds = ink_bounds(a, threshold)
    crop = a[bounds]
    h, w = crop.shape
    scale = BOX / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))  # PIL wants (width, height)
    # BILINEAR in PIL widens its kernel when shrinking, so it anti-aliases without ringing.
    patch = np.asarray(Image.fromarray(crop, mode="F").resize(size, Image.Resampling.BILINEAR), np.float32)
    patch = np.clip(patch / max(float(patch.max()), 1e-6), 0, 1)
    cy, cx = centre_of_mass(patch)
    top = int(np.clip(round(CENTRE - cy), 0, FIELD - patch.shape[0]))
    left = int(np.clip(round(CENTRE - cx), 0, FIELD - patch.shape[1]))
    out[top : top + patch.shape[0], left : left + patch.shape[1]] = patch
    return out


def enlarge(
    digit: np.ndarray, canvas: tuple[int, int] = (280, 280), scale: float = 8.0, offset: tuple[int, int] = (0, 0)
) -> np.ndarray:
    """Draw a 28 x 28 digit large and anywhere on a bigger canvas, as a learner might.

    Args:
        digit: (28, 28) image, ink bright, any scale.
        canvas: (height, width) of the result in pixels.
        scale: how many canvas pixels per digit pixel.
        offset: (row, column) of the digit's top-left corner on the canvas.

    Returns:
        (height, width) float32 in [0, 1]; ink that falls outside is cut off.
    """
    from PIL import Image

    d = np.asarray(digit, np.float32)
    d = d / max(float(d.max()), 1e-6)
    side = max(1, round(d.shape[0] * scale))
    big = np.asarray(Image.fromarray(d, mode="F").resize((side, side), Image.Resampling.BILINEAR), np.float32)
    out = np.zeros(canvas, np.float32)
    r, c = offset
    rows = slice(max(r, 0), min(r + side, canvas[0]))
    cols = slice(max(c, 0), min(c + side, canvas[1]))
    out[rows, cols] = big[rows.start - r : rows.stop - r, cols.start - c : cols.stop - c]
    return np.clip(out, 0, 1)
