"""Conv explorer (lesson 02): the arithmetic of convolution and pooling, animated.

A kernel steps over a zero-padded input while the output grid fills; the output-size
formula is shown with the current numbers, invalid settings are flagged with the
reason, and the result is checked against the output shape Keras gives for the same
layer.  After vdumoulin's conv_arithmetic animations and CNN Explainer's
hyperparameter view.

    from dlcourse.widgets.conv_explorer import ConvExplorer
    ConvExplorer(size=5, kernel=3, stride=2, padding=1)

The arithmetic (``geometry``) is plain Python; only ``keras_output_size`` imports
Keras, once, when the check first runs.
"""

from __future__ import annotations

import functools
import math
import textwrap
from dataclasses import dataclass

import numpy as np

from ._display import PngView, Visualizer, font, image_png

__all__ = ["ConvConfig", "Geometry", "geometry", "keras_output_size", "ConvExplorer"]

OPS = ("conv", "max", "avg")
PADDINGS = ("explicit", "valid", "same")


def _status_colour(line: str) -> str:
    """Red for an invalid setting, amber for a warning, else the page's own colour."""
    return "#b22222" if line.startswith("Invalid") else "#8a5a00" if line.startswith("Warning") else "inherit"


@dataclass(frozen=True)
class ConvConfig:
    """One layer on a square input.

    ``size`` W1 (input width = height, pixels), ``kernel`` F, ``stride`` S,
    ``padding`` P (zeros on each side; used when ``mode == "explicit"``), ``mode``
    "explicit" / "valid" (P = 0) / "same" (Keras picks P so that W2 = ceil(W1 / S)),
    ``dilation`` D (gaps between kernel taps, conv only), ``op`` "conv" / "max" / "avg".
    """

    size: int = 5
    kernel: int = 3
    stride: int = 1
    padding: int = 0
    mode: str = "explicit"
    dilation: int = 1
    op: str = "conv"


@dataclass(frozen=True)
class Geometry:
    """What a ``ConvConfig`` does to its input.

    ``effective_kernel`` F' = D (F - 1) + 1; ``pad_before`` / ``pad_after`` zeros on
    the top/left and bottom/right; ``output`` W2 (None when the kernel does not fit);
    ``exact`` whether (W1 + 2P - F') is a multiple of S (otherwise Keras floors and the
    last ``uncovered`` rows/columns are never seen); ``reason`` why the configuration
    is invalid or inexact (None when it is fine); ``formula`` the size formula with the
    numbers substituted.
    """

    config: ConvConfig
    effective_kernel: int
    pad_before: int
    pad_after: int
    output: int | None
    exact: bool
    uncovered: int
    reason: str | None
    formula: str

    @property
    def valid(self) -> bool:
        """True when the formula gives a whole number of at least 1."""
        return self.output is not None and self.exact

    @property
    def padded_size(self) -> int:
        return self.config.size + self.pad_before + self.pad_after


