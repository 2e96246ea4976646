"""How visualizers show themselves: a PNG in an ipywidgets ``Image``, updated in place.

Rendering to PNG in the kernel needs no front-end extension beyond ipywidgets, so
the visualizers work offline in any JupyterLab 4, and the same PNG is the static
fallback where widgets cannot run (GitHub, nbconvert exports).
"""

from __future__ import annotations

import base64
import functools
import io


class PngView:
    """The picture a visualizer shows: PNG bytes, mirrored into an ``Image`` widget once one exists."""

    def __init__(self):
        self.png = b""
        self._widget = None

    def update(self, png: bytes) -> None:
        self.png = png
        if self._widget is not None:
            self._widget.value = png

    @property
    def widget(self):
        if self._widget is None:
            import ipywidgets as widgets

            self._widget = widgets.Image(format="png", value=self.png)
        return self._widget


def figure_png(figure, dpi: int | None = None) -> bytes:
    """PNG bytes of a matplotlib ``Figure``."""
    buf = io.BytesIO()
    figure.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def image_png(image) -> bytes:
    """PNG bytes of a PIL image (fast settings: these pictures are redrawn live)."""
    buf = io.BytesIO()
    image.save(buf, format="png", compress_level=1)
    return buf.getvalue()


@functools.lru_cache(maxsize=8)
def font(size: int):
    """DejaVu Sans (shipped with matplotlib) at ``size`` pixels, for PIL drawings."""
    from matplotlib import font_manager
    from PIL import ImageFont

    return ImageFont.truetype(font_manager.findfont("DejaVu Sans"), size)


class Visualizer:
    """Base for visualizers: displays as the live widget, with its PNG as the fallback.

    Subclasses keep ``self.view`` (a ``PngView``) up to date and build their
    ipywidgets container in ``_build_widget``.
    """

    view: PngView
    _widget = None

    @property
    def widget(self):
        if self._widget is None:
            self._widget = self._build_widget()
        return self._widget

    def _build_widget(self):  # pragma: no cover - abstract
        raise NotImplementedError

    def _bind(self, controls: dict) -> None:
        """Route each control's value changes to ``self.set(key=value)``.

        ``self._syncing`` is set while ``_sync_controls`` writes the state back into the
        controls, so those writes do not loop back into ``set``.
        """
        self._controls = controls
        self._syncing = False

        def changed(change):
            if not self._syncing:
                self.set(**{change["owner"]._dlc_key: change["new"]})

        for key, control in controls.items():
            control._dlc_key = key
            control.observe(changed, names="value")

    def _sync_controls(self) -> None:
        """Show ``self.state`` in the controls (for visualizers that keep one)."""
        if self._widget is None:
            return
        self._syncing = True
        try:
            for key, control in self._controls.items():
                control.value = self.state[key]
        finally:
            self._syncing = False

    def _draw(self) -> None:
        """Render the figure into the view and the status line into ``self._text``."""
        self.view.update(figure_png(self.render_figure()))
        if self._widget is not None:
            self._text.value = self._status_markup()

    def _status_markup(self) -> str:
        return self.status()

    def static_png(self) -> bytes:
        """The picture shown where widgets cannot run (default: the current view)."""
        return self.view.png

    def _repr_mimebundle_(self, include=None, exclude=None):
        # JupyterLab renders the widget view; GitHub and nbconvert fall back to the PNG.
        bundle = self.widget._repr_mimebundle_(include=include, exclude=exclude) or {}
        if isinstance(bundle, tuple):
            bundle = bundle[0]
        bundle = dict(bundle)
        bundle["image/png"] = base64.b64encode(self.static_png()).decode("ascii")
        bundle["text/plain"] = repr(self)
        return bundle
