"""Explanatory diagrams the lessons draw: neurons, networks, convolutions, cells, chains.

Each function draws one schematic with matplotlib, in one shared style (inputs and
visible units blue, hidden units orange, outputs green, operations yellow, the backward
pass red), returns the ``Figure`` and does not call ``plt.show()``, like
:mod:`dlcourse.plots`. Their few parameters (sizes, depths, rates) change the drawing,
so a lesson can draw the network it talks about::

    import dlcourse as dlc
    dlc.diagrams.mlp((784, 128, 10))

Text is matplotlib mathtext; every node, edge and label of interest has a ``gid``
(``"node:NAME"``, ``"edge:A->B"``) so tests can read the picture's structure.

| function | lesson |
| --- | --- |
| :func:`neuron`, :func:`mlp`, :func:`backprop_graph`, :func:`dropout` | 01 |
| :func:`conv_multichannel`, :func:`receptive_field` | 02 |
| :func:`cnn_pattern` | 03 |
| :func:`unrolled_rnn`, :func:`lstm_cell` (and :func:`draw_lstm_cell`, which the unroller uses) | 04 |
| :func:`autoencoder`, :func:`rbm`, :func:`cd1_chain` | 05 |
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "neuron",
    "mlp",
    "backprop_graph",
    "dropout",
    "conv_multichannel",
    "receptive_field",
    "cnn_pattern",
    "unrolled_rnn",
    "lstm_cell",
    "draw_lstm_cell",
    "autoencoder",
    "rbm",
    "cd1_chain",
]

COLOURS = {
    "input": "#c6dbef",  # inputs, visible units
    "hidden": "#fdd0a2",  # hidden units
    "output": "#c7e9c0",  # outputs, codes
    "op": "#fee391",  # operations: sums, products, losses
    "gate": "#9ecae1",  # sigmoid layers (LSTM gates)
    "tanh": "#fdae6b",  # tanh layers
    "edge": "0.35",
    "faint": "0.78",
    "backward": "#d62728",
    "highlight": "#e6550d",
    "dropped": "0.9",
}
FONT = 10.5
SMALL = 9
TITLE = 11.5


class _Canvas:
    """A figure with one equal-aspect axes spanning ``xlim`` x ``ylim`` data units.

    The figure is ``scale`` inches per data unit, shrunk (fonts too) to fit ``max_width``.
    """

    def __init__(self, xlim, ylim, title=None, scale=0.55, max_width=12.0):
        import matplotlib.pyplot as plt

        dx, dy = xlim[1] - xlim[0], ylim[1] - ylim[0]
        if title and dx * scale < 0.1 * len(title):  # widen to fit the title
            extra = (0.1 * len(title) / scale - dx) / 2
            xlim, dx = (xlim[0] - extra, xlim[1] + extra), dx + 2 * extra
        self.k = min(1.0, max_width / (dx * scale))
        s = scale * self.k
        top = 0.45 if title else 0.05
        height = dy * s + top
        self.fig = plt.figure(figsize=(dx * s, height))
        self.ax = self.fig.add_axes((0, 0, 1, dy * s / height))
        self.ax.set_xlim(*xlim)
        self.ax.set_ylim(*ylim)
        self.ax.set_aspect("equal")
        self.ax.axis("off")
        if title:
            self.fig.text(
                0.5, 1 - 0.5 * top / height, title, ha="center", va="center", fontsize=TITLE * max(self.k, 0.8)
            )

    def size(self, points):
        return points * max(self.k, 0.7)

    def text(self, xy, s, size=FONT, gid=None, **kw):
        kw.setdefault("ha", "center")
        kw.setdefault("va", "center")
        kw.setdefault("zorder", 5)
        t = self.ax.text(xy[0], xy[1], s, fontsize=self.size(size), **kw)
        if gid:
            t.set_gid(gid)
        return t

    def circle(self, xy, label="", fc=COLOURS["hidden"], r=0.35, gid=None, size=FONT, ec="0.25", lw=1.0, **kw):
        from matplotlib.patches import Circle

        patch = Circle(xy, r, fc=fc, ec=ec, lw=lw, zorder=3, **kw)
        patch.set_gid(gid)
        self.ax.add_patch(patch)
        if label:
            self.text(xy, label, size=size)
        return patch

    def box(self, xy, w, h, label="", fc=COLOURS["op"], gid=None, size=FONT, ec="0.25", lw=1.0, pad=0.08, **kw):
        from matplotlib.patches import FancyBboxPatch

        x, y = xy
        patch = FancyBboxPatch(
            (x - w / 2 + pad, y - h / 2 + pad),
            w - 2 * pad,
            h - 2 * pad,
            boxstyle=f"round,pad={pad}",
            fc=fc,
            ec=ec,
            lw=lw,
            zorder=3,
            **kw,
        )
        patch.set_gid(gid)
        self.ax.add_patch(patch)
        if label:
            self.text(xy, label, size=size)
        return patch

    def arrow(self, points, color=COLOURS["edge"], lw=1.3, gid=None, head=True, ls="-", zorder=2, alpha=1.0):
        """A polyline through ``points`` with an arrowhead at the end (points in data units)."""
        from matplotlib.patches import FancyArrowPatch
        from matplotlib.path import Path

        patch = FancyArrowPatch(
            path=Path(np.asarray(points, float)),
            arrowstyle="-|>" if head else "-",
            mutation_scale=11 * max(self.k, 0.7),
            color=color,
            lw=lw,
            linestyle=ls,
            zorder=zorder,
            alpha=alpha,
            shrinkA=0,
            shrinkB=0,
        )
        patch.set_gid(gid)
        self.ax.add_patch(patch)
        return patch

    def line(self, p, q, color=COLOURS["faint"], lw=0.8, gid=None, zorder=1, alpha=1.0):
        (line,) = self.ax.plot(
            [p[0], q[0]], [p[1], q[1]], color=color, lw=lw, zorder=zorder, alpha=alpha, solid_capstyle="round"
        )
        line.set_gid(gid)
        return line


def _trim(p, q, r_start, r_end):
    """The segment p -> q shortened by r_start at p and r_end at q."""
    p, q = np.asarray(p, float), np.asarray(q, float)
    d = q - p
    n = np.hypot(*d) or 1.0
    return [p + d * r_start / n, q - d * r_end / n]


def _shown(n: int, cap: int):
    """Indices (0-based) of the units drawn for a layer of n, and where an ellipsis goes.

    Returns (indices, ellipsis_slot): at most ``cap`` slots; for n > cap the slot before
    the last shows a vertical ellipsis and the last unit is unit n.
    """
    if n <= cap:
        return list(range(n)), None
    return list(range(cap - 2)) + [n - 1], cap - 2


def _column(n: int, cap: int, x: float, spacing: float = 1.0, y_mid: float = 0.0):
    """Positions of a column of (at most cap) units centred on y_mid, with labels' indices.

    Returns a list of (index, (x, y)) for drawn units and the ellipsis position (or None).
    """
    idx, gap = _shown(n, cap)
    slots = len(idx) + (gap is not None)
    ys = y_mid + spacing * ((slots - 1) / 2 - np.arange(slots))
    units, ellipsis, s = [], None, 0
    for slot in range(slots):
        if gap is not None and slot == gap:
            ellipsis = (x, ys[slot])
            continue
        units.append((idx[s], (x, ys[slot])))
        s += 1
    return units, ellipsis


def _check_sizes(name, sizes, minimum=2):
    sizes = [int(s) for s in sizes]
    if len(sizes) < minimum or min(sizes) < 1:
        raise ValueError(f"{name} needs at least {minimum} layer sizes, each >= 1, got {sizes}")
    return sizes


# --------------------------------------------------------------------------- lesson 01


def neuron(n_inputs: int = 3, activation: str = "f"):
    """One neuron (lesson 01): inputs x_i, weights w_i, the sum z = w.x + b and a = f(z).

    Args:
        n_inputs: number of inputs drawn (more than 6 are elided with a vertical ellipsis).
        activation: the activation's name written in its box ("f", "ReLU", ...).
    """
    if n_inputs < 1:
        raise ValueError(f"a neuron has at least one input, got n_inputs={n_inputs}")
    units, ellipsis = _column(n_inputs, 6, 0.0, spacing=1.0)
    half = max(abs(y) for _, (_, y) in units) + 0.9
    c = _Canvas((-1.0, 10.6), (-half - 0.6, half + 0.4), title=f"a neuron with {n_inputs} input{'s' * (n_inputs > 1)}")
    s, f_xy, out = (4.0, 0.0), (6.4, 0.0), (9.2, 0.0)
    for i, (x, y) in units:
        c.circle((x, y), f"$x_{{{i + 1}}}$", fc=COLOURS["input"], gid=f"node:x{i + 1}")
        p, q = _trim((x, y), s, 0.35, 0.45)
        c.arrow([p, q], gid=f"edge:x{i + 1}->sum")
        mid = p + 0.35 * (q - p)
        c.text((mid[0], mid[1] + 0.22), f"$w_{{{i + 1}}}$", size=SMALL, color="0.2", gid=f"label:w{i + 1}")
    if ellipsis:
        c.text(ellipsis, r"$\vdots$")
    c.circle(s, r"$\Sigma$", fc=COLOURS["op"], r=0.45, gid="node:sum", size=FONT + 2)
    c.text((s[0], s[1] + 1.25), "$+\\,b$", gid="label:bias")
    c.arrow([(s[0], s[1] + 1.0), (s[0], s[1] + 0.47)])
    c.text((s[0], s[1] - 0.85), r"$z = \mathbf{w}\cdot\mathbf{x} + b$", size=SMALL)
    c.arrow([(s[0] + 0.45, 0), (f_xy[0] - 0.65, 0)], gid="edge:sum->activation")
    c.text(((s[0] + f_xy[0]) / 2 - 0.1, 0.25), "$z$", size=SMALL)
    c.box(f_xy, 1.3, 0.9, activation, fc=COLOURS["hidden"], gid="node:activation")
    c.text((f_xy[0], -0.85), "activation", size=SMALL)
    c.arrow([(f_xy[0] + 0.65, 0), (out[0] - 0.4, 0)], gid="edge:activation->a")
    c.circle(out, "$a$", fc=COLOURS["output"], r=0.4, gid="node:a")
    c.text((out[0], -0.85), "$a = f(z)$", size=SMALL)
    return c.fig


def mlp(layer_sizes=(3, 4, 4, 2), max_units: int = 7):
    """A dense (fully connected) network (lesson 01) with each layer's parameter count.

    Args:
        layer_sizes: units per layer, input first: (n_in, hidden..., n_out).
        max_units: units drawn per layer; larger layers are elided (the count is written).

    Every drawn unit of one layer connects to every drawn unit of the next; under each
    pair of layers is its parameter count n*m + m.
    """
    sizes = _check_sizes("mlp", layer_sizes)
    dx = 2.6
    columns = [_column(n, max_units, i * dx) for i, n in enumerate(sizes)]
    half = max(abs(y) for units, _ in columns for _, (_, y) in units)
    hidden = len(sizes) - 2
    kind = {0: "no hidden layer: a linear model", 1: "1 hidden layer: shallow"}.get(
        hidden, f"{hidden} hidden layers" + (": deep" if hidden >= 3 else "")
    )
    total = sum(n * m + m for n, m in zip(sizes[:-1], sizes[1:]))
    c = _Canvas(
        (-1.3, dx * (len(sizes) - 1) + 1.3),
        (-half - 2.1, half + 0.6),
        title=f"{' → '.join(str(n) for n in sizes)}: {kind}, {total:,} parameters",
    )
    for layer, ((units, ellipsis), n) in enumerate(zip(columns, sizes)):
        fc = COLOURS["input"] if layer == 0 else COLOURS["output"] if layer == len(sizes) - 1 else COLOURS["hidden"]
        for i, xy in units:
            c.circle(xy, fc=fc, r=0.3, gid=f"node:{layer}:{i}")
        if ellipsis:
            c.text(ellipsis, r"$\vdots$")
        name = "input" if layer == 0 else "output" if layer == len(sizes) - 1 else f"hidden {layer}"
        c.text((layer * dx, -half - 0.75), f"{name}\n{n:,} units", size=SMALL, gid=f"label:layer{layer}")
        if layer:
            for _, p in columns[layer - 1][0]:
                for _, q in units:
                    c.line(*_trim(p, q, 0.3, 0.3), color=COLOURS["faint"], lw=0.7, gid=f"edge:{layer - 1}->{layer}")
            m, n_prev = n, sizes[layer - 1]
            c.text(
                ((layer - 0.5) * dx, -half - 1.75),
                f"{n_prev:,}·{m:,} + {m:,}\n= {n_prev * m + m:,}",
                size=SMALL - 0.5,
                color="0.3",
                gid=f"label:params{layer}",
            )
    return c.fig


def backprop_graph(n: int = 4, n_in: int = 2, n_hidden: int = 3, backward: bool = True):
    """The computational graph of lesson 01's worked backpropagation step.

    X -> Z1 = X W1 + b1 -> A1 = sigmoid(Z1) -> Z2 = A1 W2 + b2 -> p = sigmoid(Z2) -> L, the
    binary cross-entropy with targets y. Shapes are written under each value.

    Args:
        n, n_in, n_hidden: batch size N and the layer sizes, for the shapes.
        backward: also draw the backward pass (red): the deltas and weight gradients.
    """
    c = _Canvas(
        (-0.9, 15.0),
        (-1.4 if backward else -0.9, 3.6 if backward else 3.0),
        title="forward (black)"
        + (
            " and backward (red) through the network of the worked step"
            if backward
            else " through the worked step's network"
        ),
    )
    y0 = 1.0
    values = {"X": 0.0, "Z1": 3.2, "A1": 5.8, "Z2": 9.0, "p": 11.6, "L": 14.2}
    ops = {
        "lin1": (1.6, r"$\cdot W_1\!+\!b_1$"),
        "sig1": (4.5, r"$\sigma$"),
        "lin2": (7.4, r"$\cdot W_2\!+\!b_2$"),
        "sig2": (10.3, r"$\sigma$"),
        "loss": (12.9, "BCE"),
    }
    shapes = {
        "X": f"({n}, {n_in})",
        "Z1": f"({n}, {n_hidden})",
        "A1": f"({n}, {n_hidden})",
        "Z2": f"({n}, 1)",
        "p": f"({n}, 1)",
        "L": "scalar",
    }
    names = {"X": "$X$", "Z1": "$Z_1$", "A1": "$A_1$", "Z2": "$Z_2$", "p": "$p$", "L": "$L$"}
    for key, x in values.items():
        c.box(
            (x, y0),
            1.1,
            0.8,
            names[key],
            fc=COLOURS["input"] if key == "X" else COLOURS["output"] if key == "L" else COLOURS["hidden"],
            gid=f"node:{key}",
        )
        c.text((x, y0 - 0.65), shapes[key], size=SMALL - 1, color="0.35", gid=f"shape:{key}")
    for key, (x, label) in ops.items():
        wide = 1.35 if "W" in label else 0.8
        c.box((x, y0), wide, 0.7, label, fc=COLOURS["op"], gid=f"node:{key}", size=SMALL + 0.5)
    order = ["X", "lin1", "Z1", "sig1", "A1", "lin2", "Z2", "sig2", "p", "loss", "L"]
    xs = {**values, **{k: v[0] for k, v in ops.items()}}
    half = {k: (0.55 if k in values else (0.675 if "W" in ops[k][1] else 0.4)) for k in order}
    for a, b in zip(order[:-1], order[1:]):
        c.arrow([(xs[a] + half[a], y0), (xs[b] - half[b], y0)], gid=f"edge:{a}->{b}")
    for key, label in (("lin1", "$W_1,\\ b_1$"), ("lin2", "$W_2,\\ b_2$"), ("loss", "$y$")):
        c.box(
            (xs[key], y0 + 1.7),
            1.2 if key != "loss" else 0.7,
            0.65,
            label,
            fc="white",
            gid=f"node:param_{key}",
            size=SMALL + 0.5,
        )
        c.arrow([(xs[key], y0 + 1.37), (xs[key], y0 + 0.35)], gid=f"edge:param_{key}->{key}")
    if backward:
        red = COLOURS["backward"]
        yb = y0 - 1.55
        c.arrow([(xs["L"], y0 - 0.95), (xs["L"], yb), (xs["X"] + 0.6, yb)], color=red, lw=1.6, gid="edge:backward")
        c.text((xs["Z2"], yb - 0.4), r"$\delta_2 = (p - y)\,/\,N$", size=FONT, color=red, gid="label:delta2")
        c.text(
            (xs["Z1"] + 0.3, yb - 0.4),
            r"$\delta_1 = (\delta_2 W_2^\top) \odot \sigma'(Z_1)$",
            size=FONT,
            color=red,
            gid="label:delta1",
        )
        for key, label in (
            ("lin2", r"$\partial L/\partial W_2 = A_1^\top \delta_2$"),
            ("lin1", r"$\partial L/\partial W_1 = X^\top \delta_1$"),
        ):
            c.text(
                (xs[key] + (0.2 if key == "lin1" else 0), y0 + 2.35),
                label,
                size=FONT,
                color=red,
                gid=f"label:grad_{key}",
            )
    return c.fig


def dropout(layer_sizes=(4, 6, 6, 2), rate: float = 0.5, seed: int = 0):
    """Dropout (lesson 01): one training step with dropped hidden units, and test time.

    Args:
        layer_sizes: units per layer (input, hidden..., output); only hidden units drop.
        rate: the probability of dropping each hidden unit, 0 <= rate < 1.
        seed: seed of the random mask (at least one unit per layer is kept).

    Left: a training step, dropped units crossed out with their connections gone, the
    kept ones scaled by 1 / (1 - rate). Right: at test time every unit works, unscaled.
    """
    sizes = _check_sizes("dropout", layer_sizes, minimum=3)
    if not 0 <= rate < 1:
        raise ValueError(f"rate must be in [0, 1), got {rate}")
    rng = np.random.default_rng(seed)
    dropped = []
    for layer, n in enumerate(sizes):
        mask = np.zeros(n, bool)
        if 0 < layer < len(sizes) - 1:
            mask = rng.random(n) < rate
            if mask.all():
                mask[rng.integers(n)] = False
        dropped.append(mask)
    dx, gap = 1.7, 2.2
    width = dx * (len(sizes) - 1)
    half = (max(sizes) - 1) / 2 * 0.8
    c = _Canvas((-0.7, 2 * width + gap + 0.7), (-half - 1.5, half + 1.0))
    for panel, training in enumerate((True, False)):
        x0 = panel * (width + gap)
        pos = [[(x0 + layer * dx, (j - (n - 1) / 2) * -0.8) for j in range(n)] for layer, n in enumerate(sizes)]
        for layer in range(1, len(sizes)):
            for a, p in enumerate(pos[layer - 1]):
                for b, q in enumerate(pos[layer]):
                    if training and (dropped[layer - 1][a] or dropped[layer][b]):
                        continue
                    c.line(
                        *_trim(p, q, 0.25, 0.25),
                        color=COLOURS["edge"],
                        lw=0.6,
                        alpha=0.6,
                        gid=f"edge:{'train' if training else 'test'}",
                    )
        for layer in range(len(sizes)):
            fc = COLOURS["input"] if layer == 0 else COLOURS["output"] if layer == len(sizes) - 1 else COLOURS["hidden"]
            for j, xy in enumerate(pos[layer]):
                if training and dropped[layer][j]:
                    c.circle(xy, fc=COLOURS["dropped"], r=0.25, ec="0.6", gid="node:dropped")
                    c.text(xy, "×", size=FONT + 3, color=COLOURS["backward"])
                else:
                    c.circle(xy, fc=fc, r=0.25, gid="node:kept" if 0 < layer < len(sizes) - 1 else "node:io")
        if training:
            n_drop = int(sum(m.sum() for m in dropped))
            title = f"training step: rate {rate:g}, {n_drop} hidden unit{'s' * (n_drop != 1)} dropped"
            note = f"kept units are scaled by $1/(1-{rate:g}) = {1 / (1 - rate):.3g}$"
        else:
            title, note = "test time: every unit, no scaling", "the expected activations match training's"
        c.text((x0 + width / 2, half + 0.65), title, size=SMALL + 0.5, gid=f"label:{'train' if training else 'test'}")
        c.text((x0 + width / 2, -half - 0.9), note, size=SMALL, color="0.3")
    return c.fig


# --------------------------------------------------------------------------- lesson 02


def _slab(c, x, y, n, cell, fc, gid=None, ec="0.4", highlight=None, hl_colour=COLOURS["highlight"], zorder=3):
    """An n x n grid with its bottom-left corner at (x, y); highlight = (row, col, size) from the top-left."""
    from matplotlib.patches import Rectangle

    c.ax.add_patch(Rectangle((x, y), n * cell, n * cell, fc=fc, ec=ec, lw=0.8, zorder=zorder, gid=gid))
    for k in range(1, n):
        c.line((x + k * cell, y), (x + k * cell, y + n * cell), color=ec, lw=0.35, zorder=zorder)
        c.line((x, y + k * cell), (x + n * cell, y + k * cell), color=ec, lw=0.35, zorder=zorder)
    if highlight is not None:
        r, col, size = highlight
        c.ax.add_patch(
            Rectangle(
                (x + col * cell, y + (n - r - size) * cell),
                size * cell,
                size * cell,
                fc="none",
                ec=hl_colour,
                lw=1.8,
                zorder=zorder + 0.5,
            )
        )


def conv_multichannel(d_in: int = 3, k: int = 2, f: int = 3, size: int = 5, stride: int = 1, padding: int = 0):
    """A convolution layer with K filters over a D1-channel input (lesson 02).

    Args:
        d_in: input channels D1 (each filter has this depth too).
        k: number of filters K = output channels D2.
        f: filter size F.
        size: input width and height W1 = H1.
        stride, padding: S and P, for the output size W2 = (W1 - F + 2P) / S + 1 (floored).

    The window under one output position (orange) is multiplied with each whole
    F x F x D1 filter; filter k's sum plus its bias b_k is one value of output channel k.
    """
    if min(d_in, k, f, size, stride) < 1 or padding < 0:
        raise ValueError("d_in, k, f, size and stride must be >= 1 and padding >= 0")
    padded = size + 2 * padding
    if f > padded:
        raise ValueError(f"the filter (F={f}) does not fit in the padded input ({padded})")
    out = (padded - f) // stride + 1
    cell, off = 0.42, 0.28
    shown_d, shown_k = min(d_in, 5), min(k, 4)
    in_w = padded * cell + off * (shown_d - 1)
    filt_h = f * cell + off * (shown_d - 1)
    fx = in_w + 2.4
    out_x = fx + f * cell + off * (shown_d - 1) + 2.6
    total_h = max(padded * cell + off * (shown_d - 1), shown_k * (filt_h + 0.9), out * cell + off * (shown_k - 1)) + 0.6
    c = _Canvas(
        (-0.4, out_x + out * cell + off * (shown_k - 1) + 0.6),
        (-0.55, total_h + 0.2),
        title=f"Conv2D: {k} filter{'s' * (k > 1)} of {f}×{f}×{d_in} over a {size}×{size}×{d_in} input",
    )
    channel_colours = ["#fcbba1", "#c7e9c0", "#c6dbef", "#dadaeb", "#fdd0a2"]
    base_y = (total_h - (padded * cell + off * (shown_d - 1))) / 2
    for d in reversed(range(shown_d)):
        _slab(
            c,
            d * off,
            base_y + d * off,
            padded,
            cell,
            channel_colours[d % 5],
            gid=f"node:input{d}",
            highlight=(0, 0, f),
            zorder=3 + (shown_d - d),
        )
    c.text(
        (in_w / 2, base_y - 0.45),
        f"input {size}×{size}×{d_in}" + (f" (+ padding {padding})" if padding else ""),
        size=SMALL,
        gid="label:input",
    )
    for j in range(shown_k):
        top = total_h - 0.3 - j * (filt_h + 0.9)
        for d in reversed(range(shown_d)):
            _slab(
                c,
                fx + d * off,
                top - filt_h + d * off,
                f,
                cell,
                channel_colours[d % 5],
                gid=f"node:filter{j}",
                zorder=3 + (shown_d - d),
            )
        name = f"filter {j + 1 if j < shown_k - 1 or k == shown_k else k}"
        c.text(
            (fx + f * cell / 2 + off * (shown_d - 1) / 2, top - filt_h - 0.28),
            f"{name}: {f}×{f}×{d_in}, $+\\,b_{{{j + 1 if j < shown_k - 1 or k == shown_k else k}}}$",
            size=SMALL - 0.5,
            gid=f"label:filter{j}",
        )
        c.arrow(
            [
                (f * cell + 0.1 + off * (shown_d - 1), base_y + padded * cell + off * (shown_d - 1) - f * cell / 2),
                (fx - 0.15, top - filt_h / 2),
            ],
            color=COLOURS["highlight"],
            lw=1.0,
            gid=f"edge:window->filter{j}",
        )
    if k > shown_k:
        c.text((fx + f * cell / 2, total_h - 0.3 - (shown_k - 1) * (filt_h + 0.9) + 0.45), r"$\vdots$")
    out_base = (total_h - (out * cell + off * (shown_k - 1))) / 2
    depth = lambda j: shown_k - 1 - j  # noqa: E731  (filter 1's channel at the back, the last at the front)
    for j in range(shown_k):
        _slab(
            c,
            out_x + depth(j) * off,
            out_base + depth(j) * off,
            out,
            cell,
            "#fff7bc" if j == shown_k - 1 else "#f0f0f0",
            gid=f"node:output{j}",
            highlight=(0, 0, 1),
            zorder=3 + j,
        )
    for j in range(shown_k):
        top = total_h - 0.3 - j * (filt_h + 0.9)
        c.arrow(
            [
                (fx + f * cell + off * (shown_d - 1) + 0.15, top - filt_h / 2),
                (out_x + depth(j) * off + 0.5 * cell, out_base + depth(j) * off + (out - 0.5) * cell),
            ],
            color=COLOURS["edge"],
            lw=1.0,
            gid=f"edge:filter{j}->output{j}",
        )
    c.text(
        ((fx + f * cell + out_x) / 2 + 0.2, total_h - 0.05),
        "sum of the products $+\\, b_k$",
        size=SMALL - 1,
        color="0.3",
    )
    c.text(((f * cell + fx) / 2 + 0.1, total_h - 0.05), "window × filter", size=SMALL - 1, color=COLOURS["highlight"])
    c.text(
        (out_x + (out * cell + off * (shown_k - 1)) / 2, out_base - 0.45),
        f"output {out}×{out}×{k}",
        size=SMALL,
        gid="label:output",
    )
    right = out_x + out * cell + off * (shown_k - 1) + 0.6
    c.text(
        ((right - 0.4) / 2, 0.0),
        f"$W_2 = \\lfloor({size} - {f} + 2\\cdot{padding})/{stride}\\rfloor + 1 = {out}$,   $D_2 = K = {k}$\n"
        f"parameters: $({f}\\cdot{f}\\cdot{d_in})\\cdot{k} + {k} = {f * f * d_in * k + k}$",
        size=SMALL,
        gid="label:formula",
    )
    return c.fig


def receptive_field(kernel_sizes=(3, 3, 3), strides=None):
    """Receptive-field growth through a stack of convolutions (lesson 02), along one axis.

    Args:
        kernel_sizes: F of each layer from the input upwards.
        strides: S of each layer (default all 1).

    One unit of the top layer is highlighted with every unit below that it depends on;
    each row says how much of the input one of its units sees,
    r = 1 + sum_l (F_l - 1) * prod_{m<l} S_m.
    """
    kernels = [int(v) for v in kernel_sizes]
    strides = [1] * len(kernels) if strides is None else [int(v) for v in strides]
    if not kernels or len(strides) != len(kernels) or min(kernels + strides) < 1:
        raise ValueError(f"need one kernel size and one stride (each >= 1) per layer, got {kernel_sizes}, {strides}")
    fields, jump = [1], 1
    for f, s in zip(kernels, strides):
        fields.append(fields[-1] + (f - 1) * jump)
        jump *= s
    r = fields[-1]
    n0 = r + 2 * max(1, jump)  # room for a unit either side of the top one
    counts = [n0]
    for f, s in zip(kernels, strides):
        counts.append((counts[-1] - f) // s + 1)
    # the top unit in the middle, and every unit it depends on, layer by layer
    chosen = [set() for _ in counts]
    chosen[-1] = {counts[-1] // 2}
    for layer in range(len(kernels), 0, -1):
        f, s = kernels[layer - 1], strides[layer - 1]
        chosen[layer - 1] = {j * s + a for j in chosen[layer] for a in range(f)}
    spacing, dy = 0.55, 1.3
    pos = [[0.0] * n for n in counts]
    pos[0] = [i * spacing for i in range(n0)]
    for layer, (f, s) in enumerate(zip(kernels, strides), start=1):
        pos[layer] = [np.mean(pos[layer - 1][j * s : j * s + f]) for j in range(counts[layer])]
    width = (n0 - 1) * spacing
    c = _Canvas(
        (-4.0, width + 0.6),
        (-1.0, dy * len(kernels) + 0.6),
        title=f"receptive field of one unit of layer {len(kernels)}: r = {r} input pixels (one axis)",
    )
    for layer in range(1, len(counts)):
        for j in range(counts[layer]):
            for a in range(kernels[layer - 1]):
                i = j * strides[layer - 1] + a
                on = j in chosen[layer] and i in chosen[layer - 1]
                c.line(
                    (pos[layer - 1][i], (layer - 1) * dy + 0.17),
                    (pos[layer][j], layer * dy - 0.17),
                    color=COLOURS["highlight"] if on else COLOURS["faint"],
                    lw=1.3 if on else 0.5,
                    zorder=2 if on else 1,
                    gid="edge:field" if on else "edge:other",
                )
    for layer, n in enumerate(counts):
        for j in range(n):
            on = j in chosen[layer]
            fc = (COLOURS["input"] if layer == 0 else COLOURS["hidden"]) if on else "white"
            c.circle(
                (pos[layer][j], layer * dy),
                fc=fc,
                r=0.17,
                ec="0.3" if on else "0.7",
                lw=0.8,
                gid=f"node:{'field' if on else 'other'}{layer}",
            )
        if layer == 0:
            label = "input"
        else:
            label = f"layer {layer}: F={kernels[layer - 1]}" + (
                f", S={strides[layer - 1]}" if strides[layer - 1] != 1 else ""
            )
        c.text((-0.5, layer * dy + 0.14), label, size=SMALL, ha="right", gid=f"label:layer{layer}")
        if layer:
            c.text(
                (-0.5, layer * dy - 0.26),
                f"sees {fields[layer]}",
                size=SMALL - 1,
                ha="right",
                color=COLOURS["highlight"],
                gid=f"label:field{layer}",
            )
    return c.fig


# --------------------------------------------------------------------------- lesson 03


def cnn_pattern(
    n_conv: int = 2,
    n_blocks: int = 2,
    n_dense: int = 1,
    pool: bool = True,
    input_shape=(28, 28, 1),
    filters: int = 32,
    units: int = 64,
    n_classes: int = 10,
):
    """The layer pattern INPUT -> [[CONV -> RELU]*N -> POOL?]*M -> [FC -> RELU]*K -> FC (lesson 03).

    Args:
        n_conv, n_blocks, n_dense: N, M and K.
        pool: whether each block ends with 2x2 max pooling.
        input_shape: (H, W, C), for the shape after each layer (3x3 convs with 'same'
            padding keep H x W, pooling halves them, floored; block m has filters * 2**m
            filters, as lesson 03's ``build_cnn`` builds it); None writes no shapes.
        filters, units, n_classes: first block's filters, hidden FC units, classes.
    """
    if min(n_conv, n_blocks, n_dense) < 0:
        raise ValueError("N, M and K must be >= 0")
    steps = [("INPUT", "input", None)]
    shape = None if input_shape is None else tuple(int(v) for v in input_shape)
    steps[0] = ("INPUT", "input", shape)
    blocks = []
    for m in range(n_blocks):
        first = len(steps)
        for _ in range(n_conv):
            if shape:
                shape = (shape[0], shape[1], filters * 2**m)
            steps.append((f"CONV 3×3, {filters * 2**m}\n→ RELU", "conv", shape))
        if pool:
            if shape:
                shape = (shape[0] // 2, shape[1] // 2, shape[2])
            steps.append(("POOL 2×2", "pool", shape))
        if len(steps) > first:
            blocks.append((first, len(steps) - 1, m))
    if shape:
        shape = (int(np.prod(shape)),)
    steps.append(("FLATTEN", "flatten", shape))
    dense_first = len(steps)
    for _ in range(n_dense):
        steps.append((f"FC {units}\n→ RELU", "fc", (units,) if shape else None))
    steps.append((f"FC {n_classes}\nsoftmax", "out", (n_classes,) if shape else None))
    colours = {
        "input": COLOURS["input"],
        "conv": COLOURS["hidden"],
        "pool": COLOURS["gate"],
        "flatten": "#eeeeee",
        "fc": COLOURS["op"],
        "out": COLOURS["output"],
    }
    w, gap = 1.7, 0.45
    x_of = [i * (w + gap) for i in range(len(steps))]
    c = _Canvas(
        (-w / 2 - 0.2, x_of[-1] + w / 2 + 0.2),
        (-2.2, 1.6),
        title=f"INPUT → [[CONV → RELU]×{n_conv} → {'POOL' if pool else 'no pool'}]×{n_blocks} → [FC → RELU]×{n_dense} → FC",
        max_width=12.5,
    )
    for i, (label, kind, shp) in enumerate(steps):
        c.box((x_of[i], 0.55), w, 1.2, label, fc=colours[kind], gid=f"node:{kind}", size=SMALL)
        if shp:
            c.text((x_of[i], -0.3), "×".join(str(v) for v in shp), size=SMALL - 1, color="0.35", gid="label:shape")
        if i:
            c.arrow([(x_of[i - 1] + w / 2 - 0.05, 0.55), (x_of[i] - w / 2 + 0.05, 0.55)], gid="edge:next")
    for first, last, m in blocks:
        a, b = x_of[first] - w / 2 + 0.1, x_of[last] + w / 2 - 0.1
        for p, q in (((a, -0.7), (b, -0.7)), ((a, -0.7), (a, -0.55)), ((b, -0.7), (b, -0.55))):
            c.line(p, q, color=COLOURS["edge"], lw=1.2)
        c.text(((a + b) / 2, -1.05), f"block {m + 1}", size=SMALL, gid="label:block")
    a, b = x_of[dense_first] - w / 2 + 0.1, x_of[-1] + w / 2 - 0.1
    for p, q in (((a, -0.7), (b, -0.7)), ((a, -0.7), (a, -0.55)), ((b, -0.7), (b, -0.55))):
        c.line(p, q, color=COLOURS["edge"], lw=1.2)
    c.text(((a + b) / 2, -1.05), "classifier", size=SMALL, gid="label:classifier")
    if n_blocks and (n_conv or pool):
        c.text(
            ((x_of[0] + x_of[-1]) / 2, -1.75),
            "feature extractor: convolutions find local patterns, pooling shrinks the maps; the FC layers classify",
            size=SMALL - 0.5,
            color="0.3",
        )
    return c.fig


# --------------------------------------------------------------------------- lesson 04


def unrolled_rnn(steps: int = 4):
    """A recurrent network folded (a loop) and unrolled in time over ``steps`` steps (lesson 04).

    Every copy uses the same W (input), U (recurrent) and b:
    a_t = tanh(x_t W + a_{t-1} U + b), a_0 = 0.
    """
    if not 1 <= steps <= 8:
        raise ValueError(f"draw 1 to 8 steps, got {steps}")
    dx = 2.2
    x_start = 5.0
    c = _Canvas(
        (-1.0, x_start + dx * (steps - 1) + 1.4),
        (-1.9, 2.7),
        title=f"an RNN, folded (left) and unrolled over {steps} steps (right)",
    )
    # folded
    c.box((0, 0.6), 1.2, 0.9, "RNN", fc=COLOURS["hidden"], gid="node:folded")
    c.circle((0, -1.05), "$x_t$", fc=COLOURS["input"], r=0.33, size=SMALL)
    c.arrow([(0, -0.72), (0, 0.15)])
    c.circle((0, 2.15), "$a_t$", fc=COLOURS["output"], r=0.33, size=SMALL)
    c.arrow([(0, 1.05), (0, 1.82)])
    c.arrow([(0.6, 0.85), (1.1, 0.85), (1.1, 0.35), (0.6, 0.35)], color=COLOURS["highlight"], lw=1.4, gid="edge:loop")
    c.text((1.35, 0.6), "$U$", size=SMALL, color=COLOURS["highlight"])
    c.text((0.25, -0.3), "$W$", size=SMALL)
    c.text((2.3, 0.6), "=", size=FONT + 8)
    # unrolled
    c.text((x_start - 1.25, 0.6), "$a_0{=}0$", size=SMALL, ha="right")
    for t in range(steps):
        x = x_start + t * dx
        c.box((x, 0.6), 1.2, 0.9, "RNN", fc=COLOURS["hidden"], gid=f"node:step{t + 1}")
        c.circle((x, -1.05), f"$x_{{{t + 1}}}$", fc=COLOURS["input"], r=0.33, size=SMALL, gid=f"node:x{t + 1}")
        c.arrow([(x, -0.72), (x, 0.15)], gid=f"edge:x{t + 1}->step{t + 1}")
        c.text((x + 0.25, -0.3), "$W$", size=SMALL)
        c.circle((x, 2.15), f"$a_{{{t + 1}}}$", fc=COLOURS["output"], r=0.33, size=SMALL, gid=f"node:a{t + 1}")
        c.arrow([(x, 1.05), (x, 1.82)])
        c.arrow(
            [(x - dx + 0.6 if t else x - 1.2, 0.6), (x - 0.6, 0.6)],
            color=COLOURS["highlight"],
            lw=1.4,
            gid=f"edge:a{t}->step{t + 1}",
        )
        c.text((x - dx / 2, 0.85), "$U$", size=SMALL, color=COLOURS["highlight"])
    c.text(
        (x_start + dx * (steps - 1) / 2, -1.72),
        r"$a_t = \tanh(x_t W + a_{t-1} U + b)$: the same $W$, $U$, $b$ at every step",
        size=SMALL,
        gid="label:equation",
    )
    return c.fig


_CELL_Y = 7.4  # the cell-state line
_BUS_Y = 1.6  # [h(t-1), x(t)] feeding the gates
_GATE_Y = 3.3


def draw_lstm_cell(ax, annotations: dict[str, str] | None = None, fontsize: float = 9.0):
    """Draw an LSTM cell (after colah's "Understanding LSTM Networks") into ``ax``, in 0..10 x 0..10.

    The cell state runs along the top: c(t-1) is multiplied by the forget gate f, then
    i * g is added, giving c(t). Below, [h(t-1), x(t)] feeds the four layers: the gates
    f, i, o (sigmoid) and the candidate g (tanh). The output gate multiplies tanh(c(t)) on
    the way to h(t).

    Args:
        ax: a matplotlib axes (cleared by the caller; limits and axis are set here).
        annotations: optional text per node, written beside it; node names are
            ``forget_gate``, ``input_gate``, ``candidate``, ``output_gate``, ``c_out``, ``h_out``.
        fontsize: base font size in points.

    Returns:
        dict: node name -> (x, y) centre, for the named nodes above and ``forget_mul``,
        ``input_mul``, ``add``, ``tanh_c``, ``output_mul``. Edges have gids ``"edge:A->B"``.
    """
    from matplotlib.patches import Circle, FancyArrowPatch, FancyBboxPatch
    from matplotlib.path import Path

    annotations = annotations or {}
    ax.set_xlim(0, 10)
    ax.set_ylim(-0.1, 9.3)
    ax.axis("off")
    small = fontsize - 1
    nodes = {
        "c_prev": (0.15, _CELL_Y),
        "c_out": (9.85, _CELL_Y),
        "h_prev": (0.15, _BUS_Y),
        "x": (1.0, 0.25),
        "h_out": (9.85, _BUS_Y),
        "forget_gate": (2.0, _GATE_Y),
        "input_gate": (3.5, _GATE_Y),
        "candidate": (4.9, _GATE_Y),
        "output_gate": (6.5, _GATE_Y),
        "forget_mul": (2.0, _CELL_Y),
        "input_mul": (4.9, 5.5),
        "add": (4.9, _CELL_Y),
        "tanh_c": (8.0, 6.3),
        "output_mul": (8.0, 5.1),
    }

    def edge(name, points, color="0.3", lw=1.3):
        patch = FancyArrowPatch(
            path=Path(np.asarray(points, float)),
            arrowstyle="-|>",
            mutation_scale=10,
            color=color,
            lw=lw,
            zorder=2,
            shrinkA=0,
            shrinkB=0,
        )
        patch.set_gid(f"edge:{name}")
        ax.add_patch(patch)

    def op(name, symbol):
        x, y = nodes[name]
        patch = Circle((x, y), 0.32, fc=COLOURS["op"], ec="0.3", zorder=4)
        patch.set_gid(f"node:{name}")
        ax.add_patch(patch)
        ax.text(x, y, symbol, ha="center", va="center", fontsize=fontsize + 3, weight="bold", zorder=5)

    def layer(name, fn, colour, label):
        x, y = nodes[name]
        patch = FancyBboxPatch((x - 0.5, y - 0.35), 1.0, 0.7, boxstyle="round,pad=0.05", fc=colour, ec="0.3", zorder=4)
        patch.set_gid(f"node:{name}")
        ax.add_patch(patch)
        ax.text(x, y, fn, ha="center", va="center", fontsize=fontsize + 1, weight="bold", zorder=5)
        ax.text(x - 0.56, y, label, ha="right", va="center", fontsize=fontsize + 1, zorder=5)

    ax.add_patch(FancyBboxPatch((0.7, 0.9), 8.6, 7.5, boxstyle="round,pad=0.15", fc="#f4f8fc", ec="0.55", zorder=0))
    cell_lw = 2.6
    r = 0.32
    # the cell-state line: c(t-1) -> x f -> + i*g -> c(t)
    edge("c_prev->forget_mul", [nodes["c_prev"], (nodes["forget_mul"][0] - r, _CELL_Y)], lw=cell_lw)
    edge("forget_mul->add", [(nodes["forget_mul"][0] + r, _CELL_Y), (nodes["add"][0] - r, _CELL_Y)], lw=cell_lw)
    edge("add->c_out", [(nodes["add"][0] + r, _CELL_Y), nodes["c_out"]], lw=cell_lw)
    ax.text(0.2, _CELL_Y + 0.3, "$c_{t-1}$", fontsize=fontsize, zorder=5)
    ax.text(9.8, _CELL_Y + 0.3, "$c_t$", fontsize=fontsize, ha="right", zorder=5)
    # the input bus: h(t-1) and x(t) -> the four layers
    bus_end = nodes["output_gate"][0]
    ax.plot([nodes["h_prev"][0], bus_end], [_BUS_Y, _BUS_Y], color="0.3", lw=1.3, zorder=2, gid="edge:h_prev->bus")
    edge("x->bus", [(nodes["x"][0], nodes["x"][1] + 0.25), (nodes["x"][0], _BUS_Y)])
    ax.text(0.2, _BUS_Y + 0.2, "$h_{t-1}$", fontsize=fontsize, zorder=5)
    ax.text(nodes["x"][0] + 0.15, nodes["x"][1] + 0.05, "$x_t$", fontsize=fontsize, zorder=5)
    for name in ("forget_gate", "input_gate", "candidate", "output_gate"):
        x = nodes[name][0]
        edge(f"bus->{name}", [(x, _BUS_Y), (x, _GATE_Y - 0.4)])
    layer("forget_gate", "σ", COLOURS["gate"], "$f_t$")
    layer("input_gate", "σ", COLOURS["gate"], "$i_t$")
    layer("candidate", "tanh", COLOURS["tanh"], "$g_t$")
    layer("output_gate", "σ", COLOURS["gate"], "$o_t$")
    # f * c(t-1)
    edge("forget_gate->forget_mul", [(2.0, _GATE_Y + 0.4), (2.0, _CELL_Y - r)])
    # i * g, added to the cell state
    ix, gx, mx = nodes["input_gate"][0], nodes["candidate"][0], nodes["input_mul"]
    edge("input_gate->input_mul", [(ix, _GATE_Y + 0.4), (ix, mx[1]), (mx[0] - r, mx[1])])
    edge("candidate->input_mul", [(gx, _GATE_Y + 0.4), (gx, mx[1] - r)])
    edge("input_mul->add", [(mx[0], mx[1] + r), (mx[0], _CELL_Y - r)])
    # h(t) = o * tanh(c(t))
    tx, ty = nodes["tanh_c"]
    edge("add->tanh_c", [(tx, _CELL_Y), (tx, ty + 0.3)])
    patch = FancyBboxPatch(
        (tx - 0.55, ty - 0.28), 1.1, 0.56, boxstyle="round,pad=0.05", fc="#fdd0a2", ec="0.3", zorder=4
    )
    patch.set_gid("node:tanh_c")
    ax.add_patch(patch)
    ax.text(tx, ty, "tanh", ha="center", va="center", fontsize=fontsize, zorder=5)
    ox, oy = nodes["output_mul"]
    edge("tanh_c->output_mul", [(tx, ty - 0.33), (ox, oy + r)])
    gx_o = nodes["output_gate"][0]
    edge("output_gate->output_mul", [(gx_o, _GATE_Y + 0.4), (gx_o, oy), (ox - r, oy)])
    edge("output_mul->h_out", [(ox, oy - r), (ox, _BUS_Y), nodes["h_out"]])
    ax.text(9.8, _BUS_Y + 0.2, "$h_t$", fontsize=fontsize, ha="right", zorder=5)
    op("forget_mul", "×")
    op("input_mul", "×")
    op("add", "+")
    op("output_mul", "×")
    places = {
        "forget_gate": (2.1, 3.75),
        "input_gate": (3.6, 3.75),
        "candidate": (5.0, 3.75),
        "output_gate": (6.6, 3.75),
        "c_out": (5.9, _CELL_Y + 0.3),
        "h_out": (8.15, 1.9),
    }
    for name, text in annotations.items():
        if name not in places:
            raise ValueError(f"no place for an annotation of {name!r}; use one of {sorted(places)}")
        x, y = places[name]
        t = ax.text(x, y, text, ha="left", va="bottom", fontsize=small, family="monospace", zorder=6)
        t.set_gid(f"value:{name}")
    return nodes


def lstm_cell(equations: bool = True, width: float = 6.5):
    """The LSTM cell (lesson 04), after colah's "Understanding LSTM Networks".

    Args:
        equations: also write the cell's equations beside it.
        width: the cell drawing's width in inches.
    """
    import matplotlib.pyplot as plt

    eq_width = 4.3 if equations else 0.0
    fig = plt.figure(figsize=(width + eq_width, width * 0.8))
    ax = fig.add_axes((0, 0, width / (width + eq_width), 0.93))
    draw_lstm_cell(ax, fontsize=9.0 * width / 6.5 + 1)
    ax.set_title("an LSTM cell: the cell state runs along the top", fontsize=TITLE)
    if equations:
        text = "\n".join(
            [
                r"$f_t = \sigma(x_t W_f + h_{t-1} U_f + b_f)$   forget gate",
                r"$i_t = \sigma(x_t W_i + h_{t-1} U_i + b_i)$   input gate",
                r"$g_t = \tanh(x_t W_g + h_{t-1} U_g + b_g)$   candidate",
                r"$o_t = \sigma(x_t W_o + h_{t-1} U_o + b_o)$   output gate",
                "",
                r"$c_t = f_t \odot c_{t-1} + i_t \odot g_t$",
                r"$h_t = o_t \odot \tanh(c_t)$",
            ]
        )
        t = fig.text(
            width / (width + eq_width) + 0.01, 0.5, text, ha="left", va="center", fontsize=FONT, linespacing=1.9
        )
        t.set_gid("label:equations")
    return fig


# --------------------------------------------------------------------------- lesson 05


def autoencoder(layer_sizes=(784, 32, 784)):
    """An autoencoder (lesson 05): encoder, bottleneck code, decoder; the target is the input.

    Args:
        layer_sizes: units per layer from the input to the reconstruction, e.g.
            (784, 256, 64, 2, 64, 256, 784); the smallest is the code.

    Each layer is a bar whose height grows with the square root of its size.
    """
    from matplotlib.patches import Polygon

    sizes = _check_sizes("autoencoder", layer_sizes, minimum=3)
    code = int(np.argmin(sizes))
    if code in (0, len(sizes) - 1):
        raise ValueError(f"the code must be a middle layer: the smallest of {sizes} is at an end")
    dx = max(2.0, 5.0 / (len(sizes) - 1))
    heights = 4.2 * np.sqrt(np.asarray(sizes) / max(sizes))
    heights = np.maximum(heights, 0.3)
    x_of = [i * dx for i in range(len(sizes))]
    c = _Canvas(
        (-1.4, x_of[-1] + 1.4),
        (-max(heights) / 2 - 2.1, max(heights) / 2 + 1.5),
        title=f"autoencoder {' → '.join(str(n) for n in sizes)}: compression ratio {sizes[0]}/{sizes[code]} = {sizes[0] / sizes[code]:.3g}",
    )
    for i in range(len(sizes) - 1):
        a, b = heights[i] / 2, heights[i + 1] / 2
        colour = COLOURS["gate"] if i < code else COLOURS["hidden"]
        poly = Polygon(
            [(x_of[i] + 0.2, a), (x_of[i + 1] - 0.2, b), (x_of[i + 1] - 0.2, -b), (x_of[i] + 0.2, -a)],
            closed=True,
            fc=colour,
            ec="none",
            alpha=0.55,
            zorder=1,
        )
        poly.set_gid("node:encoder_part" if i < code else "node:decoder_part")
        c.ax.add_patch(poly)
    for i, (x, h, n) in enumerate(zip(x_of, heights, sizes)):
        fc = (
            COLOURS["input"]
            if i == 0
            else COLOURS["output"]
            if i == code
            else COLOURS["input"]
            if i == len(sizes) - 1
            else "white"
        )
        c.box((x, 0), 0.4, h, fc=fc, gid="node:code" if i == code else "node:layer", pad=0.04)
        c.text((x, -h / 2 - 0.3), f"{n:,}", size=SMALL, gid="label:size")
    c.text((x_of[0], heights[0] / 2 + 0.35), "input $x$", size=SMALL, gid="label:input")
    c.text((x_of[-1], heights[-1] / 2 + 0.35), r"reconstruction $\hat{x}$", size=SMALL, gid="label:output")
    c.text((x_of[code], heights[code] / 2 + 0.35), "code $c$", size=SMALL, weight="bold", gid="label:code")
    c.text(
        ((x_of[0] + x_of[code]) / 2, max(heights) / 2 + 1.0),
        "encoder\n" r"$c = f(x)$",
        size=SMALL + 0.5,
        gid="label:encoder",
    )
    c.text(
        ((x_of[code] + x_of[-1]) / 2, max(heights) / 2 + 1.0),
        "decoder\n" r"$\hat{x} = g(c)$",
        size=SMALL + 0.5,
        gid="label:decoder",
    )
    y = -max(heights) / 2 - 0.85
    c.arrow(
        [(x_of[-1], y + 0.25), (x_of[-1], y - 0.45), (x_of[0], y - 0.45), (x_of[0], y + 0.25)],
        color=COLOURS["backward"],
        lw=1.2,
        gid="edge:loss",
    )
    c.text(
        ((x_of[0] + x_of[-1]) / 2, y - 0.8),
        r"loss$(x, \hat{x})$: the target is the input itself",
        size=SMALL,
        color=COLOURS["backward"],
        gid="label:loss",
    )
    return c.fig


def rbm(n_visible: int = 6, n_hidden: int = 4, max_units: int = 8):
    """A restricted Boltzmann machine (lesson 05): the bipartite graph of visible and hidden units.

    Args:
        n_visible, n_hidden: layer sizes (larger layers are elided beyond max_units).

    Every visible unit connects to every hidden unit through W (undirected: the same
    weights are used in both directions); no connections within a layer.
    """
    if n_visible < 1 or n_hidden < 1:
        raise ValueError("an RBM has at least one visible and one hidden unit")
    spacing = 1.0
    vis, vis_gap = _shown(n_visible, max_units)
    hid, hid_gap = _shown(n_hidden, max_units)
    n_slots = max(len(vis) + (vis_gap is not None), len(hid) + (hid_gap is not None))
    width = (n_slots - 1) * spacing
    c = _Canvas(
        (-2.2, width + 3.1),
        (-1.5, 3.8),
        title=f"an RBM: {n_visible:,} visible and {n_hidden:,} hidden units, {n_visible * n_hidden:,} weights",
    )

    def row(indices, gap, y, letter, fc):
        slots = len(indices) + (gap is not None)
        x0 = (width - (slots - 1) * spacing) / 2
        out, s = [], 0
        for slot in range(slots):
            x = x0 + slot * spacing
            if gap is not None and slot == gap:
                c.text((x, y), r"$\cdots$")
                continue
            out.append((x, y))
            c.circle((x, y), f"${letter}_{{{indices[s] + 1}}}$", fc=fc, r=0.33, size=SMALL, gid=f"node:{letter}")
            s += 1
        return out

    vpos = row(vis, vis_gap, 0.0, "v", COLOURS["input"])
    hpos = row(hid, hid_gap, 2.6, "h", COLOURS["hidden"])
    for p in vpos:
        for q in hpos:
            c.line(*_trim(p, q, 0.33, 0.33), color=COLOURS["edge"], lw=0.7, alpha=0.7, gid="edge:W")
    c.text((-0.6, 2.6), "hidden $\\mathbf{h}$\n(features)", size=SMALL, ha="right", gid="label:hidden")
    c.text((-0.6, 0.0), "visible $\\mathbf{v}$\n(pixels)", size=SMALL, ha="right", gid="label:visible")
    c.text((width + 0.6, 2.6), "biases $\\mathbf{b}_h$", size=SMALL, ha="left")
    c.text((width + 0.6, 0.0), "biases $\\mathbf{b}_v$", size=SMALL, ha="left")
    c.text((width + 0.6, 1.3), f"$W$: {n_visible}×{n_hidden}", size=SMALL, ha="left", gid="label:W")
    c.text(
        (width / 2, -1.05),
        "no connections within a layer: given one layer, the other's units are independent",
        size=SMALL - 0.5,
        color="0.3",
    )
    return c.fig


def cd1_chain(k: int = 1):
    """Contrastive divergence (lesson 05): the sampling chain of CD-k and the weight update.

    Args:
        k: Gibbs steps (CD-1 is k = 1, the lesson's algorithm).

    From a data batch v0: p(h | v0), a binary sample h0, the reconstruction
    v1 = p(v | h0), then p(h | v1) (for k > 1 the chain goes on, sampling h each step).
    The update moves W towards the data's correlations and away from the reconstruction's.
    """
    if not 1 <= k <= 4:
        raise ValueError(f"draw CD-k for k from 1 to 4, got {k}")
    dx = 3.6
    c = _Canvas((-1.4, k * dx + dx / 2 + 1.6), (-3.0, 3.2), title=f"CD-{k}: one chain of Gibbs sampling per update")
    vis_y, hid_y = 0.0, 2.3
    xs_v = [i * dx for i in range(k + 1)]
    for i, x in enumerate(xs_v):
        label = r"$\mathbf{v}_0$" + "\n(data)" if i == 0 else rf"$\mathbf{{v}}_{{{i}}}$"
        c.box((x, vis_y), 1.2, 0.8 if i else 1.0, label, fc=COLOURS["input"], gid=f"node:v{i}", size=SMALL + 0.5)
        hx = x + dx / 2
        c.box(
            (hx, hid_y),
            1.5,
            0.8,
            rf"$p(\mathbf{{h}}\,|\,\mathbf{{v}}_{{{i}}})$",
            fc=COLOURS["hidden"],
            gid=f"node:ph{i}",
            size=SMALL + 0.5,
        )
        c.arrow([(x + 0.3, vis_y + 0.45), (hx - 0.45, hid_y - 0.42)], gid=f"edge:v{i}->ph{i}")
        if i < k:
            c.arrow([(hx + 0.45, hid_y - 0.42), (xs_v[i + 1] - 0.3, vis_y + 0.42)], gid=f"edge:h{i}->v{i + 1}")
            mid = ((hx + xs_v[i + 1]) / 2 + 0.3, (hid_y + vis_y) / 2 + 0.3)
            c.text(
                mid,
                rf"sample $\mathbf{{h}}_{{{i}}}$," + "\n" + rf"$p(\mathbf{{v}}\,|\,\mathbf{{h}}_{{{i}}})$",
                size=SMALL - 1,
                ha="left",
                color="0.25",
            )
    red, blue = COLOURS["backward"], "#2171b5"
    c.text(
        (xs_v[0] + dx / 4, -1.35),
        r"positive: $\mathbf{v}_0^\top p(\mathbf{h}|\mathbf{v}_0)$" + "\nlowers the data's energy",
        size=SMALL,
        color=blue,
        gid="label:positive",
    )
    c.text(
        (xs_v[-1] + dx / 4, -1.35),
        rf"negative: $\mathbf{{v}}_{{{k}}}^\top p(\mathbf{{h}}|\mathbf{{v}}_{{{k}}})$"
        + "\nraises the reconstruction's",
        size=SMALL,
        color=red,
        gid="label:negative",
    )
    c.text(
        ((xs_v[0] + xs_v[-1]) / 2 + dx / 4, -2.55),
        r"$\Delta W = \eta\,\left(\mathbf{v}_0^\top p(\mathbf{h}|\mathbf{v}_0) - "
        rf"\mathbf{{v}}_{{{k}}}^\top p(\mathbf{{h}}|\mathbf{{v}}_{{{k}}})\right) / N$",
        size=FONT,
        gid="label:update",
    )
    return c.fig
