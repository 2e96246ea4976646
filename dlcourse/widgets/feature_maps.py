"""Feature-map explorer (lesson 03): what each layer of a CNN sees, and why.

After CNN Explainer, but for any Keras CNN you pass in, your own included: pick an
image and a layer to see every activation map and the layer's filters; pick one map
and a position to see the kernel and the input window that produced that value, with
the arithmetic.

    from dlcourse.widgets.feature_maps import FeatureMapExplorer
    FeatureMapExplorer(model, x_test[:20])

The logic (``spatial_layers``, ``feature_maps``, ``explain``) works without widgets.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import numpy as np

from ._display import PngView, Visualizer

__all__ = ["spatial_layers", "feature_maps", "explain", "Explanation", "FeatureMapExplorer"]


def _require_graph(model):
    try:
        inputs = model.inputs
    except (AttributeError, ValueError):
        inputs = None
    if not inputs:
        raise ValueError(
            "the model has no defined input: build it with keras.Input(shape=...) as its first "
            "layer (or call it once on data) before exploring it"
        )
    return inputs[0] if len(inputs) == 1 else inputs


def spatial_layers(model) -> list[str]:
    """Names of the layers whose output is a stack of maps, shape (N, H, W, C)."""
    _require_graph(model)
    import keras

    return [
        layer.name
        for layer in model.layers
        if not isinstance(layer, keras.layers.InputLayer) and len(layer.output.shape) == 4
    ]


_submodels: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _submodel(model, layer_name: str, end: str):
    """A sub-model from the model's input to a layer's ``end`` ("input" or "output"), cached."""
    import keras

    cache = _submodels.setdefault(model, {})
    key = (layer_name, end)
    if key not in cache:
        layer = model.get_layer(layer_name)
        cache[key] = keras.Model(_require_graph(model), getattr(layer, end))
    return cache[key]


def feature_maps(model, layer_name: str, images) -> np.ndarray:
    """Output of layer ``layer_name`` for ``images`` (N, H, W, C), via a Keras sub-model.

    Returns an array of shape (N, H', W', C') (the layer's activation maps).
    """
    return np.asarray(_submodel(model, layer_name, "output")(np.asarray(images, np.float32), training=False))


def _layer_input(model, layer_name: str, images) -> np.ndarray:
    return np.asarray(_submodel(model, layer_name, "input")(np.asarray(images, np.float32), training=False))


@dataclass
class Explanation:
    """How one value of one map came about.

    ``window`` (F_h, F_w, D_in) is the layer's input under the kernel (zero padding
    included); ``kernel`` (F_h, F_w, D_in) the filter's weights (None for pooling);
    ``bias``; ``pre_activation`` = sum(window * kernel) + bias (or the pooled value);
    ``value`` after the layer's activation, equal to ``map_value`` read from the map;
    ``top_left`` the window's first cell in the (unpadded) input, possibly negative
    where it starts in the padding; ``step`` the distance between taps (dilation).
    """

    layer: str
    kind: str
    channel: int
    row: int
    col: int
    window: np.ndarray
    kernel: np.ndarray | None
    bias: float
    pre_activation: float
    activation: str
    value: float
    map_value: float
    top_left: tuple[int, int]
    step: int

    def arithmetic(self, in_channel: int = 0) -> str:
        """The computation as text, spelling out one input channel's products."""
        if self.kind != "conv":
            op = "max" if self.kind == "max" else "mean"
            return f"{op} of the {self.window.shape[0]}×{self.window.shape[1]} window in channel {self.channel} = {self.value:.4g}"
        w, k = self.window[..., in_channel], self.kernel[..., in_channel]
        terms = " + ".join(f"{a:.2f}·{b:.2f}" for a, b in zip(w.ravel(), k.ravel()))
        if w.size > 9:
            terms = " + ".join(f"{a:.2f}·{b:.2f}" for a, b in zip(w.ravel()[:6], k.ravel()[:6])) + " + …"
        one = float((w * k).sum())
        lines = [f"input channel {in_channel}: {terms} = {one:.4g}"]
        depth = self.window.shape[-1]
        if depth > 1:
            lines.append(f"all {depth} input channels: Σ window × kernel = {self.pre_activation - self.bias:.4g}")
        lines.append(f"+ bias {self.bias:.4g} = {self.pre_activation:.4g}")
        if self.activation != "linear":
            lines.append(f"{self.activation}({self.pre_activation:.4g}) = {self.value:.4g}")
        lines.append(f"value in map {self.channel} at ({self.row}, {self.col}): {self.map_value:.4g}")
        return "\n".join(lines)


