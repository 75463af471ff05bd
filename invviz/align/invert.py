"""`invviz.invert`: one inversion verb for every model.

A :class:`FeatureAligned` model decodes its latent with its own alignment steps. Any other model is inverted by
optimization (Mahendran & Vedaldi 2015): find the image whose features at `layer` match the target's, under a
total-variation prior, with the core's parameterizations and render loop.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence

import torch
from torch import nn

from ..errors import ImageSizeError, ObjectiveError
from ..metrics import psnr, ssim
from ..models.features import LayerFeatures
from ..models.loading import model_device, preprocessing_of
from ..optvis.objectives import custom, total_variation
from ..optvis.param import ImageParam, make_param
from ..optvis.render import render
from .wrapper import FeatureAligned, default_latent_layer, image_batch


@dataclasses.dataclass
class Inversion:
    """The result of :func:`invert`: reconstructions `(B, 3, H, W)` in [0, 1], the latent `(B, d)` inverted, and
    PSNR/SSIM against the input when one was given."""

    images: torch.Tensor
    latent: torch.Tensor
    psnr: torch.Tensor | None
    ssim: torch.Tensor | None
    seconds: float

    def __repr__(self) -> str:
        q = "" if self.psnr is None else f", psnr={float(self.psnr.mean()):.2f} dB"
        q += "" if self.ssim is None else f", ssim={float(self.ssim.mean()):.3f}"
        return f"Inversion(images={tuple(self.images.shape)}, latent={tuple(self.latent.shape)}{q})"


def _features(model: nn.Module, layer: str, images: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return LayerFeatures(model, layer, pool=False)(images.to(model_device(model)))


def invert(model: nn.Module, image: torch.Tensor | None = None, *, latent: torch.Tensor | None = None,
           layer: str | None = None, steps: int | None = None, size: int | Sequence[int] | None = None,
           param: str | ImageParam = "pixel", tv_weight: float = 0.05, lr: float = 0.05, seed: int = 0,
           progress: bool = False) -> Inversion:
    """Reconstruct images from a model's features.

    Args:
        model: a :class:`invviz.align.FeatureAligned` model (decoded with its own T alignment steps), or any image
            model (inverted by optimization at `layer`).
        image: images `(3, H, W)` or `(B, 3, H, W)` in [0, 1] to encode and reconstruct; or None with `latent`.
        latent: a latent `(d,)` or `(B, d)` alone (the flattened features of `layer`).
        layer: the layer inverted (default: the FA model's latent layer, else the pooled penultimate features).
        steps: alignment steps for an FA model (default its T), optimization steps otherwise (default 300).
        size: image size when only `latent` is given (default: the model's native input size).
        param, tv_weight, lr, seed: optimization-based inversion: parameterization, weight of the total-variation
            prior, Adam learning rate, seed of the initial image.
    """
    if (image is None) == (latent is None):
        raise ObjectiveError("pass exactly one of image= (to encode and reconstruct) or latent= (to decode)")
    x = None if image is None else image_batch(image)
    start = time.perf_counter()
    if isinstance(model, FeatureAligned):
        if layer not in (None, model.layer):
            raise ObjectiveError(f"this FeatureAligned model decodes its latent at {model.layer!r}, not {layer!r}")
        if x is not None:
            x = x.to(model_device(model.model))
            z = model.encode(x).detach()
        else:
            z = torch.as_tensor(latent, dtype=torch.float32, device=model_device(model.model))
            z = z[None] if z.dim() == 1 else z
            want = model.encode(torch.full((1, 3, *model.size), 0.5, device=z.device)).shape[1]
            if z.dim() != 2 or z.shape[1] != want:
                raise ObjectiveError(f"the latent must have {want} values per image; got shape {tuple(z.shape)}")
        out = model.decode(z, steps)
    else:
        layer = layer or default_latent_layer(model)
        if x is not None:
            z = _features(model, layer, x)
            hw = tuple(x.shape[2:])
        else:
            z = torch.as_tensor(latent, dtype=torch.float32, device=model_device(model))
            z = z[None] if z.dim() == 1 else z
            native = preprocessing_of(model).input_size[1:]
            hw = native if size is None else ((size, size) if isinstance(size, int) else tuple(size))
            want = _features(model, layer, torch.full((1, 3, *hw), 0.5)).shape[1]
            if z.dim() != 2 or z.shape[1] != want:
                raise ObjectiveError(f"the latent of {layer!r} has {want} values per image; got shape"
                                     f" {tuple(z.shape)}")
        n_steps = 300 if steps is None else steps
        if n_steps < 1:
            raise ObjectiveError(f"steps must be >= 1; got {n_steps}")
        target = z.to(model_device(model))
        scale = target.pow(2).sum(1).clamp(min=1e-12)

        def match(feats: torch.Tensor) -> torch.Tensor:
            return -(feats.flatten(1) - target).pow(2).sum(1) / scale

        objective = custom(layer, match, name=f"feature_match({layer!r})")
        if tv_weight:
            objective = objective + tv_weight * total_variation()
        p = make_param(param, hw, target.shape[0], torch.Generator().manual_seed(seed))
        out = render(model, objective, p, transforms=None, steps=n_steps, lr=lr, progress=progress).images
    seconds = time.perf_counter() - start
    out = out.detach().cpu()
    if x is not None and x.shape != out.shape:
        raise ImageSizeError(f"the reconstruction has shape {tuple(out.shape)} but the input {tuple(x.shape)}; pass"
                             " images at the model's decoding size")
    q_psnr = None if x is None else psnr(x.cpu(), out).float()
    q_ssim = None if x is None or min(out.shape[2:]) < 11 else ssim(x.cpu(), out).float()
    return Inversion(images=out, latent=z.detach().cpu(), psnr=q_psnr, ssim=q_ssim, seconds=seconds)
