"""Image parameterizations: `nn.Module`s whose parameters are the free variables `xi` and whose forward
returns images `(B, 3, H, W)` in (0, 1).

Each one is: spatial basis (pixels, Fourier spectrum, or phase with a fixed natural magnitude) -> optional colour
decorrelation -> sigmoid. Constants follow Lucid's public code (`lucid/optvis/param/{spatial,color}.py`).
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ParameterizationError

# Square root of the colour correlation of ImageNet (Lucid), columns normalized by the largest column norm.
COLOR_CORRELATION_SVD_SQRT = np.asarray(
    [[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]], dtype=np.float32
)
COLOR_CORRELATION = COLOR_CORRELATION_SVD_SQRT / np.max(np.linalg.norm(COLOR_CORRELATION_SVD_SQRT, axis=0))


def _hw(size: int | Sequence[int]) -> tuple[int, int]:
    h, w = (size, size) if isinstance(size, int) else tuple(size)
    if not (isinstance(h, int) and isinstance(w, int)) or h < 8 or w < 8:
        raise ParameterizationError(f"image size must be an int or (H, W) of at least 8 pixels; got {size!r}")
    return h, w


def rfft2d_freqs(h: int, w: int) -> np.ndarray:
    """Frequency magnitude `sqrt(fy^2 + fx^2)` of each `rfft2` coefficient, shape `(h, w // 2 + 1)`."""
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    return np.sqrt(fx * fx + fy * fy)


def decorrelate_colors(t: torch.Tensor) -> torch.Tensor:
    """Map decorrelated colour coordinates `(B, 3, H, W)` to RGB coordinates (Lucid's `_linear_decorrelate_color`)."""
    m = torch.as_tensor(COLOR_CORRELATION, dtype=t.dtype, device=t.device)
    return torch.einsum("ck,bkhw->bchw", m, t)


class ImageParam(nn.Module):
    """Base class: `forward()` returns `(B, 3, H, W)` in (0, 1); `batch` and `size` describe it."""

    batch: int
    size: tuple[int, int]

    def __init__(self, size: int | Sequence[int], batch: int, decorrelate: bool) -> None:
        super().__init__()
        if not isinstance(batch, int) or batch < 1:
            raise ParameterizationError(f"batch must be a positive int; got {batch!r}")
        self.size = _hw(size)
        self.batch = batch
        self.decorrelate = decorrelate

    def to_rgb(self, t: torch.Tensor) -> torch.Tensor:
        """Unconstrained `(B, 3, H, W)` -> colour decorrelation (optional) -> sigmoid."""
        if self.decorrelate:
            t = decorrelate_colors(t)
        return torch.sigmoid(t)

    def extra_repr(self) -> str:
        return f"batch={self.batch}, size={self.size}, decorrelate={self.decorrelate}"

    def select(self, index: int) -> ImageParam:
        """A copy rendering only batch element `index` (its free variables cloned, buffers shared in kind)."""
        if not -self.batch <= index < self.batch:
            raise ParameterizationError(f"batch element {index} out of range for a batch of {self.batch}")
        index %= self.batch
        out = copy.deepcopy(self)
        for name, p in list(out.named_parameters(recurse=False)):
            setattr(out, name, nn.Parameter(p.detach()[index:index + 1].clone()))
        out.batch = 1
        return out


class PixelImage(ImageParam):
    """Free pixels `xi ~ N(0, sd^2)`, image `sigmoid(xi)` (Lucid's pixel image)."""

    def __init__(self, size: int | Sequence[int], batch: int = 1, *, sd: float = 0.01, decorrelate: bool = False,
                 generator: torch.Generator | None = None) -> None:
        super().__init__(size, batch, decorrelate)
        h, w = self.size
        self.pixels = nn.Parameter(torch.randn(batch, 3, h, w, generator=generator) * sd)

    def forward(self) -> torch.Tensor:
        return self.to_rgb(self.pixels)


class FFTImage(ImageParam):
    """Lucid's spectral parameterization: `xi` is the real/imaginary spectrum `(B, 3, H, W//2+1, 2)`.

    Each frequency `f` is scaled by `1 / max(f, 1/max(H, W)) ** decay_power` (`decay_power=0`: no scaling), the
    orthonormal inverse real FFT gives the image (equal to Lucid's `sqrt(H*W)` scale with TF's unnormalized
    inverse), divided by 4, then colour decorrelation and sigmoid.
    """

    def __init__(self, size: int | Sequence[int], batch: int = 1, *, sd: float = 0.01, decay_power: float = 1.0,
                 decorrelate: bool = True, generator: torch.Generator | None = None) -> None:
        super().__init__(size, batch, decorrelate)
        h, w = self.size
        freqs = rfft2d_freqs(h, w)
        scale = 1.0 / np.maximum(freqs, 1.0 / max(h, w)) ** decay_power
        self.decay_power = decay_power
        self.register_buffer("scale", torch.tensor(scale, dtype=torch.float32)[None, None], persistent=False)
        self.spectrum = nn.Parameter(torch.randn(batch, 3, h, w // 2 + 1, 2, generator=generator) * sd)

    def spatial(self) -> torch.Tensor:
        """The image before colour decorrelation and sigmoid, `(B, 3, H, W)`."""
        spec = torch.view_as_complex(self.spectrum) * self.scale
        return torch.fft.irfft2(spec, s=self.size, norm="ortho") / 4.0

    def forward(self) -> torch.Tensor:
        return self.to_rgb(self.spatial())


@functools.lru_cache(maxsize=8)
def natural_magnitude(h: int, w: int) -> torch.Tensor:
    """Mean `|rfft2|` `(3, h, w//2+1)` of the bundled photos, in decorrelated colour space, at size `(h, w)`.

    Every photo (see :func:`invviz.data.photos`) gives five crops (centre and four corners, the largest square
    that fits, resized with antialiasing); colours are mapped into Lucid's decorrelated basis before the FFT, as
    MaCo's template is of decorrelated ImageNet images.
    """
    from ..data import photos

    inv = torch.linalg.inv(torch.as_tensor(COLOR_CORRELATION))
    total, n = torch.zeros(3, h, w // 2 + 1), 0
    for img in photos().values():
        _, ph, pw = img.shape
        side = min(ph, pw)
        for top, left in ((0, 0), (0, pw - side), (ph - side, 0), (ph - side, pw - side),
                          ((ph - side) // 2, (pw - side) // 2)):
            crop = img[:, top:top + side, left:left + side][None]
            crop = F.interpolate(crop, size=(h, w), mode="bilinear", antialias=True, align_corners=False)[0]
            dec = torch.einsum("ck,khw->chw", inv, crop - crop.mean(dim=(1, 2), keepdim=True))
            total += torch.fft.rfft2(dec, norm="ortho").abs()
            n += 1
    if n == 0:
        raise ParameterizationError("MaCo needs natural photos; install matplotlib or scikit-image")
    return total / n


def _standardize(t: torch.Tensor) -> torch.Tensor:
    """Zero mean, unit standard deviation per batch element."""
    dims = tuple(range(1, t.dim()))
    return (t - t.mean(dim=dims, keepdim=True)) / (t.std(dim=dims, keepdim=True) + 1e-4)


class MacoImage(ImageParam):
    """MaCo (Fel et al. 2023): optimize the Fourier phase only; the magnitude is fixed to natural photos'.

    image = sigmoid(decorrelate(standardize(irfft2(m * exp(i * standardize(phase)))))), with `m` from
    :func:`natural_magnitude` (or a given `(3, H, W//2+1)` tensor). Standardization is per batch element.
    """

    def __init__(self, size: int | Sequence[int], batch: int = 1, *, magnitude: torch.Tensor | None = None,
                 sd: float = 1.0, generator: torch.Generator | None = None) -> None:
        super().__init__(size, batch, decorrelate=True)
        h, w = self.size
        mag = natural_magnitude(h, w) if magnitude is None else torch.as_tensor(magnitude, dtype=torch.float32)
        if tuple(mag.shape) != (3, h, w // 2 + 1):
            raise ParameterizationError(f"MaCo magnitude must have shape (3, {h}, {w // 2 + 1}); got {tuple(mag.shape)}")
        self.register_buffer("magnitude", mag.clone(), persistent=False)
        self.phase = nn.Parameter(torch.randn(batch, 3, h, w // 2 + 1, generator=generator) * sd)

    def spatial(self) -> torch.Tensor:
        phase = _standardize(self.phase)
        spec = torch.polar(self.magnitude.expand_as(phase), phase)
        return _standardize(torch.fft.irfft2(spec, s=self.size, norm="ortho"))

    def forward(self) -> torch.Tensor:
        return self.to_rgb(self.spatial())


PARAMS = {"pixel": PixelImage, "fft": FFTImage, "maco": MacoImage}


def make_param(param: str | ImageParam, size: int | Sequence[int], batch: int,
               generator: torch.Generator | None = None) -> ImageParam:
    """An :class:`ImageParam` from a short name (`"pixel"`, `"fft"`, `"maco"`) or the object itself."""
    if isinstance(param, ImageParam):
        return param
    if isinstance(param, str) and param in PARAMS:
        return PARAMS[param](size, batch, generator=generator)
    raise ParameterizationError(
        f"unknown parameterization {param!r}; use one of {sorted(PARAMS)} or an invviz.optvis.ImageParam module"
    )


__all__ = ["ImageParam", "PixelImage", "FFTImage", "MacoImage", "make_param", "natural_magnitude",
           "decorrelate_colors", "rfft2d_freqs", "COLOR_CORRELATION"]
