"""Comparing networks through their features (seed 001's stated goal): visualize a feature in network A, invert the
image in network B, and read off the feature of B that represents the same pattern."""

from __future__ import annotations

import dataclasses
import warnings

import torch
from torch import nn

from ..errors import ObjectiveError
from ..optvis.objectives import Aggregation
from ..optvis.param import PixelImage
from .realize import realize, reoptimize
from .recover import recover_objective
from .sampling import hoyer_sparseness


@dataclasses.dataclass
class Match:
    """The result of :func:`match`.

    Attributes:
        direction: the recovered unit direction in B's layer `(k_b,)`.
        sparseness: Hoyer sparseness of `|direction|` (1: a single unit).
        ssim: SSIM of A's visualization before/after re-optimizing it in B under `direction` (high: B's direction
            is optimal for the same image).
        top_units: B's units with the largest weights in `direction`, descending; `top_weights` their weights.
        image: A's visualization `(1, 3, H, W)`.
        relative_gradient: IFV's optimality measure in B (large values mean B has no direction for which the image
            is an optimum).
    """

    direction: torch.Tensor
    sparseness: float
    ssim: float
    top_units: list[int]
    top_weights: list[float]
    image: torch.Tensor
    relative_gradient: float


def match(model_a: nn.Module, layer_a: str, objective: int | torch.Tensor, model_b: nn.Module, layer_b: str, *,
          cossim_pow: float = 1.0, aggregation: Aggregation = "maxpool_mean", size: int = 128,
          adam_steps: int = 400, lbfgs_steps: int = 100, reopt_steps: int = 200, top: int = 5, seed: int = 0,
          points: int = 1) -> Match:
    """Visualize `objective` (a channel index or a direction `(k_a,)`) in A, then recover B's direction for it."""
    if isinstance(objective, int):
        k_a = _channels(model_a, layer_a, size)
        if not 0 <= objective < k_a:
            raise ObjectiveError(f"channel {objective} out of range for {layer_a!r} with {k_a} channels")
        target = torch.zeros(k_a)
        target[objective] = 1.0
    else:
        target = torch.as_tensor(objective, dtype=torch.float32).flatten()
    real = realize(model_a, layer_a, target, cossim_pow=cossim_pow, aggregation=aggregation, size=size,
                   adam_steps=adam_steps, lbfgs_steps=lbfgs_steps, seed=seed)
    param = real.element(0)
    image = param().detach()
    pixels = PixelImage(size, 1).to(image.device)
    with torch.no_grad():
        pixels.pixels.copy_(torch.logit(image.clamp(1e-6, 1 - 1e-6)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # an A-optimum is rarely an exact B-optimum; the value is reported instead
        rec = recover_objective(model_b, layer_b, pixels, cossim_pow=cossim_pow, aggregation=aggregation,
                                points=points, seed=seed)
    d = rec.direction
    ssim, _ = reoptimize(model_b, layer_b, pixels, d[None], steps=reopt_steps, cossim_pow=cossim_pow,
                         aggregation=aggregation)
    order = d.abs().argsort(descending=True)[:top]
    return Match(direction=d, sparseness=float(hoyer_sparseness(d.abs())), ssim=float(ssim[0]),
                 top_units=order.tolist(), top_weights=d[order].tolist(), image=image.cpu(),
                 relative_gradient=rec.relative_gradient)


def _channels(model: nn.Module, layer: str, size: int) -> int:
    from ..models.capture import Capture
    from ..models.loading import model_device
    from ..models.state import frozen_eval

    with torch.no_grad(), frozen_eval(model), Capture(model, [layer]) as cap:
        return int(cap.run(torch.zeros(1, 3, size, size, device=model_device(model)))[layer].shape[1])
