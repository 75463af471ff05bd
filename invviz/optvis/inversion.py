"""Optimization-based feature inversion (Mahendran & Vedaldi 2015, "Understanding Deep Image Representations by
Inverting Them"): the image whose features at a layer match a target's, through the render loop.

The objective is the normalized feature distance `-|f(x) - f0|^2 / |f0|^2` plus priors: total variation
(`tv_weight`), and the parameterization and transforms the render loop already has (an FFT basis with colour
decorrelation and small random shifts keep the image natural; measured against pixels in `benchmarks/`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..errors import ObjectiveError, SettingError
from ..models.probe import Probe, as_probe
from .objectives import Objective, custom, total_variation
from .param import ImageParam, make_param
from .render import RenderResult, render
from .transforms import Transform, make_transforms


def feature_match(layer: str, target: torch.Tensor) -> Objective:
    """`-|f - f0|^2 / |f0|^2` per batch element for target features `f0 (B, ...)` (flattened) at `layer`."""
    flat = target.detach().flatten(1)
    scale = flat.pow(2).sum(1).clamp(min=1e-12)

    def match(feats: torch.Tensor) -> torch.Tensor:
        return -(feats.flatten(1) - flat.to(feats.dtype)).pow(2).sum(1) / scale.to(feats.dtype)

    return custom(layer, match, name=f"feature_match({layer!r})")


def invert_features(model: nn.Module | Probe, layer: str, target: torch.Tensor, size: tuple[int, int], *,
                    steps: int = 300, param: str | ImageParam = "fft", transforms: str | Transform | Sequence[Transform]
                    | None = None, tv_weight: float = 0.0, lr: float = 0.05, seed: int = 0, channels: int = 3,
                    progress: bool = False, preprocessing=None, init: torch.Tensor | None = None) -> RenderResult:
    """Images `(B, C, *size)` whose features at `layer` match `target (B, d)` (flattened features of the layer);
    `init` starts from images (a parameterization given by name)."""
    if not isinstance(tv_weight, (int, float)) or not tv_weight >= 0:
        raise SettingError(f"tv_weight must be a number >= 0; got {tv_weight!r}")
    objective = feature_match(layer, target)
    if tv_weight:
        objective = objective + tv_weight * total_variation()
    p = make_param(param, size, target.shape[0], torch.Generator().manual_seed(seed), channels=channels, init=init)
    return render(as_probe(model, preprocessing=preprocessing), objective, p, transforms=make_transforms(transforms),
                  steps=steps, lr=lr, rng=torch.Generator().manual_seed(seed + 1), progress=progress)


def latent_size(model: nn.Module | Probe, layer: str, size: tuple[int, int], preprocessing=None) -> int:
    """Values per image of the flattened features of `layer` at input size `size`."""
    probe = as_probe(model, [layer], preprocessing=preprocessing)
    with torch.no_grad():
        return int(probe.latent(torch.full((1, probe.channels_in, *size), 0.5, device=probe.device)).shape[1])


def check_latent(latent: object, want: int, layer: str) -> torch.Tensor:
    if not isinstance(latent, torch.Tensor):
        raise ObjectiveError(f"a latent is a tensor (d,) or (B, d); got {type(latent).__name__}")
    z = latent[None] if latent.dim() == 1 else latent
    if z.dim() != 2 or z.shape[1] != want:
        raise ObjectiveError(f"the latent of {layer!r} has {want} values per image; got shape {tuple(latent.shape)}")
    if not z.dtype.is_floating_point or not bool(torch.isfinite(z).all()):
        raise ObjectiveError("a latent must be finite floating-point values")
    return z


__all__ = ["feature_match", "invert_features", "latent_size", "check_latent"]
