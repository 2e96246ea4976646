"""Draw a digit with the mouse and watch a model read it (lesson 06).

The canvas is an ``ipycanvas.Canvas`` (a JupyterLab 4 / ipywidgets 8 extension that
ships inside its wheel, so it works offline).  Every stroke is drawn twice: on the
canvas in the browser, and into a PIL image in the kernel that is the drawing's
pixels.  That image goes through ``dlcourse.digits.to_mnist`` (crop, fit 20 x 20,
centre by mass in 28 x 28) and into the model; the preview and the ten class
probabilities update while you draw (at most every ``interval`` seconds) and when
the stroke ends.
"""

from __future__ import annotations

import time

import numpy as np

from .. import digits
from ._display import PngView, Visualizer, font, image_png

_BAR = "#4c72b0"
_TOP = "#dd8452"


def _as_model(model):
    if isinstance(model, (str, bytes)) or hasattr(model, "__fspath__"):
        from ..project import load_saved_model

        return load_saved_model(model)
    return model


class DrawDigit(Visualizer):
    """Draw on a black canvas; see the MNIST-style 28 x 28 image and the model's probabilities.

    Args:
        model: a Keras model taking (N, 28, 28, 1) images in [0, 1] (or (N, 28, 28) or
            (N, 784); the input is reshaped to what the model declares) and returning
            (N, 10) probabilities, or the path of a saved ``.keras`` file.
        size: canvas side in pixels.
        pen: stroke width in canvas pixels (about 2 MNIST pixels at the default size).
        interval: seconds between live predictions while the mouse moves.
    """

    def __init__(self, model, size: int = 280, pen: int = 22, interval: float = 0.12):
        from PIL import Image, ImageDraw

        self.model = _as_model(model)
        self.size, self.pen, self.interval = size, pen, interval
        self._pixels = Image.new("L", (size, size), 0)
        self._pen = ImageDraw.Draw(self._pixels)
        self.strokes: list[list[tuple[float, float]]] = []
        self._down = False
        self._last_predict = 0.0
        self.view = PngView()
        self.digit = np.zeros((digits.FIELD, digits.FIELD), np.float32)
        self.probabilities = np.full(10, np.nan)
        self.latency = float("nan")  # seconds of the last preprocess + predict + redraw
        self._refresh()

    # -- drawing ---------------------------------------------------------------------
    @property
    def image(self) -> np.ndarray:
        """The drawing's pixels: (size, size) uint8, ink 255 on 0."""
        return np.asarray(self._pixels)

    def _dot(self, x: float, y: float) -> None:
        r = self.pen / 2
        self._pen.ellipse((x - r, y - r, x + r, y + r), fill=255)

    def start(self, x: float, y: float) -> None:
        """Begin a stroke at canvas pixel (x, y)."""
        self._down = True
        self.strokes.append([(x, y)])
        self._dot(x, y)
        if self._canvas is not None:
            self._canvas.fill_circle(x, y, self.pen / 2)

    def move(self, x: float, y: float) -> None:
        """Extend the current stroke to (x, y); predicts at most every ``interval`` s."""
        if not self._down:
            return
        x0, y0 = self.strokes[-1][-1]
        self.strokes[-1].append((x, y))
        self._pen.line((x0, y0, x, y), fill=255, width=self.pen)
        self._dot(x, y)  # round joints, as the canvas's round line caps draw them
        if self._canvas is not None:
            self._canvas.stroke_line(x0, y0, x, y)
        if time.perf_counter() - self._last_predict >= self.interval:
            self._refresh()

    def end(self, x: float | None = None, y: float | None = None) -> None:
        """Finish the stroke (mouse up or leaving the canvas) and update everything."""
        if not self._down:
            return
        if x is not None:
            self.move(x, y)
        self._down = False
        self._refresh()

    def draw(self, strokes) -> DrawDigit:
        """Draw strokes given as lists of (x, y) canvas points, as if with the mouse."""
        for stroke in strokes:
            (x, y), *rest = stroke
            self.start(x, y)
            for x, y in rest:
                self.move(x, y)
            self.end()
        return self

    def draw_image(self, image) -> DrawDigit:
        """Replace the drawing with a (size, size) image (ink bright), e.g. ``digits.enlarge(...)``."""
        from PIL import Image

        a = np.asarray(image, np.float32)
        a = np.clip(a / max(float(a.max()), 1e-6), 0, 1) * 255
        self.clear(refresh=False)
        self._pixels.paste(Image.fromarray(a.astype(np.uint8), mode="L"))
        from PIL import ImageDraw

        self._pen = ImageDraw.Draw(self._pixels)
        if self._canvas is not None:
            self._canvas.put_image_data(np.repeat(a.astype(np.uint8)[..., None], 3, axis=-1), 0, 0)
        self._refresh()
        return self

    def clear(self, refresh: bool = True) -> None:
        """Erase the drawing."""
        self._pixels.paste(0, (0, 0, self.size, self.size))
        self.strokes = []
        self._down = False
        if self._canvas is not None:
            self._paint_background()
        if refresh:
            self._refresh()

    # -- model -----------------------------------------------------------------------
    def _predict(self, digit: np.ndarray) -> np.ndarray:
        shape = tuple(self.model.inputs[0].shape[1:]) if getattr(self.model, "inputs", None) else (28, 28, 1)
        x = digit.reshape((1,) + tuple(int(d) for d in shape))
        p = np.asarray(self.model(x, training=False), np.float64).reshape(-1)
        if p.min() < 0 or abs(p.sum() - 1) > 1e-3:  # logits: turn them into probabilities
            p = np.exp(p - p.max())
            p /= p.sum()
        return p

    def _refresh(self) -> None:
        start = time.perf_counter()
        self.digit = digits.to_mnist(self.image)
        if self.digit.any():
            self.probabilities = self._predict(self.digit)
        else:
            self.probabilities = np.full(10, np.nan)
        self.view.update(image_png(self._preview()))
        if self._widget is not None:
            self._bars.value = self._bars_markup()
        self._last_predict = time.perf_counter()
        self.latency = self._last_predict - start

    @property
    def prediction(self) -> int | None:
        """The most probable class, or None while the canvas is empty."""
        return None if np.isnan(self.probabilities).all() else int(np.argmax(self.probabilities))

    def status(self) -> str:
        if self.prediction is None:
            return "draw a digit"
        return f"prediction {self.prediction} ({self.probabilities[self.prediction]:.0%})"

    # -- pictures ----------------------------------------------------------------------
    def _preview(self, scale: int = 6):
        """The 28 x 28 input the model sees, enlarged, with a grid every 4 pixels."""
        from PIL import Image, ImageDraw

        side = digits.FIELD * scale
        img = Image.fromarray((self.digit * 255).astype(np.uint8), mode="L").resize(
            (side, side), Image.Resampling.NEAREST
        )
        img = img.convert("RGB")
        draw = ImageDraw.Draw(img)
        lo, hi = (digits.FIELD - digits.BOX) // 2 * scale, (digits.FIELD + digits.BOX) // 2 * scale
        draw.rectangle((lo, lo, hi - 1, hi - 1), outline=(70, 70, 110))  # the 20 x 20 box
        c = digits.CENTRE * scale + scale / 2
        draw.line((c - 5, c, c + 5, c), fill=(220, 80, 80))
        draw.line((c, c - 5, c, c + 5), fill=(220, 80, 80))
        return img

    def _bars_markup(self) -> str:
        rows = []
        top = self.prediction
        for k in range(10):
            p = 0.0 if np.isnan(self.probabilities[k]) else float(self.probabilities[k])
            color = _TOP if k == top else _BAR
            rows.append(
                f"<div style='display:flex;align-items:center;gap:6px;height:20px'>"
                f"<b style='width:12px'>{k}</b>"
                f"<div style='width:180px;background:#eee;height:14px'>"
                f"<div style='width:{p * 100:.1f}%;background:{color};height:14px'></div></div>"
                f"<span style='width:44px;text-align:right;font-family:monospace'>{p:.0%}</span></div>"
            )
        return f"<div><b>{self.status()}</b>{''.join(rows)}</div>"

    def render(self):
        """One PIL picture of the state: drawing, model input, probabilities (the static fallback)."""
        from PIL import Image, ImageDraw

        pad, bar_w = 16, 200
        drawing = Image.fromarray(self.image, mode="L").resize((168, 168), Image.Resampling.BILINEAR).convert("RGB")
        preview = self._preview()
        width = pad * 4 + 168 + preview.width + bar_w + 56
        height = pad * 2 + 24 + 168
        img = Image.new("RGB", (width, height), "white")
        draw = ImageDraw.Draw(img)
        f = font(13)
        x = pad
        for title, pic in (("your drawing", drawing), ("model input, 28 x 28", preview)):
            draw.text((x, pad), title, fill="black", font=f)
            img.paste(pic, (x, pad + 22))
            x += pic.width + pad
        draw.text((x, pad), self.status(), fill="black", font=f)
        for k in range(10):
            p = 0.0 if np.isnan(self.probabilities[k]) else float(self.probabilities[k])
            y = pad + 24 + k * 16
            draw.text((x, y), str(k), fill="black", font=f)
            draw.rectangle((x + 14, y + 2, x + 14 + bar_w, y + 13), fill=(235, 235, 235))
            if round(p * bar_w) > 0:
                draw.rectangle(
                    (x + 14, y + 2, x + 14 + round(p * bar_w), y + 13), fill=_TOP if k == self.prediction else _BAR
                )
            draw.text((x + 20 + bar_w, y), f"{p:.0%}", fill="black", font=f)
        return img

    def static_png(self) -> bytes:
        return image_png(self.render())

    # -- widget ----------------------------------------------------------------------
    _canvas = None

    def _paint_background(self) -> None:
        c = self._canvas
        c.fill_style = "black"
        c.fill_rect(0, 0, self.size, self.size)
        c.fill_style = "white"
        c.stroke_style = "white"
        c.line_width = self.pen
        c.line_cap = "round"
        c.line_join = "round"

    def _replay(self, *_) -> None:
        """Redraw the drawing on a (re)connected canvas, from the kernel's pixels."""
        from ipycanvas import hold_canvas

        with hold_canvas(self._canvas):
            self._paint_background()
            if self.image.any():
                self._canvas.put_image_data(np.repeat(self.image[..., None], 3, axis=-1), 0, 0)

    def _build_widget(self):
        import ipywidgets as widgets
        from ipycanvas import Canvas

        self._canvas = Canvas(
            width=self.size, height=self.size, layout=widgets.Layout(width=f"{self.size}px", height=f"{self.size}px")
        )
        self._canvas.on_client_ready(self._replay)
        self._canvas.on_mouse_down(self.start)
        self._canvas.on_mouse_move(self.move)
        self._canvas.on_mouse_up(self.end)
        self._canvas.on_mouse_out(self.end)
        self._canvas.on_touch_start(lambda touches: self.start(*touches[0]))
        self._canvas.on_touch_move(lambda touches: self.move(*touches[0]))
        self._canvas.on_touch_end(lambda touches: self.end())
        self._replay()
        clear = widgets.Button(description="Clear", icon="eraser", tooltip="erase the drawing")
        clear.on_click(lambda _: self.clear())
        self._bars = widgets.HTML(self._bars_markup())
        preview = widgets.VBox([widgets.HTML("<b>what the model sees (28 x 28)</b>"), self.view.widget])
        drawing = widgets.VBox([widgets.HTML("<b>draw a digit here</b>"), self._canvas, clear])
        return widgets.HBox([drawing, preview, self._bars], layout=widgets.Layout(gap="16px", align_items="flex-start"))

    def __repr__(self) -> str:
        return f"DrawDigit({self.status()})"
