"""Playground (lesson 01): train a small dense network live and watch it learn.

After TensorFlow Playground: four 2-D datasets with noise and a train/test split;
0-6 hidden layers of 1-8 neurons; activation, L2 rate and learning rate; play, pause,
step and reset; the decision boundary as a heatmap with the train and test points;
train and test loss curves; and the ``keras.Sequential`` code of the network, kept in
sync.  Beyond the anchor, the same architecture can be trained on a small MNIST
subset, with its accuracy shown.

    from dlcourse.widgets.playground import Playground
    Playground(dataset="spiral", hidden=(8, 8, 4), activation="tanh")
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import numpy as np

from .. import data
from ._display import PngView, Visualizer, figure_png

__all__ = ["Architecture", "Playground", "build_model", "keras_code", "DATASETS"]

DATASETS = data.TOY_DATASETS + ("mnist",)
ACTIVATIONS = ("relu", "tanh", "sigmoid", "linear")
L2_RATES = (0.0, 0.0001, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3)
LEARNING_RATES = (0.0001, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0)
MAX_LAYERS, MAX_NEURONS = 6, 8
BATCH_SIZE = 10
MNIST_TRAIN, MNIST_TEST = 2000, 1000


@dataclass(frozen=True)
class Architecture:
    """A dense network: ``hidden`` neurons per hidden layer (0-6 layers of 1-8),
    their ``activation``, the ``l2`` penalty rate on every kernel and the SGD
    ``learning_rate``."""

    hidden: tuple[int, ...] = (4, 2)
    activation: str = "tanh"
    l2: float = 0.0
    learning_rate: float = 0.03

    def __post_init__(self):
        if len(self.hidden) > MAX_LAYERS or any(not 1 <= n <= MAX_NEURONS for n in self.hidden):
            raise ValueError(f"hidden must be 0-{MAX_LAYERS} layers of 1-{MAX_NEURONS} neurons, got {self.hidden}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {self.activation!r}")
        if self.l2 < 0 or self.learning_rate <= 0:
            raise ValueError("l2 must be >= 0 and learning_rate > 0")


def _output(n_outputs: int) -> tuple[str, str]:
    if n_outputs == 1:
        return "sigmoid", "binary_crossentropy"
    return "softmax", "sparse_categorical_crossentropy"


def keras_code(arch: Architecture, n_inputs: int = 2, n_outputs: int = 1) -> str:
    """The ``keras.Sequential`` code that builds and compiles the playground's network."""
    reg = f", kernel_regularizer=keras.regularizers.L2({arch.l2:g})" if arch.l2 else ""
    out_act, loss = _output(n_outputs)
    lines = ["model = keras.Sequential([", f"    keras.Input(shape=({n_inputs},)),"]
    lines += [f'    keras.layers.Dense({n}, activation="{arch.activation}"{reg}),' for n in arch.hidden]
    lines += [f'    keras.layers.Dense({n_outputs}, activation="{out_act}"{reg}),', "])"]
    lines.append(
        f"model.compile(optimizer=keras.optimizers.SGD(learning_rate={arch.learning_rate:g}), "
        f'loss="{loss}", metrics=["accuracy"])'
    )
    return "\n".join(lines)


def build_model(arch: Architecture, n_inputs: int = 2, n_outputs: int = 1, seed: int = 0):
    """Build and compile the network ``keras_code`` describes (weights seeded by ``seed``)."""
    import keras

    keras.utils.set_random_seed(seed)
    namespace = {"keras": keras}
    exec(keras_code(arch, n_inputs, n_outputs), namespace)  # one source of truth for model and code
    return namespace["model"]


@dataclass
class History:
    """Per-epoch curves: losses always, accuracies too."""

    train_loss: list = field(default_factory=list)
    test_loss: list = field(default_factory=list)
    train_acc: list = field(default_factory=list)
    test_acc: list = field(default_factory=list)


