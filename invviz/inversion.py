"""`invviz.invert`: one inversion verb for every model.

A :class:`invviz.align.FeatureAligned` model decodes its latent with its own alignment steps (feature alignment,
Farias & Maziero 2023). Any other model is inverted by optimization (Mahendran & Vedaldi 2015): the image whose
features at `layer` match the target's, under the priors of :mod:`invviz.optvis.inversion`.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Sequence

import torch
from torch import nn

from .align.wrapper import FeatureAligned, default_latent_layer
from .errors import ImageSizeError, ObjectiveError, SettingError
from .metrics import psnr, ssim
from .models.loading import Preprocessing
from .models.probe import Probe, as_probe, check_images, image_size
from .optvis.inversion import check_latent, invert_features, latent_size
from .optvis.param import ImageParam
from .optvis.transforms import Transform, Translate
from .settings import INVERT_JITTER, INVERT_LR, INVERT_PARAM, INVERT_STEPS, INVERT_TV
from .validate import check_positive_int

INVERT_POLISH = 0.2  # the last fifth of the steps without shifts and total variation (see invert's docstring)


@dataclasses.dataclass
class Inversion:
    """The result of :func:`invert`.

    Attributes:
        images: reconstructions `(B, C, H, W)` in [0, 1].
        latent: the latent inverted `(B, d)` (the flattened features of `layer`).
        psnr, ssim: per image against the input, when one was given (`(B,)`), else None.
        layer: the layer inverted.
        method: `"feature alignment"` or `"optimization"`.
        originals: the input images when given (for :meth:`save`).
        seconds: wall time.
        preprocessing: the normalization the model was run with.
        feature_error: `|f(reconstruction) - f(target)| / |f(target)|` per image at `layer`: near 0 when the
            inversion converged (a reconstruction far from the input then means the layer does not keep it).
    """

    images: torch.Tensor
    latent: torch.Tensor
    psnr: torch.Tensor | None
    ssim: torch.Tensor | None
    seconds: float
    layer: str = ""
    method: str = ""
    originals: torch.Tensor | None = None
    preprocessing: Preprocessing | None = None
    feature_error: torch.Tensor | None = None

    def save(self, path: str | os.PathLike[str]) -> str:
        """Write a PNG (atomically): the inputs on the first row, the reconstructions below (or only those)."""
        from .plotting import save_grid

        if self.originals is None:
            return save_grid(self.images, path)
        return save_grid(torch.cat([self.originals, self.images]), path, nrow=self.images.shape[0])

    def __repr__(self) -> str:
        q = "" if self.psnr is None else f", psnr={float(self.psnr.mean()):.2f} dB"
        q += "" if self.ssim is None else f", ssim={float(self.ssim.mean()):.3f}"
        q += "" if self.feature_error is None else f", feature_error={float(self.feature_error.mean()):.3g}"
        return (f"Inversion(images={tuple(self.images.shape)}, layer={self.layer!r}, method={self.method!r},"
                f" latent={tuple(self.latent.shape)}{q})")


def invert(model: nn.Module | Probe, image: torch.Tensor | None = None, *, latent: torch.Tensor | None = None,
           layer: str | None = None, steps: int | None = None, size: int | Sequence[int] | None = None,
           param: str | ImageParam = INVERT_PARAM,
           transforms: str | Transform | Sequence[Transform] | None = "default",
           tv_weight: float = INVERT_TV, lr: float = INVERT_LR, seed: int = 0, progress: bool = False
           ) -> Inversion:
    """Reconstruct images from a model's features.

    Args:
        model: a :class:`invviz.align.FeatureAligned` model (decoded with its own T alignment steps), or any image
            model (inverted by optimization at `layer`), or a :class:`~invviz.Probe` of one.
        image: images `(C, H, W)` or `(B, C, H, W)` in [0, 1] to encode and reconstruct; or None with `latent`.
        latent: a latent `(d,)` or `(B, d)` alone (the flattened features of `layer`).
        layer: the layer inverted (default: the FA model's latent; otherwise the model's feature stage at stride 8,
            see :func:`invviz.align.default_latent_layer`; the result's `layer` says which).
        steps: alignment steps for an FA model (default its T), optimization steps otherwise (default 300).
        size: image size when only `latent` is given (default: the model's native input size).
        param, transforms, tv_weight, lr, seed: optimization-based inversion: parameterization, random transforms
            (`"default"`: shifts of up to 2 px; `"none"`), weight of the total-variation prior, Adam learning rate,
            seed. The shifts and the prior help on natural CNN features but cap an exact inverse, so the last fifth
            of the steps runs without them, from the image reached (for a parameterization given by name).

    Example:
        >>> from invviz.models.zoo import FashionResNet
        >>> rec = invert(FashionResNet(width=8), torch.rand(1, 1, 28, 28), layer="layer1", steps=5)
        >>> rec.images.shape, rec.layer
        (torch.Size([1, 1, 28, 28]), 'layer1')
    """
    if (image is None) == (latent is None):
        raise ObjectiveError("pass exactly one of image= (to encode and reconstruct) or latent= (to decode)")
    if steps is not None:
        check_positive_int(steps, "steps")
    start = time.perf_counter()
    if isinstance(model, FeatureAligned):
        return _invert_aligned(model, image, latent, layer, steps, start)
    base = as_probe(model)
    layer = default_latent_layer(base.model, "invert") if layer is None else layer
    probe = base.reading([layer])
    channels = probe.channels_in
    x = None if image is None else check_images(image, channels=channels)
    if x is not None:
        hw = tuple(x.shape[2:])
        with torch.no_grad():
            z = probe.latent(x)
    else:
        hw = probe.native_size if size is None else image_size(size)
        z = check_latent(latent, latent_size(probe, layer, hw), layer).to(probe.device)
    tf = [Translate(INVERT_JITTER)] if isinstance(transforms, str) and transforms == "default" else transforms
    total = INVERT_STEPS if steps is None else steps
    polish = int(round(INVERT_POLISH * total)) if (tf or tv_weight) and isinstance(param, str) else 0
    result = invert_features(base, layer, z, hw, steps=total - polish, param=param, transforms=tf,
                             tv_weight=tv_weight, lr=lr, seed=seed, channels=channels, progress=progress)
    if polish:
        result = invert_features(base, layer, z, hw, steps=polish, param=param, init=result.images, lr=lr,
                                 seed=seed, channels=channels, progress=progress)
    with torch.no_grad(), probe:
        error = relative_error(probe.latent(result.images.to(probe.device)), z)
    return _result(result.images, z, x, time.perf_counter() - start, layer, "optimization", result.preprocessing,
                   error)


def _invert_aligned(model: FeatureAligned, image, latent, layer, steps, start) -> Inversion:
    if layer not in (None, model.layer):
        raise ObjectiveError(f"this FeatureAligned model decodes its latent at {model.layer!r}, not {layer!r}")
    x = None
    if image is not None:
        x = check_images(image, channels=model.channels)
        if tuple(x.shape[2:]) != model.size:
            raise ImageSizeError(f"this FeatureAligned model decodes {model.size} images; got {tuple(x.shape[2:])}"
                                 f" (resize them, or wrap with FeatureAligned(..., size={tuple(x.shape[2:])}))")
        with torch.no_grad():
            z = model.encode(x.to(model.r0.device))
    else:
        want = model.encode(torch.full((1, model.channels, *model.size), 0.5, device=model.r0.device)).shape[1]
        z = check_latent(latent, want, model.layer).to(model.r0.device)
    out = model.decode(z, steps)
    with torch.no_grad():
        error = relative_error(model.encode(out), z)
    return _result(out, z, x, time.perf_counter() - start, model.layer, "feature alignment", model.prep, error)


def relative_error(z_hat: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """`|z_hat - z| / |z|` per image `(B,)`: how far the reconstruction's features are from the target's."""
    z = z.to(z_hat.device, z_hat.dtype)
    return ((z_hat - z).flatten(1).norm(dim=1) / z.flatten(1).norm(dim=1).clamp(min=1e-12)).detach().float().cpu()


def _result(images: torch.Tensor, z: torch.Tensor, x: torch.Tensor | None, seconds: float, layer: str, method: str,
            prep, feature_error: torch.Tensor | None = None) -> Inversion:
    out = images.detach().float().cpu()
    if x is not None and x.shape != out.shape:
        raise SettingError(f"the reconstruction has shape {tuple(out.shape)} but the input {tuple(x.shape)}")
    xc = None if x is None else x.detach().float().cpu()
    q_psnr = None if xc is None else psnr(xc, out).float()
    q_ssim = None if xc is None or min(out.shape[2:]) < 11 else ssim(xc, out).float()
    return Inversion(images=out, latent=z.detach().float().cpu(), psnr=q_psnr, ssim=q_ssim, seconds=seconds,
                     layer=layer, method=method, originals=xc, preprocessing=prep, feature_error=feature_error)


__all__ = ["Inversion", "invert"]
