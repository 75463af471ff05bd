"""Random transformations applied to the image at every optimization step (plain torch).

Each transform is an `nn.Module` whose `forward(x, rng)` takes images `(B, C, H, W)` and a `torch.Generator` (CPU)
for its random draws, so a seed gives the same sequence of transforms on any device. One draw is shared by the whole
batch, as in Lucid. Random amounts are a list to choose from (Lucid's convention) or a distribution
(:class:`Uniform`, :class:`Normal`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ParameterizationError


class Uniform:
    """A continuous uniform draw in `[low, high]`, from the render's random-number generator."""

    def __init__(self, low: float, high: float) -> None:
        if not low <= high:
            raise ParameterizationError(f"Uniform needs low <= high; got {low}, {high}")
        self.low, self.high = float(low), float(high)

    def sample(self, rng: torch.Generator | None) -> float:
        return self.low + (self.high - self.low) * float(torch.rand((), generator=rng))

    def __repr__(self) -> str:
        return f"Uniform({self.low:g}, {self.high:g})"


class Normal:
    """A normal draw `N(mean, sd^2)`, optionally truncated at `truncate` standard deviations."""

    def __init__(self, mean: float, sd: float, truncate: float | None = 2.0) -> None:
        if sd < 0:
            raise ParameterizationError(f"Normal needs sd >= 0; got {sd}")
        self.mean, self.sd, self.truncate = float(mean), float(sd), truncate

    def sample(self, rng: torch.Generator | None) -> float:
        z = float(torch.randn((), generator=rng))
        if self.truncate is not None:
            z = max(-self.truncate, min(self.truncate, z))
        return self.mean + self.sd * z

    def __repr__(self) -> str:
        return f"Normal({self.mean:g}, {self.sd:g})"


Amounts = Sequence[float] | Uniform | Normal


def _amounts(values: Amounts, what: str) -> list[float] | Uniform | Normal:
    if isinstance(values, (Uniform, Normal)):
        return values
    try:
        out = [float(v) for v in values]
    except (TypeError, ValueError):
        raise ParameterizationError(f"{what} must be a list of values to choose from, or invviz.optvis.Uniform/Normal;"
                                    f" got {values!r}") from None
    if not out:
        raise ParameterizationError(f"{what} must not be empty")
    return out


def _draw(values: list[float] | Uniform | Normal, rng: torch.Generator | None) -> float:
    if isinstance(values, (Uniform, Normal)):
        return values.sample(rng)
    return values[int(torch.randint(len(values), (1,), generator=rng))]


class Transform(nn.Module):
    """Base class of the transforms: `forward(x (B, C, H, W), rng) -> (B, C, H', W')`."""

    def forward(self, x: torch.Tensor, rng: torch.Generator | None = None) -> torch.Tensor:
        raise NotImplementedError


class Pad(Transform):
    """Pad `width` pixels on each side with a constant (Lucid's standard transforms pad with 0.5) or by reflection
    (`mode="reflect"`, Lucid's `pad` default) or replication."""

    def __init__(self, width: int, mode: str = "constant", value: float = 0.5) -> None:
        super().__init__()
        if not isinstance(width, int) or width < 0:
            raise ParameterizationError(f"pad width must be an int >= 0; got {width!r}")
        if mode not in ("constant", "reflect", "replicate", "circular"):
            raise ParameterizationError(f"pad mode must be constant, reflect, replicate or circular; got {mode!r}")
        self.width, self.mode, self.value = width, mode, value

    def forward(self, x: torch.Tensor, rng: torch.Generator | None = None) -> torch.Tensor:
        w = self.width
        if w == 0:
            return x
        if self.mode == "constant":
            return F.pad(x, (w, w, w, w), mode="constant", value=self.value)
        if self.mode == "reflect" and min(x.shape[2:]) <= w:
            raise ParameterizationError(f"reflection padding of {w} px needs an image larger than {w} px; got"
                                        f" {tuple(x.shape[2:])}")
        return F.pad(x, (w, w, w, w), mode=self.mode)

    def extra_repr(self) -> str:
        return f"width={self.width}, mode={self.mode!r}, value={self.value}"


class Jitter(Transform):
    """Lucid's `jitter`: a random crop `d` pixels smaller in each direction, at an offset in `0..d` (both ends
    included, as TF's `random_crop`)."""

    def __init__(self, d: int) -> None:
        super().__init__()
        if not isinstance(d, int) or d < 1:
            raise ParameterizationError(f"jitter needs an int d >= 1; got {d!r}")
        self.d = d

    def forward(self, x: torch.Tensor, rng: torch.Generator | None = None) -> torch.Tensor:
        h, w = x.shape[2:]
        if min(h, w) <= self.d:
            raise ParameterizationError(f"jitter({self.d}) needs images larger than {self.d} px; got {h}x{w}")
        dy, dx = (int(v) for v in torch.randint(self.d + 1, (2,), generator=rng))
        return x[:, :, dy:dy + h - self.d, dx:dx + w - self.d]

    def extra_repr(self) -> str:
        return f"d={self.d}"


