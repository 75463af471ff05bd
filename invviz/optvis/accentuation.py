"""Feature accentuation (Hamblin et al. 2024, "Feature Accentuation: Revealing 'What' Features Respond to in Natural
Images"; Horama's `accentuation`): start from a natural image and raise an objective while keeping the image close to
the start in a reference layer's features, so the change shows what the unit responds to *in this image*."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..errors import SettingError
from ..models.probe import Probe, as_probe, check_images
from .objectives import Objective, as_objective, custom
from .param import ImageParam, make_param
from .render import RenderResult, render
from .transforms import Transform, make_transforms


class _WithReference(ImageParam):
    """The image being optimized `(B, C, H, W)` followed by the (fixed) seed images: one batch, so the render's
    random transform (one draw per batch) moves both alike and their features can be compared position by position."""

    def __init__(self, param: ImageParam, reference: torch.Tensor) -> None:
        super().__init__(param.size, param.batch * 2, decorrelate=False, channels=param.channels)
        self.inner = param
        self.register_buffer("reference", reference.detach().clone(), persistent=False)

    def forward(self) -> torch.Tensor:
        images = self.inner()
        return torch.cat([images, self.reference.to(images.dtype)])


class _Accentuation(Objective):
    """`objective - weight * distance` on the first half of the batch (the images), 0 on the seed images."""

    def __init__(self, objective: Objective, distance: Objective, weight: float, n: int, part: str = "total") -> None:
        self.objective, self.distance, self.weight, self.n, self.part = objective, distance, weight, n, part
        self.layers = tuple(dict.fromkeys((*objective.layers, *distance.layers)))
        self.name = {"total": f"accentuate({objective!r})", "objective": repr(objective),
                     "distance": repr(distance)}[part]

    def value(self, feats):
        n = self.n
        if self.part == "distance" or (self.part == "total" and self.weight):
            pair = {k: torch.cat([v[:n], v[n:]], 1) for k, v in feats.items() if k in self.distance.layers}
            dist = self.distance(pair)
        if self.part == "distance":
            value = dist
        else:
            value = self.objective({k: v[:n] for k, v in feats.items()})
            if self.part == "total" and self.weight:
                value = value - self.weight * dist
        return torch.cat([value, torch.zeros_like(value)])  # the seed images contribute nothing


def feature_distance(layer: str) -> Objective:
    """`|f(x) - f(x0)|^2 / |f(x0)|^2` per pair, for features of images and seeds stacked on the channel axis
    `(B, 2C, H, W)` (the images' channels, then the seeds')."""

    def dist(pair: torch.Tensor) -> torch.Tensor:
        f, f0 = pair.chunk(2, dim=1)
        return (f - f0).pow(2).flatten(1).sum(1) / f0.pow(2).flatten(1).sum(1).clamp(min=1e-12)

    return custom(layer, dist, name=f"feature_distance({layer!r})")


def accentuate(model: nn.Module | Probe, layer: str | None, objective: object, image: torch.Tensor, *,
               reg_layer: str, reg_weight: float = 1.0, steps: int = 256, lr: float = 0.02,
               param: str = "fft", transforms: str | Transform | Sequence[Transform] | None = "standard",
               seed: int = 0, progress: bool = False) -> RenderResult:
    """Accentuate `objective` (a channel of `layer`, or any objective) in `image` `(3, H, W)` or `(B, 3, H, W)` in
    [0, 1].

    The image is the start of a pixel or FFT parameterization (reproduced exactly at step 0) and the render maximizes
    `objective - reg_weight * feature_distance(reg_layer)`, the distance to the seed image's features at
    `reg_layer`: the objective rises while those features stay near the seed's. The seed images go through the
    network beside the images being optimized, under the same random transform each step, so the distance compares
    like with like. `RenderResult.monitored` holds the objective alone (`"objective"`) and the distance
    (`"distance"`) at every step; `reg_weight=0` is plain optimization from the image.

    Example:
        >>> import torchvision
        >>> net = torchvision.models.resnet18().eval()
        >>> res = accentuate(net, "layer3", 5, torch.rand(3, 32, 32), reg_layer="layer1", steps=2)
        >>> sorted(res.monitored), tuple(res.images.shape)
        (['distance', 'objective'], (1, 3, 32, 32))
    """
    base = as_probe(model)
    if not isinstance(reg_weight, (int, float)) or not reg_weight >= 0:
        raise SettingError(f"reg_weight must be a number >= 0; got {reg_weight!r}")
    obj = as_objective(objective, layer)
    probe = base.reading([reg_layer])
    x = check_images(image, channels=probe.channels_in, what="the image to accentuate")
    n = x.shape[0]
    distance = feature_distance(reg_layer)
    rng = torch.Generator().manual_seed(seed)
    p = _WithReference(make_param(param, tuple(x.shape[2:]), n, rng, init=x, channels=x.shape[1]), x)
    res = render(base, _Accentuation(obj, distance, float(reg_weight), n), p, transforms=make_transforms(transforms),
                 steps=steps, lr=lr, rng=rng, progress=progress, snapshots=[0],
                 monitor={"objective": _Accentuation(obj, distance, 0.0, n, "objective"),
                          "distance": _Accentuation(obj, distance, 0.0, n, "distance")})
    res.images, res.history, res.final = res.images[:n], res.history[:, :n], res.final[:n]
    res.snapshots = {k: v[:n] for k, v in res.snapshots.items()}
    res.monitored = {k: v[:, :n] for k, v in res.monitored.items()}
    return res


__all__ = ["accentuate", "feature_distance"]
