"""Unroller (lesson 04): step a trained LSTM through a real sequence, one time step at a time.

After colah's "Understanding LSTM Networks": a time slider (and play) moves through the
sequence; the picture shows the input so far, the cell diagram with the current values
of the forget, input and output gates, the candidate, the cell state and the hidden
state, and heatmaps of every unit's gates and states over time.

    from dlcourse.widgets.unroller import Unroller
    Unroller(model.get_layer("lstm"), window)      # window: (T,) or (T, D)

``lstm_trace`` does the arithmetic in NumPy from the layer's weights (Keras's gate
order: input, forget, candidate, output); the tests check it against Keras.
"""

from __future__ import annotations

import html

import numpy as np

from ._display import PngView, Visualizer

__all__ = ["lstm_trace", "Unroller"]


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def lstm_trace(layer, x) -> dict[str, np.ndarray]:
    """Every gate and state of a Keras ``LSTM`` layer over one sequence ``x`` (T, D).

    Returns a dict of (T, H) arrays: ``i`` input gate, ``f`` forget gate, ``g``
    candidate, ``o`` output gate, ``c`` cell state, ``h`` hidden state (the layer's
    output at each step), starting from zero states.
    """
    x = np.asarray(x, np.float64)
    if x.ndim == 1:
        x = x[:, None]
    kernel, recurrent, bias = (np.asarray(w, np.float64) for w in layer.get_weights())
    units = recurrent.shape[0]
    act = layer.activation
    rec_act = layer.recurrent_activation
    if act.__name__ != "tanh" or rec_act.__name__ != "sigmoid":
        raise ValueError("lstm_trace supports the default activations (tanh, sigmoid)")
    h, c = np.zeros(units), np.zeros(units)
    out = {k: [] for k in "ifgoch"}
    for x_t in x:
        z = x_t @ kernel + h @ recurrent + bias
        i, f, g, o = (z[k * units : (k + 1) * units] for k in range(4))
        i, f, g, o = _sigmoid(i), _sigmoid(f), np.tanh(g), _sigmoid(o)
        c = f * c + i * g
        h = o * np.tanh(c)
        for key, value in zip("ifgoch", (i, f, g, o, c, h)):
            out[key].append(value)
    return {k: np.array(v) for k, v in out.items()}