class Playground(Visualizer):
    """A live, TensorFlow-Playground-style trainer.

    Settings: ``dataset`` (circle, xor, gauss, spiral or mnist), ``noise`` (0-0.5),
    ``test_fraction``, ``n_points``, and the fields of ``Architecture``.  From code:
    ``pg.set(hidden=(8, 8))``, ``pg.train(epochs=10)``, ``pg.reset()``.  ``pg.model``
    is the Keras model, ``pg.code`` its source, ``pg.history`` the curves.
    """

    GRID = 60  # heatmap resolution per axis

    def __init__(
        self,
        dataset: str = "circle",
        *,
        noise: float = 0.1,
        test_fraction: float = 0.5,
        n_points: int = 400,
        seed: int = 0,
        **arch,
    ):
        self.dataset, self.noise, self.test_fraction, self.n_points, self.seed = (
            dataset,
            noise,
            test_fraction,
            n_points,
            seed,
        )
        self.arch = Architecture(**{**Architecture().__dict__, **arch})
        self.view = PngView()
        self._figure = None
        self._last_tick = 0.0
        self.reset()

    # --- state ------------------------------------------------------------------------

    @property
    def mnist(self) -> bool:
        return self.dataset == "mnist"

    @property
    def code(self) -> str:
        n_in, n_out = (784, 10) if self.mnist else (2, 1)
        return keras_code(self.arch, n_in, n_out)

    def set(self, **changes) -> None:
        """Change settings: data ones (dataset, noise, test_fraction, n_points, seed)
        regenerate the data; architecture ones rebuild the network; a new learning
        rate alone keeps the weights.  Then redraw."""
        data_keys = {"dataset", "noise", "test_fraction", "n_points", "seed"}
        unknown = set(changes) - data_keys - set(Architecture.__dataclass_fields__)
        if unknown:
            raise TypeError(f"unknown setting(s): {sorted(unknown)}")
        for key in data_keys & set(changes):
            setattr(self, key, changes[key])
        arch_changes = {k: v for k, v in changes.items() if k in Architecture.__dataclass_fields__}
        if "hidden" in arch_changes:
            arch_changes["hidden"] = tuple(arch_changes["hidden"])
        new_arch = replace(self.arch, **arch_changes)
        only_lr = set(changes) == {"learning_rate"}
        self.arch = new_arch
        if only_lr:
            self.model.optimizer.learning_rate.assign(new_arch.learning_rate)
            self._sync_controls()
            self._draw()
        else:
            self.reset(new_data=bool(data_keys & set(changes)))

    def reset(self, new_data: bool = True) -> None:
        """New weights (and, by default, freshly generated data); epoch 0."""
        if new_data or not hasattr(self, "x_train"):
            self._make_data()
        n_in, n_out = (784, 10) if self.mnist else (2, 1)
        self.model = build_model(self.arch, n_in, n_out, seed=self.seed)
        self._train_epoch = self._make_trainer()
        self.epoch = 0
        self.history = History()
        self._figure = None  # new data or mode: lay the figure out afresh
        self._record()
        self._sync_controls()
        self._draw()

    def _make_data(self) -> None:
        if self.mnist:
            (x, y), (xt, yt) = data.load_mnist()
            self.x_train = x[:MNIST_TRAIN].reshape(-1, 784).astype(np.float32) / 255
            self.y_train = y[:MNIST_TRAIN].astype(np.int64)
            self.x_test = xt[:MNIST_TEST].reshape(-1, 784).astype(np.float32) / 255
            self.y_test = yt[:MNIST_TEST].astype(np.int64)
            self._images = xt[:16]
        else:
            x, y = data.toy_2d(self.dataset, self.n_points, noise=self.noise, seed=self.seed)
            (self.x_train, self.y_train), (self.x_test, self.y_test) = data.train_test_split(
                x, y, test_fraction=self.test_fraction, seed=self.seed
            )

    @property
    def batch_size(self) -> int:
        return 10 * BATCH_SIZE if self.mnist else BATCH_SIZE

    def train(self, epochs: int = 1) -> None:
        """Train ``epochs`` passes over the shuffled training set in mini-batches, then redraw.

        Each mini-batch is one SGD step on the compiled loss plus the L2 penalty, what
        ``model.fit(x, y, batch_size=10)`` does (100 for MNIST), run as one compiled
        TensorFlow loop per epoch so that the playground stays live.
        """
        rng = np.random.default_rng(self.seed * 7919 + self.epoch)
        n_batches = max(1, len(self.x_train) // self.batch_size)
        for _ in range(epochs):
            order = rng.permutation(len(self.x_train))[: n_batches * self.batch_size]
            xb = self.x_train[order].reshape(n_batches, self.batch_size, -1)
            yb = self.y_train[order].reshape(n_batches, self.batch_size)
            self._train_epoch(xb, yb)
            self.epoch += 1
            self._record()
        self._draw()

    def _make_trainer(self):
        import keras
        import tensorflow as tf

        model, optimizer = self.model, self.model.optimizer
        loss_fn = keras.losses.get(model.loss)
        binary = not self.mnist
        optimizer.build(model.trainable_variables)

        @tf.function(reduce_retracing=True)
        def train_epoch(xb, yb):
            for i in tf.range(tf.shape(xb)[0]):
                with tf.GradientTape() as tape:
                    pred = model(xb[i], training=True)
                    y = tf.cast(yb[i][:, None], pred.dtype) if binary else yb[i]
                    loss = tf.reduce_mean(loss_fn(y, pred))
                    if model.losses:
                        loss += tf.add_n(model.losses)
                grads = tape.gradient(loss, model.trainable_variables)
                optimizer.apply_gradients(zip(grads, model.trainable_variables))

        return train_epoch

    def predict(self, x) -> np.ndarray:
        """Class-1 probabilities ``(N,)`` (2-D data) or class probabilities ``(N, 10)`` (MNIST)."""
        p = np.asarray(self.model(np.asarray(x, np.float32), training=False))
        return p if self.mnist else p[:, 0]

    def _losses(self, x, y) -> tuple[float, float]:
        p = np.clip(self.predict(x), 1e-7, 1 - 1e-7)
        if self.mnist:
            return float(-np.mean(np.log(p[np.arange(len(y)), y]))), float(np.mean(p.argmax(1) == y))
        loss = -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))
        return float(loss), float(np.mean((p > 0.5) == y))

    def _record(self) -> None:
        h = self.history
        for x, y, losses, accs in (
            (self.x_train, self.y_train, h.train_loss, h.train_acc),
            (self.x_test, self.y_test, h.test_loss, h.test_acc),
        ):
            loss, acc = self._losses(x, y)
            losses.append(loss)
            accs.append(acc)

    def status(self) -> str:
        h = self.history
        text = f"epoch {self.epoch}: train loss {h.train_loss[-1]:.3f}, test loss {h.test_loss[-1]:.3f}"
        if self.mnist:
            text += f"; accuracy train {h.train_acc[-1]:.1%}, test {h.test_acc[-1]:.1%}"
        return text + f"; {self.model.count_params():,} parameters"

    # --- drawing ----------------------------------------------------------------------

    def _layout(self) -> None:
        """Create the figure's axes and the artists that only change on reset."""
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        if self._figure is None:
            self._figure = Figure(figsize=(8.4, 3.9), dpi=72)
            FigureCanvasAgg(self._figure)
        fig = self._figure
        fig.clear()
        left, right = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.05, 1]})
        a = self._artists = {"left": left, "right": right}
        if self.mnist:
            grid = np.ones((2 * 42, 8 * 30))
            for k in range(16):
                i, j = divmod(k, 8)
                grid[i * 42 : i * 42 + 28, j * 30 : j * 30 + 28] = 1 - self._images[k] / 255
            a["image"] = left.imshow(grid, cmap="gray", vmin=0, vmax=1)
            a["labels"] = [
                left.text(j * 30 + 14, i * 42 + 37, "", ha="center", va="center", fontsize=11, weight="bold")
                for i, j in (divmod(k, 8) for k in range(16))
            ]
            left.axis("off")
        else:
            lim = 6.0
            a["heat"] = left.imshow(
                np.zeros((self.GRID, self.GRID)),
                origin="lower",
                extent=(-lim, lim, -lim, lim),
                cmap="RdBu_r",
                vmin=0,
                vmax=1,
                alpha=0.8,
                interpolation="bilinear",
            )
            colours = np.array(["#1f5fbf", "#d0451b"])
            left.scatter(
                *self.x_train.T, c=colours[self.y_train], s=14, edgecolors="white", linewidths=0.7, label="train"
            )
            left.scatter(*self.x_test.T, c=colours[self.y_test], s=14, edgecolors="black", linewidths=0.7, label="test")
            left.set_xlim(-lim, lim)
            left.set_ylim(-lim, lim)
            left.set_aspect("equal")
            left.tick_params(labelsize=7)
            left.legend(loc="upper right", fontsize=7, framealpha=0.8)
            axis = np.linspace(-lim, lim, self.GRID, dtype=np.float32)
            gx, gy = np.meshgrid(axis, axis)
            self._grid_points = np.stack([gx.ravel(), gy.ravel()], 1)
        a["title"] = left.set_title("", fontsize=9)
        (a["train"],) = right.plot([], [], label="train loss", color="tab:blue")
        (a["test"],) = right.plot([], [], label="test loss", color="tab:orange")
        right.set_xlabel("epoch", fontsize=8)
        right.tick_params(labelsize=7)
        right.grid(alpha=0.3)
        right.legend(fontsize=8)
        a["curve_title"] = right.set_title("", fontsize=9)
        fig.subplots_adjust(left=0.04, right=0.98, top=0.9, bottom=0.12, wspace=0.2)

    def render_figure(self):
        """Update the figure to the current state and return it."""
        if self._figure is None or self._artists.get("mnist") != self.mnist:
            self._layout()
            self._artists["mnist"] = self.mnist
        a, h = self._artists, self.history
        if self.mnist:
            pred = self.predict(self._images.reshape(-1, 784).astype(np.float32) / 255).argmax(1)
            for k, label in enumerate(a["labels"]):
                label.set_text(str(pred[k]))
                label.set_color("black" if pred[k] == self.y_test[k] else "red")
            a["title"].set_text("test digits, predicted labels (red = wrong)")
        else:
            a["heat"].set_data(self.predict(self._grid_points).reshape(self.GRID, self.GRID))
            a["title"].set_text(f"{self.dataset}: P(orange class); dots white-edged = train, black = test")
        epochs = np.arange(len(h.train_loss))
        a["train"].set_data(epochs, h.train_loss)
        a["test"].set_data(epochs, h.test_loss)
        a["right"].set_xlim(0, max(1, len(epochs) - 1))
        a["right"].set_ylim(0, max(max(h.train_loss), max(h.test_loss)) * 1.05)
        title = f"epoch {self.epoch}: loss train {h.train_loss[-1]:.3f}, test {h.test_loss[-1]:.3f}"
        if self.mnist:
            title += f"; test accuracy {h.test_acc[-1]:.1%}"
        a["curve_title"].set_text(title)
        return self._figure

    def _draw(self) -> None:
        self.view.update(figure_png(self.render_figure()))
        if self._widget is not None:
            self._status.value = self.status()
            self._code.value = f"<pre style='font-size:11px;line-height:1.3'>{self.code}</pre>"

    # --- widget -----------------------------------------------------------------------

    def _build_widget(self):
        import ipywidgets as w

        a = self.arch
        style = {"description_width": "95px"}
        lay = w.Layout(width="250px")
        c = self._controls = {
            "dataset": w.Dropdown(options=DATASETS, value=self.dataset, description="data", style=style, layout=lay),
            "noise": w.FloatSlider(
                value=self.noise,
                min=0,
                max=0.5,
                step=0.05,
                description="noise",
                continuous_update=False,
                style=style,
                layout=lay,
            ),
            "test_fraction": w.FloatSlider(
                value=self.test_fraction,
                min=0.1,
                max=0.9,
                step=0.1,
                description="test share",
                continuous_update=False,
                style=style,
                layout=lay,
            ),
            "layers": w.IntSlider(
                value=len(a.hidden), min=0, max=MAX_LAYERS, description="hidden layers", style=style, layout=lay
            ),
            "activation": w.Dropdown(
                options=ACTIVATIONS, value=a.activation, description="activation", style=style, layout=lay
            ),
            "l2": w.Dropdown(options=L2_RATES, value=a.l2, description="L2 rate", style=style, layout=lay),
            "learning_rate": w.Dropdown(
                options=LEARNING_RATES, value=a.learning_rate, description="learning rate", style=style, layout=lay
            ),
        }
        self._neurons = [
            w.IntSlider(
                value=(a.hidden[i] if i < len(a.hidden) else 4),
                min=1,
                max=MAX_NEURONS,
                description=f"layer {i + 1}",
                style={"description_width": "50px"},
                layout=w.Layout(width="200px"),
            )
            for i in range(MAX_LAYERS)
        ]
        self._play = w.Play(value=0, min=0, max=10**9, interval=250, description="play / pause")
        step = w.Button(description="step", icon="step-forward", layout=w.Layout(width="80px"))
        reset = w.Button(description="reset", icon="refresh", layout=w.Layout(width="80px"))
        self._status = w.Label()
        self._code = w.HTML()
        self._syncing = False

        def settings_changed(_):
            if self._syncing:
                return
            hidden = tuple(s.value for s in self._neurons[: c["layers"].value])
            self.set(
                dataset=c["dataset"].value,
                noise=c["noise"].value,
                test_fraction=c["test_fraction"].value,
                hidden=hidden,
                activation=c["activation"].value,
                l2=c["l2"].value,
            ) if self._data_or_arch_changed(hidden) else self.set(learning_rate=c["learning_rate"].value)

        def tick(_):
            # Coalesce: ticks that queued up while a step ran are dropped, so pause is immediate.
            if time.monotonic() - self._last_tick < self._play.interval / 2000:
                return
            self.train(epochs=1 if self.mnist else 5)
            self._last_tick = time.monotonic()

        for control in list(c.values()) + self._neurons:
            control.observe(settings_changed, names="value")
        self._play.observe(tick, names="value")
        step.on_click(lambda _: self.train(epochs=1))
        reset.on_click(lambda _: self.reset())

        data_box = w.VBox([w.HTML("<b>Data</b>"), c["dataset"], c["noise"], c["test_fraction"]])
        net_box = w.VBox([w.HTML("<b>Network</b>"), c["layers"], c["activation"], c["l2"], c["learning_rate"]])
        neuron_box = w.VBox([w.HTML("<b>Neurons per layer</b>")] + self._neurons)
        run_box = w.HBox([self._play, step, reset, self._status])
        code_box = w.VBox([w.HTML("<b>The same network in Keras</b>"), self._code])
        self._widget = w.VBox([w.HBox([data_box, net_box, neuron_box]), run_box, w.HBox([self.view.widget, code_box])])
        self._sync_controls()
        self._draw()
        return self._widget

    def _data_or_arch_changed(self, hidden) -> bool:
        c = self._controls
        return (
            c["dataset"].value,
            c["noise"].value,
            c["test_fraction"].value,
            hidden,
            c["activation"].value,
            c["l2"].value,
        ) != (self.dataset, self.noise, self.test_fraction, self.arch.hidden, self.arch.activation, self.arch.l2)

    def _sync_controls(self) -> None:
        if self._widget is None:
            return
        self._syncing = True
        try:
            c = self._controls
            for key in ("dataset", "noise", "test_fraction"):
                c[key].value = getattr(self, key)
            for key in ("activation", "l2", "learning_rate"):
                c[key].value = getattr(self.arch, key)
            c["layers"].value = len(self.arch.hidden)
            for i, slider in enumerate(self._neurons):
                if i < len(self.arch.hidden):
                    slider.value = self.arch.hidden[i]
                slider.disabled = i >= len(self.arch.hidden)
            c["noise"].disabled = c["test_fraction"].disabled = self.mnist
        finally:
            self._syncing = False

    def __repr__(self) -> str:
        return f"Playground({self.dataset}, {self.arch})\n{self.status()}"