def geometry(config: ConvConfig) -> Geometry:
    """Output size and padding of ``config``, following Keras's rules.

    Output ``W2 = floor((W1 + P_before + P_after - F') / S) + 1`` with
    ``F' = D (F - 1) + 1``; for ``same``, ``W2 = ceil(W1 / S)`` and the padding total
    ``max((W2 - 1) S + F' - W1, 0)`` is split with the extra zero after (bottom/right),
    as TensorFlow does.  Raises ValueError for settings that are not layers at all
    (sizes below 1, negative padding, an unknown op or mode).
    """
    c = config
    for name in ("size", "kernel", "stride", "dilation"):
        if getattr(c, name) < 1:
            raise ValueError(f"{name} must be at least 1, got {getattr(c, name)}")
    if c.padding < 0:
        raise ValueError(f"padding must be 0 or more, got {c.padding}")
    if c.op not in OPS:
        raise ValueError(f"op must be one of {OPS}, got {c.op!r}")
    if c.mode not in PADDINGS:
        raise ValueError(f"mode must be one of {PADDINGS}, got {c.mode!r}")

    dilation = c.dilation if c.op == "conv" else 1
    fe = dilation * (c.kernel - 1) + 1
    kernel_text = f"F' = D(F-1)+1 = {dilation}({c.kernel}-1)+1 = {fe}; " if dilation > 1 else ""
    f_sym = "F'" if dilation > 1 else "F"

    if c.mode == "same":
        out = math.ceil(c.size / c.stride)
        total = max((out - 1) * c.stride + fe - c.size, 0)
        before, after = total // 2, total - total // 2
        formula = (
            f"{kernel_text}same: W2 = ceil(W1/S) = ceil({c.size}/{c.stride}) = {out}; "
            f"Keras pads {before} before and {after} after"
        )
        return Geometry(c, fe, before, after, out, True, 0, None, formula)

    p = c.padding if c.mode == "explicit" else 0
    span = c.size + 2 * p - fe
    p_text = f" + 2·{p}" if c.mode == "explicit" else ""
    p_sym = " + 2P" if c.mode == "explicit" else ""
    if span < 0:
        reason = (
            f"the {'dilated ' if dilation > 1 else ''}kernel ({f_sym} = {fe}) is larger than the "
            f"{'padded ' if p else ''}input ({c.size + 2 * p}): no position fits"
        )
        formula = f"{kernel_text}W2 = (W1 - {f_sym}{p_sym})/S + 1 = ({c.size} - {fe}{p_text})/{c.stride} + 1 < 1"
        return Geometry(c, fe, p, p, None, False, 0, reason, formula)
    out = span // c.stride + 1
    exact = span % c.stride == 0
    value = f"{span / c.stride + 1:g}" if exact else f"{span / c.stride + 1:.2f}"
    formula = f"{kernel_text}W2 = (W1 - {f_sym}{p_sym})/S + 1 = ({c.size} - {fe}{p_text})/{c.stride} + 1 = {value}"
    reason = None
    uncovered = span % c.stride
    if not exact:
        reason = (
            f"({c.size} - {fe}{p_text})/{c.stride} is not a whole number: the formula calls this "
            f"invalid; Keras floors it to W2 = {out} and the last {uncovered} row(s)/column(s) "
            "are never covered"
        )
        formula += f" → floor → {out}"
    return Geometry(c, fe, p, p, out, exact, uncovered, reason, formula)


@functools.lru_cache(maxsize=4096)
def keras_output_size(config: ConvConfig) -> int:
    """Output width Keras computes for the same layer on a (1, W1, W1, 1) input.

    Explicit padding P is a ``ZeroPadding2D(P)`` before a ``valid`` layer, as in
    Keras there is no other way to ask for it.  Raises ValueError when Keras rejects
    the configuration (e.g. strides > 1 with dilation > 1); the output may be 0 or
    negative when the kernel does not fit.
    """
    import keras

    c = config
    shape = (1, c.size, c.size, 1)
    mode = "same" if c.mode == "same" else "valid"
    if c.mode == "explicit" and c.padding:
        shape = keras.layers.ZeroPadding2D(c.padding).compute_output_shape(shape)
    if c.op == "conv":
        if c.stride > 1 and c.dilation > 1:
            raise ValueError("Keras's Conv2D does not support strides > 1 together with dilation_rate > 1")
        layer = keras.layers.Conv2D(1, c.kernel, strides=c.stride, padding=mode, dilation_rate=c.dilation)
    else:
        cls = keras.layers.MaxPooling2D if c.op == "max" else keras.layers.AveragePooling2D
        layer = cls(pool_size=c.kernel, strides=c.stride, padding=mode)
    return int(layer.compute_output_shape(shape)[1])


def _sample(size: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 10, size=(size, size)).astype(float)


# Colours: input cells, zero padding, the window, cells the window never covers;
# output cells done, current and to do.
INPUT, PAD, WINDOW, UNUSED = "#c7e0fa", "#e6e6e6", "#fd9e40", "#f9d9d9"
OUT_DONE, OUT_NOW, OUT_TODO = "#bae8bf", "#fd9e40", "#f7f7f7"
KERNEL_3x3 = np.array([[1, 0, -1], [1, 0, -1], [1, 0, -1]], float)


