"""Image parameterizations: `nn.Module`s whose parameters are the free variables `xi` and whose forward
returns images `(B, 3, H, W)` in (0, 1).

Each one is: spatial basis (pixels, Fourier spectrum, or phase with a fixed natural magnitude) -> optional colour
decorrelation -> sigmoid. Constants follow Lucid's public code (`lucid/optvis/param/{spatial,color}.py`).
"""

from __future__ import annotations

import copy
import functools
import math
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
    ok = isinstance(size, int) and not isinstance(size, bool) or (
        isinstance(size, Sequence) and len(size) == 2 and all(isinstance(v, int) and not isinstance(v, bool)
                                                              for v in size))
    if not ok:
        raise ParameterizationError(f"image size must be an int or (H, W) of ints; got {size!r}")
    h, w = (size, size) if isinstance(size, int) else tuple(size)
    if h < 8 or w < 8:
        raise ParameterizationError(f"image size must be at least 8 pixels on each side; got {size!r}")
    return h, w


def _init_images(init: torch.Tensor, batch: int, channels: int, size: tuple[int, int]) -> torch.Tensor:
    """A start image `(C, H, W)` or `(B, C, H, W)` in [0, 1], checked and broadcast to `(batch, C, H, W)`."""
    from ..models.probe import check_images

    x = check_images(init, channels=channels, what="init images").detach().float()
    if tuple(x.shape[2:]) != size:
        raise ParameterizationError(f"init images are {tuple(x.shape[2:])} px but the parameterization renders"
                                    f" {size}; resize them or pass size={tuple(x.shape[2:])}")
    if x.shape[0] not in (1, batch):
        raise ParameterizationError(f"{x.shape[0]} init images for a batch of {batch}; pass one or one per element")
    return x.expand(batch, -1, -1, -1).clone()


def _logits(x: torch.Tensor, decorrelate: bool) -> torch.Tensor:
    """The unconstrained tensor whose (decorrelation and) sigmoid is `x`: the inverse of :meth:`ImageParam.to_rgb`."""
    t = torch.logit(x.clamp(1e-6, 1 - 1e-6))
    if decorrelate:
        inv = torch.linalg.inv(torch.as_tensor(COLOR_CORRELATION, dtype=torch.float64)).to(t.dtype)
        t = torch.einsum("ck,bkhw->bchw", inv, t)
    return t


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

    def __init__(self, size: int | Sequence[int], batch: int, decorrelate: bool, channels: int = 3) -> None:
        super().__init__()
        if not isinstance(batch, int) or isinstance(batch, bool) or batch < 1:
            raise ParameterizationError(f"batch must be a positive int; got {batch!r}")
        if not isinstance(channels, int) or channels < 1:
            raise ParameterizationError(f"channels must be a positive int; got {channels!r}")
        if decorrelate and channels != 3:
            raise ParameterizationError(f"colour decorrelation needs 3 channels; got {channels}")
        self.size = _hw(size)
        self.batch = batch
        self.channels = channels
        self.decorrelate = decorrelate

    def to_rgb(self, t: torch.Tensor) -> torch.Tensor:
        """Unconstrained `(B, C, H, W)` -> colour decorrelation (optional) -> sigmoid."""
        if self.decorrelate:
            t = decorrelate_colors(t)
        return torch.sigmoid(t)

    def extra_repr(self) -> str:
        return f"batch={self.batch}, size={self.size}, channels={self.channels}, decorrelate={self.decorrelate}"

    def select(self, index: int) -> ImageParam:
        """A copy rendering only batch element `index` (its free variables cloned, buffers shared in kind)."""
        if not -self.batch <= index < self.batch:
            raise ParameterizationError(f"batch element {index} out of range for a batch of {self.batch}")
        index %= self.batch
        out = copy.deepcopy(self)
        for module in out.modules():  # every free variable has the batch as its first axis
            for name, p in list(module._parameters.items()):
                if p is not None:
                    module._parameters[name] = nn.Parameter(p.detach()[index:index + 1].clone())
        out.batch = 1
        return out


class PixelImage(ImageParam):
    """Free pixels `xi ~ N(0, sd^2)`, image `sigmoid(xi)` (Lucid's pixel image); `init` starts from an image."""

    def __init__(self, size: int | Sequence[int], batch: int = 1, *, sd: float = 0.01, decorrelate: bool = False,
                 rng: torch.Generator | None = None, channels: int = 3, init: torch.Tensor | None = None) -> None:
        super().__init__(size, batch, decorrelate, channels)
        h, w = self.size
        if init is not None:
            pixels = _logits(_init_images(init, batch, channels, self.size), decorrelate)
        else:
            pixels = torch.randn(batch, channels, h, w, generator=rng) * sd
        self.pixels = nn.Parameter(pixels)

    def forward(self) -> torch.Tensor:
        return self.to_rgb(self.pixels)


