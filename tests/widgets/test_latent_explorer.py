"""The latent explorer decodes what its sliders say, and shows the denoiser's real output."""

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from dlcourse.widgets import latent_explorer as le  # noqa: E402

LESSONS = ("05_autoencoders",)  # pytest -m lesson05 selects these tests


@pytest.fixture(scope="module")
def decoder():
    keras.utils.set_random_seed(0)
    return keras.Sequential(
        [keras.Input((2,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(784, activation="sigmoid")]
    )


@pytest.fixture(scope="module")
def denoiser():
    keras.utils.set_random_seed(1)
    return keras.Sequential(
        [keras.Input((784,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(784, activation="sigmoid")]
    )


def test_decode_point_equals_the_decoder(decoder):
    z = np.array([0.5, -1.0], np.float32)
    np.testing.assert_allclose(le.decode_point(decoder, z), np.asarray(decoder(z[None])).reshape(28, 28), rtol=1e-6)


def test_gaussian_noise_is_clipped_and_seeded():
    clean = np.full((3, 784), 0.5, np.float32)
    noisy = le.gaussian_noise(clean, 0.2, seed=4)
    assert noisy.dtype == np.float32 and noisy.min() >= 0 and noisy.max() <= 1
    assert abs(np.std(noisy - clean) - 0.2) < 0.02
    np.testing.assert_array_equal(noisy, le.gaussian_noise(clean, 0.2, seed=4))
    np.testing.assert_array_equal(le.gaussian_noise(clean, 0.0), clean)


def test_sliders_move_the_point_and_the_picture(decoder):
    rng = np.random.default_rng(0)
    codes = rng.normal(size=(200, 2)).astype(np.float32)
    ex = le.LatentExplorer(decoder, codes, labels=rng.integers(0, 10, 200))
    first, first_png = ex.decoded(), ex.view.png
    widget = ex.widget
    ex._controls["z1"].value = float(ex.bounds[0, 1])
    assert ex.state["z1"] == pytest.approx(ex.bounds[0, 1])
    np.testing.assert_allclose(ex.decoded(), le.decode_point(decoder, ex.z), rtol=1e-6)
    assert not np.allclose(ex.decoded(), first) and ex.view.png != first_png
    assert np.allclose(ex._artists["marker"].get_offsets()[0], ex.z)
    assert widget is ex.widget and "image/png" in ex._repr_mimebundle_()


def test_denoising_panel_shows_the_denoisers_output(decoder, denoiser):
    images = np.random.default_rng(2).random((5, 784)).astype(np.float32)
    ex = le.LatentExplorer(decoder, denoiser=denoiser, images=images, noise=0.3)
    ex.set(image=3, noise=0.6)
    noisy, denoised, clean = ex.denoising()
    np.testing.assert_array_equal(clean, images[3].reshape(28, 28))
    np.testing.assert_array_equal(noisy, le.gaussian_noise(images[3:4], 0.6, seed=3).reshape(28, 28))
    np.testing.assert_allclose(denoised, np.asarray(denoiser(noisy.reshape(1, 784))).reshape(28, 28), rtol=1e-5)
    assert "noise 0.60" in ex.status()
    assert ex.widget is not None
    ex._controls["noise"].value = 0.1
    assert ex.state["noise"] == pytest.approx(0.1)


def test_bad_arguments(decoder, denoiser):
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        le.LatentExplorer(decoder, codes=np.zeros((5, 3)))
    with pytest.raises(ValueError, match="both denoiser= and images="):
        le.LatentExplorer(decoder, denoiser=denoiser)
    with pytest.raises(TypeError, match="unknown setting"):
        le.LatentExplorer(decoder).set(zoom=2)