class Translate(Transform):
    """Size-preserving jitter: shift by whole pixels drawn in `-d..d` in each direction, filling what comes in by
    reflection (`mode="reflect"`) or with a constant."""

    def __init__(self, d: int, mode: str = "reflect", value: float = 0.5) -> None:
        super().__init__()
        if not isinstance(d, int) or d < 0:
            raise ParameterizationError(f"translate needs an int d >= 0; got {d!r}")
        self.d = d
        self.pad = Pad(d, mode, value) if d else None

    def forward(self, x: torch.Tensor, rng: torch.Generator | None = None) -> torch.Tensor:
        if not self.d:
            return x
        h, w = x.shape[2:]
        dy, dx = (int(v) for v in torch.randint(2 * self.d + 1, (2,), generator=rng))
        return self.pad(x)[:, :, dy:dy + h, dx:dx + w]

    def extra_repr(self) -> str:
        return f"d={self.d}"


class RandomCrop(Transform):
    """A random crop of `size` `(H, W)` (an int for a square) at a uniform offset."""

    def __init__(self, size: int | Sequence[int]) -> None:
        super().__init__()
        self.size = (size, size) if isinstance(size, int) else tuple(int(v) for v in size)
        if len(self.size) != 2 or min(self.size) < 1:
            raise ParameterizationError(f"crop size must be an int or (H, W) >= 1; got {size!r}")

    def forward(self, x: torch.Tensor, rng: torch.Generator | None = None) -> torch.Tensor:
        h, w = x.shape[2:]
        ch, cw = self.size
        if ch > h or cw > w:
            raise ParameterizationError(f"cannot crop {ch}x{cw} from an image of {h}x{w}")
        top = int(torch.randint(h - ch + 1, (1,), generator=rng))
        left = int(torch.randint(w - cw + 1, (1,), generator=rng))
        return x[:, :, top:top + ch, left:left + cw]

    def extra_repr(self) -> str:
        return f"size={self.size}"


class RandomFlip(Transform):
    """Flip left-right (`horizontal`) and/or up-down (`vertical`), each with probability `p`."""

    def __init__(self, p: float = 0.5, *, horizontal: bool = True, vertical: bool = False) -> None:
        super().__init__()
        if not 0 <= p <= 1:
            raise ParameterizationError(f"flip probability must lie in [0, 1]; got {p}")
        self.p, self.horizontal, self.vertical = float(p), horizontal, vertical

    def forward(self, x: torch.Tensor, rng: torch.Generator | None = None) -> torch.Tensor:
        dims = []
        if self.horizontal and float(torch.rand((), generator=rng)) < self.p:
            dims.append(3)
        if self.vertical and float(torch.rand((), generator=rng)) < self.p:
            dims.append(2)
        return x.flip(dims) if dims else x

    def extra_repr(self) -> str:
        return f"p={self.p}, horizontal={self.horizontal}, vertical={self.vertical}"


class GaussianBlur(Transform):
    """Gaussian blur with standard deviation `sigma` (pixels; a number or a distribution drawn each step), a
    separable kernel of `2 * ceil(truncate * sigma) + 1` taps, borders by reflection."""

    def __init__(self, sigma: float | Uniform | Normal, truncate: float = 3.0) -> None:
        super().__init__()
        if not isinstance(sigma, (Uniform, Normal)) and not sigma > 0:
            raise ParameterizationError(f"blur sigma must be > 0; got {sigma!r}")
        self.sigma, self.truncate = sigma, float(truncate)

    def forward(self, x: torch.Tensor, rng: torch.Generator | None = None) -> torch.Tensor:
        sigma = self.sigma.sample(rng) if isinstance(self.sigma, (Uniform, Normal)) else float(self.sigma)
        if sigma <= 0:
            return x
        return gaussian_blur(x, sigma, self.truncate)

    def extra_repr(self) -> str:
        return f"sigma={self.sigma}"


