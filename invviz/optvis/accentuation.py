"""Feature accentuation (Hamblin et al. 2024, "Feature Accentuation: Revealing 'What' Features Respond to in Natural
Images"; Horama's `accentuation`): start from a natural image and raise an objective while keeping the image close to
the start in a reference layer's features, so the change shows what the unit responds to *in this image*."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import SettingError
from ..models.probe import Probe, check_images, check_model
from .objectives import Objective, as_objective, custom
from .param import make_param
from .render import RenderResult, render
from .transforms import Transform, make_transforms


def feature_distance(layer: str, reference: torch.Tensor, grid: int = 4) -> Objective:
    """`|g(x) - g(x0)|^2 / |g(x0)|^2` per batch element, `g` the features at `layer` averaged onto a `grid x grid`
    grid (so the random transforms' changes of size and position do not count as distance; the coarse layout and
    every channel do). A distance: subtract it to stay close to `x0`."""
    ref = F.adaptive_avg_pool2d(reference.detach(), grid).flatten(1)
    scale = ref.pow(2).sum(1).clamp(min=1e-12)

    def dist(feats: torch.Tensor) -> torch.Tensor:
        g = F.adaptive_avg_pool2d(feats, grid).flatten(1)
        return (g - ref.to(g.dtype)).pow(2).sum(1) / scale.to(g.dtype)

    return custom(layer, dist, name=f"feature_distance({layer!r})")


def accentuate(model: nn.Module, layer: str | None, objective: object, image: torch.Tensor, *,
               reg_layer: str, reg_weight: float = 1.0, steps: int = 256, lr: float = 0.02,
               param: str = "fft", transforms: str | Transform | Sequence[Transform] | None = "standard",
               seed: int = 0, progress: bool = False) -> RenderResult:
    """Accentuate `objective` (a channel of `layer`, or any objective) in `image` `(3, H, W)` or `(B, 3, H, W)` in
    [0, 1].

    The image is the start of a pixel or FFT parameterization (reproduced exactly at step 0) and the render maximizes
    `objective - reg_weight * feature_distance(reg_layer)`: the objective rises while the features at `reg_layer`
    stay near the start's. `RenderResult.monitored` holds the objective alone (`"objective"`) and the distance
    (`"distance"`) at every step; `reg_weight=0` is plain optimization from the image.

    Example:
        >>> import torchvision
        >>> net = torchvision.models.resnet18().eval()
        >>> res = accentuate(net, "layer3", 5, torch.rand(3, 32, 32), reg_layer="layer1", steps=2)
        >>> sorted(res.monitored)
        ['distance', 'objective']
    """
    model = check_model(model)
    if not isinstance(reg_weight, (int, float)) or not reg_weight >= 0:
        raise SettingError(f"reg_weight must be a number >= 0; got {reg_weight!r}")
    obj = as_objective(objective, layer)
    probe = Probe(model, [reg_layer])
    x = check_images(image, channels=probe.channels_in, what="the image to accentuate")
    with torch.no_grad():
        reference = probe(x)[reg_layer]
    distance = feature_distance(reg_layer, reference)
    total = obj - reg_weight * distance if reg_weight else obj
    rng = torch.Generator().manual_seed(seed)
    p = make_param(param, tuple(x.shape[2:]), x.shape[0], rng, init=x, channels=x.shape[1])
    return render(model, total, p, transforms=make_transforms(transforms), steps=steps, lr=lr, rng=rng,
                  progress=progress, monitor={"objective": obj, "distance": distance}, snapshots=[0])


__all__ = ["accentuate", "feature_distance"]