class ConvExplorer(Visualizer):
    """Interactive conv/pool arithmetic: sliders, play/step, formula, Keras check.

    ``ConvExplorer(**config)`` takes the fields of ``ConvConfig``.  Display it in a
    notebook; ``explorer.set(stride=2)`` changes settings from code, ``explorer.step()``
    advances the animation; ``explorer.status`` is the text shown under the picture.
    """

    MAX_SIZE = 12
    PANEL = 330  # pixels per grid panel

    def __init__(self, *, keras_check: bool = True, **config):
        self.config = ConvConfig(**config)
        self.frame = 0
        self.keras_check = keras_check
        self.view = PngView()
        self.status = ""
        self._draw()

    # --- state ------------------------------------------------------------------------

    @property
    def geometry(self) -> Geometry:
        return geometry(self.config)

    @property
    def n_frames(self) -> int:
        g = self.geometry
        return g.output**2 if g.output else 1

    def set(self, **changes) -> None:
        """Change settings (fields of ``ConvConfig``) and redraw from the first step."""
        self.config = ConvConfig(**{**self.config.__dict__, **changes})
        self.frame = 0
        self._draw()
        self._sync_controls()

    def step(self, n: int = 1) -> None:
        """Advance the animation by ``n`` output cells (wrapping around)."""
        self.show_frame((self.frame + n) % self.n_frames)

    def show_frame(self, frame: int) -> None:
        self.frame = int(frame) % self.n_frames
        self._draw()
        self._sync_controls()

    def window(self, frame: int | None = None) -> list[tuple[int, int]]:
        """Padded-input cells (row, col) under the kernel for output cell number ``frame``."""
        g = self.geometry
        if not g.output:
            return []
        i, j = divmod(self.frame if frame is None else frame, g.output)
        c = self.config
        d = c.dilation if c.op == "conv" else 1
        return [(i * c.stride + a * d, j * c.stride + b * d) for a in range(c.kernel) for b in range(c.kernel)]

    def padded_input(self) -> np.ndarray:
        """The sample input (digits 0-9) with its zero padding, ``(W1 + pads, W1 + pads)``."""
        g = self.geometry
        return np.pad(_sample(self.config.size), ((g.pad_before, g.pad_after),) * 2)

    def output_values(self) -> np.ndarray | None:
        """The layer's output on the sample input (conv uses a fixed edge kernel, no bias)."""
        g = self.geometry
        if not g.output:
            return None
        c = self.config
        x = self.padded_input()
        kernel = self._kernel()
        out = np.empty((g.output, g.output))
        for t in range(g.output**2):
            rows, cols = zip(*self.window(t))
            vals = x[list(rows), list(cols)].reshape(c.kernel, c.kernel)
            out.flat[t] = (vals * kernel).sum() if c.op == "conv" else vals.max() if c.op == "max" else vals.mean()
        return out

    def _kernel(self) -> np.ndarray:
        k = self.config.kernel
        if k == 3:
            return KERNEL_3x3
        return np.where(np.arange(k)[None, :] < k / 2, 1.0, -1.0) * np.ones((k, 1))

    def _keras_text(self, g: Geometry) -> str:
        if not self.keras_check:
            return ""
        try:
            got = keras_output_size(self.config)
        except ValueError as exc:
            first = str(exc).split(". ")[0].rstrip(".")
            return f"Keras rejects it too: {first}" if g.output is None else f"Keras: {first}"
        if g.output is None:
            return f"Keras {self._keras_layer()} → width {got}: {'rejected too' if got < 1 else 'DIFFERS'}"
        ok = "matches" if got == g.output else "DIFFERS"
        return f"Keras {self._keras_layer()} → width {got}: {ok}"

    def _keras_layer(self) -> str:
        c = self.config
        mode = "same" if c.mode == "same" else "valid"
        pad = f"ZeroPadding2D({c.padding}) + " if c.mode == "explicit" and c.padding else ""
        if c.op == "conv":
            dil = f", dilation_rate={c.dilation}" if c.dilation > 1 else ""
            return f"{pad}Conv2D(K, {c.kernel}, strides={c.stride}, padding='{mode}'{dil})"
        name = "MaxPooling2D" if c.op == "max" else "AveragePooling2D"
        return f"{pad}{name}({c.kernel}, strides={c.stride}, padding='{mode}')"

    # --- drawing ----------------------------------------------------------------------

    def status_lines(self) -> list[str]:
        g = self.geometry
        lines = [g.formula]
        if g.reason:
            lines.append(("Invalid: " if g.output is None else "Warning: ") + g.reason)
        keras_text = self._keras_text(g)
        if keras_text:
            lines.append(keras_text)
        values = self.output_values()
        if values is not None:
            i, j = divmod(self.frame, g.output)
            what = {"conv": "sum(window × kernel)", "max": "max(window)", "avg": "mean(window)"}[self.config.op]
            lines.append(f"Output cell ({i}, {j}) = {what} = {values[i, j]:.3g}")
        if self.config.op == "conv":
            lines.append("Depth D2 = K (one output channel per filter); parameters (F·F·D1)·K + K")
        else:
            lines.append("Depth D2 = D1; pooling has no parameters")
        return lines

    def render(self, with_status: bool = False):
        """The current picture as a PIL image (input grid left, output grid right)."""
        from PIL import Image, ImageDraw

        g, c = self.geometry, self.config
        n = g.padded_size
        cell = max(12, min(44, self.PANEL // max(n, 1)))
        top, gap, margin = 26, 40, 10
        status = [part for line in (self.status_lines() if with_status else []) for part in textwrap.wrap(line, 100)]
        grid = max(n * cell, (g.output or 0) * max(12, min(44, self.PANEL // max(g.output or 1, 1))), 60)
        width = 2 * margin + gap + 2 * self.PANEL
        height = top + grid + margin + 18 * len(status)
        img = Image.new("RGB", (width, height), "white")
        draw = ImageDraw.Draw(img)
        small, title = font(max(9, min(16, cell // 2))), font(13)

        x = self.padded_input()
        window = set(self.window())
        op_name = {"conv": "convolution", "max": "max pooling", "avg": "average pooling"}[c.op]
        draw.text((margin, 4), f"input {c.size}×{c.size}, padded to {n}×{n} ({op_name})", fill="black", font=title)
        for r in range(n):
            for col in range(n):
                inside = g.pad_before <= r < g.pad_before + c.size and g.pad_before <= col < g.pad_before + c.size
                colour = WINDOW if (r, col) in window else INPUT if inside else PAD
                if (
                    g.output
                    and g.uncovered
                    and (r >= n - g.uncovered or col >= n - g.uncovered)
                    and (r, col) not in window
                ):
                    colour = UNUSED
                x0, y0 = margin + col * cell, top + r * cell
                draw.rectangle([x0, y0, x0 + cell - 2, y0 + cell - 2], fill=colour)
                if cell >= 16:
                    draw.text(
                        (x0 + cell / 2 - 1, y0 + cell / 2 - 1),
                        f"{x[r, col]:.0f}",
                        fill="#555555",
                        font=small,
                        anchor="mm",
                    )

        left = margin + self.PANEL + gap
        if g.output:
            m = g.output
            values = self.output_values()
            ocell = max(12, min(44, self.PANEL // m))
            draw.text((left, 4), f"output {m}×{m}: cell {self.frame + 1} of {m * m}", fill="black", font=title)
            osmall = font(max(9, min(14, ocell // 3)))
            for t in range(m * m):
                i, j = divmod(t, m)
                colour = OUT_NOW if t == self.frame else OUT_DONE if t < self.frame else OUT_TODO
                x0, y0 = left + j * ocell, top + i * ocell
                draw.rectangle([x0, y0, x0 + ocell - 2, y0 + ocell - 2], fill=colour)
                if t <= self.frame and ocell >= 16:
                    draw.text(
                        (x0 + ocell / 2 - 1, y0 + ocell / 2 - 1),
                        f"{values[i, j]:.3g}",
                        fill="black",
                        font=osmall,
                        anchor="mm",
                    )
        else:
            draw.text((left, 4), "output", fill="black", font=title)
            draw.text(
                (left + self.PANEL / 2, top + grid / 2),
                "no output:\nthe kernel does not fit",
                fill="#b22222",
                font=font(15),
                anchor="mm",
                align="center",
            )
        for k, line in enumerate(status):
            colour = "#b22222" if line.startswith("Invalid") else "#8a5a00" if line.startswith("Warning") else "black"
            draw.text((margin, top + grid + margin + 18 * k), line, fill=colour, font=font(12))
        return img

    def static_png(self) -> bytes:
        return image_png(self.render(with_status=True))

    def _draw(self) -> None:
        lines = self.status_lines()
        self.status = "\n".join(lines)
        self.view.update(image_png(self.render()))
        if self._widget is not None:
            self._status_html.value = "<br>".join(
                f"<span style='color:{_status_colour(line)}'>{line}</span>" for line in lines
            )

    # --- widget -----------------------------------------------------------------------

    def _build_widget(self):
        import ipywidgets as w

        c = self.config
        style = {"description_width": "90px"}
        slider = dict(continuous_update=True, style=style, layout=w.Layout(width="260px"))
        self._controls = {
            "size": w.IntSlider(c.size, 1, self.MAX_SIZE, description="input W1", **slider),
            "kernel": w.IntSlider(c.kernel, 1, 7, description="kernel F", **slider),
            "stride": w.IntSlider(c.stride, 1, 4, description="stride S", **slider),
            "padding": w.IntSlider(c.padding, 0, 4, description="padding P", **slider),
            "dilation": w.IntSlider(c.dilation, 1, 3, description="dilation D", **slider),
            "mode": w.ToggleButtons(
                options=PADDINGS, value=c.mode, description="padding", style={"button_width": "70px", **style}
            ),
            "op": w.ToggleButtons(
                options=[("conv", "conv"), ("max pool", "max"), ("avg pool", "avg")],
                value=c.op,
                description="layer",
                style={"button_width": "84px", **style},
            ),
        }
        self._frame_slider = w.IntSlider(0, 0, max(self.n_frames - 1, 0), description="step", **slider)
        self._play = w.Play(value=0, min=0, max=max(self.n_frames - 1, 0), interval=400, description="play")
        w.jslink((self._play, "value"), (self._frame_slider, "value"))
        step = w.Button(description="step ▶", layout=w.Layout(width="80px"))
        step.on_click(lambda _: self.step())
        self._status_html = w.HTML()
        self._syncing = False

        def on_setting(change):
            if not self._syncing:
                self.set(**{name: ctl.value for name, ctl in self._controls.items()})

        def on_frame(change):
            if not self._syncing:
                self.show_frame(change["new"])

        for ctl in self._controls.values():
            ctl.observe(on_setting, names="value")
        self._frame_slider.observe(on_frame, names="value")

        ctl = self._controls
        left = w.VBox([ctl["size"], ctl["kernel"], ctl["stride"], ctl["padding"], ctl["dilation"]])
        right = w.VBox([ctl["mode"], ctl["op"], w.HBox([self._play, step]), self._frame_slider])
        box = w.VBox([w.HBox([left, right]), self.view.widget, self._status_html])
        self._widget = box
        self._draw()
        self._sync_controls()
        return box

    def _sync_controls(self) -> None:
        if self._widget is None:
            return
        self._syncing = True
        try:
            last = max(self.n_frames - 1, 0)
            self._frame_slider.max = self._play.max = last
            self._frame_slider.value = self.frame
            ctl = self._controls
            ctl["padding"].disabled = self.config.mode != "explicit"
            ctl["dilation"].disabled = self.config.op != "conv"
            for name, control in ctl.items():
                control.value = getattr(self.config, name)
        finally:
            self._syncing = False

    def __repr__(self) -> str:
        return f"ConvExplorer({self.config})\n{self.status}"
