"""dlcourse.plots: the figures hold what they claim to show."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from dlcourse import plots  # noqa: E402


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def _shown(fig):
    return [ax for ax in fig.axes if ax.images]


def test_show_images_grid_and_titles():
    images = np.random.default_rng(0).integers(0, 255, (7, 28, 28, 1), dtype=np.uint8)
    fig = plots.show_images(images, np.arange(7), ncols=3)
    shown = _shown(fig)
    assert len(fig.axes) == 9 and len(shown) == 7
    assert [ax.get_title() for ax in shown] == [str(i) for i in range(7)]
    np.testing.assert_array_equal(shown[2].images[0].get_array(), images[2, ..., 0])


def test_show_images_one_hot_labels_and_wrong_predictions_in_red():
    labels = np.eye(10)[[3, 5]]
    fig = plots.show_images(np.zeros((2, 8, 8)), labels, predictions=np.array([3, 1]))
    first, second = _shown(fig)
    assert first.get_title() == "3 -> 3" and second.get_title() == "5 -> 1"
    assert second.title.get_color() == "red" and first.title.get_color() == "black"


def test_show_images_rejects_bad_shape():
    with pytest.raises(ValueError, match=r"\(N, H, W\)"):
        plots.show_images(np.zeros((28, 28)))


def test_plot_history_panels():
    history = {"loss": [1.0, 0.5], "val_loss": [1.1, 0.7], "accuracy": [0.5, 0.8]}
    fig = plots.plot_history(history)
    loss_ax, acc_ax = fig.axes
    assert [len(line.get_xdata()) for line in loss_ax.lines] == [2, 2]
    assert len(acc_ax.lines) == 1 and acc_ax.get_ylabel() == "accuracy"
    with pytest.raises(ValueError, match="none of"):
        plots.plot_history({"mae": [1.0]})


def test_show_filters_one_panel_per_filter():
    kernel = np.random.default_rng(0).normal(size=(3, 3, 2, 5))
    fig = plots.show_filters(kernel, ncols=4)
    shown = _shown(fig)
    assert len(shown) == 5 and len(fig.axes) == 8
    np.testing.assert_array_equal(shown[4].images[0].get_array(), kernel[:, :, 0, 4])
    fig = plots.show_filters(kernel, channel=None)
    np.testing.assert_allclose(_shown(fig)[1].images[0].get_array(), kernel[:, :, :, 1].mean(axis=2))
    with pytest.raises(ValueError, match="F_h, F_w, D_in, K"):
        plots.show_filters(np.zeros((3, 3)))
