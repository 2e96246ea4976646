"""Latent explorer (lesson 05): walk through an autoencoder's 2-D code, and watch a denoiser work.

Two sliders move a point through the code space, drawn over the codes of real digits
coloured by class, and the decoder turns the point into an image, live.  With a
denoiser, a noise slider shows a noisy input, the denoised output and the original
side by side.

    from dlcourse.widgets.latent_explorer import LatentExplorer
    LatentExplorer(decoder, codes=encoder.predict(x), labels=y,
                   denoiser=denoiser, images=x_test[:50])
"""

from __future__ import annotations

import numpy as np

from ._display import PngView, Visualizer

__all__ = ["LatentExplorer", "decode_point", "gaussian_noise"]


def decode_point(decoder, z) -> np.ndarray:
    """Decode one 2-D code ``z`` (2,) into a (28, 28) image with values in [0, 1]."""
    out = np.asarray(decoder(np.asarray(z, np.float32).reshape(1, -1), training=False))
    return out.reshape(28, 28)


def gaussian_noise(images, level: float, seed: int = 0) -> np.ndarray:
    """``clip(images + level * N(0, 1), 0, 1)``, the noise the explorer shows (float32)."""
    rng = np.random.default_rng(seed)
    images = np.asarray(images, np.float32)
    return np.clip(images + level * rng.standard_normal(images.shape).astype(np.float32), 0.0, 1.0)