def gaussian_blur(x: torch.Tensor, sigma: float, truncate: float = 3.0) -> torch.Tensor:
    """Blur images `(B, C, H, W)` with a separable Gaussian of standard deviation `sigma`, reflecting borders."""
    radius = max(1, int(math.ceil(truncate * sigma)))
    radius = min(radius, min(x.shape[2:]) - 1)
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    c = x.shape[1]
    out = F.pad(x, (radius, radius, 0, 0), mode="reflect")
    out = F.conv2d(out, k.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    out = F.pad(out, (0, 0, radius, radius), mode="reflect")
    return F.conv2d(out, k.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)


class RandomScale(Transform):
    """Resize by a factor drawn from `scales` (a list, or a distribution), bilinear."""

    def __init__(self, scales: Amounts) -> None:
        super().__init__()
        self.scales = _amounts(scales, "scales")

    def forward(self, x: torch.Tensor, rng: torch.Generator | None = None) -> torch.Tensor:
        s = _draw(self.scales, rng)
        if s == 1.0:
            return x
        if s <= 0:
            raise ParameterizationError(f"a scale must be > 0; drew {s}")
        h, w = x.shape[2:]
        return F.interpolate(x, size=(max(1, round(h * s)), max(1, round(w * s))), mode="bilinear",
                             align_corners=False)

    def extra_repr(self) -> str:
        return f"scales={self.scales}"


class RandomRotate(Transform):
    """Rotate about the centre by an angle (degrees) drawn from `angles` (a list, or a distribution); corners
    filled with `fill`."""

    def __init__(self, angles: Amounts, fill: float = 0.5) -> None:
        super().__init__()
        self.angles = _amounts(angles, "angles")
        self.fill = fill

    def forward(self, x: torch.Tensor, rng: torch.Generator | None = None) -> torch.Tensor:
        angle = _draw(self.angles, rng)
        if angle == 0.0:
            return x
        b, _, h, w = x.shape
        a = math.radians(angle)
        cos, sin = math.cos(a), math.sin(a)
        # normalized coordinates; correct the aspect ratio so the rotation is rigid in pixels
        theta = torch.tensor([[cos, -sin * h / w, 0.0], [sin * w / h, cos, 0.0]], dtype=x.dtype, device=x.device)
        grid = F.affine_grid(theta.expand(b, 2, 3), list(x.shape), align_corners=False)
        out = F.grid_sample(x - self.fill, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        return out + self.fill

    def extra_repr(self) -> str:
        return f"angles={self.angles}"


class Resize(Transform):
    """Resize to a fixed `(H, W)` (bilinear)."""

    def __init__(self, size: int | Sequence[int]) -> None:
        super().__init__()
        self.size = (size, size) if isinstance(size, int) else tuple(size)

    def forward(self, x: torch.Tensor, rng: torch.Generator | None = None) -> torch.Tensor:
        if tuple(x.shape[2:]) == self.size:
            return x
        return F.interpolate(x, size=self.size, mode="bilinear", align_corners=False, antialias=False)

    def extra_repr(self) -> str:
        return f"size={self.size}"


class Compose(Transform):
    """Apply transforms in order, passing the random-number generator along."""

    def __init__(self, transforms: Sequence[Transform] = ()) -> None:
        super().__init__()
        for t in transforms:
            if not isinstance(t, Transform):
                raise ParameterizationError(f"Compose takes invviz.optvis transforms; got {type(t).__name__}")
        self.transforms = nn.ModuleList(transforms)

    def forward(self, x: torch.Tensor, rng: torch.Generator | None = None) -> torch.Tensor:
        for t in self.transforms:
            x = t(x, rng)
        return x


LUCID_SCALES = [1 + (i - 5) / 50.0 for i in range(11)]
LUCID_ANGLES = [float(a) for a in list(range(-10, 11)) + 5 * [0]]


def standard_transforms(fused: bool = False) -> Transform:
    """Lucid's `standard_transforms`: pad 12 (0.5), jitter 8, scale 0.9..1.1, rotate -10..10 degrees, jitter 4.

    `fused=True` draws the same random amounts but applies them as one affine resampling at the input's size
    (:class:`FusedStandardTransforms`): one interpolation instead of two, and the network always sees one size.
    """
    if fused:
        return FusedStandardTransforms()
    return Compose([
        Pad(12, value=0.5),
        Jitter(8),
        RandomScale(LUCID_SCALES),
        RandomRotate(LUCID_ANGLES),
        Jitter(4),
    ])


class FusedStandardTransforms(Transform):
    """Lucid's standard transforms as a single affine map, resampled once (bilinear) at a fixed output size.

    The draws are Lucid's (jitter offsets 0..8 and 0..4, a scale from 0.9..1.1, an angle from -10..10 degrees
    with extra weight on 0): pad 12 with `fill`, crop at the first offset, scale, rotate about the centre, crop at
    the second offset, composed into one map from output to input coordinates and sampled at `size` (default: the
    input's size), so the result is Lucid's chain up to a final resize to that size.
    """

    def __init__(self, pad: int = 12, jitter1: int = 8, jitter2: int = 4, scales: Amounts = LUCID_SCALES,
                 angles: Amounts = LUCID_ANGLES, fill: float = 0.5, size: int | Sequence[int] | None = None) -> None:
        super().__init__()
        self.pad, self.jitter1, self.jitter2, self.fill = pad, jitter1, jitter2, fill
        self.scales, self.angles = _amounts(scales, "scales"), _amounts(angles, "angles")
        self.size = None if size is None else ((size, size) if isinstance(size, int) else tuple(size))

    def forward(self, x: torch.Tensor, rng: torch.Generator | None = None) -> torch.Tensor:
        b, _, h, w = x.shape
        a1y, a1x = (int(v) for v in torch.randint(self.jitter1 + 1, (2,), generator=rng))
        s = _draw(self.scales, rng)
        angle = math.radians(_draw(self.angles, rng))
        a2y, a2x = (int(v) for v in torch.randint(self.jitter2 + 1, (2,), generator=rng))
        oh, ow = self.size or (h, w)
        # sizes along Lucid's chain: after the first crop, after scaling, after the second crop
        ch, cw = h + 2 * self.pad - self.jitter1, w + 2 * self.pad - self.jitter1
        sh, sw = max(1, round(ch * s)), max(1, round(cw * s))
        fh, fw = sh - self.jitter2, sw - self.jitter2
        cos, sin = math.cos(angle), math.sin(angle)
        # output pixel centre (i, j) in [0, oh) x [0, ow) -> the final crop's pixel -> the rotated canvas -> the
        # unrotated scaled canvas -> the first crop -> the padded canvas -> the input; all affine, composed below
        # as input = M @ [j, i, 1] in pixel-centre coordinates.
        m_out = torch.tensor([[fw / ow, 0.0, 0.5 * fw / ow - 0.5], [0.0, fh / oh, 0.5 * fh / oh - 0.5],
                              [0.0, 0.0, 1.0]], dtype=torch.float64)  # output pixel -> final-crop pixel
        shift2 = _translate(a2x, a2y)
        cx, cy = (sw - 1) / 2, (sh - 1) / 2
        rot = _translate(cx, cy) @ torch.tensor([[cos, -sin, 0.0], [sin, cos, 0.0], [0.0, 0.0, 1.0]],
                                                 dtype=torch.float64) @ _translate(-cx, -cy)
        unscale = torch.tensor([[cw / sw, 0.0, 0.5 * cw / sw - 0.5], [0.0, ch / sh, 0.5 * ch / sh - 0.5],
                                [0.0, 0.0, 1.0]], dtype=torch.float64)
        m = _translate(a1x - self.pad, a1y - self.pad) @ unscale @ rot @ shift2 @ m_out  # -> input pixel centres
        # to grid_sample's normalized coordinates (align_corners=False): x_n = (2 x + 1) / W - 1
        to_norm_in = torch.tensor([[2.0 / w, 0.0, 1.0 / w - 1.0], [0.0, 2.0 / h, 1.0 / h - 1.0], [0.0, 0.0, 1.0]],
                                  dtype=torch.float64)
        from_norm_out = torch.tensor([[ow / 2.0, 0.0, (ow - 1) / 2.0], [0.0, oh / 2.0, (oh - 1) / 2.0],
                                      [0.0, 0.0, 1.0]], dtype=torch.float64)
        theta = (to_norm_in @ m @ from_norm_out)[:2].to(dtype=x.dtype, device=x.device)
        grid = F.affine_grid(theta.expand(b, 2, 3), [b, x.shape[1], oh, ow], align_corners=False)
        return F.grid_sample(x - self.fill, grid, mode="bilinear", padding_mode="zeros", align_corners=False) + self.fill

    def extra_repr(self) -> str:
        return f"pad={self.pad}, jitter=({self.jitter1}, {self.jitter2}), size={self.size}"


def _translate(dx: float, dy: float) -> torch.Tensor:
    return torch.tensor([[1.0, 0.0, float(dx)], [0.0, 1.0, float(dy)], [0.0, 0.0, 1.0]], dtype=torch.float64)


def make_transforms(transforms: str | Transform | Sequence[Transform] | None) -> Compose:
    """A :class:`Compose` from `"standard"`, `"fused"` (the same draws, one resampling at the image's size),
    `"none"`/None, a transform, or a list of transforms."""
    if transforms is None or transforms == "none":
        return Compose([])
    if transforms == "standard":
        return standard_transforms()
    if transforms == "fused":
        return Compose([standard_transforms(fused=True)])
    if isinstance(transforms, Compose):
        return transforms
    if isinstance(transforms, Transform):
        return Compose([transforms])
    if isinstance(transforms, (list, tuple)) and all(isinstance(t, Transform) for t in transforms):
        return Compose(list(transforms))
    raise ParameterizationError(
        f"unknown transforms {transforms!r}; use 'standard', 'fused', 'none', or invviz.optvis transforms"
        " (Pad, Jitter, Translate, RandomCrop, RandomFlip, GaussianBlur, RandomScale, RandomRotate, Resize, Compose)"
    )
