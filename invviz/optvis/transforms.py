"""Random transformations applied to the image at every optimization step (plain torch).

Each transform is an `nn.Module` whose `forward(x, generator)` takes images `(B, C, H, W)` and a
`torch.Generator` (CPU) for its random draws, so a seed gives the same sequence of transforms on any device.
One draw is shared by the whole batch, as in Lucid.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ParameterizationError


def _choice(options: Sequence[float], generator: torch.Generator | None) -> float:
    return options[int(torch.randint(len(options), (1,), generator=generator))]


class Transform(nn.Module):
    """Base class of the transforms: `forward(x (B, C, H, W), generator) -> (B, C, H', W')`."""

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        raise NotImplementedError


class Pad(Transform):
    """Pad `width` pixels on each side with a constant (Lucid pads with 0.5) or by reflection."""

    def __init__(self, width: int, mode: str = "constant", value: float = 0.5) -> None:
        super().__init__()
        self.width, self.mode, self.value = int(width), mode, value

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        w = self.width
        if self.mode == "constant":
            return F.pad(x, (w, w, w, w), mode="constant", value=self.value)
        return F.pad(x, (w, w, w, w), mode=self.mode)

    def extra_repr(self) -> str:
        return f"width={self.width}, mode={self.mode!r}, value={self.value}"


class Jitter(Transform):
    """Random crop `d` pixels smaller in each direction, at an offset in `0..d-1` (Lucid's `jitter`)."""

    def __init__(self, d: int) -> None:
        super().__init__()
        if d < 1:
            raise ParameterizationError(f"jitter needs d >= 1; got {d}")
        self.d = int(d)

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        h, w = x.shape[2:]
        dy, dx = (int(v) for v in torch.randint(self.d, (2,), generator=generator))
        return x[:, :, dy:dy + h - self.d + 1, dx:dx + w - self.d + 1]

    def extra_repr(self) -> str:
        return f"d={self.d}"


class RandomScale(Transform):
    """Resize by a factor drawn from `scales` (bilinear)."""

    def __init__(self, scales: Sequence[float]) -> None:
        super().__init__()
        self.scales = [float(s) for s in scales]

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        s = _choice(self.scales, generator)
        if s == 1.0:
            return x
        h, w = x.shape[2:]
        return F.interpolate(x, size=(max(1, round(h * s)), max(1, round(w * s))), mode="bilinear",
                             align_corners=False)

    def extra_repr(self) -> str:
        return f"scales={self.scales}"


class RandomRotate(Transform):
    """Rotate about the centre by an angle (degrees) drawn from `angles`; corners filled with `fill`."""

    def __init__(self, angles: Sequence[float], fill: float = 0.5) -> None:
        super().__init__()
        self.angles = [float(a) for a in angles]
        self.fill = fill

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        angle = _choice(self.angles, generator)
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
    """Resize to a fixed `(H, W)` (bilinear); the last transform for models that take one input size only."""

    def __init__(self, size: int | Sequence[int]) -> None:
        super().__init__()
        self.size = (size, size) if isinstance(size, int) else tuple(size)

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if tuple(x.shape[2:]) == self.size:
            return x
        return F.interpolate(x, size=self.size, mode="bilinear", align_corners=False, antialias=False)

    def extra_repr(self) -> str:
        return f"size={self.size}"


class Compose(Transform):
    """Apply transforms in order, passing the generator along."""

    def __init__(self, transforms: Sequence[Transform] = ()) -> None:
        super().__init__()
        self.transforms = nn.ModuleList(transforms)

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        for t in self.transforms:
            x = t(x, generator)
        return x


def standard_transforms() -> Compose:
    """Lucid's `standard_transforms`: pad 12 (0.5), jitter 8, scale 0.9..1.1, rotate -10..10 degrees, jitter 4."""
    return Compose([
        Pad(12, value=0.5),
        Jitter(8),
        RandomScale([1 + (i - 5) / 50.0 for i in range(11)]),
        RandomRotate(list(range(-10, 11)) + 5 * [0]),
        Jitter(4),
    ])


def make_transforms(transforms: str | Transform | Sequence[Transform] | None) -> Compose:
    """A :class:`Compose` from `"standard"`, `"none"`/None, a transform, or a list of transforms."""
    if transforms is None or transforms == "none":
        return Compose([])
    if transforms == "standard":
        return standard_transforms()
    if isinstance(transforms, Compose):
        return transforms
    if isinstance(transforms, Transform):
        return Compose([transforms])
    if isinstance(transforms, (list, tuple)) and all(isinstance(t, Transform) for t in transforms):
        return Compose(list(transforms))
    raise ParameterizationError(
        f"unknown transforms {transforms!r}; use 'standard', 'none', or invviz.optvis transforms"
        " (Pad, Jitter, RandomScale, RandomRotate, Resize, Compose)"
    )