class LatentExplorer(Visualizer):
    """Decode any point of a 2-D code space; compare noisy, denoised and original images.

    Args:
        decoder: Keras model from a (N, 2) code to (N, 784) or (N, 28, 28[, 1]) images.
        codes: optional (N, 2) codes of real images, drawn as the background scatter.
        labels: optional (N,) digit labels to colour the scatter.
        denoiser: optional Keras model from noisy images to clean ones.
        images: (M, ...) clean images in [0, 1] for the denoiser panel, shaped as the
            denoiser expects.
        noise: the starting noise level (0 to 1).
    """

    def __init__(self, decoder, codes=None, labels=None, *, denoiser=None, images=None, z=None, noise: float = 0.4):
        self.decoder = decoder
        self.codes = None if codes is None else np.asarray(codes, np.float32)
        if self.codes is not None and (self.codes.ndim != 2 or self.codes.shape[1] != 2):
            raise ValueError(f"codes must be (N, 2), got shape {self.codes.shape}")
        self.labels = None if labels is None else np.asarray(labels)
        self.denoiser, self.images = denoiser, None if images is None else np.asarray(images, np.float32)
        if (denoiser is None) != (images is None):
            raise ValueError("pass both denoiser= and images= for the denoising panel, or neither")
        if self.codes is not None:
            lo, hi = np.percentile(self.codes, [1, 99], axis=0)
            pad = 0.1 * (hi - lo)
            self.bounds = np.stack([lo - pad, hi + pad], axis=1)  # (2, 2): per axis (min, max)
        else:
            self.bounds = np.array([[-3.0, 3.0], [-3.0, 3.0]])
        start = self.bounds.mean(axis=1) if z is None else np.asarray(z, float)
        self.state = {"z1": float(start[0]), "z2": float(start[1]), "noise": float(noise), "image": 0}
        self.view = PngView()
        self._figure = None
        self._draw()

    # --- what is shown ----------------------------------------------------------------

    @property
    def z(self) -> np.ndarray:
        return np.array([self.state["z1"], self.state["z2"]], np.float32)

    def decoded(self) -> np.ndarray:
        """The image decoded from the current point, (28, 28)."""
        return decode_point(self.decoder, self.z)

    def denoising(self) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """(noisy, denoised, original) for the current image and noise level, each (28, 28)."""
        if self.denoiser is None:
            return None
        clean = self.images[self.state["image"] : self.state["image"] + 1]
        noisy = gaussian_noise(clean, self.state["noise"], seed=self.state["image"])
        denoised = np.asarray(self.denoiser(noisy, training=False))
        return noisy.reshape(28, 28), denoised.reshape(28, 28), clean.reshape(28, 28)

    def set(self, **changes) -> None:
        unknown = set(changes) - set(self.state)
        if unknown:
            raise TypeError(f"unknown setting(s): {sorted(unknown)}")
        self.state.update({k: (int(v) if k == "image" else float(v)) for k, v in changes.items()})
        self._draw()
        self._sync_controls()

    def status(self) -> str:
        text = f"code z = ({self.state['z1']:.2f}, {self.state['z2']:.2f})"
        d = self.denoising()
        if d is not None:
            noisy, denoised, clean = d
            text += (
                f"; noise {self.state['noise']:.2f}: error (MSE) of the noisy input {np.mean((noisy - clean) ** 2):.4f}, "
                f"of the denoised output {np.mean((denoised - clean) ** 2):.4f}"
            )
        return text

    # --- drawing ----------------------------------------------------------------------

    def _layout(self):
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        panels = 2 + (3 if self.denoiser is not None else 0)
        self._figure = fig = Figure(figsize=(3.6 + 2.0 * (panels - 1), 3.4), dpi=72)
        FigureCanvasAgg(fig)
        ratios = [1.8] + [1] * (panels - 1)
        axes = fig.subplots(1, panels, gridspec_kw={"width_ratios": ratios})
        a = self._artists = {"scatter": axes[0]}
        ax = axes[0]
        if self.codes is not None:
            colours = self.labels if self.labels is not None else "0.6"
            ax.scatter(self.codes[:, 0], self.codes[:, 1], c=colours, cmap="tab10", s=4, alpha=0.6)
            if self.labels is not None:
                for digit in np.unique(self.labels):
                    centre = np.median(self.codes[self.labels == digit], axis=0)
                    ax.text(
                        *centre,
                        str(digit),
                        fontsize=11,
                        weight="bold",
                        ha="center",
                        va="center",
                        bbox=dict(boxstyle="round,pad=0.15", fc="white", alpha=0.7, lw=0),
                    )
        a["marker"] = ax.scatter([0], [0], marker="X", s=160, c="black", edgecolors="white", linewidths=1.5, zorder=5)
        ax.set_xlim(*self.bounds[0])
        ax.set_ylim(*self.bounds[1])
        ax.set_title("2-D code space", fontsize=9)
        ax.tick_params(labelsize=7)
        a["decoded"] = axes[1].imshow(np.zeros((28, 28)), cmap="gray_r", vmin=0, vmax=1)
        a["decoded_title"] = axes[1].set_title("", fontsize=9)
        if self.denoiser is not None:
            for key, ax_i, title in zip(
                ("noisy", "denoised", "clean"), axes[2:], ("noisy input", "denoised", "original")
            ):
                a[key] = ax_i.imshow(np.zeros((28, 28)), cmap="gray_r", vmin=0, vmax=1)
                a[key + "_title"] = ax_i.set_title(title, fontsize=9)
        for ax_i in axes[1:]:
            ax_i.set_xticks([])
            ax_i.set_yticks([])
        fig.subplots_adjust(left=0.05, right=0.99, top=0.88, bottom=0.08, wspace=0.15)

    def render_figure(self):
        if self._figure is None:
            self._layout()
        a = self._artists
        a["marker"].set_offsets([self.z])
        a["decoded"].set_data(self.decoded())
        a["decoded_title"].set_text(f"decoded from ({self.state['z1']:.2f}, {self.state['z2']:.2f})")
        d = self.denoising()
        if d is not None:
            noisy, denoised, clean = d
            a["noisy"].set_data(noisy)
            a["denoised"].set_data(np.clip(denoised, 0, 1))
            a["clean"].set_data(clean)
            a["noisy_title"].set_text(f"noisy ({self.state['noise']:.2f}): MSE {np.mean((noisy - clean) ** 2):.3f}")
            a["denoised_title"].set_text(f"denoised: MSE {np.mean((denoised - clean) ** 2):.3f}")
        return self._figure

    def _build_widget(self):
        import ipywidgets as w

        (x0, x1), (y0, y1) = self.bounds
        step = float(max(x1 - x0, y1 - y0) / 200)
        c = {
            "z1": w.FloatSlider(self.state["z1"], min=float(x0), max=float(x1), step=step, description="code z1"),
            "z2": w.FloatSlider(self.state["z2"], min=float(y0), max=float(y1), step=step, description="code z2"),
        }
        if self.denoiser is not None:
            c["noise"] = w.FloatSlider(self.state["noise"], min=0, max=1, step=0.05, description="noise")
            c["image"] = w.IntSlider(self.state["image"], min=0, max=len(self.images) - 1, description="image")
        self._text = w.Label()
        self._bind(c)
        rows = [w.HBox([c["z1"], c["z2"]])]
        if self.denoiser is not None:
            rows.append(w.HBox([c["noise"], c["image"]]))
        self._widget = w.VBox(rows + [self.view.widget, self._text])
        self._draw()
        return self._widget

    def __repr__(self) -> str:
        return f"LatentExplorer\n{self.status()}"