class FFTImage(ImageParam):
    """Lucid's spectral parameterization: `xi` is the real/imaginary spectrum `(B, 3, H, W//2+1, 2)`.

    Each frequency `f` is scaled by `1 / max(f, 1/max(H, W)) ** decay_power` (`decay_power=0`: no scaling), the
    orthonormal inverse real FFT gives the image (equal to Lucid's `sqrt(H*W)` scale with TF's unnormalized
    inverse), divided by 4, then colour decorrelation and sigmoid.
    """

    def __init__(self, size: int | Sequence[int], batch: int = 1, *, sd: float = 0.01, decay_power: float = 1.0,
                 decorrelate: bool | None = None, rng: torch.Generator | None = None, channels: int = 3,
                 init: torch.Tensor | None = None) -> None:
        decorrelate = channels == 3 if decorrelate is None else decorrelate
        super().__init__(size, batch, decorrelate, channels)
        h, w = self.size
        freqs = rfft2d_freqs(h, w)
        scale = 1.0 / np.maximum(freqs, 1.0 / max(h, w)) ** decay_power
        self.decay_power = decay_power
        self.register_buffer("scale", torch.tensor(scale, dtype=torch.float32)[None, None], persistent=False)
        if init is not None:  # the spectrum whose image is `init`: the inverse of spatial() and to_rgb()
            t = _logits(_init_images(init, batch, channels, self.size), decorrelate).double()
            spec = torch.fft.rfft2(t * 4.0, norm="ortho") / self.scale.double()
            spectrum = torch.view_as_real(spec).float()
        else:
            spectrum = torch.randn(batch, channels, h, w // 2 + 1, 2, generator=rng) * sd
        self.spectrum = nn.Parameter(spectrum)

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
                 sd: float = 1.0, rng: torch.Generator | None = None, init: torch.Tensor | None = None) -> None:
        super().__init__(size, batch, decorrelate=True)
        if init is not None:
            raise ParameterizationError("MaCo fixes the Fourier magnitude (and standardizes the image), so it cannot"
                                        " start from an arbitrary image; use param='fft' or 'pixel' with init=")
        h, w = self.size
        mag = natural_magnitude(h, w) if magnitude is None else torch.as_tensor(magnitude, dtype=torch.float32)
        if tuple(mag.shape) != (3, h, w // 2 + 1):
            raise ParameterizationError(f"MaCo magnitude must have shape (3, {h}, {w // 2 + 1}); got {tuple(mag.shape)}")
        self.register_buffer("magnitude", mag.clone(), persistent=False)
        self.phase = nn.Parameter(torch.randn(batch, 3, h, w // 2 + 1, generator=rng) * sd)

    def spatial(self) -> torch.Tensor:
        phase = _standardize(self.phase)
        spec = torch.polar(self.magnitude.expand_as(phase), phase)
        return _standardize(torch.fft.irfft2(spec, s=self.size, norm="ortho"))

    def forward(self) -> torch.Tensor:
        return self.to_rgb(self.spatial())


class CPPNImage(ImageParam):
    """A compositional pattern-producing network (Mordvintsev et al. 2018, "Differentiable Image
    Parameterizations", Lucid's `cppn`): the free variables are the weights of a small per-pixel network from the
    coordinates `(x, y)` in `[-sqrt(3), sqrt(3)]` to RGB, so the image can be drawn at any resolution.

    `num_layers` 1x1 convolutions of `width` channels, each followed by Lucid's composite activation
    `[atan(x) / 0.67, atan(x)^2 / 0.6]`, then a 1x1 convolution to RGB (zero weights) and a sigmoid. Weights are
    variance-scaling (fan-in) initialised, biases `N(0, 0.1^2)`, as Lucid's. Every batch element has its own
    network (grouped convolutions). Lucid renders CPPNs with Adam at lr 0.005.

    Example:
        >>> p = CPPNImage(32, batch=2, rng=torch.Generator().manual_seed(0))
        >>> p().shape, p.draw(64).shape
        (torch.Size([2, 3, 32, 32]), torch.Size([2, 3, 64, 64]))
    """

    def __init__(self, size: int | Sequence[int], batch: int = 1, *, width: int = 24, num_layers: int = 8,
                 rng: torch.Generator | None = None, init: torch.Tensor | None = None) -> None:
        super().__init__(size, batch, decorrelate=False)
        if init is not None:
            raise ParameterizationError("a CPPN draws its image from coordinates; it cannot start from a given image")
        if width < 1 or num_layers < 1:
            raise ParameterizationError(f"CPPN width and num_layers must be >= 1; got {width}, {num_layers}")
        self.width, self.num_layers = width, num_layers
        weights, biases = [], []
        cin = 2
        for _ in range(num_layers):
            std = math.sqrt(1.0 / cin)  # variance scaling, fan-in, scale 1
            weights.append(nn.Parameter(_truncated_normal((batch, width, cin), std, rng)))
            biases.append(nn.Parameter(torch.randn(batch, width, generator=rng) * 0.1))
            cin = 2 * width
        self.weights, self.biases = nn.ParameterList(weights), nn.ParameterList(biases)
        self.out_weight = nn.Parameter(torch.zeros(batch, 3, cin))
        self.out_bias = nn.Parameter(torch.randn(batch, 3, generator=rng) * 0.1)

    def draw(self, size: int | Sequence[int] | None = None) -> torch.Tensor:
        """The images `(B, 3, H, W)` at `size` (default: the render size) from the same weights."""
        h, w = self.size if size is None else _hw(size)
        r = math.sqrt(3.0)
        ref = self.out_weight
        ys = torch.linspace(-r, r, h, device=ref.device, dtype=ref.dtype)
        xs = torch.linspace(-r, r, w, device=ref.device, dtype=ref.dtype)
        y, x = torch.meshgrid(ys, xs, indexing="ij")
        net = torch.stack([x, y]).expand(self.batch, 2, h, w)  # (B, 2, H, W)
        for weight, bias in zip(self.weights, self.biases):
            z = torch.einsum("boc,bchw->bohw", weight, net) + bias[:, :, None, None]
            a = torch.atan(z)
            net = torch.cat([a / 0.67, (a * a) / 0.6], dim=1)
        out = torch.einsum("boc,bchw->bohw", self.out_weight, net) + self.out_bias[:, :, None, None]
        return torch.sigmoid(out)

    def forward(self) -> torch.Tensor:
        return self.draw()


def _truncated_normal(shape: tuple[int, ...], std: float, rng: torch.Generator | None) -> torch.Tensor:
    """`N(0, std^2)` truncated at two standard deviations (TF's variance-scaling initializer), by redrawing."""
    t = torch.randn(shape, generator=rng)
    for _ in range(100):
        bad = t.abs() > 2
        if not bool(bad.any()):
            break
        t = torch.where(bad, torch.randn(shape, generator=rng), t)
    return (t.clamp(-2, 2) * std / 0.87962566103423978)


PARAMS = {"pixel": PixelImage, "fft": FFTImage, "maco": MacoImage, "cppn": CPPNImage}


def make_param(param: str | ImageParam, size: int | Sequence[int], batch: int,
               rng: torch.Generator | None = None, *, init: torch.Tensor | None = None,
               channels: int = 3) -> ImageParam:
    """An :class:`ImageParam` from a short name (`"pixel"`, `"fft"`, `"maco"`, `"cppn"`) or the object itself;
    `init` starts pixel and FFT parameterizations from an image."""
    if isinstance(param, ImageParam):
        if init is not None:
            raise ParameterizationError("init= applies to a parameterization made by name; build your ImageParam with"
                                        " its own init= instead")
        return param
    if isinstance(param, str) and param in PARAMS:
        kwargs = {"init": init}
        if channels != 3:
            if param not in ("pixel", "fft"):
                raise ParameterizationError(f"{param!r} renders 3 colour channels; use 'pixel' or 'fft' for a"
                                            f" {channels}-channel model")
            kwargs["channels"] = channels
        return PARAMS[param](size, batch, rng=rng, **kwargs)
    raise ParameterizationError(
        f"unknown parameterization {param!r}; use one of {sorted(PARAMS)} or an invviz.optvis.ImageParam module"
    )


__all__ = ["ImageParam", "PixelImage", "FFTImage", "MacoImage", "CPPNImage", "make_param", "natural_magnitude",
           "decorrelate_colors", "rfft2d_freqs", "COLOR_CORRELATION"]
