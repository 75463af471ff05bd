import numpy as np
import pytest
import torch

from invviz.errors import ParameterizationError
from invviz.optvis import FFTImage, MacoImage, PixelImage, make_param  # noqa: F401
from invviz.optvis.param import COLOR_CORRELATION


def lucid_fft_numpy(spectrum: np.ndarray, h: int, w: int, decay_power: float = 1.0) -> np.ndarray:
    """Lucid's TF formulation in NumPy: scale by 1/max(f, 1/max(h, w))^d and sqrt(h*w), unnormalized irfft2, /4."""
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.fftfreq(w)[: w // 2 + 1] if w % 2 == 0 else np.fft.fftfreq(w)[: w // 2 + 2]
    freqs = np.sqrt(fx * fx + fy * fy)[:, : w // 2 + 1]
    scale = 1.0 / np.maximum(freqs, 1.0 / max(w, h)) ** decay_power * np.sqrt(w * h)
    spec = (spectrum[..., 0] + 1j * spectrum[..., 1]) * scale
    return np.fft.irfft2(spec, s=(h, w)) / 4.0


def numpy_to_rgb(t: np.ndarray, decorrelate: bool) -> np.ndarray:
    if decorrelate:
        t = np.einsum("ck,bkhw->bchw", COLOR_CORRELATION.astype(np.float64), t)
    return 1 / (1 + np.exp(-t))


@pytest.mark.parametrize("h, w, decay", [(16, 16, 1.0), (12, 17, 1.0), (15, 10, 0.0)])
def test_fft_matches_numpy_reference(h, w, decay):
    p = FFTImage((h, w), batch=2, sd=0.5, decay_power=decay, rng=torch.Generator().manual_seed(0)).double()
    ref = numpy_to_rgb(lucid_fft_numpy(p.spectrum.detach().numpy(), h, w, decay), decorrelate=True)
    got = p().detach().numpy()
    assert got.shape == (2, 3, h, w)
    np.testing.assert_allclose(got, ref, rtol=1e-7, atol=1e-9)  # constants are stored as float32


def test_color_decorrelation_matrix_is_lucids():
    m = np.array([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]])
    np.testing.assert_allclose(COLOR_CORRELATION, m / np.linalg.norm(m, axis=0).max(), rtol=1e-6)
    p = PixelImage(9, batch=1, sd=1.0, decorrelate=True, rng=torch.Generator().manual_seed(1)).double()
    np.testing.assert_allclose(p().detach().numpy(), numpy_to_rgb(p.pixels.detach().numpy(), True), rtol=1e-10)


def test_pixel_is_sigmoid_of_free_pixels_and_seeded():
    a = PixelImage(8, batch=3, rng=torch.Generator().manual_seed(5))
    b = PixelImage(8, batch=3, rng=torch.Generator().manual_seed(5))
    assert torch.equal(a(), b()) and torch.allclose(a(), torch.sigmoid(a.pixels))
    assert abs(float(a.pixels.detach().std()) - 0.01) < 0.003


def test_maco_keeps_the_natural_magnitude():
    p = MacoImage((32, 40), batch=2, rng=torch.Generator().manual_seed(0))
    img = p()
    assert img.shape == (2, 3, 32, 40) and 0 < float(img.min()) and float(img.max()) < 1
    # spatial = standardize(irfft2(m e^{i phi})): its spectrum magnitude is m up to one scale per image, except
    # in the columns irfft2 makes Hermitian (x = 0 and the Nyquist column of an even width)
    mag = torch.fft.rfft2(p.spatial().detach(), norm="ortho").abs()
    ratio = (mag / p.magnitude)[..., 1:-1].flatten(1)
    assert float((ratio.std(dim=1) / ratio.mean(dim=1)).max()) < 1e-3
    # only the phase is free
    assert [n for n, _ in p.named_parameters()] == ["phase"]


def test_make_param_errors():
    assert isinstance(make_param("fft", 16, 2), FFTImage)
    with pytest.raises(ParameterizationError, match="pixel"):
        make_param("wavelet", 16, 1)
    with pytest.raises(ValueError):
        PixelImage(4)


@pytest.mark.parametrize("cls", ["pixel", "fft", "maco"])
def test_select_renders_one_batch_element(cls):
    from invviz.optvis import make_param

    p = make_param(cls, 16, 3, torch.Generator().manual_seed(0))
    one = p.select(1)
    assert one.batch == 1 and torch.allclose(one(), p()[1:2], atol=1e-6)
    (name, xi), = one.named_parameters()
    xi.data.add_(torch.randn_like(xi))
    assert not torch.allclose(one(), p()[1:2])  # a copy: the batch is untouched