class Unroller(Visualizer):
    """Step through an LSTM's computation on one sequence.

    Args:
        layer: a trained ``keras.layers.LSTM`` (its weights are read, nothing is run).
        sequence: (T,) or (T, D) input, as the layer sees it (normalized).
        units: how many units to annotate on the cell diagram (all appear in the heatmaps).
        labels: optional (T,) values to plot instead of the input (e.g. the raw series).
    """

    def __init__(self, layer, sequence, *, t: int | None = None, units: int = 3, labels=None):
        self.layer = layer
        self.sequence = np.asarray(sequence, np.float64)
        self.trace = lstm_trace(layer, self.sequence)
        self.T = len(self.sequence)
        self.units = min(units, self.trace["h"].shape[1])
        self.labels = None if labels is None else np.asarray(labels)
        self.t = self.T - 1 if t is None else int(t)
        self.view = PngView()
        self._figure = None
        self._draw()

    def step(self, n: int = 1) -> None:
        self.show(min(self.T - 1, self.t + n))

    def show(self, t: int) -> None:
        if not 0 <= t < self.T:
            raise ValueError(f"t must be in 0..{self.T - 1}, got {t}")
        self.t = int(t)
        self._draw()
        if self._widget is not None and self._slider.value != self.t:
            self._slider.value = self.t

    def values(self) -> dict[str, np.ndarray]:
        """Gates and states at the current step, each (H,)."""
        return {k: v[self.t] for k, v in self.trace.items()}

    def status(self) -> str:
        v = self.values()
        k = range(self.units)
        fmt = lambda a: ", ".join(f"{a[j]:+.2f}" for j in k)  # noqa: E731
        return (
            f"t = {self.t}: forget [{fmt(v['f'])}]  input [{fmt(v['i'])}]  candidate [{fmt(v['g'])}]  "
            f"output [{fmt(v['o'])}]  cell [{fmt(v['c'])}]  hidden [{fmt(v['h'])}]  (first {self.units} units)"
        )

    def _layout(self):
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        self._figure = fig = Figure(figsize=(11, 5.2), dpi=72)
        FigureCanvasAgg(fig)
        grid = fig.add_gridspec(3, 2, width_ratios=[1.25, 1], height_ratios=[1, 1, 1])
        a = self._artists = {}
        ax = a["series"] = fig.add_subplot(grid[0, 0])
        series = (
            self.labels
            if self.labels is not None
            else (self.sequence if self.sequence.ndim == 1 else self.sequence[:, 0])
        )
        ax.plot(series, color="0.7", lw=1)
        (a["series_done"],) = ax.plot([], [], color="tab:blue", lw=1.5)
        a["series_now"] = ax.axvline(0, color="tab:red", lw=1)
        ax.set_title("input sequence (blue: seen so far)", fontsize=9)
        ax.tick_params(labelsize=7)
        a["heat"] = {}
        for row, keys in enumerate((("f", "i"), ("c", "h"))):
            for col, key in enumerate(keys):
                sub = grid[row + 1, 0].subgridspec(1, 2)[col]
                ax = fig.add_subplot(sub)
                data = self.trace[key].T
                lim = (0, 1) if key in "fio" else (-np.abs(data).max(), np.abs(data).max())
                ax.imshow(
                    data,
                    aspect="auto",
                    cmap="viridis" if key in "fio" else "RdBu_r",
                    vmin=lim[0],
                    vmax=lim[1],
                    interpolation="nearest",
                )
                a["heat"][key] = ax.axvline(0, color="red", lw=1)
                names = {"f": "forget gate", "i": "input gate", "c": "cell state", "h": "hidden state"}
                ax.set_title(f"{names[key]} (units × time)", fontsize=9)
                ax.tick_params(labelsize=7)
        a["cell"] = fig.add_subplot(grid[:, 1])
        fig.subplots_adjust(left=0.04, right=0.99, top=0.94, bottom=0.06, hspace=0.55, wspace=0.15)

    def _draw_cell(self, ax) -> None:
        """The LSTM cell (``dlcourse.diagrams.draw_lstm_cell``, after colah's diagram) with the current values."""
        from ..diagrams import draw_lstm_cell

        ax.clear()
        v = self.values()
        k = range(self.units)
        column = lambda a: "\n".join(f"{a[j]:+.2f}" for j in k)  # noqa: E731
        draw_lstm_cell(
            ax,
            annotations={
                "forget_gate": column(v["f"]),
                "input_gate": column(v["i"]),
                "candidate": column(v["g"]),
                "output_gate": column(v["o"]),
                "c_out": "c(t):\n" + column(v["c"]),
                "h_out": "h(t):\n" + column(v["h"]),
            },
            fontsize=8.5,
        )
        ax.set_title(f"the LSTM cell at t = {self.t} (first {self.units} units)", fontsize=10)

    def render_figure(self):
        if self._figure is None:
            self._layout()
        a = self._artists
        series = (
            self.labels
            if self.labels is not None
            else (self.sequence if self.sequence.ndim == 1 else self.sequence[:, 0])
        )
        a["series_done"].set_data(np.arange(self.t + 1), series[: self.t + 1])
        a["series_now"].set_xdata([self.t, self.t])
        for line in a["heat"].values():
            line.set_xdata([self.t, self.t])
        self._draw_cell(a["cell"])
        return self._figure

    def _build_widget(self):
        import ipywidgets as w

        self._slider = w.IntSlider(self.t, 0, self.T - 1, description="time t")
        self._play = w.Play(value=self.t, min=0, max=self.T - 1, interval=300)
        w.jslink((self._play, "value"), (self._slider, "value"))
        self._slider.observe(lambda change: self.show(change["new"]), names="value")
        self._text = w.HTML()  # not a Label: the line is longer than the figure and must wrap
        self._widget = w.VBox([w.HBox([self._play, self._slider]), self.view.widget, self._text])
        self._draw()
        return self._widget

    def _status_markup(self) -> str:
        return html.escape(self.status())

    def __repr__(self) -> str:
        return f"Unroller({self.layer.name}, T={self.T})\n{self.status()}"