def _same_padding(size: int, kernel: int, stride: int, dilation: int) -> int:
    effective = dilation * (kernel - 1) + 1
    out = -(-size // stride)
    return max((out - 1) * stride + effective - size, 0) // 2


def explain(model, layer_name: str, image, channel: int, row: int, col: int) -> Explanation:
    """Recompute value (row, col) of map ``channel`` of a Conv2D or pooling layer by hand.

    ``image`` is one input, shape (H, W, C).  Raises ValueError for other layer kinds.
    """
    import keras

    layer = model.get_layer(layer_name)
    x = _layer_input(model, layer_name, np.asarray(image)[None])[0]
    maps = feature_maps(model, layer_name, np.asarray(image)[None])[0]
    if isinstance(layer, keras.layers.Conv2D) and type(layer).__name__ == "Conv2D":
        kind = "conv"
        fh, fw = layer.kernel_size
        dilation = layer.dilation_rate[0]
    elif isinstance(layer, (keras.layers.MaxPooling2D, keras.layers.AveragePooling2D)):
        kind = "max" if isinstance(layer, keras.layers.MaxPooling2D) else "avg"
        fh, fw = layer.pool_size
        dilation = 1
    else:
        raise ValueError(f"layer {layer_name!r} ({type(layer).__name__}) is not a Conv2D or pooling layer")
    sh, sw = layer.strides
    if layer.padding == "same":
        ph, pw = _same_padding(x.shape[0], fh, sh, dilation), _same_padding(x.shape[1], fw, sw, dilation)
    else:
        ph = pw = 0
    top, left = row * sh - ph, col * sw - pw
    rows = top + dilation * np.arange(fh)
    cols = left + dilation * np.arange(fw)
    inside = (rows[:, None] >= 0) & (rows[:, None] < x.shape[0]) & (cols[None, :] >= 0) & (cols[None, :] < x.shape[1])
    window = np.zeros((fh, fw, x.shape[2]), np.float64)
    rr, cc = np.clip(rows, 0, x.shape[0] - 1), np.clip(cols, 0, x.shape[1] - 1)
    window[:] = x[rr[:, None], cc[None, :]]
    if kind == "conv":
        window[~inside] = 0.0  # zero padding
        kernel = np.asarray(layer.kernel)[:, :, :, channel].astype(np.float64)
        bias = float(np.asarray(layer.bias)[channel]) if layer.use_bias else 0.0
        pre = float((window * kernel).sum() + bias)
        activation = layer.activation.__name__
        value = float(np.asarray(layer.activation(np.array([pre], np.float32)))[0])
        window_c = window
    else:
        kernel, bias, activation = None, 0.0, "linear"
        vals = window[..., channel][inside]  # Keras pools over the real cells only
        pre = value = float(vals.max() if kind == "max" else vals.mean())
        window_c = np.where(inside[..., None], window, np.nan)
    return Explanation(
        layer_name,
        kind,
        channel,
        row,
        col,
        window_c,
        kernel,
        bias,
        pre,
        activation,
        value,
        float(maps[row, col, channel]),
        (int(top), int(left)),
        int(dilation),
    )


def _mosaic(maps: np.ndarray, columns: int, pad: int = 1) -> tuple[np.ndarray, int]:
    """Tile (H, W, C) maps into one image, each map scaled to [0, 1] on its own."""
    h, w, c = maps.shape
    columns = max(1, min(columns, c))
    rows = -(-c // columns)
    out = np.full((rows * (h + pad) - pad, columns * (w + pad) - pad), np.nan)
    for k in range(c):
        m = maps[..., k]
        span = np.ptp(m)
        i, j = divmod(k, columns)
        out[i * (h + pad) : i * (h + pad) + h, j * (w + pad) : j * (w + pad) + w] = (
            (m - m.min()) / span if span > 0 else 0.0
        )
    return out, columns


class FeatureMapExplorer(Visualizer):
    """Browse a CNN's activation maps and filters, and the arithmetic behind one value.

    ``FeatureMapExplorer(model, images)`` with ``images`` (N, H, W, C) as the model
    expects.  From code: ``set(image=3, layer="conv2d_1", channel=5, row=4, col=7)``.
    """

    MAX_MAPS = 64

    def __init__(self, model, images, *, image: int = 0, layer: str | None = None, labels=None):
        self.model = model
        self.images = np.asarray(images, np.float32)
        if self.images.ndim != 4:
            raise ValueError(f"images must be a batch (N, H, W, C), got shape {self.images.shape}")
        self.labels = labels
        self.layers = spatial_layers(model)
        if not self.layers:
            raise ValueError("the model has no layer with 2-D maps (N, H, W, C) to show")
        self.state = {
            "image": image,
            "layer": layer or self.layers[0],
            "channel": 0,
            "row": 0,
            "col": 0,
            "show": "maps",
        }
        self.view = PngView()
        self._figure = None
        self._maps_cache = {}
        # Start on the strongest response of the first map: a window with something in it.
        first = self.maps()[..., 0]
        self.state["row"], self.state["col"] = (int(v) for v in np.unravel_index(np.argmax(first), first.shape))
        self._draw()

    def maps(self) -> np.ndarray:
        """The selected layer's maps for the selected image, (H', W', C')."""
        key = (self.state["image"], self.state["layer"])
        if key not in self._maps_cache:
            self._maps_cache = {key: feature_maps(self.model, key[1], self.images[key[0] : key[0] + 1])[0]}
        return self._maps_cache[key]

    def explanation(self) -> Explanation | None:
        s = self.state
        try:
            return explain(self.model, s["layer"], self.images[s["image"]], s["channel"], s["row"], s["col"])
        except ValueError:
            return None

    def set(self, **changes) -> None:
        unknown = set(changes) - set(self.state)
        if unknown:
            raise TypeError(f"unknown setting(s): {sorted(unknown)}")
        if "layer" in changes and changes["layer"] not in self.layers:
            raise ValueError(f"layer must be one of {self.layers}, got {changes['layer']!r}")
        self.state.update(changes)
        h, w, c = self.maps().shape
        s = self.state
        s["channel"], s["row"], s["col"] = min(s["channel"], c - 1), min(s["row"], h - 1), min(s["col"], w - 1)
        self._draw()
        self._sync_controls()

    def status(self) -> str:
        s, m = self.state, self.maps()
        value = m[s["row"], s["col"], s["channel"]]
        head = (
            f"layer {s['layer']}: {m.shape[2]} maps of {m.shape[0]}×{m.shape[1]}; "
            f"map {s['channel']} at ({s['row']}, {s['col']}) = {value:.4g}"
        )
        e = self.explanation()
        return head + (
            "\n" + e.arithmetic() if e is not None else "\n(the arithmetic is shown for Conv2D and pooling layers)"
        )

    def render_figure(self):
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.patches import Rectangle

        if self._figure is None:
            self._figure = Figure(figsize=(10, 4.6), dpi=72)
            FigureCanvasAgg(self._figure)
        fig = self._figure
        fig.clear()
        grid = fig.add_gridspec(2, 4, width_ratios=[1, 1, 1, 2.6], height_ratios=[1, 1])
        s, m = self.state, self.maps()
        e = self.explanation()
        ax_img = fig.add_subplot(grid[0, 0])
        image = self.images[s["image"]]
        ax_img.imshow(image if image.shape[-1] == 3 else image[..., 0], cmap="gray_r")
        title = f"image {s['image']}"
        if self.labels is not None:
            title += f" (label {self.labels[s['image']]})"
        ax_img.set_title(title, fontsize=9)
        ax_in = fig.add_subplot(grid[1, 0])
        layer_input = _layer_input(self.model, s["layer"], self.images[s["image"] : s["image"] + 1])[0]
        shown_channel = 0 if e is None or e.kind == "conv" else s["channel"]
        ax_in.imshow(layer_input[..., shown_channel], cmap="gray_r")
        ax_in.set_title(f"layer input, channel {shown_channel}", fontsize=9)
        if e is not None:
            fh, fw = e.window.shape[:2]
            ax_in.add_patch(
                Rectangle(
                    (e.top_left[1] - 0.5, e.top_left[0] - 0.5),
                    (fw - 1) * e.step + 1,
                    (fh - 1) * e.step + 1,
                    fill=False,
                    edgecolor="tab:orange",
                    linewidth=2,
                )
            )
        ax_k = fig.add_subplot(grid[0, 1])
        if e is not None and e.kind == "conv":
            k = e.kernel[..., 0]
            lim = np.abs(k).max() or 1
            ax_k.imshow(k, cmap="RdBu_r", vmin=-lim, vmax=lim)
            if k.size <= 25:
                for (i, j), v in np.ndenumerate(k):
                    ax_k.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7)
            ax_k.set_title(f"kernel {s['channel']}, input ch. 0", fontsize=9)
        else:
            ax_k.text(
                0.5, 0.5, "no kernel\n(not Conv2D)", ha="center", va="center", fontsize=9, transform=ax_k.transAxes
            )
        ax_w = fig.add_subplot(grid[1, 1])
        if e is not None:
            wv = e.window[..., 0 if e.kind == "conv" else s["channel"]]
            ax_w.imshow(wv, cmap="gray_r")
            if wv.size <= 25:
                for (i, j), v in np.ndenumerate(wv):
                    ax_w.text(
                        j,
                        i,
                        "pad" if np.isnan(v) else f"{v:.2f}",
                        ha="center",
                        va="center",
                        fontsize=7,
                        color="tab:red",
                    )
            ax_w.set_title("input window", fontsize=9)
        ax_map = fig.add_subplot(grid[:, 2])
        ax_map.imshow(m[..., s["channel"]], cmap="viridis")
        ax_map.add_patch(Rectangle((s["col"] - 0.5, s["row"] - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=2))
        ax_map.set_title(f"map {s['channel']}: value {m[s['row'], s['col'], s['channel']]:.3g}", fontsize=9)
        ax_all = fig.add_subplot(grid[:, 3])
        layer = self.model.get_layer(s["layer"])
        if s["show"] == "filters" and hasattr(layer, "kernel") and len(layer.kernel.shape) == 4:
            kernels = np.asarray(layer.kernel)[:, :, 0, : self.MAX_MAPS]
            tiles, columns = _mosaic(kernels, 8)
            ax_all.imshow(tiles, cmap="RdBu_r")
            ax_all.set_title(f"{s['layer']}: filters (input channel 0)", fontsize=9)
            size = kernels.shape[:2]
        else:
            tiles, columns = _mosaic(m[..., : self.MAX_MAPS], 8)
            ax_all.imshow(tiles, cmap="viridis")
            ax_all.set_title(
                f"{s['layer']}: all {m.shape[2]} maps"
                + (f" (first {self.MAX_MAPS})" if m.shape[2] > self.MAX_MAPS else ""),
                fontsize=9,
            )
            size = m.shape[:2]
        if s["channel"] < self.MAX_MAPS:
            i, j = divmod(s["channel"], columns)
            ax_all.add_patch(
                Rectangle(
                    (j * (size[1] + 1) - 1, i * (size[0] + 1) - 1),
                    size[1] + 1,
                    size[0] + 1,
                    fill=False,
                    edgecolor="red",
                    linewidth=2,
                )
            )
        for ax in fig.axes:
            ax.set_xticks([])
            ax.set_yticks([])
        fig.subplots_adjust(left=0.01, right=0.99, top=0.92, bottom=0.02, wspace=0.08, hspace=0.25)
        return fig

    def _status_markup(self) -> str:
        return "<pre style='font-size:12px'>" + self.status() + "</pre>"

    def _build_widget(self):
        import ipywidgets as w

        s = self.state
        m = self.maps()
        style = {"description_width": "60px"}
        c = {
            "image": w.IntSlider(s["image"], 0, len(self.images) - 1, description="image", style=style),
            "layer": w.Dropdown(options=self.layers, value=s["layer"], description="layer", style=style),
            "channel": w.IntSlider(s["channel"], 0, m.shape[2] - 1, description="map", style=style),
            "row": w.IntSlider(s["row"], 0, m.shape[0] - 1, description="row", style=style),
            "col": w.IntSlider(s["col"], 0, m.shape[1] - 1, description="column", style=style),
            "show": w.ToggleButtons(options=["maps", "filters"], value=s["show"], description="show", style=style),
        }
        self._text = w.HTML()
        self._bind(c)
        controls = w.HBox([w.VBox([c["image"], c["layer"], c["show"]]), w.VBox([c["channel"], c["row"], c["col"]])])
        self._widget = w.VBox([controls, self.view.widget, self._text])
        self._draw()
        return self._widget

    def _sync_controls(self) -> None:
        if self._widget is not None:
            h, wd, ch = self.maps().shape
            c = self._controls
            self._syncing = True
            try:
                c["channel"].max, c["row"].max, c["col"].max = ch - 1, h - 1, wd - 1
            finally:
                self._syncing = False
        super()._sync_controls()

    def __repr__(self) -> str:
        return f"FeatureMapExplorer({self.model.name})\n{self.status()}"
